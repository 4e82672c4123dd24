//! Node configuration: a file (YAML or TOML), overridden by environment
//! variables, overridden by flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::membership::DetectorSettings;
use crate::ring::{Member, Replication};
use dynamo_ring::Durability;

/// Bounds on what one request from the network may ask of this node: sizes
/// of keys, values and sibling sets, peer messages, ring and gossip shapes,
/// ring epoch jumps and concurrent partition streams. Every refusal is
/// counted in `dynamo_limit_refusals_total{limit="..."}` (see [`Limit`]) and
/// documented in docs/security.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest key in bytes (default 4 KiB), for clients and peers alike; at
    /// most [`MAX_KEY_BYTES_CEILING`].
    pub max_key_bytes: usize,
    /// Largest value in bytes (default 4 MiB), for clients and peers alike.
    pub max_value_bytes: usize,
    /// Most siblings a coordinated write may leave on a key (default 64).
    pub max_siblings: usize,
    /// Most versions a key may hold on a replica or in a hint after a merge
    /// of versions from a peer, and most versions one peer message may carry
    /// for a key (default 1024). Concurrent writes through different
    /// coordinators can leave a replica a few times `max_siblings`; a merge
    /// past this bound is refused and both sides keep what they have.
    pub max_replica_siblings: usize,
    /// Largest message the `Peer` service decodes, in bytes (default
    /// 64 MiB); at least `max_value_bytes` + `max_key_bytes` + 64 KiB, so a
    /// key with one version of the largest value always replicates.
    pub max_peer_message_bytes: usize,
    /// Most members a ring from the network may have, and most heartbeats
    /// one gossip message may carry (default 1024).
    pub max_members: usize,
    /// Largest step forward, from the epoch of the ring in use, that a ring
    /// from gossip, the Admin API or a peer may take (default 1,000,000).
    /// The operator moves one epoch per step, so only a corrupt or hostile
    /// ring jumps further; without the bound, a ring at epoch 2^64-1 would
    /// leave no room for any later change.
    pub max_epoch_step: u64,
    /// Most `Peer.StreamPartition` streams this node serves at once
    /// (default 16); one more is refused with `RESOURCE_EXHAUSTED`. Each
    /// holds at most a few chunks of about 1 MiB.
    pub max_partition_streams: usize,
    /// An outgoing partition stream whose reader takes no chunk for this
    /// many milliseconds is ended with `ABORTED` (default 60,000), so an
    /// unread stream does not hold its slot forever. Keep it above the time
    /// one 1 MiB chunk takes at the receiver's
    /// `background.transfer_bytes_per_second`.
    pub partition_stream_idle_ms: u64,
    /// Most `Kv` requests this node serves at once (default 1024); one more
    /// is answered at once with `RESOURCE_EXHAUSTED` and a `retry-after-ms`
    /// hint ([`crate::shed`]), never queued.
    pub max_concurrent_requests: usize,
    /// Most `Kv` requests one connection may have in flight at once
    /// (default 256, at most `max_concurrent_requests`), so one client
    /// cannot take the whole node. Forwarded requests share the
    /// forwarding node's connection.
    pub max_concurrent_requests_per_connection: usize,
    /// Most `Peer` requests this node serves at once (default 4096), kept
    /// apart from `Kv` so replication is not starved by clients.
    pub max_concurrent_peer_requests: usize,
}

/// The largest `limits.max_key_bytes` accepted: storage keys carry the key
/// after a partition or hint prefix, and fjall keys stop at 65,535 bytes.
pub const MAX_KEY_BYTES_CEILING: usize = 60 * 1024;

/// Longest member id, address, zone or incarnation a ring or gossip message
/// from the network may carry, in bytes.
pub const MAX_NAME_BYTES: usize = 512;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 4 * 1024,
            max_value_bytes: 4 * 1024 * 1024,
            max_siblings: 64,
            max_replica_siblings: 1024,
            max_peer_message_bytes: 64 * 1024 * 1024,
            max_members: 1024,
            max_epoch_step: 1_000_000,
            max_partition_streams: 16,
            partition_stream_idle_ms: 60_000,
            max_concurrent_requests: 1024,
            max_concurrent_requests_per_connection: 256,
            max_concurrent_peer_requests: 4096,
        }
    }
}

