//! Calls to one node: a lazily connected channel per address, and a single
//! request with a deadline whose failure becomes an [`Error`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_proto::v1::kv_client::KvClient;
use tonic::transport::{Channel, Endpoint};

use crate::Error;

/// Largest message the client accepts: several siblings of the largest
/// value (4 MiB by default) must fit in one read. Matches the node's own
/// limit for what it sends.
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// Channels by address, created on first use and shared by every clone of
/// the client, plus the deadline every call gets. A channel connects on its
/// first request and reconnects by itself after a failure.
#[derive(Debug)]
pub struct Rpc {
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Rpc {
    /// Calls with `timeout` as the deadline of each request and of each
    /// connection attempt.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `message` to `address` through `method` (for example
    /// `|channel, request| async move { kv(channel).get(request).await }`)
    /// with the deadline set both locally and in the `grpc-timeout` header.
    ///
    /// Must be called inside a Tokio runtime.
    pub async fn call<M, T, F, Fut>(&self, address: &str, message: M, method: F) -> Result<T, Error>
    where
        F: FnOnce(Channel, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_within(address, self.timeout, message, method)
            .await
    }

    /// Like [`call`](Self::call), with `timeout` instead of the default
    /// deadline.
    pub(crate) async fn call_within<M, T, F, Fut>(
        &self,
        address: &str,
        timeout: Duration,
        message: M,
        method: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Channel, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let channel = self.channel(address)?;
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        match tokio::time::timeout(timeout, method(channel, request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Error::from_status(address, status)),
            Err(_elapsed) => Err(Error::Timeout {
                address: address.to_owned(),
                message: format!("no answer within {timeout:?}"),
            }),
        }
    }

    /// The channel to `address` (`host:port`, `http://` optional).
    fn channel(&self, address: &str) -> Result<Channel, Error> {
        let uri = uri(address);
        // A panic while holding the lock cannot leave the map half-updated.
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(&uri) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(uri.clone())
            .map_err(|source| Error::InvalidAddress {
                address: address.to_owned(),
                source,
            })?
            .connect_timeout(self.timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(uri, channel.clone());
        Ok(channel)
    }
}

/// A `Kv` client on `channel` that accepts large reads.
pub(crate) fn kv(channel: Channel) -> KvClient<Channel> {
    KvClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// An `Admin` client on `channel`.
pub fn admin(channel: Channel) -> AdminClient<Channel> {
    AdminClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// `address` as a URI tonic accepts: `http://` is added unless a scheme is
/// already there.
pub(crate) fn uri(address: &str) -> String {
    let address = address.trim();
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_optional() {
        assert_eq!(uri("10.0.0.1:7400"), "http://10.0.0.1:7400");
        assert_eq!(uri("http://node-1:7400"), "http://node-1:7400");
    }

    #[tokio::test]
    async fn one_channel_per_address() {
        let rpc = Rpc::new(Duration::from_secs(1));
        rpc.channel("127.0.0.1:1").expect("valid address");
        rpc.channel("http://127.0.0.1:1").expect("valid address");
        rpc.channel("127.0.0.1:2").expect("valid address");
        assert_eq!(rpc.channels.lock().expect("not poisoned").len(), 2);
        let err = rpc
            .channel("not a host:port")
            .expect_err("spaces are invalid");
        assert!(matches!(err, Error::InvalidAddress { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn refused_connection_is_a_transport_error() {
        // Bind and drop a listener to find a port nobody listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let address = listener.local_addr().expect("bound").to_string();
        drop(listener);
        let rpc = Rpc::new(Duration::from_secs(2));
        let err = rpc
            .call(
                &address,
                dynamo_proto::v1::GetRingRequest {},
                |channel, request| async move { admin(channel).get_ring(request).await },
            )
            .await
            .expect_err("nobody listens");
        assert!(matches!(err, Error::Transport { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert!(
            err.to_string()
                .starts_with(&format!("cannot reach {address}: ")),
            "{err}"
        );
    }
}
