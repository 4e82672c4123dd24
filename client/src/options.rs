//! Per-client and per-request options.

use std::time::Duration;

use dynamo_proto::v1 as pb;

use crate::{Durability, Error};

/// How a [`Client`](crate::Client) talks to the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Deadline of each attempt (connecting included); a request that
    /// fails over to other replicas gets a fresh deadline per replica.
    pub timeout: Duration,
    /// Where each key's request goes: straight to a replica, or through
    /// the endpoint.
    pub routing: Routing,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            routing: Routing::default(),
        }
    }
}

/// Where a [`Client`](crate::Client) sends the request for a key.
///
/// # Examples
///
/// ```no_run
/// # async fn example() -> Result<(), dynamo_client::Error> {
/// use dynamo_client::{Client, ClientOptions, Routing};
///
/// // `kubectl port-forward svc/demo 7400:7400` reaches one node; the ring
/// // names pods by their in-cluster DNS names, which only that node reaches.
/// let options = ClientOptions {
///     routing: Routing::ViaEndpoint,
///     ..ClientOptions::default()
/// };
/// let client = Client::connect_with("127.0.0.1:7400", options).await?;
/// client.put("cart", "apples", None).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Routing {
    /// Single hop: straight to a replica of the key, at the address the
    /// ring gives for it, failing over along the preference list. Needs
    /// every member's ring address to be reachable from the client.
    #[default]
    Direct,
    /// Every request goes to the endpoint the client connected through,
    /// which coordinates it when it replicates the key and forwards it to
    /// a replica otherwise (one more hop). For when the endpoint is the
    /// only address the client can reach: a `kubectl port-forward`, a load
    /// balancer or a NAT in front of the cluster.
    ViaEndpoint,
}

/// Options of one read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Read quorum, 1..=N; `None` uses the cluster default R.
    pub r: Option<u32>,
}

/// Options of one write (put or delete).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Write quorum, 1..=N; `None` uses the cluster default W.
    pub w: Option<u32>,
    /// How far each replica pushes the write to disk before acknowledging;
    /// `None` uses the node's default.
    pub durability: Option<Durability>,
}

/// The wire value of an optional durability (unset is the node default).
pub(crate) fn durability_to_proto(durability: Option<Durability>) -> pb::Durability {
    match durability {
        None => pb::Durability::Default,
        Some(Durability::Buffer) => pb::Durability::Buffer,
        Some(Durability::Sync) => pb::Durability::Sync,
    }
}

/// The wire value of an optional quorum (0 is the cluster default).
///
/// # Errors
///
/// [`Error::InvalidArgument`] when the caller asked for a quorum of zero,
/// which the wire would silently read as "default".
pub(crate) fn quorum_to_proto(name: &str, quorum: Option<u32>) -> Result<u32, Error> {
    match quorum {
        None => Ok(0),
        Some(0) => Err(Error::InvalidArgument {
            message: format!("{name} must be at least 1"),
        }),
        Some(quorum) => Ok(quorum),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorums_map_to_the_wire() {
        assert!(matches!(quorum_to_proto("r", None), Ok(0)));
        assert!(matches!(quorum_to_proto("r", Some(2)), Ok(2)));
        assert!(matches!(
            quorum_to_proto("w", Some(0)),
            Err(Error::InvalidArgument { message }) if message == "w must be at least 1"
        ));
    }

    #[test]
    fn durability_maps_to_the_wire() {
        assert_eq!(durability_to_proto(None), pb::Durability::Default);
        assert_eq!(
            durability_to_proto(Some(Durability::Sync)),
            pb::Durability::Sync
        );
        assert_eq!(
            durability_to_proto(Some(Durability::Buffer)),
            pb::Durability::Buffer
        );
    }
}
