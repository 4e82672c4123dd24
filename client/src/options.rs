//! Per-client and per-request options.

use std::time::Duration;

use dynamo_proto::v1 as pb;

use crate::{Durability, Error, TlsOptions};

/// How a [`Client`](crate::Client) talks to the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Deadline of a whole request, every attempt, hedge and retry
    /// included (default 5 s). Each attempt gets a share of what is left
    /// (see [`HedgeOptions::min_attempt`]).
    pub timeout: Duration,
    /// Where each key's request goes: straight to a replica, or through
    /// the endpoint.
    pub routing: Routing,
    /// Speculative retries and the per-node health that steers them.
    pub hedge: HedgeOptions,
    /// TLS for every connection; `None` (the default) is plaintext.
    pub tls: Option<TlsOptions>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            routing: Routing::default(),
            hedge: HedgeOptions::default(),
            tls: None,
        }
    }
}

/// Speculative retry (Cassandra's, Dean and Barroso's "hedged requests")
/// and the per-node health score behind it, for [`Routing::Direct`].
///
/// A request not answered after the *hedge delay* of the node it went to
/// goes also to the next replica of the key; the first answer wins and the
/// others are cancelled. The delay is that node's recent p99 latency,
/// clamped to [`floor`](Self::floor)..=[`ceiling`](Self::ceiling), and zero
/// for a node the client suspects (as long as a healthy node comes next).
///
/// A node is suspected after a timeout or a broken connection, or after
/// losing two races in a row to a hedge while slower than its own delay.
/// A suspected node is tried last; after a backoff
/// ([`probe_backoff`](Self::probe_backoff), doubling on each further
/// failure up to [`max_probe_backoff`](Self::max_probe_backoff)) one
/// request tries it first again, hedged at once, and an answer that wins
/// makes it healthy again.
///
/// Writes may be hedged too: both coordinators may then apply the write.
/// Both versions replace exactly what the caller's context had seen, so
/// nothing is lost or overwritten wrongly; the key may show the value twice
/// as siblings until the next read-modify-write folds them into one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HedgeOptions {
    /// Send hedges at all (default true). When false, a replica is tried
    /// only after the previous one failed.
    pub enabled: bool,
    /// Shortest hedge delay of a healthy node (default 20 ms), so that
    /// normal jitter does not double the load.
    pub floor: Duration,
    /// Longest hedge delay (default 250 ms), whatever latency a node had.
    pub ceiling: Duration,
    /// No attempt starts with less time left than this (default 50 ms);
    /// while other replicas remain, an attempt may use at most half of the
    /// remaining deadline, so a retry always has time left.
    pub min_attempt: Duration,
    /// How long a suspected node is avoided before one request probes it
    /// (default 250 ms).
    pub probe_backoff: Duration,
    /// The longest the probe backoff grows to (default 4 s).
    pub max_probe_backoff: Duration,
}

impl Default for HedgeOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            floor: Duration::from_millis(20),
            ceiling: Duration::from_millis(250),
            min_attempt: Duration::from_millis(50),
            probe_backoff: Duration::from_millis(250),
            max_probe_backoff: Duration::from_secs(4),
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
///
/// # Examples
///
/// ```
/// use dynamo_client::{Durability, durability_to_proto};
/// use dynamo_proto::v1 as pb;
///
/// assert_eq!(durability_to_proto(None), pb::Durability::Default);
/// assert_eq!(durability_to_proto(Some(Durability::Sync)), pb::Durability::Sync);
/// ```
pub fn durability_to_proto(durability: Option<Durability>) -> pb::Durability {
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
