//! Node metrics, exposed in the Prometheus text format by [`crate::http`].
//!
//! Everything a request touches is an atomic: latency histograms are
//! [`AtomicHistogram`]s created when the node opens (one per operation and
//! role), quorum outcomes are plain counters held by value. Gauges that
//! describe state (hints queued, members, transfers, fjall sizes) are read
//! from the node when `/metrics` is scraped, so they cost nothing between
//! scrapes. Encoding is done by the `prometheus-client` crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::config::Limit;
use crate::storage::Sizes;

/// `Content-Type` of [`Metrics::render`]: Prometheus text, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets in nanoseconds: 25 us to 10 s, with
/// ten buckets per decade between 100 us and 1 s, so that a p99.9 read from
/// them is off by at most one step of 25% or less.
const LATENCY_BOUNDS_NS: &[u64] = &{
    const STEPS: [u64; 10] = [100, 125, 150, 200, 250, 300, 400, 500, 600, 800];
    let mut bounds = [0u64; 47];
    bounds[0] = 25_000;
    bounds[1] = 50_000;
    bounds[2] = 75_000;
    let mut decade = 0;
    let mut scale = 1_000u64; // 100 * 1_000 ns = 100 us
    while decade < 4 {
        let mut step = 0;
        while step < 10 {
            bounds[3 + decade * 10 + step] = STEPS[step] * scale;
            step += 1;
        }
        scale *= 10;
        decade += 1;
    }
    bounds[43] = 1_000_000_000;
    bounds[44] = 2_500_000_000;
    bounds[45] = 5_000_000_000;
    bounds[46] = 10_000_000_000;
    bounds
};

/// Upper bounds of the siblings-per-get buckets.
const SIBLING_BOUNDS: &[u64] = &[0, 1, 2, 3, 4, 5, 8, 16, 32, 64];
/// Buckets of replica calls per frame.
const FRAME_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256];

/// A histogram of fixed buckets made of atomics: observing is one binary
/// search and three relaxed atomic additions, with no lock and no
/// allocation. Values are integers in a unit of the caller's choice;
/// `scale` converts them to the exported unit (1e9 for nanoseconds to
/// seconds). Clones share the same counts.
#[derive(Clone, Debug)]
pub struct AtomicHistogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug)]
struct HistogramInner {
    bounds: &'static [u64],
    scale: f64,
    /// One per bound, plus the `+Inf` bucket; not cumulative.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl AtomicHistogram {
    /// An empty histogram with buckets `bounds` (ascending), exported
    /// divided by `scale`.
    pub fn new(bounds: &'static [u64], scale: f64) -> Self {
        Self {
            inner: Arc::new(HistogramInner {
                bounds,
                scale,
                buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0),
            }),
        }
    }

    /// A latency histogram in seconds, 25 us to 10 s.
    pub fn latency() -> Self {
        Self::new(LATENCY_BOUNDS_NS, 1e9)
    }

    /// Records one value.
    pub fn observe(&self, value: u64) {
        let inner = &*self.inner;
        let bucket = inner.bounds.partition_point(|&bound| bound < value);
        inner.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        inner.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration (for histograms made by [`AtomicHistogram::latency`]).
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.inner
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &*self.inner;
        // Per-bucket counts; the encoder makes them cumulative.
        let buckets: Vec<(f64, u64)> = inner
            .buckets
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let bound = inner
                    .bounds
                    .get(i)
                    .map_or(f64::INFINITY, |&bound| bound as f64 / inner.scale);
                (bound, bucket.load(Ordering::Relaxed))
            })
            .collect();
        let count = buckets.iter().map(|&(_, count)| count).sum();
        let sum = inner.sum.load(Ordering::Relaxed) as f64 / inner.scale;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// Get.
    Get,
    /// Put.
    Put,
    /// Delete.
    Delete,
}

impl ClientOp {
    const ALL: [Self; 3] = [Self::Get, Self::Put, Self::Delete];

