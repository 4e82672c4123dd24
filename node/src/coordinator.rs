//! The coordinator: turns a client's get, put or delete into replica calls on
//! the key's preference list, waits for R or W of them, and repairs stale
//! replicas after a read. A node outside the key's preference list forwards
//! the request to one inside it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use rand::seq::SliceRandom;
use thiserror::Error;
use tokio::time::Instant;
use tracing::{Instrument, Span, debug, debug_span, field, warn};

use crate::config::{Config, Limits};
use crate::context::{self, ContextError};
use crate::handoff::{Fallbacks, Handoff, SlotWrite};
use crate::metrics::{ClientOp, Metrics, QuorumOutcome};
use crate::peers::{Forward, Forwarded, PeerError, Peers};
use crate::quorum::{Call, Quorum};
use crate::replica::{Replica, ReplicaError};
use crate::ring::{BucketRules, QualifiedKey, Ring, bucket_factor};
use crate::storage::{Durability, NewWrite, StorageError};
use crate::topology::Topology;
use crate::version::SiblingSet;
use crate::wire;

/// Why a client request failed.
#[derive(Debug, Error)]
pub enum KvError {
    /// The request itself is wrong; nothing was written.
    #[error("{0}")]
    InvalidArgument(String),
    /// The context could not be used; nothing was written.
    #[error("{0}")]
    Context(#[from] ContextError),
    /// Too few replicas answered in time.
    #[error("{operation} needed {needed} of {n} replicas but {answered} answered in time{detail}")]
    Unavailable {
        /// `get`, `put` or `delete`.
        operation: &'static str,
        /// R or W.
        needed: u32,
        /// N.
        n: u32,
        /// Replicas that answered in time.
        answered: u32,
        /// Why the others did not answer.
        detail: String,
        /// True when replicas were still silent at the deadline (as opposed
        /// to all of them having failed).
        timed_out: bool,
    },
    /// The request names a bucket the ring does not declare.
    #[error("bucket {bucket} is not declared in this cluster")]
    UnknownBucket {
        /// The bucket named (cut to 80 characters).
        bucket: String,
    },
    /// Local storage failed or refused.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The node this request was forwarded to answered with an error.
    #[error("{}", .0.message())]
    Forwarded(Box<tonic::Status>),
}

impl From<ReplicaError> for KvError {
    fn from(error: ReplicaError) -> Self {
        match error {
            ReplicaError::Storage(error) => Self::Storage(error),
            other => Self::Unavailable {
                operation: "local write",
                needed: 1,
                n: 1,
                answered: 0,
                detail: format!(" ({other})"),
                timed_out: false,
            },
        }
    }
}

/// What the coordinator takes from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordinatorSettings {
    /// Size limits.
    pub limits: Limits,
    /// Deadline of a whole client request.
    pub request_timeout: Duration,
    /// How long a read waits for the replicas it asked before asking the
    /// others.
    pub read_hedge: Duration,
    /// Durability of writes that leave it to the node.
    pub durability: Durability,
    /// Longest one peer call may take.
    pub peer_timeout: Duration,
}

impl CoordinatorSettings {
    /// The settings in `config`.
    pub fn of(config: &Config) -> Self {
        Self {
            limits: config.limits,
            request_timeout: config.request_timeout(),
            read_hedge: config.read_hedge(),
            durability: config.durability,
            peer_timeout: config.peer_timeout(),
        }
    }
}

/// The coordinator of one node.
pub struct Coordinator {
    topology: Arc<Topology>,
    replica: Arc<Replica>,
    handoff: Arc<Handoff>,
    peers: Arc<Peers>,
    metrics: Arc<Metrics>,
    settings: CoordinatorSettings,
}

/// A key of a declared bucket, resolved against the ring in use.
struct Target {
    /// The bucket-qualified key the engine stores and replicas exchange.
    key: Bytes,
    /// Its partition.
    partition: u32,
    /// The bucket's N, R, W and durability.
    rules: BucketRules,
}

impl Target {
    /// The bucket's N.
    fn n(&self) -> u32 {
        self.rules.replication.n
    }
}

/// A write as the coordinator sees it.
struct WriteSpec {
    target: Target,
    value: Bytes,
    tombstone: bool,
    context: Bytes,
    w: u32,
    durability: pb::Durability,
}

/// The outcome of a coordinated write.
struct WriteOutcome {
    context: Bytes,
    acks: u32,
}

