//! The client's error type and how gRPC statuses map onto it.

use std::error::Error as _;
use std::time::Duration;

use tonic::Code;

use crate::InvalidRing;

/// Everything that can go wrong in a client call.
///
/// Messages that came from a node (the `message` fields and the message of a
/// [`tonic::Status`]) are kept as the node wrote them: they are sentences for
/// people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was refused because of something the caller sent (a key
    /// that is too long, a quorum larger than N, a context from another
    /// cluster). Never retried.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// The node's explanation.
        message: String,
    },
    /// A node answered but could not serve the request, for example because
    /// too few replicas acknowledged.
    #[error("{address} is unavailable: {message}")]
    Unavailable {
        /// The node that answered.
        address: String,
        /// The node's explanation.
        message: String,
    },
    /// The node shed the request because it had too many in flight
    /// (`RESOURCE_EXHAUSTED` with a `retry-after-ms` hint). Another replica
    /// is tried at once; when every replica sheds, the client waits the
    /// hint and tries again while the request's deadline leaves time
    /// (direct routing only).
    #[error("{address} is overloaded: {message}")]
    Overloaded {
        /// The node that answered.
        address: String,
        /// The node's explanation.
        message: String,
        /// How long the node asked callers to wait.
        retry_after: Duration,
    },
    /// The request never got an answer from the node: it could not be
    /// reached or the connection broke.
    #[error("cannot reach {address}: {}", describe_transport(source))]
    Transport {
        /// The node that was dialled.
        address: String,
        /// The status tonic produced locally; its source chain holds the
        /// underlying I/O or HTTP/2 error.
        source: tonic::Status,
    },
    /// No answer arrived before the deadline, or the node gave up waiting
    /// for its replicas.
    #[error("{address} timed out: {message}")]
    Timeout {
        /// The node that was asked.
        address: String,
        /// What ran out of time.
        message: String,
    },
    /// A context string could not be decoded.
    #[error("bad context: {message}")]
    BadContext {
        /// What is wrong with it.
        message: String,
    },
    /// An endpoint or member address is not a valid `host:port`.
    #[error("invalid address {address:?}: {source}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why tonic rejected it.
        source: tonic::transport::Error,
    },
    /// A node sent a ring the client cannot route with.
    #[error("unusable ring from {address}: {source}")]
    InvalidRing {
        /// The node that sent the ring.
        address: String,
        /// What is inconsistent in it.
        source: InvalidRing,
    },
    /// With [`Routing::Direct`](crate::Routing::Direct): no replica of the
    /// key could be reached at the address the ring gives for it, yet the
    /// endpoint the client connected through answers. The ring's addresses
    /// are then likely reachable only inside the cluster (pod DNS names
    /// behind a `kubectl port-forward`, for example), and
    /// [`Routing::ViaEndpoint`](crate::Routing::ViaEndpoint) sends requests
    /// through the endpoint instead.
    #[error(
        "no replica of the key is reachable at its ring address, though {endpoint} answers \
         ({source}); to send requests through {endpoint}, use Routing::ViaEndpoint"
    )]
    ReplicasUnreachable {
        /// The endpoint the client connected through.
        endpoint: String,
        /// The failure of the last replica tried.
        source: Box<Error>,
    },
    /// Any other status a node answered with.
    #[error("{address} answered {:?}: {}", status.code(), status.message())]
    Status {
        /// The node that answered.
        address: String,
        /// The status as received.
        #[source]
        status: tonic::Status,
    },
}

impl Error {
    /// Classifies the status a call to `address` ended with.
    ///
    /// A status that carries a source was produced by tonic itself (a
    /// connection that failed or broke); one without a source came from the
    /// node.
    pub(crate) fn from_status(address: &str, status: tonic::Status) -> Self {
        let address = address.to_owned();
        if status.source().is_some() {
            return Self::Transport {
                address,
                source: status,
            };
        }
        let message = status.message().to_owned();
        let retry_after = status
            .metadata()
            .get(RETRY_AFTER_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if let (Code::ResourceExhausted, Some(ms)) = (status.code(), retry_after) {
            return Self::Overloaded {
                address,
                message,
                retry_after: Duration::from_millis(ms),
            };
        }
        match status.code() {
            Code::InvalidArgument => Self::InvalidArgument { message },
            Code::Unavailable => Self::Unavailable { address, message },
            Code::DeadlineExceeded => Self::Timeout { address, message },
            _ => Self::Status { address, status },
        }
    }

    /// Whether another node may succeed where this attempt failed: true for
    /// transport errors, timeouts, `Unavailable` and shed requests.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. }
                | Self::Timeout { .. }
                | Self::Unavailable { .. }
                | Self::Overloaded { .. }
        )
    }
}

/// Metadata key of a shed request's retry hint, in milliseconds (the node's
/// `shed::RETRY_AFTER_HEADER`).
const RETRY_AFTER_HEADER: &str = "retry-after-ms";

/// The message of a locally produced status followed by the distinct
/// messages of its source chain, for example
/// `tcp connect error: Connection refused (os error 111)`.
fn describe_transport(status: &tonic::Status) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !status.message().is_empty() {
        parts.push(status.message().to_owned());
    }
    let mut source = status.source();
    while let Some(err) = source {
        let text = err.to_string();
        // tonic's own wrapper only says "transport error"; its source says what.
        if text != "transport error" && !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = err.source();
    }
    if parts.is_empty() {
        format!("{:?}", status.code())
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_statuses_keep_their_message() {
        let err = Error::from_status(
            "a:1",
            tonic::Status::unavailable("only 1 of 2 replicas acknowledged"),
        );
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "a:1 is unavailable: only 1 of 2 replicas acknowledged"
        );

        let err = Error::from_status(
            "a:1",
            tonic::Status::invalid_argument("w must be at most N = 3"),
        );
        assert!(!err.is_retryable());
        assert_eq!(err.to_string(), "invalid argument: w must be at most N = 3");

        let err = Error::from_status(
            "a:1",
            tonic::Status::deadline_exceeded("1 of 2 replicas answered in time"),
        );
        assert!(matches!(err, Error::Timeout { .. }));
        assert!(err.is_retryable());

        let err = Error::from_status("a:1", tonic::Status::internal("disk full"));
        assert!(!err.is_retryable());
        assert_eq!(err.to_string(), "a:1 answered Internal: disk full");
    }

    #[test]
    fn shed_requests_are_overloaded_with_their_hint() {
        let mut status = tonic::Status::resource_exhausted("the node is overloaded");
        status.metadata_mut().insert(
            RETRY_AFTER_HEADER,
            tonic::metadata::MetadataValue::from(20u64),
        );
        let err = Error::from_status("a:1", status);
        assert!(
            matches!(err, Error::Overloaded { retry_after, .. } if retry_after == Duration::from_millis(20)),
            "{err:?}"
        );
        assert!(err.is_retryable());
        // A message over the size limit has no hint and is not retried.
        let err = Error::from_status("a:1", tonic::Status::resource_exhausted("too large"));
        assert!(!err.is_retryable(), "{err:?}");
    }

    #[test]
    fn local_statuses_are_transport_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let status = tonic::Status::from_error(Box::new(io));
        let err = Error::from_status("b:2", status);
        assert!(matches!(err, Error::Transport { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert!(err.to_string().starts_with("cannot reach b:2: "), "{err}");
        assert!(err.to_string().contains("Connection refused"), "{err}");
    }
}
