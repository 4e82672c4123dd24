//! The peer client: every call this node makes to another node goes through
//! [`Peers`], which gives each call its span, its metrics, its deadline, its
//! place in the peer's in-flight bound and its [`PeerError`], and reports
//! the outcome to the failure detector. How bytes travel is a
//! [`Transport`]: [`GrpcTransport`] between processes, [`MemoryTransport`]
//! between in-process replicas in tests.
//!
//! # Deadlines
//! Every call ends at `peer_timeout_ms` at the latest, and never past the
//! deadline of the request it serves. A replica call (read, write, hint)
//! also has a shorter deadline from the peer's observed latency,
//! [`Peers::replica_deadline`]: `deadline_multiplier` times a decaying
//! estimate of its tail latency ([`latency`]), clamped between
//! `deadline_floor_ms` and `peer_timeout_ms` (a peer never heard from gets
//! `peer_timeout_ms`). A write slot turns to a fallback when that deadline
//! passes ([`crate::handoff`]) and lets the late call run on to its hard
//! deadline; a read asks another replica after `read_hedge_ms`, or at once
//! when the replica it asked is [`Peers::suspected`].
//!
//! # In-flight bound
//! At most `max_in_flight` calls run to one peer at a time; when they are
//! all taken, a call fails at once with [`PeerError::Overloaded`], so a
//! stalled peer holds no more than that many of this node's tasks.
//!
//! # Shaped for a batched transport
//! The hot-path methods ([`Peers::replica_read`], [`Peers::replica_write`],
//! [`Peers::hint_write`]) each carry one item (one key and its versions)
//! with its own deadline, and return that item's own result. No call
//! depends on another, so a transport that queues items per peer and sends
//! them coalesced in frames on one long-lived bidirectional stream can take
//! [`GrpcTransport`]'s place without changing a caller: it completes each
//! item's future when the item's reply arrives, and dropping a future (the
//! deadline passed) drops the item.

mod grpc;
pub mod latency;
pub mod link;
pub mod memory;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{Instrument, debug, debug_span};

use crate::config::Config;
use crate::membership::Liveness;
use crate::metrics::{Metrics, PeerOp, PeerOutcome};
use crate::ring::Member;
use crate::storage::Durability;
use crate::topology::Topology;
use crate::version::SiblingSet;
use crate::wire::{self, WireError};

pub use grpc::{FRAME_BYTES, GrpcTransport, MAX_PEER_MESSAGE};
pub use latency::TailLatency;
pub use memory::MemoryTransport;

/// Why a call to a peer failed.
#[derive(Clone, Debug, Error)]
pub enum PeerError {
    /// The peer could not be reached (connection refused or lost, or it
    /// answered that it cannot serve right now).
    #[error("{peer} is unreachable: {reason}")]
    Unreachable {
        /// Member id of the peer.
        peer: String,
        /// What the transport said.
        reason: String,
    },
    /// The peer did not answer within the call's deadline.
    #[error("{peer} did not answer within {waited_ms} ms")]
    Timeout {
        /// Member id of the peer.
        peer: String,
        /// How long the call waited.
        waited_ms: u64,
    },
    /// The peer already has as many calls from this node in flight as
    /// allowed; the call was not sent.
    #[error("{peer} already has {limit} calls from this node in flight")]
    Overloaded {
        /// Member id of the peer.
        peer: String,
        /// The configured `max_in_flight`.
        limit: usize,
    },
    /// The peer answered with an error.
    #[error("{peer} refused: {}", .status.message())]
    Refused {
        /// Member id of the peer.
        peer: String,
        /// The peer's answer.
        status: Box<tonic::Status>,
    },
    /// The peer answered with something this node cannot accept.
    #[error("{peer} sent an invalid answer: {source}")]
    Invalid {
        /// Member id of the peer.
        peer: String,
        /// What is wrong with it.
        source: WireError,
    },
    /// The peer's address is not a valid URI authority.
    #[error("peer address {address:?} is invalid: {reason}")]
    Address {
        /// The address.
        address: String,
        /// Why it is invalid.
        reason: String,
    },
}