impl Coordinator {
    /// A coordinator storing its own copies in `replica` and reaching the
    /// others through `peers` and `handoff`.
    pub fn new(
        topology: Arc<Topology>,
        replica: Arc<Replica>,
        handoff: Arc<Handoff>,
        peers: Arc<Peers>,
        metrics: Arc<Metrics>,
        settings: CoordinatorSettings,
    ) -> Self {
        Self {
            topology,
            replica,
            handoff,
            peers,
            metrics,
            settings,
        }
    }

    fn id(&self) -> &str {
        self.topology.id()
    }

    /// Serves a client get.
    ///
    /// # Errors
    /// [`KvError`] for invalid input or too few replies.
    pub async fn get(
        self: &Arc<Self>,
        request: pb::GetRequest,
    ) -> Result<pb::GetResponse, KvError> {
        let started = Instant::now();
        let ring = self.topology.ring();
        let target = self.target(&ring, &request.bucket, &request.key)?;
        let replication = target.rules.replication;
        let r = quorum_size(request.r, replication.r, replication.n, "r")?;
        let span = self.request_span(ClientOp::Get, &target);
        if let Some(preference) = self.forward_target(&ring, &target, request.forwarded) {
            let request = pb::GetRequest {
                forwarded: true,
                ..request
            };
            let result = self
                .forward(&ring, &preference, Forward::Get(request))
                .instrument(span)
                .await
                .and_then(|answer| match answer {
                    Forwarded::Get(response) => Ok(response),
                    _ => Err(mismatched_answer()),
                });
            self.metrics.forwarded(ClientOp::Get, started.elapsed());
            return result;
        }
        let result = self.coordinate_get(ring, target, r).instrument(span).await;
        let metrics = &self.metrics;
        metrics.coordinated(ClientOp::Get, started.elapsed(), quorum_outcome(&result));
        if let Ok(response) = &result {
            metrics.siblings(response.siblings.len());
        }
        result
    }

