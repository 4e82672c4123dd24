//! Calls to one node: a lazily connected channel per address, and a single
//! request with a deadline whose failure becomes an [`Error`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_proto::v1::kv_client::KvClient;
use tonic::transport::{Channel, Endpoint};

use crate::{Error, TlsOptions};

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
    tls: Option<TlsOptions>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Rpc {
    /// Calls with `timeout` as the deadline of each request and of each
    /// connection attempt, over TLS when `tls` is set.
    pub fn new(timeout: Duration, tls: Option<TlsOptions>) -> Self {
        Self {
            timeout,
            tls,
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

    /// `error` of a first contact, explained when a broken connection
    /// looks like TLS on one side and plaintext on the other. Only for the
    /// first call to an endpoint: later resets are node failures, which
    /// stay retryable transport errors.
    pub(crate) fn mismatch(&self, error: Error) -> Error {
        let Error::Transport { .. } = &error else {
            return error;
        };
        let text = error.to_string();
        let hint = match &self.tls {
            None if PLAINTEXT_TO_TLS.iter().any(|s| text.contains(s)) => {
                "the node may require TLS: give the cluster's CA (--ca or DYNAMO_CA)"
            }
            Some(_) if TLS_TO_PLAINTEXT.iter().any(|s| text.contains(s)) => {
                "the node may serve plaintext: leave out --ca"
            }
            Some(_) if text.contains("certificate") => {
                "the node's certificate is not signed by the given CA or does not name the address"
            }
            _ => return error,
        };
        Error::Tls {
            message: format!("{text} ({hint})"),
        }
    }

    /// The channel to `address` (`host:port`, `http://` or `https://`
    /// optional; TLS clients always use `https`).
    fn channel(&self, address: &str) -> Result<Channel, Error> {
        let uri = match &self.tls {
            Some(_) => secure_uri(address),
            None => uri(address),
        };
        // A panic while holding the lock cannot leave the map half-updated.
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(&uri) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|source| Error::InvalidAddress {
                address: address.to_owned(),
                source,
            })?
            .connect_timeout(self.timeout)
            .tcp_nodelay(true);
        let endpoint = match &self.tls {
            Some(tls) => {
                let host = endpoint.uri().host().unwrap_or_default().to_owned();
                endpoint
                    .tls_config(tls.config(host.trim_start_matches('[').trim_end_matches(']')))
                    .map_err(|source| Error::InvalidAddress {
                        address: address.to_owned(),
                        source,
                    })?
            }
            None => endpoint,
        };
        let channel = endpoint.connect_lazy();
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

/// What a plaintext HTTP/2 client sees when a TLS server answers it.
const PLAINTEXT_TO_TLS: [&str; 4] = [
    "frame with invalid size",
    "connection closed",
    "connection reset",
    "broken pipe",
];

/// What a TLS client sees when a plaintext HTTP/2 server answers it.
const TLS_TO_PLAINTEXT: [&str; 2] = ["InvalidContentType", "corrupt message"];

/// `address` as an `https` URI, whatever scheme it came with.
fn secure_uri(address: &str) -> String {
    let address = address.trim();
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    format!("https://{rest}")
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
        assert_eq!(secure_uri("http://node-1:7400"), "https://node-1:7400");
        assert_eq!(secure_uri("10.0.0.1:7400"), "https://10.0.0.1:7400");
    }

    #[tokio::test]
    async fn one_channel_per_address() {
        let rpc = Rpc::new(Duration::from_secs(1), None);
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
        let rpc = Rpc::new(Duration::from_secs(2), None);
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