impl PeerError {
    /// The error for a gRPC status from `peer`: transport failures and
    /// `UNAVAILABLE`/`DEADLINE_EXCEEDED`/`CANCELLED` answers mean the peer
    /// was not reached in time; anything else is a refusal.
    pub fn from_status(peer: &str, status: tonic::Status) -> Self {
        let unreachable = matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ) || status.code() == tonic::Code::Unknown
            && status.message().contains("transport");
        if unreachable {
            Self::Unreachable {
                peer: peer.to_owned(),
                reason: status.message().to_owned(),
            }
        } else {
            Self::Refused {
                peer: peer.to_owned(),
                status: Box::new(status),
            }
        }
    }

    /// True when the peer answered (even with a refusal).
    pub fn reached(&self) -> bool {
        matches!(self, Self::Refused { .. } | Self::Invalid { .. })
    }

    /// The outcome label of this failure.
    fn outcome(&self) -> PeerOutcome {
        match self {
            Self::Unreachable { .. } | Self::Address { .. } => PeerOutcome::Unreachable,
            Self::Timeout { .. } => PeerOutcome::Timeout,
            Self::Overloaded { .. } => PeerOutcome::Overloaded,
            Self::Refused { .. } | Self::Invalid { .. } => PeerOutcome::Refused,
        }
    }
}

/// A future of one peer call.
pub type PeerFuture<T> = BoxFuture<'static, Result<T, PeerError>>;

/// The chunks of a streamed partition.
pub type ChunkStream = BoxStream<'static, Result<pb::PartitionChunk, PeerError>>;

/// A client request forwarded to a node in the key's preference list.
#[derive(Clone, Debug)]
pub enum Forward {
    /// A get.
    Get(pb::GetRequest),
    /// A put.
    Put(pb::PutRequest),
    /// A delete.
    Delete(pb::DeleteRequest),
}

/// The answer to a [`Forward`].
#[derive(Clone, Debug)]
pub enum Forwarded {
    /// To a get.
    Get(pb::GetResponse),
    /// To a put.
    Put(pb::PutResponse),
    /// To a delete.
    Delete(pb::DeleteResponse),
}

/// How calls travel to another node: one method per remote procedure, with
/// no bound or metrics of its own ([`Peers`] adds those, and stops waiting
/// at the call's deadline). A returned future does nothing until polled and
/// stops the call when dropped. The replica calls are told their deadline,
/// so a batched transport can tell the peer when an item is no longer
/// worth starting.
pub trait Transport: Send + Sync {
    /// `Peer.ReplicaRead`.
    fn replica_read(
        &self,
        to: &Member,
        request: pb::ReplicaReadRequest,
        deadline: Instant,
    ) -> PeerFuture<pb::ReplicaReadResponse>;
    /// `Peer.ReplicaWrite`.
    fn replica_write(
        &self,
        to: &Member,
        request: pb::ReplicaWriteRequest,
        deadline: Instant,
    ) -> PeerFuture<()>;
    /// `Peer.HintWrite`.
    fn hint_write(
        &self,
        to: &Member,
        request: pb::HintWriteRequest,
        deadline: Instant,
    ) -> PeerFuture<()>;
    /// `Peer.Gossip`.
    fn gossip(&self, to: &Member, message: pb::GossipMessage) -> PeerFuture<pb::GossipMessage>;
    /// `Peer.MerkleLevel`.
    fn merkle_level(
        &self,
        to: &Member,
        request: pb::MerkleLevelRequest,
    ) -> PeerFuture<pb::MerkleLevelResponse>;
    /// `Peer.SegmentKeys`.
    fn segment_keys(
        &self,
        to: &Member,
        request: pb::SegmentKeysRequest,
    ) -> PeerFuture<pb::SegmentKeysResponse>;
    /// `Peer.HoldsHint`.
    fn holds_hint(&self, to: &Member, request: pb::HoldsHintRequest) -> PeerFuture<bool>;
    /// `Peer.ForgetTombstone`.
    fn forget_tombstone(
        &self,
        to: &Member,
        request: pb::ForgetTombstoneRequest,
    ) -> PeerFuture<bool>;
    /// `Peer.StreamPartition`: resolves once the stream is open.
    fn stream_partition(
        &self,
        to: &Member,
        request: pb::StreamPartitionRequest,
    ) -> PeerFuture<ChunkStream>;
    /// `Kv.Get`, `Kv.Put` or `Kv.Delete` on behalf of a client.
    fn forward(&self, to: &Member, request: Forward) -> PeerFuture<Forwarded>;
    /// `Admin.GetRing`.
    fn ring(&self, to: &Member) -> PeerFuture<pb::GetRingResponse>;
    /// `Admin.Status`.
    fn status(&self, to: &Member) -> PeerFuture<pb::StatusResponse>;
}

