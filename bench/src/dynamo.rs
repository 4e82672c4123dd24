//! The DynamoKV backend. Writes behave like an application's: each put
//! carries the context of the last put or get of its record (from any
//! worker), so it replaces the version it knows instead of piling up
//! siblings. Only writes that race on one key leave siblings; a put refused
//! for too many siblings reads the key and writes again with the merged
//! context, and that read counts towards the write's latency.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use dynamo_client::{Client, Context, Error, ReadOptions, WriteOptions};
use futures::{StreamExt as _, TryStreamExt as _};

use crate::backend::Backend;
use crate::workload::key;

/// A DynamoKV cluster reached through a [`Client`], with the latest context
/// seen for each record.
#[derive(Debug)]
pub struct DynamoBackend {
    client: Client,
    read: ReadOptions,
    write: WriteOptions,
    contexts: Contexts,
}

impl DynamoBackend {
    /// Reads and writes through `client` with these quorum and durability
    /// options.
    pub fn new(client: Client, read: ReadOptions, write: WriteOptions) -> Self {
        Self {
            client,
            read,
            write,
            contexts: Contexts::new(),
        }
    }

    /// Reads records `0..records`, `concurrency` at a time, to learn their
    /// contexts, as an application reads before it updates. Without it, the
    /// first write of each record loaded by an earlier process is blind
    /// and leaves the loaded version beside it as a sibling.
    ///
    /// # Errors
    ///
    /// The first read that fails.
    pub async fn learn_contexts(&self, records: u64, concurrency: usize) -> Result<(), Error> {
        futures::stream::iter(0..records)
            .map(|record| self.get(record))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await
    }
}

impl Backend for DynamoBackend {
    type Error = Error;

    async fn get(&self, record: u64) -> Result<(), Error> {
        let read = self.client.get_with(key(record), self.read).await?;
        self.contexts.set(record, read.context);
        Ok(())
    }

    /// Writes the record over the version last seen; when the key holds too
    /// many siblings, reads it first and writes with the merged context.
    async fn put(&self, record: u64, value: &Bytes) -> Result<(), Error> {
        let context = self.contexts.get(record);
        let written = match self
            .client
            .put_with(key(record), value.clone(), context.as_ref(), self.write)
            .await
        {
            Err(error) if too_many_siblings(&error) => {
                let read = self.client.get(key(record)).await?;
                self.client
                    .put_with(key(record), value.clone(), Some(&read.context), self.write)
                    .await?
            }
            other => other?,
        };
        self.contexts.set(record, written);
        Ok(())
    }
}

/// True for a write refused because the key has too many siblings.
fn too_many_siblings(error: &Error) -> bool {
    matches!(error, Error::Status { status, .. } if status.code() == tonic::Code::FailedPrecondition)
}

/// The latest context seen for each record, shared by the workers.
#[derive(Debug)]
struct Contexts {
    shards: Vec<Mutex<HashMap<u64, Context>>>,
}

impl Contexts {
    const SHARDS: usize = 64;

    fn new() -> Self {
        Self {
            shards: (0..Self::SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, record: u64) -> MutexGuard<'_, HashMap<u64, Context>> {
        self.shards[record as usize % Self::SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, record: u64) -> Option<Context> {
        self.shard(record).get(&record).cloned()
    }

    fn set(&self, record: u64, context: Context) {
        self.shard(record).insert(record, context);
    }
}