    /// Reads a key this node coordinates: asks its N replicas, answers
    /// after R, and repairs stale replicas afterwards.
    async fn coordinate_get(
        self: &Arc<Self>,
        ring: Arc<Ring>,
        target: Target,
        r: u32,
    ) -> Result<pb::GetResponse, KvError> {
        let partition = target.partition;
        let me = ring.index_of(self.id());
        let started = Instant::now();
        let deadline = started + self.settings.request_timeout;
        let mut local = Vec::new();
        let mut remote = Vec::new();
        for &member in ring.preference(partition, target.n()) {
            if Some(member) == me {
                // While recovering, an empty local copy is no answer.
                match self.replica.read(partition, &target.key) {
                    Ok(set) => local.push((member, set)),
                    Err(ReplicaError::Recovering { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            } else {
                remote.push((member, self.peers.suspected(ring.member(member))));
            }
        }
        // Ask only the replicas R needs, unsuspected ones first and in a
        // random order so reads spread; the others are asked when one fails
        // or misses its deadline, or after the hedge delay (at once when a
        // suspected replica had to be asked).
        remote.shuffle(&mut rand::rng());
        remote.sort_by_key(|&(_, suspected)| suspected);
        let first = (r as usize).saturating_sub(local.len()).min(remote.len());
        let hedge = if remote[..first].iter().any(|&(_, suspected)| suspected) {
            Duration::ZERO
        } else {
            self.settings.read_hedge
        };
        let mut calls: Vec<Call<SiblingSet, PeerError>> = remote
            .into_iter()
            .map(|(member, _)| self.replica_read(&ring, member, target.key.clone(), deadline))
            .collect();
        let reserve = calls.split_off(first);
        let mut quorum = Quorum::new(local, calls).with_reserve(reserve, hedge);
        if !quorum.wait(r as usize, deadline).await {
            return Err(unavailable("get", r, target.n(), &ring, &quorum));
        }
        quorum.drop_reserve();
        let merged = merge_replies(&quorum.replies);
        let response = pb::GetResponse {
            siblings: merged.versions().iter().map(wire::sibling_to_pb).collect(),
            context: context::encode(ring.cluster_id(), &merged.context()),
            replies: quorum.replies.len() as u32,
        };
        let coordinator = Arc::clone(self);
        tokio::spawn(
            async move {
                coordinator
                    .read_repair(ring, partition, target.key, quorum, deadline)
                    .await;
            }
            .instrument(Span::current()),
        );
        debug!(replies = response.replies, "get answered");
        Ok(response)
    }

    /// Serves a client put.
    ///
    /// # Errors
    /// [`KvError`] for invalid input or too few acknowledgements.
    pub async fn put(
        self: &Arc<Self>,
        request: pb::PutRequest,
    ) -> Result<pb::PutResponse, KvError> {
        if let Err(error) = self.settings.limits.check_value(&request.value) {
            self.metrics.limit_refused(error.limit());
            return Err(KvError::InvalidArgument(error.to_string()));
        }
        let started = Instant::now();
        let ring = self.topology.ring();
        let target = self.target(&ring, &request.bucket, &request.key)?;
        let span = self.request_span(ClientOp::Put, &target);
        if let Some(preference) = self.forward_target(&ring, &target, request.forwarded) {
            let request = pb::PutRequest {
                forwarded: true,
                ..request
            };
            let result = self
                .forward(&ring, &preference, Forward::Put(request))
                .instrument(span)
                .await
                .and_then(|answer| match answer {
                    Forwarded::Put(response) => Ok(response),
                    _ => Err(mismatched_answer()),
                });
            self.metrics.forwarded(ClientOp::Put, started.elapsed());
            return result;
        }
        let durability = request.durability();
        let outcome = self
            .write(
                &ring,
                WriteSpec {
                    target,
                    value: request.value,
                    tombstone: false,
                    context: request.context,
                    w: request.w,
                    durability,
                },
                "put",
            )
            .instrument(span)
            .await;
        self.metrics
            .coordinated(ClientOp::Put, started.elapsed(), quorum_outcome(&outcome));
        let outcome = outcome?;
        Ok(pb::PutResponse {
            context: outcome.context,
            acks: outcome.acks,
        })
    }

    /// Serves a client delete: a write of a tombstone.
    ///
    /// # Errors
    /// [`KvError`] for invalid input or too few acknowledgements.
    pub async fn delete(
        self: &Arc<Self>,
        request: pb::DeleteRequest,
    ) -> Result<pb::DeleteResponse, KvError> {
        let started = Instant::now();
        let ring = self.topology.ring();
        let target = self.target(&ring, &request.bucket, &request.key)?;
        let span = self.request_span(ClientOp::Delete, &target);
        if let Some(preference) = self.forward_target(&ring, &target, request.forwarded) {
            let request = pb::DeleteRequest {
                forwarded: true,
                ..request
            };
            let result = self
                .forward(&ring, &preference, Forward::Delete(request))
                .instrument(span)
                .await
                .and_then(|answer| match answer {
                    Forwarded::Delete(response) => Ok(response),
                    _ => Err(mismatched_answer()),
                });
            self.metrics.forwarded(ClientOp::Delete, started.elapsed());
            return result;
        }
        let durability = request.durability();
        let outcome = self
            .write(
                &ring,
                WriteSpec {
                    target,
                    value: Bytes::new(),
                    tombstone: true,
                    context: request.context,
                    w: request.w,
                    durability,
                },
                "delete",
            )
            .instrument(span)
            .await;
        self.metrics.coordinated(
            ClientOp::Delete,
            started.elapsed(),
            quorum_outcome(&outcome),
        );
        let outcome = outcome?;
        Ok(pb::DeleteResponse {
            context: outcome.context,
            acks: outcome.acks,
        })
    }

    /// Checks the key and its bucket and resolves them against `ring`.
    fn target(&self, ring: &Ring, bucket: &str, key: &[u8]) -> Result<Target, KvError> {
        if let Err(error) = self.settings.limits.check_key(key) {
            self.metrics.limit_refused(error.limit());
            return Err(KvError::InvalidArgument(error.to_string()));
        }
        let rules = ring.bucket(bucket).ok_or_else(|| KvError::UnknownBucket {
            bucket: bucket.chars().take(80).collect(),
        })?;
        let qualified = QualifiedKey {
            n: bucket_factor(rules.replication.n),
            bucket,
            key,
        };
        Ok(Target {
            partition: qualified.partition(ring.partitions()),
            key: Bytes::from(qualified.encode()),
            rules,
        })
    }

    /// The span of one client request, carrying this node's id, the
    /// operation, and the key's partition and ring position. Hashing the
    /// key for it only happens when the span is enabled (`debug`).
    fn request_span(&self, op: ClientOp, target: &Target) -> Span {
        let span = debug_span!(
            "request",
            node = self.id(),
            op = op.as_str(),
            partition = field::Empty,
            key_hash = field::Empty,
        );
        if !span.is_disabled()
            && let Ok(qualified) = QualifiedKey::decode(&target.key)
        {
            span.record("partition", target.partition);
            span.record("key_hash", field::display(qualified.position()));
        }
        span
    }

    /// Where to forward the request, or `None` when this node coordinates
    /// it.
    fn forward_target(&self, ring: &Ring, target: &Target, forwarded: bool) -> Option<Vec<u32>> {
        let preference = ring.preference(target.partition, target.n());
        let me = ring.index_of(self.id());
        // A forwarded request is served here even if our ring disagrees, so a
        // request never travels in circles.
        if forwarded || me.is_some_and(|me| preference.contains(&me)) {
            None
        } else {
            Some(preference.to_vec())
        }
    }

    /// Sends a request to the first member of `preference` that answers.
    async fn forward(
        self: &Arc<Self>,
        ring: &Ring,
        preference: &[u32],
        request: Forward,
    ) -> Result<Forwarded, KvError> {
        let mut reasons = Vec::new();
        for &member in preference {
            let member = ring.member(member);
            let deadline = Instant::now() + self.settings.request_timeout;
            match self.peers.forward(member, request.clone(), deadline).await {
                Ok(answer) => return Ok(answer),
                Err(PeerError::Refused { status, .. }) => return Err(KvError::Forwarded(status)),
                Err(error) => reasons.push(error.to_string()),
            }
        }
        Err(KvError::Unavailable {
            operation: "forward",
            needed: 1,
            n: preference.len() as u32,
            answered: 0,
            detail: format!(" ({})", reasons.join("; ")),
            timed_out: false,
        })
    }

    /// Coordinates a write: stores a new version locally, sends the key's
    /// sibling set to the other replicas and waits for W acknowledgements.
    async fn write(
        self: &Arc<Self>,
        ring: &Arc<Ring>,
        spec: WriteSpec,
        operation: &'static str,
    ) -> Result<WriteOutcome, KvError> {
        let Target {
            key,
            partition,
            rules,
        } = spec.target;
        let n = rules.replication.n;
        let w = quorum_size(spec.w, rules.replication.w, n, "w")?;
        let clock = context::decode(ring.cluster_id(), &spec.context)?;
        let default = rules.durability.unwrap_or(self.settings.durability);
        let durability = wire::durability_from_pb(spec.durability, default);
        let deadline = Instant::now() + self.settings.request_timeout;
        let write = NewWrite {
            value: spec.value,
            tombstone: spec.tombstone,
            context: clock.clone(),
            timestamp_ms: now_ms(),
        };
        let max_siblings = self.settings.limits.max_siblings;
        let (set, dot) = self
            .replica
            .write_new_version(partition, key.clone(), write, max_siblings, durability)
            .await?;
        let mut written = clock;
        written.observe(dot);
        let me = ring.index_of(self.id());
        let slot = SlotWrite {
            key,
            partition,
            message: wire::set_to_pb(&set),
            set: Arc::new(set),
            durability,
        };
        let fallbacks = Fallbacks::of(ring, partition, n);
        // During a membership change the write also reaches the new replicas.
        let calls = ring
            .write_set(partition, n)
            .into_iter()
            .filter(|&member| Some(member) != me)
            .map(|member| {
                self.handoff
                    .slot_write(ring, member, slot.clone(), fallbacks.clone(), deadline)
            })
            .collect();
        let local = me.map(|me| (me, ())).into_iter().collect();
        let mut quorum = Quorum::new(local, calls);
        let met = quorum.wait(w as usize, deadline).await;
        let result = if met {
            Ok(WriteOutcome {
                context: context::encode(ring.cluster_id(), &written),
                acks: quorum.replies.len() as u32,
            })
        } else {
            Err(unavailable(operation, w, n, ring, &quorum))
        };
        if quorum.outstanding() > 0 {
            // The remaining replicas (or their fallbacks, as hints) still get
            // the write after the answer. Each slot's chain of attempts is
            // bounded by its peer deadlines, so the tail gets enough time for
            // all of them rather than the client's deadline.
            let attempts = ring.members().len() as u32 + 2;
            let tail = Instant::now() + self.settings.peer_timeout * attempts;
            let span = Span::current();
            tokio::spawn(
                async move {
                    quorum.wait(usize::MAX, tail).await;
                    for (member, error) in &quorum.failures {
                        warn!(
                            member,
                            %error,
                            "a replica slot of a write got neither the replica nor a fallback"
                        );
                    }
                    if quorum.outstanding() > 0 {
                        warn!(
                            slots = quorum.outstanding(),
                            "replica slots of a write did not finish in time"
                        );
                    }
                }
                .instrument(span),
            );
        }
        if let Ok(outcome) = &result {
            debug!(acks = outcome.acks, "write answered");
        }
        result
    }

    /// After answering a read: waits for the remaining replies, then writes
    /// the merged set to every replica that lacks part of it.
    async fn read_repair(
        self: Arc<Self>,
        ring: Arc<Ring>,
        partition: u32,
        key: Bytes,
        mut quorum: Quorum<SiblingSet, PeerError>,
        deadline: Instant,
    ) {
        quorum.wait(usize::MAX, deadline).await;
        let merged = merge_replies(&quorum.replies);
        let me = ring.index_of(self.id());
        let message = wire::set_to_pb(&merged);
        let durability = self.settings.durability;
        for (member, set) in &quorum.replies {
            if *set == merged {
                continue;
            }
            debug!(member, partition, "read repair");
            if Some(*member) == me {
                let repaired = self
                    .replica
                    .merge(partition, key.clone(), merged.clone(), durability)
                    .await;
                if let Err(error) = repaired {
                    warn!(%error, partition, "local read repair failed");
                }
                continue;
            }
            let deadline = Instant::now() + self.settings.peer_timeout;
            let repair = self.peers.replica_write(
                ring.member(*member),
                key.clone(),
                message.clone(),
                durability,
                deadline,
            );
            if let Err(error) = repair.await {
                debug!(member, %error, "read repair did not reach a replica");
            }
        }
    }

    /// A `ReplicaRead` call to `member` within `deadline`.
    fn replica_read(
        &self,
        ring: &Ring,
        member: u32,
        key: Bytes,
        deadline: Instant,
    ) -> Call<SiblingSet, PeerError> {
        let call = self.peers.replica_read(ring.member(member), key, deadline);
        Box::pin(async move { (member, call.await) })
    }
}

/// The error for an answer of the wrong kind from a forwarded request.
fn mismatched_answer() -> KvError {
    KvError::Forwarded(Box::new(tonic::Status::internal(
        "the node a request was forwarded to answered a different operation",
    )))
}

/// The quorum outcome of a coordinated request, or `None` when it was
/// refused before replicas were asked.
fn quorum_outcome<T>(result: &Result<T, KvError>) -> Option<QuorumOutcome> {
    match result {
        Ok(_) => Some(QuorumOutcome::Ok),
        Err(KvError::Unavailable {
            timed_out: true, ..
        }) => Some(QuorumOutcome::Timeout),
        Err(KvError::Unavailable { .. }) => Some(QuorumOutcome::Unavailable),
        Err(_) => None,
    }
}

/// The merge of every replica's sibling set.
fn merge_replies(replies: &[(u32, SiblingSet)]) -> SiblingSet {
    let mut merged = SiblingSet::new();
    for (_, set) in replies {
        merged.merge(set);
    }
    merged
}

/// The R or W of a request: `requested` when set (1..=n), else the default.
fn quorum_size(requested: u32, default: u32, n: u32, name: &str) -> Result<u32, KvError> {
    match requested {
        0 => Ok(default),
        value if value <= n => Ok(value),
        value => Err(KvError::InvalidArgument(format!(
            "{name}={value} is out of range; it must be between 1 and n={n}"
        ))),
    }
}

/// The error for a quorum that was not met, naming why replicas are missing.
fn unavailable<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    operation: &'static str,
    needed: u32,
    n: u32,
    ring: &Ring,
    quorum: &Quorum<T, E>,
) -> KvError {
    let mut reasons: Vec<String> = quorum
        .failures
        .iter()
        .map(|(member, error)| format!("{}: {error}", ring.member(*member).id))
        .collect();
    if quorum.outstanding() > 0 {
        reasons.push(format!("{} did not answer in time", quorum.outstanding()));
    }
    KvError::Unavailable {
        operation,
        needed,
        n,
        answered: quorum.replies.len() as u32,
        timed_out: quorum.outstanding() > 0,
        detail: if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join("; "))
        },
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
