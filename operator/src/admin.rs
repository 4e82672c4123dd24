//! The operator's calls to the nodes' `Admin` service: the [`Admin`] trait
//! the driver and the platforms use, and [`GrpcAdmin`], its gRPC
//! implementation on the client library's channel cache, with one deadline
//! for every call.

use std::future::Future;
use std::time::Duration;

use dynamo_client::{Rpc, TlsOptions};
use dynamo_proto::v1 as pb;
use thiserror::Error;

/// The deadline of every Admin call unless the operator is told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an Admin call gave no usable answer.
#[derive(Debug, Error)]
pub enum AdminError {
    /// The node could not be reached, timed out or refused the call.
    #[error(transparent)]
    Call {
        /// The client library's error, naming the address.
        #[from]
        source: dynamo_client::Error,
    },
    /// The node answered `GetRing` without a ring.
    #[error("{address}: the node sent no ring")]
    NoRing {
        /// The node asked.
        address: String,
    },
}

/// What the operator asks of a node's Admin service. Implemented over gRPC
/// by [`GrpcAdmin`], and in memory by the driver's tests.
pub trait Admin: Send + Sync {
    /// The ring the node at `address` uses.
    ///
    /// # Errors
    /// [`AdminError`] when the node did not answer or sent no ring.
    fn ring(&self, address: &str) -> impl Future<Output = Result<pb::Ring, AdminError>> + Send;

    /// The node's status.
    ///
    /// # Errors
    /// [`AdminError`] when the node did not answer.
    fn status(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<pb::StatusResponse, AdminError>> + Send;

    /// Installs `ring`, which carries a change in flight; returns the epoch
    /// the node has afterwards.
    ///
    /// # Errors
    /// [`AdminError`] when the node did not answer or refused.
    fn propose(
        &self,
        address: &str,
        ring: &pb::Ring,
    ) -> impl Future<Output = Result<u64, AdminError>> + Send;

    /// Installs `ring`, which completes a change; returns the epoch the node
    /// has afterwards.
    ///
    /// # Errors
    /// [`AdminError`] when the node did not answer or refused.
    fn commit(
        &self,
        address: &str,
        ring: &pb::Ring,
    ) -> impl Future<Output = Result<u64, AdminError>> + Send;

    /// The node's incoming transfer progress.
    ///
    /// # Errors
    /// [`AdminError`] when the node did not answer.
    fn transfers(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<pb::TransferStatusResponse, AdminError>> + Send;
}

/// Admin calls over gRPC: one lazily connected channel per address, shared
/// by every caller of the same `GrpcAdmin`, and one deadline per call.
#[derive(Debug)]
pub struct GrpcAdmin {
    rpc: Rpc,
}

impl GrpcAdmin {
    /// A caller whose calls (and connection attempts) give up after
    /// `timeout`, over TLS with `tls` when set.
    pub fn new(timeout: Duration, tls: Option<TlsOptions>) -> Self {
        Self {
            rpc: Rpc::new(timeout, tls),
        }
    }
}

impl Default for GrpcAdmin {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT, None)
    }
}

impl Admin for GrpcAdmin {
    async fn ring(&self, address: &str) -> Result<pb::Ring, AdminError> {
        let response = self
            .rpc
            .call(address, pb::GetRingRequest {}, |channel, request| async {
                dynamo_client::admin_client(channel).get_ring(request).await
            })
            .await?;
        response.ring.ok_or_else(|| AdminError::NoRing {
            address: address.to_owned(),
        })
    }

    async fn status(&self, address: &str) -> Result<pb::StatusResponse, AdminError> {
        Ok(self
            .rpc
            .call(address, pb::StatusRequest {}, |channel, request| async {
                dynamo_client::admin_client(channel).status(request).await
            })
            .await?)
    }

    async fn propose(&self, address: &str, ring: &pb::Ring) -> Result<u64, AdminError> {
        let change = pb::RingChange {
            ring: Some(ring.clone()),
        };
        let response = self
            .rpc
            .call(address, change, |channel, request| async {
                dynamo_client::admin_client(channel)
                    .propose_ring(request)
                    .await
            })
            .await?;
        Ok(response.epoch)
    }

    async fn commit(&self, address: &str, ring: &pb::Ring) -> Result<u64, AdminError> {
        let change = pb::RingChange {
            ring: Some(ring.clone()),
        };
        let response = self
            .rpc
            .call(address, change, |channel, request| async {
                dynamo_client::admin_client(channel)
                    .commit_ring(request)
                    .await
            })
            .await?;
        Ok(response.epoch)
    }

    async fn transfers(&self, address: &str) -> Result<pb::TransferStatusResponse, AdminError> {
        Ok(self
            .rpc
            .call(
                address,
                pb::TransferStatusRequest {},
                |channel, request| async {
                    dynamo_client::admin_client(channel)
                        .transfer_status(request)
                        .await
                },
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_node_is_a_call_error_naming_it() {
        // Bind and drop a listener to find a port nobody listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let address = listener.local_addr().expect("bound").to_string();
        drop(listener);
        let admin = GrpcAdmin::new(Duration::from_secs(2), None);
        let error = admin.ring(&address).await.expect_err("nobody listens");
        assert!(matches!(error, AdminError::Call { .. }), "{error:?}");
        assert!(error.to_string().contains(&address), "{error}");
    }
}
