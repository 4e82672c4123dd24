//! The store under test, as the load generator sees it: a get and a put of
//! a record.

use std::future::Future;

use bytes::Bytes;

/// A key-value store the load generator drives. Records are numbered
/// `0..records`; [`key`](crate::key) gives the name a backend stores record
/// `index` under. A backend is shared by every worker, so its calls run
/// concurrently.
pub trait Backend: Send + Sync + 'static {
    /// Why an operation failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads record `record`. A record that is not there is not an error.
    fn get(&self, record: u64) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Writes `value` as record `record`.
    fn put(
        &self,
        record: u64,
        value: &Bytes,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