    /// The `operation` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Put => "put",
            Self::Delete => "delete",
        }
    }
}

/// A call this node serves as a replica for another node's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaOp {
    /// `ReplicaRead`.
    Read,
    /// `ReplicaWrite` (replication, read repair, hint delivery).
    Write,
    /// `HintWrite`: storing a hint as a fallback.
    Hint,
}

impl ReplicaOp {
    const ALL: [Self; 3] = [Self::Read, Self::Write, Self::Hint];

    /// The `operation` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Hint => "hint",
        }
    }
}

/// How a coordinated request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumOutcome {
    /// R (W) replicas answered in time.
    Ok,
    /// Every replica slot answered, but too few successfully.
    Unavailable,
    /// The deadline passed with replicas still silent.
    Timeout,
}

impl QuorumOutcome {
    const ALL: [Self; 3] = [Self::Ok, Self::Unavailable, Self::Timeout];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
        }
    }
}

/// A call this node makes to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerOp {
    /// `ReplicaRead`.
    ReplicaRead,
    /// `ReplicaWrite`.
    ReplicaWrite,
    /// `HintWrite`.
    HintWrite,
    /// `Gossip`.
    Gossip,
    /// `MerkleLevel`.
    MerkleLevel,
    /// `SegmentKeys`.
    SegmentKeys,
    /// `HoldsHint`.
    HoldsHint,
    /// `ForgetTombstone`.
    ForgetTombstone,
    /// `StreamPartition` (opening the stream).
    StreamPartition,
    /// A client request forwarded to a replica of its key.
    Forward,
    /// An `Admin` call (ring and status at start-up).
    Admin,
}

impl PeerOp {
    const ALL: [Self; 11] = [
        Self::ReplicaRead,
        Self::ReplicaWrite,
        Self::HintWrite,
        Self::Gossip,
        Self::MerkleLevel,
        Self::SegmentKeys,
        Self::HoldsHint,
        Self::ForgetTombstone,
        Self::StreamPartition,
        Self::Forward,
        Self::Admin,
    ];

    /// The `operation` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReplicaRead => "replica_read",
            Self::ReplicaWrite => "replica_write",
            Self::HintWrite => "hint_write",
            Self::Gossip => "gossip",
            Self::MerkleLevel => "merkle_level",
            Self::SegmentKeys => "segment_keys",
            Self::HoldsHint => "holds_hint",
            Self::ForgetTombstone => "forget_tombstone",
            Self::StreamPartition => "stream_partition",
            Self::Forward => "forward",
            Self::Admin => "admin",
        }
    }
}

/// How a call to a peer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerOutcome {
    /// It answered.
    Ok,
    /// It answered with an error.
    Refused,
    /// It could not be reached.
    Unreachable,
    /// It did not answer within the call's deadline.
    Timeout,
    /// Too many calls to it were in flight; this one was not sent.
    Overloaded,
}

impl PeerOutcome {
    const ALL: [Self; 5] = [
        Self::Ok,
        Self::Refused,
        Self::Unreachable,
        Self::Timeout,
        Self::Overloaded,
    ];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
        }
    }
}

/// The state gauges of a node, read when `/metrics` is scraped.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Epoch of the ring in use.
    pub ring_epoch: u64,
    /// Partitions this node owns.
    pub partitions_owned: u32,
    /// Hinted keys queued per intended replica.
    pub hints_queued: Vec<(String, u64)>,
    /// Ring members judged self, up and down.
    pub members: [u32; 3],
    /// Incoming partitions of the change in flight: total and done.
    pub transfer: (u32, u32),
    /// Partitions being streamed back after an empty-disk start.
    pub recovering: u32,
    /// fjall's sizes.
    pub sizes: Sizes,
    /// Seconds since the node started.
    pub uptime_seconds: f64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerCallLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLatencyLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuorumLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyspaceLabels {
    keyspace: &'static str,
}

type LatencyFamily = Family<RequestLabels, AtomicHistogram, fn() -> AtomicHistogram>;