/// The settings of [`Peers`], from the node's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerSettings {
    /// Longest any call may take (`peer_timeout_ms`).
    pub ceiling: Duration,
    /// Shortest deadline of a replica call.
    pub floor: Duration,
    /// Deadline of a replica call as a multiple of the peer's tail latency.
    pub multiplier: f64,
    /// Most calls in flight to one peer.
    pub max_in_flight: usize,
}

impl PeerSettings {
    /// The settings in `config`.
    pub fn of(config: &Config) -> Self {
        let calls = &config.peer_calls;
        Self {
            ceiling: config.peer_timeout(),
            floor: Duration::from_millis(calls.deadline_floor_ms).min(config.peer_timeout()),
            multiplier: calls.deadline_multiplier,
            max_in_flight: calls.max_in_flight.max(1),
        }
    }

    /// The deadline of a replica call to a peer whose tail latency is
    /// `tail` (`None`: never heard from).
    pub fn replica_deadline(&self, tail: Option<Duration>) -> Duration {
        match tail {
            None => self.ceiling,
            Some(tail) => tail
                .mul_f64(self.multiplier.max(1.0))
                .clamp(self.floor, self.ceiling),
        }
    }
}

/// What this node learned about one peer from its calls.
struct PeerState {
    latency: TailLatency,
    in_flight: Arc<Semaphore>,
    /// Microseconds since [`Peers::epoch`] of the last call that did not
    /// reach the peer; 0 when the last call did.
    failed_at_us: AtomicU64,
    /// Microseconds since [`Peers::epoch`] when a success was last reported
    /// to the failure detector.
    reported_at_us: AtomicU64,
}

/// Successes are reported to the failure detector at most this often per
/// peer, so the hot path does not take the detector's lock on every call.
const REPORT_EVERY: Duration = Duration::from_millis(50);

/// The peer client. See the module documentation.
pub struct Peers {
    transport: Arc<dyn Transport>,
    settings: PeerSettings,
    topology: Arc<Topology>,
    metrics: Arc<Metrics>,
    states: RwLock<HashMap<String, Arc<PeerState>>>,
    epoch: Instant,
}

