//! Calls from the operator to the nodes' `Admin` service, with one
//! long-lived channel per address and a deadline on every call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use tonic::transport::{Channel, Endpoint};

/// Admin calls to any node.
pub struct Admin {
    channels: Mutex<HashMap<String, Channel>>,
    timeout: Duration,
}

impl Admin {
    /// A caller whose calls give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    fn client(&self, address: &str) -> Result<AdminClient<Channel>, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(address) {
            return Ok(AdminClient::new(channel.clone()));
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|error| format!("address {address:?} is invalid: {error}"))?
            .connect_timeout(self.timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(AdminClient::new(channel))
    }

    async fn call<T, F, Fut>(&self, address: &str, call: F) -> Result<T, String>
    where
        F: FnOnce(AdminClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.client(address)?;
        match tokio::time::timeout(self.timeout, call(client)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(format!("{address}: {}", status.message())),
            Err(_) => Err(format!("{address}: no answer within {:?}", self.timeout)),
        }
    }

    /// The ring a node uses.
    ///
    /// # Errors
    /// A sentence when the node did not answer or sent no ring.
    pub async fn ring(&self, address: &str) -> Result<pb::Ring, String> {
        let response = self
            .call(address, |mut c| async move {
                c.get_ring(pb::GetRingRequest {}).await
            })
            .await?;
        response
            .ring
            .ok_or_else(|| format!("{address}: the node sent no ring"))
    }

    /// A node's status.
    ///
    /// # Errors
    /// A sentence when the node did not answer.
    pub async fn status(&self, address: &str) -> Result<pb::StatusResponse, String> {
        self.call(address, |mut c| async move {
            c.status(pb::StatusRequest {}).await
        })
        .await
    }

    /// Installs a ring with a change in flight.
    ///
    /// # Errors
    /// A sentence when the node did not answer or refused.
    pub async fn propose(&self, address: &str, ring: &pb::Ring) -> Result<u64, String> {
        let request = pb::RingChange {
            ring: Some(ring.clone()),
        };
        let response = self
            .call(
                address,
                |mut c| async move { c.propose_ring(request).await },
            )
            .await?;
        Ok(response.epoch)
    }

    /// Installs a ring that completes a change.
    ///
    /// # Errors
    /// A sentence when the node did not answer or refused.
    pub async fn commit(&self, address: &str, ring: &pb::Ring) -> Result<u64, String> {
        let request = pb::RingChange {
            ring: Some(ring.clone()),
        };
        let response = self
            .call(address, |mut c| async move { c.commit_ring(request).await })
            .await?;
        Ok(response.epoch)
    }

    /// A node's incoming transfer progress.
    ///
    /// # Errors
    /// A sentence when the node did not answer.
    pub async fn transfers(&self, address: &str) -> Result<pb::TransferStatusResponse, String> {
        self.call(address, |mut c| async move {
            c.transfer_status(pb::TransferStatusRequest {}).await
        })
        .await
    }
}