/// Every metric of one node. Each node owns its own, so in-process test
/// clusters do not mix their counts.
pub struct Metrics {
    registry: Registry,
    coordinator: [AtomicHistogram; 3],
    forwarder: [AtomicHistogram; 3],
    replica: [AtomicHistogram; 3],
    quorum: [[Counter; 3]; 3],
    peer_calls: [[Counter; 5]; 11],
    peer_latency: [AtomicHistogram; 11],
    siblings: AtomicHistogram,
    frame_items: AtomicHistogram,
    queue_wait: AtomicHistogram,
    limit_refusals: [Counter; Limit::ALL.len()],
    requests_in_flight: Family<ServiceLabels, Gauge>,
    hints_stored: Family<TargetLabels, Counter>,
    hints_delivered: Family<TargetLabels, Counter>,
    hints_queued: Family<TargetLabels, Gauge>,
    anti_entropy_rounds: Counter,
    anti_entropy_exchanges: Counter,
    anti_entropy_differing: Counter,
    anti_entropy_keys: Counter,
    anti_entropy_bytes: Family<DirectionLabels, Counter>,
    tombstones_dropped: Counter,
    stream_keys: Counter,
    stream_bytes: Counter,
    stream_partitions: Counter,
    transfer_partitions: Family<StateLabels, Gauge>,
    recovering_partitions: Gauge,
    gossip_rounds: Family<StateLabels, Counter>,
    members: Family<StateLabels, Gauge>,
    suspected_members: Gauge,
    ring_epoch: Gauge,
    partitions_owned: Gauge,
    storage_disk: Family<KeyspaceLabels, Gauge>,
    storage_keys: Family<KeyspaceLabels, Gauge>,
    journal_bytes: Gauge,
    write_buffer_bytes: Gauge,
    uptime: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `dynamo_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dynamo");
        let latency: LatencyFamily = Family::new_with_constructor(AtomicHistogram::latency);
        let handles = |role: &'static str, operations: [&'static str; 3]| {
            operations.map(|operation| {
                latency
                    .get_or_create_owned(&RequestLabels { operation, role })
                    .clone()
            })
        };
        let coordinator = handles("coordinator", ClientOp::ALL.map(ClientOp::as_str));
        let forwarder = handles("forwarder", ClientOp::ALL.map(ClientOp::as_str));
        let replica = handles("replica", ReplicaOp::ALL.map(ReplicaOp::as_str));
        registry.register(
            "request_duration_seconds",
            "Time to serve a request, by operation (get, put, delete as coordinator or \
             forwarder; read, write, hint as replica) and role",
            latency,
        );
        let quorum_family = Family::<QuorumLabels, Counter>::default();
        let quorum = ClientOp::ALL.map(|op| {
            QuorumOutcome::ALL.map(|outcome| {
                quorum_family.get_or_create_owned(&QuorumLabels {
                    operation: op.as_str(),
                    outcome: outcome.as_str(),
                })
            })
        });
        registry.register(
            "quorum_outcomes",
            "Coordinated requests by operation and outcome (ok, unavailable: too few \
             replicas succeeded, timeout: replicas still silent at the deadline)",
            quorum_family,
        );
        let peer_family = Family::<PeerCallLabels, Counter>::default();
        let peer_calls = PeerOp::ALL.map(|op| {
            PeerOutcome::ALL.map(|outcome| {
                peer_family.get_or_create_owned(&PeerCallLabels {
                    operation: op.as_str(),
                    outcome: outcome.as_str(),
                })
            })
        });
        registry.register(
            "peer_calls",
            "Calls this node made to peers, by operation and outcome (ok, refused, \
             unreachable, timeout: no answer within the call's deadline, overloaded: not \
             sent because the peer had too many calls in flight)",
            peer_family,
        );
        let peer_latency_family: Family<
            PeerLatencyLabels,
            AtomicHistogram,
            fn() -> AtomicHistogram,
        > = Family::new_with_constructor(AtomicHistogram::latency);
        let peer_latency = PeerOp::ALL.map(|op| {
            peer_latency_family
                .get_or_create_owned(&PeerLatencyLabels {
                    operation: op.as_str(),
                })
                .clone()
        });
        registry.register(
            "peer_call_duration_seconds",
            "Time calls to peers took, answered or not, by operation",
            peer_latency_family,
        );
        let siblings = AtomicHistogram::new(SIBLING_BOUNDS, 1.0);
        registry.register(
            "get_siblings",
            "Versions (siblings, tombstones included) returned per successful get",
            siblings.clone(),
        );
        let frame_items = AtomicHistogram::new(FRAME_BOUNDS, 1.0);
        registry.register(
            "peer_frame_items",
            "Replica calls per frame this node sent on its Exchange streams to peers \
             (calls queued while the previous frame was on its way travel together)",
            frame_items.clone(),
        );
        let queue_wait = AtomicHistogram::latency();
        registry.register(
            "peer_queue_wait_seconds",
            "Time a replica call waited in its peer's queue before its frame left",
            queue_wait.clone(),
        );
        let limit_family = Family::<LimitLabels, Counter>::default();
        let limit_refusals = Limit::ALL.map(|limit| {
            limit_family.get_or_create_owned(&LimitLabels {
                limit: limit.as_str(),
            })
        });
        registry.register(
            "limit_refusals",
            "Requests and messages from the network refused because they broke a limit \
             (docs/security.md), by limit",
            limit_family,
        );
        let requests_in_flight = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "requests_in_flight",
            "Requests admitted by the load shedder and not yet answered, by service (kv, peer)",
            requests_in_flight.clone(),
        );
        let metrics = Self {
            frame_items,
            queue_wait,
            coordinator,
            forwarder,
            replica,
            quorum,
            peer_calls,
            peer_latency,
            siblings,
            limit_refusals,
            requests_in_flight,
            hints_stored: Family::default(),
            hints_delivered: Family::default(),
            hints_queued: Family::default(),
            anti_entropy_rounds: Counter::default(),
            anti_entropy_exchanges: Counter::default(),
            anti_entropy_differing: Counter::default(),
            anti_entropy_keys: Counter::default(),
            anti_entropy_bytes: Family::default(),
            tombstones_dropped: Counter::default(),
            stream_keys: Counter::default(),
            stream_bytes: Counter::default(),
            stream_partitions: Counter::default(),
            transfer_partitions: Family::default(),
            recovering_partitions: Gauge::default(),
            gossip_rounds: Family::default(),
            members: Family::default(),
            suspected_members: Gauge::default(),
            ring_epoch: Gauge::default(),
            partitions_owned: Gauge::default(),
            storage_disk: Family::default(),
            storage_keys: Family::default(),
            journal_bytes: Gauge::default(),
            write_buffer_bytes: Gauge::default(),
            uptime: Gauge::default(),
            registry,
        };
        metrics.register_rest()
    }

    fn register_rest(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "hints_stored",
            "Hinted keys this node accepted as a fallback, per intended replica",
            self.hints_stored.clone(),
        );
        r.register(
            "hints_delivered",
            "Hinted keys delivered to their replica and deleted, per replica",
            self.hints_delivered.clone(),
        );
        r.register(
            "hints_queued",
            "Hinted keys waiting on this node, per intended replica",
            self.hints_queued.clone(),
        );
        r.register(
            "anti_entropy_rounds",
            "Anti-entropy passes over every partition this node replicates",
            self.anti_entropy_rounds.clone(),
        );
        r.register(
            "anti_entropy_exchanges",
            "Partition replica pairs compared by anti-entropy",
            self.anti_entropy_exchanges.clone(),
        );
        r.register(
            "anti_entropy_differing",
            "Anti-entropy exchanges whose Merkle roots differed",
            self.anti_entropy_differing.clone(),
        );
        r.register(
            "anti_entropy_keys_repaired",
            "Keys whose versions anti-entropy moved in either direction",
            self.anti_entropy_keys.clone(),
        );
        r.register(
            "anti_entropy_bytes",
            "Bytes anti-entropy exchanged with peers, by direction",
            self.anti_entropy_bytes.clone(),
        );
        r.register(
            "tombstones_dropped",
            "Tombstones dropped after every replica held them past the grace period",
            self.tombstones_dropped.clone(),
        );
        r.register(
            "stream_keys_received",
            "Keys received by partition streaming (joins, leaves, empty-disk recovery)",
            self.stream_keys.clone(),
        );
        r.register(
            "stream_bytes_received",
            "Bytes received by partition streaming",
            self.stream_bytes.clone(),
        );
        r.register(
            "stream_partitions_completed",
            "Partitions streamed in completely",
            self.stream_partitions.clone(),
        );
        r.register(
            "transfer_partitions",
            "Incoming partitions of the membership change in flight (state total or done)",
            self.transfer_partitions.clone(),
        );
        r.register(
            "recovering_partitions",
            "Partitions being streamed back after an empty-disk start",
            self.recovering_partitions.clone(),
        );
        r.register(
            "gossip_rounds",
            "Gossip exchanges this node started, by outcome (ok, failed)",
            self.gossip_rounds.clone(),
        );
        r.register(
            "members",
            "Ring members by this node's failure detector (self, up, down)",
            self.members.clone(),
        );
        r.register(
            "suspected_members",
            "Members the failure detector currently suspects (down)",
            self.suspected_members.clone(),
        );
        r.register(
            "ring_epoch",
            "Epoch of the ring in use",
            self.ring_epoch.clone(),
        );
        r.register(
            "partitions_owned",
            "Partitions this node owns in the ring",
            self.partitions_owned.clone(),
        );
        r.register(
            "storage_disk_bytes",
            "Disk space of a fjall keyspace's tables",
            self.storage_disk.clone(),
        );
        r.register(
            "storage_keys",
            "Approximate number of items in a fjall keyspace",
            self.storage_keys.clone(),
        );
        r.register(
            "storage_journal_bytes",
            "Disk space of fjall's journals",
            self.journal_bytes.clone(),
        );
        r.register(
            "storage_write_buffer_bytes",
            "Bytes in fjall's memtables not yet flushed",
            self.write_buffer_bytes.clone(),
        );
        r.register(
            "uptime_seconds",
            "Seconds since the node started",
            self.uptime.clone(),
        );
        self
    }

    /// Records a request this node coordinated. `outcome` is `None` when the
    /// request was refused before any replica was asked (bad input).
    pub fn coordinated(&self, op: ClientOp, elapsed: Duration, outcome: Option<QuorumOutcome>) {
        self.coordinator[op as usize].observe_duration(elapsed);
        if let Some(outcome) = outcome {
            self.quorum[op as usize][outcome as usize].inc();
        }
    }

    /// Records a request this node forwarded to a replica of its key.
    pub fn forwarded(&self, op: ClientOp, elapsed: Duration) {
        self.forwarder[op as usize].observe_duration(elapsed);
    }

    /// Records a call served as a replica.
    pub fn replica(&self, op: ReplicaOp, elapsed: Duration) {
        self.replica[op as usize].observe_duration(elapsed);
    }

    /// Records a call to a peer and, when it was sent, how long it took.
    pub fn peer_call(&self, op: PeerOp, outcome: PeerOutcome, elapsed: Option<Duration>) {
        self.peer_calls[op as usize][outcome as usize].inc();
        if let Some(elapsed) = elapsed {
            self.peer_latency[op as usize].observe_duration(elapsed);
        }
    }

    /// Number of calls to peers for `op` that ended with `outcome`.
    pub fn peer_call_count(&self, op: PeerOp, outcome: PeerOutcome) -> u64 {
        self.peer_calls[op as usize][outcome as usize].get()
    }

    /// Records a frame of `items` replica calls sent to a peer.
    pub fn peer_frame(&self, items: usize) {
        self.frame_items.observe(items as u64);
    }

    /// Records how long a replica call waited for its frame.
    pub fn peer_queue_wait(&self, waited: Duration) {
        self.queue_wait.observe_duration(waited);
    }

    /// Records the number of versions a get returned.
    pub fn siblings(&self, versions: usize) {
        self.siblings.observe(versions as u64);
    }

    /// Records a request or message refused for breaking `limit`.
    pub fn limit_refused(&self, limit: Limit) {
        self.limit_refusals[limit as usize].inc();
    }

    /// The gauge of `service`'s requests in flight (`kv`, `peer`).
    pub fn requests_in_flight(&self, service: &'static str) -> Gauge {
        self.requests_in_flight
            .get_or_create_owned(&ServiceLabels { service })
    }

    /// Number of refusals for `limit` so far.
    pub fn limit_refusal_count(&self, limit: Limit) -> u64 {
        self.limit_refusals[limit as usize].get()
    }

    /// Records a hinted key accepted for `target`.
    pub fn hint_stored(&self, target: &str) {
        self.hints_stored
            .get_or_create(&TargetLabels {
                target: target.to_owned(),
            })
            .inc();
    }

    /// Records `keys` hinted keys delivered to `target`.
    pub fn hints_delivered(&self, target: &str, keys: u64) {
        self.hints_delivered
            .get_or_create(&TargetLabels {
                target: target.to_owned(),
            })
            .inc_by(keys);
    }

    /// Records a finished anti-entropy pass.
    pub fn anti_entropy_pass(&self, stats: &AntiEntropyStats) {
        self.anti_entropy_rounds.inc();
        self.anti_entropy_exchanges.inc_by(stats.exchanges);
        self.anti_entropy_differing.inc_by(stats.differing);
        self.anti_entropy_keys.inc_by(stats.keys_repaired);
        self.tombstones_dropped.inc_by(stats.tombstones_dropped);
        for (direction, bytes) in [
            ("sent", stats.bytes_sent),
            ("received", stats.bytes_received),
        ] {
            self.anti_entropy_bytes
                .get_or_create(&DirectionLabels { direction })
                .inc_by(bytes);
        }
    }

    /// Records one streamed chunk.
    pub fn streamed(&self, keys: u64, bytes: u64) {
        self.stream_keys.inc_by(keys);
        self.stream_bytes.inc_by(bytes);
    }

    /// Records a partition streamed in completely.
    pub fn stream_completed(&self) {
        self.stream_partitions.inc();
    }

    /// Records a gossip round started by this node.
    pub fn gossip_round(&self, ok: bool) {
        let state = if ok { "ok" } else { "failed" };
        self.gossip_rounds
            .get_or_create(&StateLabels { state })
            .inc();
    }

    /// Number of requests coordinated for `op`, all outcomes.
    pub fn coordinated_count(&self, op: ClientOp) -> u64 {
        self.coordinator[op as usize].count()
    }
}

impl Metrics {
    /// Sets the state gauges from `snapshot` and encodes every metric in
    /// the Prometheus text format.
    ///
    /// # Errors
    /// Only if formatting fails, which writing to a `String` does not.
    pub fn render(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.ring_epoch.set(gauge(snapshot.ring_epoch));
        self.partitions_owned
            .set(i64::from(snapshot.partitions_owned));
        self.hints_queued.clear();
        for (target, keys) in &snapshot.hints_queued {
            self.hints_queued
                .get_or_create(&TargetLabels {
                    target: target.clone(),
                })
                .set(gauge(*keys));
        }
        for (state, count) in ["self", "up", "down"].into_iter().zip(snapshot.members) {
            self.members
                .get_or_create(&StateLabels { state })
                .set(i64::from(count));
        }
        self.suspected_members.set(i64::from(snapshot.members[2]));
        let (total, done) = snapshot.transfer;
        for (state, value) in [("total", total), ("done", done)] {
            self.transfer_partitions
                .get_or_create(&StateLabels { state })
                .set(i64::from(value));
        }
        self.recovering_partitions
            .set(i64::from(snapshot.recovering));
        for &(keyspace, disk, keys) in &snapshot.sizes.keyspaces {
            self.storage_disk
                .get_or_create(&KeyspaceLabels { keyspace })
                .set(gauge(disk));
            self.storage_keys
                .get_or_create(&KeyspaceLabels { keyspace })
                .set(gauge(keys));
        }
        self.journal_bytes.set(gauge(snapshot.sizes.journal_bytes));
        self.write_buffer_bytes
            .set(gauge(snapshot.sizes.write_buffer_bytes));
        self.uptime.set(snapshot.uptime_seconds);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// What an anti-entropy pass (or one exchange) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AntiEntropyStats {
    /// Partition replica pairs compared.
    pub exchanges: u64,
    /// Pairs whose roots differed.
    pub differing: u64,
    /// Keys whose versions moved in either direction.
    pub keys_repaired: u64,
    /// Bytes sent to peers.
    pub bytes_sent: u64,
    /// Bytes received from peers.
    pub bytes_received: u64,
    /// Tombstones dropped on all replicas.
    pub tombstones_dropped: u64,
}

impl AntiEntropyStats {
    /// Adds the counts of `other`.
    pub fn add(&mut self, other: AntiEntropyStats) {
        self.exchanges += other.exchanges;
        self.differing += other.differing;
        self.keys_repaired += other.keys_repaired;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.tombstones_dropped += other.tombstones_dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_bounds_ascend_from_25us_to_10s_with_fine_steps_in_the_sla_range() {
        assert!(LATENCY_BOUNDS_NS.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(LATENCY_BOUNDS_NS[0], 25_000);
        assert_eq!(
            LATENCY_BOUNDS_NS[LATENCY_BOUNDS_NS.len() - 1],
            10_000_000_000
        );
        for pair in LATENCY_BOUNDS_NS.windows(2) {
            if pair[0] >= 100_000 && pair[1] <= 1_000_000_000 {
                let step = pair[1] as f64 / pair[0] as f64;
                assert!(step <= 1.34, "step {pair:?} is coarser than a third");
            }
        }
        assert!(LATENCY_BOUNDS_NS.contains(&100_000));
        assert!(LATENCY_BOUNDS_NS.contains(&1_000_000_000));
    }

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_holds_them() {
        let histogram = AtomicHistogram::new(&[10, 20], 1.0);
        for value in [0, 10, 11, 20, 21, 1000] {
            histogram.observe(value);
        }
        let counts: Vec<u64> = histogram
            .inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, vec![2, 2, 2]);
        assert_eq!(histogram.count(), 6);
    }

    #[test]
    fn encoding_is_cumulative_in_seconds_with_prometheus_names() {
        let metrics = Metrics::new();
        let elapsed = Duration::from_micros(180);
        metrics.coordinated(ClientOp::Put, elapsed, Some(QuorumOutcome::Ok));
        metrics.coordinated(ClientOp::Put, elapsed, Some(QuorumOutcome::Timeout));
        metrics.siblings(2);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &metrics.registry)
            .expect("encode");
        assert!(
            text.contains(
                "dynamo_request_duration_seconds_count{operation=\"put\",role=\"coordinator\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("le=\"0.00025\""), "{text}");
        assert!(
            text.contains("dynamo_quorum_outcomes_total{operation=\"put\",outcome=\"timeout\"} 1")
        );
        for line in [
            "dynamo_get_siblings_bucket{le=\"1\"} 0",
            "dynamo_get_siblings_bucket{le=\"2\"} 1",
            "dynamo_get_siblings_bucket{le=\"+Inf\"} 1",
            "dynamo_request_duration_seconds_bucket{operation=\"put\",role=\"coordinator\",le=\"0.00015\"} 0",
            "dynamo_request_duration_seconds_bucket{operation=\"put\",role=\"coordinator\",le=\"0.0002\"} 2",
            "dynamo_request_duration_seconds_bucket{operation=\"put\",role=\"coordinator\",le=\"+Inf\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