impl Peers {
    /// A client sending over `transport`, reporting outcomes to the failure
    /// detector of `topology`.
    pub fn new(
        transport: Arc<dyn Transport>,
        settings: PeerSettings,
        topology: Arc<Topology>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            transport,
            settings,
            topology,
            metrics,
            states: RwLock::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> PeerSettings {
        self.settings
    }

    /// True when the failure detector suspects `member`.
    pub fn detector_suspects(&self, member: &Member) -> bool {
        self.topology.liveness(&member.id) == Liveness::Down
    }

    /// True when `member` should not be waited for: the failure detector
    /// suspects it, or the last call to it, less than `peer_timeout_ms`
    /// ago, did not reach it.
    pub fn suspected(&self, member: &Member) -> bool {
        if self.topology.liveness(&member.id) == Liveness::Down {
            return true;
        }
        let failed_at = self.state(&member.id).failed_at_us.load(Ordering::Relaxed);
        failed_at != 0 && self.micros(Instant::now()) < failed_at + micros(self.settings.ceiling)
    }

    /// How long a replica call to `member` may take before the caller
    /// should turn to an alternative: the latency-based deadline.
    pub fn replica_deadline(&self, member: &Member) -> Duration {
        self.settings
            .replica_deadline(self.state(&member.id).latency.estimate())
    }

    /// Reads one key's copy on `to`.
    pub fn replica_read(
        self: &Arc<Self>,
        to: &Member,
        key: Bytes,
        deadline: Instant,
    ) -> PeerFuture<SiblingSet> {
        let peer = to.id.clone();
        let request = pb::ReplicaReadRequest { key };
        let call = self.call(
            to,
            PeerOp::ReplicaRead,
            deadline,
            true,
            move |t, to, until| t.replica_read(to, request, until),
        );
        async move {
            let response = call.await?;
            wire::set_from_pb(response.siblings)
                .map_err(|source| PeerError::Invalid { peer, source })
        }
        .boxed()
    }

    /// Merges versions of one key into its copy on `to`.
    pub fn replica_write(
        self: &Arc<Self>,
        to: &Member,
        key: Bytes,
        siblings: pb::SiblingSet,
        durability: Durability,
        deadline: Instant,
    ) -> PeerFuture<()> {
        let request = pb::ReplicaWriteRequest {
            key,
            siblings: Some(siblings),
            durability: wire::durability_to_pb(durability).into(),
        };
        self.call(
            to,
            PeerOp::ReplicaWrite,
            deadline,
            true,
            move |t, to, until| t.replica_write(to, request, until),
        )
    }

    /// Asks fallback `to` to keep versions of one key for `target`.
    pub fn hint_write(
        self: &Arc<Self>,
        to: &Member,
        target: &str,
        key: Bytes,
        siblings: pb::SiblingSet,
        durability: Durability,
        deadline: Instant,
    ) -> PeerFuture<()> {
        let request = pb::HintWriteRequest {
            target: target.to_owned(),
            key,
            siblings: Some(siblings),
            durability: wire::durability_to_pb(durability).into(),
        };
        self.call(
            to,
            PeerOp::HintWrite,
            deadline,
            true,
            move |t, to, until| t.hint_write(to, request, until),
        )
    }

    /// One gossip exchange with `to`.
    ///
    /// # Errors
    /// [`PeerError`] when the exchange failed.
    pub async fn gossip(
        self: &Arc<Self>,
        to: &Member,
        message: pb::GossipMessage,
    ) -> Result<pb::GossipMessage, PeerError> {
        self.background(to, PeerOp::Gossip, move |t, to, _| t.gossip(to, message))
            .await
    }

    /// Hashes of one level of `to`'s Merkle tree of a partition.
    ///
    /// # Errors
    /// [`PeerError`] when the call failed.
    pub async fn merkle_level(
        self: &Arc<Self>,
        to: &Member,
        request: pb::MerkleLevelRequest,
    ) -> Result<pb::MerkleLevelResponse, PeerError> {
        self.background(to, PeerOp::MerkleLevel, move |t, to, _| {
            t.merkle_level(to, request)
        })
        .await
    }

    /// Key digests of some leaf segments of a partition on `to`.
    ///
    /// # Errors
    /// [`PeerError`] when the call failed.
    pub async fn segment_keys(
        self: &Arc<Self>,
        to: &Member,
        request: pb::SegmentKeysRequest,
    ) -> Result<pb::SegmentKeysResponse, PeerError> {
        self.background(to, PeerOp::SegmentKeys, move |t, to, _| {
            t.segment_keys(to, request)
        })
        .await
    }

    /// Whether `to` holds a hint for `key`.
    ///
    /// # Errors
    /// [`PeerError`] when the call failed.
    pub async fn holds_hint(self: &Arc<Self>, to: &Member, key: Bytes) -> Result<bool, PeerError> {
        let request = pb::HoldsHintRequest { key };
        self.background(to, PeerOp::HoldsHint, move |t, to, _| {
            t.holds_hint(to, request)
        })
        .await
    }

    /// Asks `to` to drop a key's tombstones if its copy has `digest`.
    ///
    /// # Errors
    /// [`PeerError`] when the call failed.
    pub async fn forget_tombstone(
        self: &Arc<Self>,
        to: &Member,
        key: Bytes,
        digest: u64,
    ) -> Result<bool, PeerError> {
        let request = pb::ForgetTombstoneRequest { key, digest };
        self.background(to, PeerOp::ForgetTombstone, move |t, to, _| {
            t.forget_tombstone(to, request)
        })
        .await
    }

    /// Opens a stream of a partition's keys on `to`, after key `after`.
    /// The deadline covers opening it; the caller bounds the wait for each
    /// chunk.
    ///
    /// # Errors
    /// [`PeerError`] when the stream could not be opened.
    pub async fn stream_partition(
        self: &Arc<Self>,
        to: &Member,
        partition: u32,
        n: u32,
        after: Bytes,
    ) -> Result<ChunkStream, PeerError> {
        let request = pb::StreamPartitionRequest {
            partition,
            after,
            n,
        };
        self.background(to, PeerOp::StreamPartition, move |t, to, _| {
            t.stream_partition(to, request)
        })
        .await
    }

    /// Sends a client request to `to`, which serves it as a replica of the
    /// key, within `deadline`.
    ///
    /// # Errors
    /// [`PeerError`] when it did not answer or refused.
    pub async fn forward(
        self: &Arc<Self>,
        to: &Member,
        request: Forward,
        deadline: Instant,
    ) -> Result<Forwarded, PeerError> {
        self.call(to, PeerOp::Forward, deadline, false, move |t, to, _| {
            t.forward(to, request)
        })
        .await
    }

    /// `to`'s ring.
    ///
    /// # Errors
    /// [`PeerError`] when the call failed.
    pub async fn ring(self: &Arc<Self>, to: &Member) -> Result<pb::GetRingResponse, PeerError> {
        self.background(to, PeerOp::Admin, |t, to, _| t.ring(to))
            .await
    }

    /// `to`'s status.
    ///
    /// # Errors
    /// [`PeerError`] when the call failed.
    pub async fn status(self: &Arc<Self>, to: &Member) -> Result<pb::StatusResponse, PeerError> {
        self.background(to, PeerOp::Admin, |t, to, _| t.status(to))
            .await
    }

    /// A call that is not on a request's path: `peer_timeout_ms` from now.
    fn background<T, F>(self: &Arc<Self>, to: &Member, op: PeerOp, send: F) -> PeerFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Transport, &Member, Instant) -> PeerFuture<T> + Send + 'static,
    {
        let deadline = Instant::now() + self.settings.ceiling;
        self.call(to, op, deadline, false, send)
    }