impl Limits {
    /// Checks a key from a client or a peer: not empty, at most
    /// `max_key_bytes`.
    ///
    /// # Errors
    /// [`LimitError::EmptyKey`] or [`LimitError::KeyTooLarge`].
    pub fn check_key(&self, key: &[u8]) -> Result<(), LimitError> {
        if key.is_empty() {
            return Err(LimitError::EmptyKey);
        }
        if key.len() > self.max_key_bytes {
            return Err(LimitError::KeyTooLarge {
                bytes: key.len(),
                limit: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Checks a value from a client or a peer: at most `max_value_bytes`.
    ///
    /// # Errors
    /// [`LimitError::ValueTooLarge`].
    pub fn check_value(&self, value: &[u8]) -> Result<(), LimitError> {
        if value.len() > self.max_value_bytes {
            return Err(LimitError::ValueTooLarge {
                bytes: value.len(),
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Checks a member id, address, zone or incarnation from the network.
    ///
    /// # Errors
    /// [`LimitError::NameTooLong`] naming `field`.
    pub fn check_name(&self, field: &'static str, name: &str) -> Result<(), LimitError> {
        if name.len() > MAX_NAME_BYTES {
            return Err(LimitError::NameTooLong {
                field,
                bytes: name.len(),
                limit: MAX_NAME_BYTES,
            });
        }
        Ok(())
    }

    /// How long an outgoing partition stream may wait for its reader.
    pub fn partition_stream_idle(&self) -> Duration {
        Duration::from_millis(self.partition_stream_idle_ms)
    }

    /// Checks the limits themselves.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the bad value.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if self.max_key_bytes == 0 || self.max_value_bytes == 0 {
            return invalid(
                "limits.max_key_bytes and limits.max_value_bytes must be positive".into(),
            );
        }
        if self.max_key_bytes > MAX_KEY_BYTES_CEILING {
            return invalid(format!(
                "limits.max_key_bytes is {}, more than the {MAX_KEY_BYTES_CEILING} bytes storage keys can carry",
                self.max_key_bytes
            ));
        }
        if self.max_siblings == 0 || self.max_replica_siblings < self.max_siblings {
            return invalid(
                "limits.max_siblings must be positive and limits.max_replica_siblings at least as large"
                    .into(),
            );
        }
        let one_version = self
            .max_value_bytes
            .saturating_add(self.max_key_bytes)
            .saturating_add(64 * 1024);
        if self.max_peer_message_bytes < one_version {
            return invalid(format!(
                "limits.max_peer_message_bytes must be at least {one_version} (the largest value and key plus 64 KiB)"
            ));
        }
        if self.max_members == 0
            || self.max_epoch_step == 0
            || self.max_partition_streams == 0
            || self.partition_stream_idle_ms == 0
        {
            return invalid(
                "limits.max_members, max_epoch_step, max_partition_streams and partition_stream_idle_ms must be positive"
                    .into(),
            );
        }
        if self.max_concurrent_requests_per_connection == 0
            || self.max_concurrent_requests < self.max_concurrent_requests_per_connection
            || self.max_concurrent_peer_requests == 0
        {
            return invalid(
                "limits.max_concurrent_requests_per_connection and max_concurrent_peer_requests must be positive, and limits.max_concurrent_requests at least max_concurrent_requests_per_connection"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A limit a request ran into: the `limit` label of
/// `dynamo_limit_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// A key empty or over `max_key_bytes`.
    KeyBytes,
    /// A value over `max_value_bytes`.
    ValueBytes,
    /// A coordinated write past `max_siblings`.
    Siblings,
    /// A peer's set, or a merge, past `max_replica_siblings`.
    ReplicaSiblings,
    /// A message over the service's decoding limit
    /// (`max_peer_message_bytes` for `Peer`).
    MessageBytes,
    /// A body that does not decode, or an unknown enum value.
    Malformed,
    /// A ring or gossip message with more than `max_members` members or
    /// heartbeats, or a name over [`MAX_NAME_BYTES`].
    Members,
    /// A ring more than `max_epoch_step` epochs ahead.
    EpochStep,
    /// A ring of another cluster.
    Cluster,
    /// A partition, Merkle level or segment that does not exist, or more
    /// Merkle parents than the tree has.
    Shape,
    /// `max_partition_streams` streams already being served.
    PartitionStreams,
    /// A partition stream unread for `partition_stream_idle_ms`.
    StreamIdle,
    /// The hint store is full (`background.max_hints`).
    Hints,
    /// `max_concurrent_requests` `Kv` requests already in flight.
    ConcurrentRequests,
    /// `max_concurrent_requests_per_connection` `Kv` requests already in
    /// flight on the caller's connection.
    ConnectionRequests,
    /// `max_concurrent_peer_requests` `Peer` requests already in flight.
    PeerRequests,
}

impl Limit {
    /// Every limit, in label order.
    pub const ALL: [Self; 16] = [
        Self::KeyBytes,
        Self::ValueBytes,
        Self::Siblings,
        Self::ReplicaSiblings,
        Self::MessageBytes,
        Self::Malformed,
        Self::Members,
        Self::EpochStep,
        Self::Cluster,
        Self::Shape,
        Self::PartitionStreams,
        Self::StreamIdle,
        Self::Hints,
        Self::ConcurrentRequests,
        Self::ConnectionRequests,
        Self::PeerRequests,
    ];

    /// The `limit` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyBytes => "key_bytes",
            Self::ValueBytes => "value_bytes",
            Self::Siblings => "siblings",
            Self::ReplicaSiblings => "replica_siblings",
            Self::MessageBytes => "message_bytes",
            Self::Malformed => "malformed",
            Self::Members => "members",
            Self::EpochStep => "epoch_step",
            Self::Cluster => "cluster",
            Self::Shape => "shape",
            Self::PartitionStreams => "partition_streams",
            Self::StreamIdle => "stream_idle",
            Self::Hints => "hints",
            Self::ConcurrentRequests => "concurrent_requests",
            Self::ConnectionRequests => "concurrent_requests_per_connection",
            Self::PeerRequests => "concurrent_peer_requests",
        }
    }
}

/// Input from the network that breaks one of the [`Limits`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LimitError {
    /// An empty key.
    #[error("the key is empty")]
    EmptyKey,
    /// A key over `max_key_bytes`.
    #[error("the key is {bytes} bytes, larger than the limit of {limit} bytes")]
    KeyTooLarge {
        /// Its size.
        bytes: usize,
        /// `max_key_bytes`.
        limit: usize,
    },
    /// A value over `max_value_bytes`.
    #[error("the value is {bytes} bytes, larger than the limit of {limit} bytes")]
    ValueTooLarge {
        /// Its size.
        bytes: usize,
        /// `max_value_bytes`.
        limit: usize,
    },
    /// A sibling set from a peer with more than `max_replica_siblings`
    /// versions.
    #[error("a sibling set carries {count} versions; at most {limit} are accepted")]
    TooManyVersions {
        /// Versions received.
        count: usize,
        /// `max_replica_siblings`.
        limit: usize,
    },
    /// A ring with more than `max_members` members.
    #[error("the ring has {count} members; at most {limit} are accepted")]
    TooManyMembers {
        /// Members received.
        count: usize,
        /// `max_members`.
        limit: usize,
    },
    /// A gossip message with more than `max_members` heartbeats.
    #[error("the gossip message carries {count} heartbeats; at most {limit} are accepted")]
    TooManyHeartbeats {
        /// Heartbeats received.
        count: usize,
        /// `max_members`.
        limit: usize,
    },
    /// A name over [`MAX_NAME_BYTES`].
    #[error("a {field} is {bytes} bytes, longer than the limit of {limit} bytes")]
    NameTooLong {
        /// Which name: `member id`, `address`, `zone`, `incarnation`.
        field: &'static str,
        /// Its size.
        bytes: usize,
        /// [`MAX_NAME_BYTES`].
        limit: usize,
    },
}

impl LimitError {
    /// The limit this error counts against.
    pub fn limit(&self) -> Limit {
        match self {
            Self::EmptyKey | Self::KeyTooLarge { .. } => Limit::KeyBytes,
            Self::ValueTooLarge { .. } => Limit::ValueBytes,
            Self::TooManyVersions { .. } => Limit::ReplicaSiblings,
            Self::TooManyMembers { .. }
            | Self::TooManyHeartbeats { .. }
            | Self::NameTooLong { .. } => Limit::Members,
        }
    }
}

/// Everything a node needs to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's member name; must appear in `members` when that is set.
    pub id: String,
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// Address peers and clients dial; defaults to `listen`.
    pub advertise: Option<String>,
    /// Address of the HTTP server (`/healthz`, `/readyz`, `/metrics`, the
    /// ring page); no HTTP server when unset.
    pub http_listen: Option<SocketAddr>,
    /// Directory of the fjall database.
    pub data_dir: PathBuf,
    /// Cluster name; contexts of other clusters are refused.
    pub cluster: String,
    /// This node's failure zone.
    pub zone: String,
    /// Number of partitions Q (a power of two).
    pub partitions: u32,
    /// N, R and W.
    pub replication: Replication,
    /// Initial members; empty means a one-node cluster of this node, unless
    /// `seeds` are set.
    pub members: Vec<Member>,
    /// Addresses of running nodes to fetch the ring from when this node has
    /// none yet: a node joining an existing cluster. It serves as a
    /// forwarder until a proposed ring gives it partitions.
    pub seeds: Vec<String>,
    /// Size limits.
    pub limits: Limits,
    /// Default durability of writes.
    pub durability: Durability,
    /// Deadline of a whole client request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Deadline of one call to a peer, in milliseconds.
    pub peer_timeout_ms: u64,
    /// A read asks only the replicas it needs for R; when they have not all
    /// answered after this many milliseconds it asks the other replicas too.
    pub read_hedge_ms: u64,
    /// Background work: gossip, failure detection, handoff, anti-entropy.
    pub background: Background,
    /// Deadlines, in-flight bounds and keepalive of calls to peers.
    pub peer_calls: PeerCalls,
    /// Transport security; plaintext when unset (docs/security.md).
    pub tls: Option<crate::tls_settings::TlsSettings>,
}

/// How this node calls its peers. A replica call (read, write, hint) waits
/// `deadline_multiplier` times the peer's recent tail latency (about its
/// p99), at least `deadline_floor_ms` and at most `peer_timeout_ms`, and
/// never past the client request's deadline; a write whose replica misses
/// it turns to a fallback, a read asks another replica.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerCalls {
    /// Deadline of a replica call as a multiple of the peer's tail latency
    /// (default 3).
    pub deadline_multiplier: f64,
    /// Shortest deadline of a replica call in milliseconds (default 250);
    /// capped by `peer_timeout_ms`.
    pub deadline_floor_ms: u64,
    /// Most calls in flight from this node to one peer (default 512); a call
    /// beyond it fails at once as overloaded.
    pub max_in_flight: usize,
    /// Interval of HTTP/2 keepalive pings on peer connections in
    /// milliseconds (default 1000).
    pub keepalive_interval_ms: u64,
    /// A connection whose ping is not answered within this many
    /// milliseconds is closed and its calls fail (default 2000; a busy machine may take
    /// over a second to answer a ping).
    pub keepalive_timeout_ms: u64,
    /// Replica reads, writes and hints to a peer travel in frames on one
    /// long-lived `Peer.Exchange` stream (default true); false sends each
    /// as its own unary call.
    pub batching: bool,
    /// Most replica calls per frame (default 256).
    pub frame_items: usize,
}

impl Default for PeerCalls {
    fn default() -> Self {
        Self {
            deadline_multiplier: 3.0,
            deadline_floor_ms: 250,
            max_in_flight: 512,
            keepalive_interval_ms: 1000,
            keepalive_timeout_ms: 2000,
            batching: true,
            frame_items: 256,
        }
    }
}

/// Intervals and bounds of the background mechanisms.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Background {
    /// Gossip round interval in milliseconds.
    pub gossip_interval_ms: u64,
    /// Longest silence of a member before it is suspected (sloppy quorum
    /// skips it) whatever the phi detector says; milliseconds. Silences
    /// longer than this are not learnt from.
    pub suspect_after_ms: u64,
    /// Phi accrual detector: a member is suspected once phi (-log10 of the
    /// chance that its next heartbeat is merely late) passes this. 3 gives
    /// suspicion about 2 s after the last heartbeat in a 3-node cluster
    /// gossiping every second (docs/design-notes.md, "Failure detection").
    pub phi_threshold: f64,
    /// Smallest standard deviation of heartbeat intervals the detector
    /// assumes, in milliseconds, so that very regular heartbeats do not
    /// make it hair-triggered; 0 (the default) is a quarter of
    /// `gossip_interval_ms`.
    pub phi_min_std_dev_ms: u64,
    /// How many recent heartbeat intervals per member the detector keeps.
    pub phi_window: u32,
    /// Calls to a member that fail in a row (timeouts, refused or broken
    /// connections) before it is suspected until heard from directly.
    pub failures_to_suspect: u32,
    /// Interval between hint delivery attempts in milliseconds.
    pub hint_interval_ms: u64,
    /// Most hinted keys this node stores for others; beyond it sloppy quorum
    /// uses the next fallback.
    pub max_hints: u64,
    /// Interval between anti-entropy passes in milliseconds; 0 turns the
    /// background passes off (an Admin request still runs one).
    pub anti_entropy_interval_ms: u64,
    /// Anti-entropy rate limit: most keys moved per second.
    pub anti_entropy_keys_per_second: u64,
    /// Age after which a tombstone held by all replicas may be dropped, in
    /// milliseconds.
    pub tombstone_grace_ms: u64,
    /// Rate limit of incoming partition transfers in bytes per second; 0 is
    /// unlimited.
    pub transfer_bytes_per_second: u64,
}

impl Default for Background {
    fn default() -> Self {
        Self {
            gossip_interval_ms: 1000,
            suspect_after_ms: 5000,
            phi_threshold: 3.0,
            phi_min_std_dev_ms: 0,
            phi_window: 100,
            failures_to_suspect: 2,
            hint_interval_ms: 1000,
            max_hints: 1_000_000,
            anti_entropy_interval_ms: 60_000,
            anti_entropy_keys_per_second: 10_000,
            tombstone_grace_ms: 24 * 60 * 60 * 1000,
            transfer_bytes_per_second: 0,
        }
    }
}

impl Background {
    /// The failure detector's settings.
    pub fn failure_detector(&self) -> DetectorSettings {
        let interval = self.gossip_interval_ms.max(1);
        let min_std_dev = match self.phi_min_std_dev_ms {
            0 => interval.div_ceil(4),
            set => set,
        };
        DetectorSettings {
            expected_interval: Duration::from_millis(interval),
            phi_threshold: self.phi_threshold,
            min_std_dev: Duration::from_millis(min_std_dev),
            window: self.phi_window.max(1) as usize,
            max_silence: Duration::from_millis(self.suspect_after_ms),
            failures_to_suspect: self.failures_to_suspect.max(1),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            id: "node-0".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            advertise: None,
            http_listen: None,
            data_dir: PathBuf::from("data"),
            cluster: "dynamo".into(),
            zone: String::new(),
            partitions: 256,
            replication: Replication::default(),
            members: Vec::new(),
            seeds: Vec::new(),
            limits: Limits::default(),
            durability: Durability::Buffer,
            request_timeout_ms: 3000,
            peer_timeout_ms: 1000,
            read_hedge_ms: 20,
            background: Background::default(),
            peer_calls: PeerCalls::default(),
            tls: None,
        }
    }
}

/// Configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A `--member` value that is not `ID=HOST:PORT[@ZONE]`.
#[derive(Debug, Error)]
#[error("member {text:?} must look like ID=HOST:PORT[@ZONE]")]
pub struct MemberSyntaxError {
    /// The value given.
    pub text: String,
}

impl Config {
    /// Reads a YAML (`.yaml`, `.yml`) or TOML (`.toml`) file.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        match path.extension().and_then(|ext| ext.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| parse_error(e.to_string())),
            _ => serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string())),
        }
    }

    /// The address peers and clients dial.
    pub fn advertised(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// Where this node's `/metrics` can be scraped, when HTTP is on and
    /// bound to `bound`: the bound address, with an unspecified IP
    /// (`0.0.0.0`) replaced by the host of the advertised gRPC address.
    pub fn metrics_url(&self, bound: SocketAddr) -> String {
        let host = if bound.ip().is_unspecified() {
            let advertised = self.advertised();
            match advertised.rsplit_once(':') {
                Some((host, _)) => host.to_owned(),
                None => advertised,
            }
        } else {
            match bound.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                std::net::IpAddr::V4(ip) => ip.to_string(),
            }
        };
        format!("http://{host}:{}/metrics", bound.port())
    }

    /// The initial member list: `members`, or this node alone.
    pub fn initial_members(&self) -> Vec<Member> {
        if self.members.is_empty() {
            vec![Member {
                weight: 0,
                id: self.id.clone(),
                address: self.advertised(),
                zone: self.zone.clone(),
            }]
        } else {
            self.members.clone()
        }
    }

    /// Deadline of a whole client request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Deadline of one peer call.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms)
    }

    /// How long a read waits for the replicas it asked before asking the
    /// others.
    pub fn read_hedge(&self) -> Duration {
        Duration::from_millis(self.read_hedge_ms)
    }

    /// Checks values the ring does not check itself.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the bad value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.is_empty() {
            return Err(ConfigError::Invalid("id must not be empty".into()));
        }
        if !self.members.is_empty() && !self.members.iter().any(|m| m.id == self.id) {
            return Err(ConfigError::Invalid(format!(
                "id {:?} is not in the member list",
                self.id
            )));
        }
        self.limits.validate()?;
        if self.request_timeout_ms == 0 || self.peer_timeout_ms == 0 {
            return Err(ConfigError::Invalid("timeouts must be positive".into()));
        }
        let phi = self.background.phi_threshold;
        if !phi.is_finite() || phi <= 0.0 {
            return Err(ConfigError::Invalid(format!(
                "background.phi_threshold must be a positive number, not {phi}"
            )));
        }
        let calls = &self.peer_calls;
        if !(calls.deadline_multiplier.is_finite() && calls.deadline_multiplier >= 1.0) {
            return Err(ConfigError::Invalid(
                "peer_calls.deadline_multiplier must be a number of at least 1".into(),
            ));
        }
        if calls.max_in_flight == 0
            || calls.keepalive_interval_ms == 0
            || calls.keepalive_timeout_ms == 0
        {
            return Err(ConfigError::Invalid(
                "peer_calls.max_in_flight and the keepalive settings must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Command-line flags of `dynamo-node`; each also reads a `DYNAMO_*`
/// environment variable. Flags win over the environment, which wins over
/// the file.
#[derive(Debug, Parser)]
#[command(name = "dynamo-node", version, about = "DynamoKV storage node")]
pub struct Flags {
    /// Config file, YAML or TOML.
    #[arg(long, short = 'c', env = "DYNAMO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Member name of this node.
    #[arg(long, env = "DYNAMO_ID")]
    pub id: Option<String>,
    /// Address to bind, `host:port`.
    #[arg(long, env = "DYNAMO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address peers and clients dial, `host:port`.
    #[arg(long, env = "DYNAMO_ADVERTISE")]
    pub advertise: Option<String>,
    /// Address of the HTTP server for `/healthz`, `/readyz`, `/metrics` and
    /// the ring page, `host:port`; off when unset.
    #[arg(long, env = "DYNAMO_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Data directory.
    #[arg(long, env = "DYNAMO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Cluster name.
    #[arg(long, env = "DYNAMO_CLUSTER")]
    pub cluster: Option<String>,
    /// Failure zone of this node.
    #[arg(long, env = "DYNAMO_ZONE")]
    pub zone: Option<String>,
    /// Number of partitions (power of two).
    #[arg(long, env = "DYNAMO_PARTITIONS")]
    pub partitions: Option<u32>,
    /// Replication factor N.
    #[arg(long, env = "DYNAMO_N")]
    pub n: Option<u32>,
    /// Default read quorum R.
    #[arg(long, env = "DYNAMO_R")]
    pub r: Option<u32>,
    /// Default write quorum W.
    #[arg(long, env = "DYNAMO_W")]
    pub w: Option<u32>,
    /// A member as `ID=HOST:PORT[@ZONE]`; repeat, or comma-separate in the
    /// environment variable.
    #[arg(long = "member", env = "DYNAMO_MEMBERS", value_delimiter = ',', value_parser = parse_member)]
    pub members: Vec<Member>,
    /// Address of a running node to join through; repeat, or comma-separate
    /// in the environment variable.
    #[arg(long = "seed", env = "DYNAMO_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Default durability: `buffer` or `sync`.
    #[arg(long, env = "DYNAMO_DURABILITY")]
    pub durability: Option<Durability>,
    /// Largest key in bytes.
    #[arg(long, env = "DYNAMO_MAX_KEY_BYTES")]
    pub max_key_bytes: Option<usize>,
    /// Largest value in bytes.
    #[arg(long, env = "DYNAMO_MAX_VALUE_BYTES")]
    pub max_value_bytes: Option<usize>,
    /// Rate limit of incoming partition transfers in bytes per second.
    #[arg(long, env = "DYNAMO_TRANSFER_BYTES_PER_SECOND")]
    pub transfer_bytes_per_second: Option<u64>,
    /// Log format on stderr; which events and spans are logged follows
    /// `RUST_LOG` (default `info`).
    #[arg(long, env = "DYNAMO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Transport security files and rules.
    #[command(flatten)]
    pub tls: crate::tls_settings::TlsFlags,
}

/// How `dynamo-node` writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event, with its spans.
    Text,
    /// One JSON object per event, with its fields and spans.
    Json,
}

impl Flags {
    /// Loads the file named by `--config` (if any) and applies the flags.
    ///
    /// # Errors
    /// [`ConfigError`] when the file is unreadable or the result invalid.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let set = |target: &mut String, value: &Option<String>| {
            if let Some(value) = value {
                target.clone_from(value);
            }
        };
        set(&mut config.id, &self.id);
        set(&mut config.cluster, &self.cluster);
        set(&mut config.zone, &self.zone);
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if self.advertise.is_some() {
            config.advertise.clone_from(&self.advertise);
        }
        if self.http_listen.is_some() {
            config.http_listen = self.http_listen;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        if let Some(partitions) = self.partitions {
            config.partitions = partitions;
        }
        let replication = &mut config.replication;
        replication.n = self.n.unwrap_or(replication.n);
        replication.r = self.r.unwrap_or(replication.r);
        replication.w = self.w.unwrap_or(replication.w);
        if !self.members.is_empty() {
            config.members.clone_from(&self.members);
        }
        if !self.seeds.is_empty() {
            config.seeds.clone_from(&self.seeds);
        }
        if let Some(durability) = self.durability {
            config.durability = durability;
        }
        if let Some(rate) = self.transfer_bytes_per_second {
            config.background.transfer_bytes_per_second = rate;
        }
        let limits = &mut config.limits;
        limits.max_key_bytes = self.max_key_bytes.unwrap_or(limits.max_key_bytes);
        limits.max_value_bytes = self.max_value_bytes.unwrap_or(limits.max_value_bytes);
        self.tls.apply(&mut config.tls);
        config.validate()?;
        Ok(config)
    }
}

/// Parses `ID=HOST:PORT[@ZONE]`.
///
/// # Errors
/// [`MemberSyntaxError`] saying what the expected shape is.
pub fn parse_member(text: &str) -> Result<Member, MemberSyntaxError> {
    let syntax = || MemberSyntaxError {
        text: text.to_owned(),
    };
    let (id, rest) = text.split_once('=').ok_or_else(syntax)?;
    let (address, zone) = rest.split_once('@').unwrap_or((rest, ""));
    if id.is_empty() || address.is_empty() {
        return Err(syntax());
    }
    Ok(Member {
        weight: 0,
        id: id.into(),
        address: address.into(),
        zone: zone.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.yaml");
        std::fs::write(
            &path,
            "id: a\nlisten: 127.0.0.1:9000\nreplication: {n: 1, r: 1, w: 1}\n",
        )
        .expect("write");
        let flags = Flags::parse_from([
            "dynamo-node",
            "-c",
            path.to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:9001",
        ]);
        let config = flags.load().expect("load");
        assert_eq!(config.id, "a");
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.replication.n, 1);
    }

    #[test]
    fn toml_files_and_members_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = \"b\"\n[[members]]\nid = \"b\"\naddress = \"127.0.0.1:1\"\nzone = \"z\"\n",
        )
        .expect("write");
        let config = Config::from_file(&path).expect("parse");
        assert_eq!(config.members[0].zone, "z");
        assert_eq!(
            parse_member("x=127.0.0.1:7@zone-a").expect("member").zone,
            "zone-a"
        );
        assert!(parse_member("nonsense").is_err());
    }

    #[test]
    fn http_listen_comes_from_the_file_or_the_flag_and_is_off_by_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.yaml");
        std::fs::write(&path, "http_listen: 127.0.0.1:9400\n").expect("write");
        let file = path.to_str().expect("utf8");
        let from_file = Flags::parse_from(["dynamo-node", "-c", file]);
        assert_eq!(
            from_file.load().expect("load").http_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9400)))
        );
        let flag = Flags::parse_from(["dynamo-node", "-c", file, "--http-listen", "0.0.0.0:9401"]);
        let config = flag.load().expect("load");
        assert_eq!(config.http_listen.map(|a| a.port()), Some(9401));
        let bound = config.http_listen.expect("set");
        assert_eq!(config.metrics_url(bound), "http://127.0.0.1:9401/metrics");
        let advertised = Config {
            advertise: Some("node-2.dynamo.ns.svc:7400".into()),
            ..Config::default()
        };
        assert_eq!(
            advertised.metrics_url(bound),
            "http://node-2.dynamo.ns.svc:9401/metrics"
        );
        assert_eq!(Config::default().http_listen, None);
        assert!(Flags::try_parse_from(["dynamo-node", "--log-format", "yaml"]).is_err());
    }

    #[test]
    fn detector_settings_come_from_the_background_section() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.yaml");
        std::fs::write(
            &path,
            "background:\n  gossip_interval_ms: 200\n  phi_threshold: 5.5\n  failures_to_suspect: 3\n",
        )
        .expect("write");
        let config = Config::from_file(&path).expect("valid config");
        let detector = config.background.failure_detector();
        assert_eq!(detector.expected_interval, Duration::from_millis(200));
        assert_eq!(detector.phi_threshold, 5.5);
        assert_eq!(detector.min_std_dev, Duration::from_millis(50), "a quarter");
        assert_eq!(detector.max_silence, Duration::from_secs(5));
        assert_eq!(detector.failures_to_suspect, 3);
        let defaults = Background::default().failure_detector();
        assert_eq!(defaults, crate::membership::DetectorSettings::default());

        let mut config = Config::default();
        config.background.phi_threshold = 0.0;
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn limits_come_from_their_section_and_must_fit_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.yaml");
        std::fs::write(
            &path,
            "limits:\n  max_partition_streams: 4\n  max_epoch_step: 10\n",
        )
        .expect("write");
        let config = Config::from_file(&path).expect("valid config");
        assert_eq!(config.limits.max_partition_streams, 4);
        assert_eq!(config.limits.max_epoch_step, 10);
        assert_eq!(config.limits.max_key_bytes, 4096, "the rest keep defaults");
        config.validate().expect("valid");

        let invalid = |limits: Limits| {
            let config = Config {
                limits,
                ..Config::default()
            };
            matches!(config.validate(), Err(ConfigError::Invalid(_)))
        };
        let defaults = Limits::default();
        assert!(!invalid(defaults));
        assert!(invalid(Limits {
            max_key_bytes: MAX_KEY_BYTES_CEILING + 1,
            ..defaults
        }));
        assert!(invalid(Limits {
            max_replica_siblings: defaults.max_siblings - 1,
            ..defaults
        }));
        assert!(invalid(Limits {
            max_value_bytes: defaults.max_peer_message_bytes,
            ..defaults
        }));
        assert!(invalid(Limits {
            max_partition_streams: 0,
            ..defaults
        }));
    }

    #[test]
    fn limit_checks_name_the_limit_they_count_against() {
        let limits = Limits::default();
        assert_eq!(limits.check_key(b""), Err(LimitError::EmptyKey));
        let long = vec![0; 4097];
        let error = limits.check_key(&long).expect_err("too long");
        assert_eq!(error.limit(), Limit::KeyBytes);
        assert_eq!(
            error.to_string(),
            "the key is 4097 bytes, larger than the limit of 4096 bytes"
        );
        assert!(limits.check_value(&vec![0; 4 << 20]).is_ok());
        assert_eq!(
            limits
                .check_value(&vec![0; (4 << 20) + 1])
                .map_err(|e| e.limit()),
            Err(Limit::ValueBytes)
        );
        assert!(
            limits
                .check_name("zone", &"z".repeat(MAX_NAME_BYTES))
                .is_ok()
        );
        assert!(
            limits
                .check_name("zone", &"z".repeat(MAX_NAME_BYTES + 1))
                .is_err()
        );
        // Metrics index their counters by the enum's order.
        for (index, limit) in Limit::ALL.into_iter().enumerate() {
            assert_eq!(limit as usize, index, "{}", limit.as_str());
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.yaml");
        std::fs::write(&path, "idd: typo\n").expect("write");
        assert!(matches!(
            Config::from_file(&path),
            Err(ConfigError::Parse { .. })
        ));
    }
}