    /// One call: nothing happens until the returned future is polled; then
    /// it takes an in-flight slot of the peer (or fails with
    /// [`PeerError::Overloaded`]), sends, waits at most `peer_timeout_ms`
    /// and never past `deadline`, and records the outcome (replica calls
    /// also feed the latency estimate).
    fn call<T, F>(
        self: &Arc<Self>,
        to: &Member,
        op: PeerOp,
        deadline: Instant,
        adaptive: bool,
        send: F,
    ) -> PeerFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Transport, &Member, Instant) -> PeerFuture<T> + Send + 'static,
    {
        let peers = Arc::clone(self);
        let to = to.clone();
        let span = debug_span!("peer_call", peer = %to.id, call = op.as_str());
        async move {
            let state = peers.state(&to.id);
            let Ok(_permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
                peers.metrics.peer_call(op, PeerOutcome::Overloaded, None);
                debug!("too many calls in flight to the peer");
                return Err(PeerError::Overloaded {
                    peer: to.id.clone(),
                    limit: peers.settings.max_in_flight,
                });
            };
            let started = Instant::now();
            let until = deadline.min(started + peers.settings.ceiling);
            let outcome =
                match tokio::time::timeout_at(until, send(&*peers.transport, &to, until)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(PeerError::Timeout {
                        peer: to.id.clone(),
                        waited_ms: started.elapsed().as_millis() as u64,
                    }),
                };
            peers.observe(&to, &state, op, adaptive, started, &outcome);
            outcome
        }
        .instrument(span)
        .boxed()
    }

    /// Records a call's outcome: metrics, the latency estimate (replica
    /// calls only), suspicion, and the failure detector.
    fn observe<T>(
        &self,
        to: &Member,
        state: &PeerState,
        op: PeerOp,
        adaptive: bool,
        started: Instant,
        outcome: &Result<T, PeerError>,
    ) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        match outcome {
            Ok(_) => {
                debug!("peer answered");
                self.metrics.peer_call(op, PeerOutcome::Ok, Some(elapsed));
            }
            Err(error) => {
                debug!(%error, "peer call failed");
                self.metrics.peer_call(op, error.outcome(), Some(elapsed));
            }
        }
        let reached = outcome.as_ref().map_or_else(PeerError::reached, |_| true);
        // A timeout is a censored sample: the latency was at least this, so
        // the estimate grows when a peer gets slower for good.
        let timed_out = matches!(outcome, Err(PeerError::Timeout { .. }));
        if adaptive && (reached || timed_out) {
            state.latency.record(elapsed);
        }
        if reached {
            // A success right after a failure is reported at once: it ends
            // a suspicion that the throttle would otherwise keep.
            let was_failing = state.failed_at_us.swap(0, Ordering::Relaxed) != 0;
            let now_us = self.micros(now);
            let reported = state.reported_at_us.load(Ordering::Relaxed);
            let due = now_us.saturating_sub(reported) >= micros(REPORT_EVERY)
                && state
                    .reported_at_us
                    .compare_exchange(reported, now_us, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok();
            if was_failing || due {
                self.topology.heard_from(&to.id);
            }
        } else {
            state
                .failed_at_us
                .store(self.micros(now).max(1), Ordering::Relaxed);
            self.topology.failed(&to.id);
        }
    }

    fn state(&self, id: &str) -> Arc<PeerState> {
        if let Some(state) = self
            .states
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return Arc::clone(state);
        }
        let mut states = self.states.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(states.entry(id.to_owned()).or_insert_with(|| {
            Arc::new(PeerState {
                latency: TailLatency::default(),
                in_flight: Arc::new(Semaphore::new(self.settings.max_in_flight)),
                failed_at_us: AtomicU64::new(0),
                reported_at_us: AtomicU64::new(0),
            })
        }))
    }

    fn micros(&self, at: Instant) -> u64 {
        micros(at.saturating_duration_since(self.epoch))
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
