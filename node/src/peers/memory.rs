//! An in-memory [`Transport`] for tests: calls go straight to in-process
//! [`Replica`]s by member id, through the same protobuf conversions as over
//! gRPC, with no sockets. A test can make a peer fail (refuse connections),
//! hang (never answer) or answer late, answer forwarded client requests
//! with a handler of its own, and count the calls each peer received.
//!
//! Gossip and partition streaming are not served here: they answer
//! `UNIMPLEMENTED`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dynamo_proto::v1 as pb;
use futures::FutureExt;
use tokio::time::Instant;

use super::{ChunkStream, Forward, Forwarded, PeerError, PeerFuture, Transport};
use crate::replica::{Replica, ReplicaError};
use crate::ring::Member;
use crate::storage::Durability;
use crate::wire;

/// What an injected fault does to every call to one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The connection is refused.
    Fail,
    /// The call never gets an answer.
    Hang,
    /// The answer comes this much later.
    Delay(Duration),
}

/// Answers forwarded client requests for one peer.
pub type ForwardHandler = Arc<dyn Fn(Forward) -> Result<Forwarded, tonic::Status> + Send + Sync>;

/// The in-memory transport. See the module documentation.
#[derive(Default)]
pub struct MemoryTransport {
    replicas: RwLock<HashMap<String, Arc<Replica>>>,
    faults: RwLock<HashMap<String, Fault>>,
    forwards: RwLock<HashMap<String, ForwardHandler>>,
    calls: Mutex<HashMap<(String, &'static str), usize>>,
}

impl MemoryTransport {
    /// A transport reaching no one yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes calls for member `id` to `replica`.
    pub fn add(&self, id: &str, replica: Arc<Replica>) {
        self.replicas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), replica);
    }

    /// Makes every call to `id` suffer `fault` from now on.
    pub fn inject(&self, id: &str, fault: Fault) {
        self.faults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), fault);
    }

    /// Removes the fault of `id`.
    pub fn heal(&self, id: &str) {
        self.faults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Answers client requests forwarded to `id` with `handler`.
    pub fn on_forward(&self, id: &str, handler: ForwardHandler) {
        self.forwards
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), handler);
    }

    /// How many `operation` calls (`replica_read`, `replica_write`,
    /// `hint_write`, `forward`, ...) `id` received, faulty or not.
    pub fn calls(&self, id: &str, operation: &'static str) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(id.to_owned(), operation))
            .copied()
            .unwrap_or(0)
    }

    /// Counts the call, applies the fault of `to`, and runs `serve` on its
    /// replica.
    fn route<T, F, Fut>(&self, to: &Member, operation: &'static str, serve: F) -> PeerFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Replica>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, tonic::Status>> + Send + 'static,
    {
        *self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((to.id.clone(), operation))
            .or_insert(0) += 1;
        let fault = self
            .faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&to.id)
            .copied();
        let replica = self
            .replicas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&to.id)
            .cloned();
        let peer = to.id.clone();
        async move {
            match fault {
                Some(Fault::Fail) => return Err(refused_connection(&peer)),
                Some(Fault::Hang) => std::future::pending::<()>().await,
                Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
                None => {}
            }
            let Some(replica) = replica else {
                return Err(refused_connection(&peer));
            };
            serve(replica)
                .await
                .map_err(|status| PeerError::from_status(&peer, status))
        }
        .boxed()
    }
}

fn refused_connection(peer: &str) -> PeerError {
    PeerError::Unreachable {
        peer: peer.to_owned(),
        reason: "connection refused".into(),
    }
}

fn status(error: ReplicaError) -> tonic::Status {
    error.to_status()
}

fn invalid(error: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::invalid_argument(error.to_string())
}

fn durability(asked: pb::Durability) -> Durability {
    wire::durability_from_pb(asked, Durability::Buffer)
}

fn unimplemented<T: Send + 'static>(to: &Member, what: &str) -> PeerFuture<T> {
    let error = PeerError::from_status(
        &to.id,
        tonic::Status::unimplemented(format!("{what} is not served in memory")),
    );
    futures::future::ready(Err(error)).boxed()
}

impl Transport for MemoryTransport {
    fn replica_read(
        &self,
        to: &Member,
        request: pb::ReplicaReadRequest,
        _deadline: Instant,
    ) -> PeerFuture<pb::ReplicaReadResponse> {
        self.route(to, "replica_read", move |replica| async move {
            let partition = replica.partition_of(&request.key).map_err(invalid)?;
            let set = replica.read(partition, &request.key).map_err(status)?;
            Ok(pb::ReplicaReadResponse {
                siblings: Some(wire::set_to_pb(&set)),
            })
        })
    }

    fn replica_write(
        &self,
        to: &Member,
        request: pb::ReplicaWriteRequest,
        _deadline: Instant,
    ) -> PeerFuture<()> {
        self.route(to, "replica_write", move |replica| async move {
            let durability = durability(request.durability());
            let set = wire::set_from_pb(request.siblings).map_err(invalid)?;
            let partition = replica.partition_of(&request.key).map_err(invalid)?;
            replica
                .merge(partition, request.key, set, durability)
                .await
                .map_err(status)?;
            Ok(())
        })
    }

    fn hint_write(
        &self,
        to: &Member,
        request: pb::HintWriteRequest,
        _deadline: Instant,
    ) -> PeerFuture<()> {
        self.route(to, "hint_write", move |replica| async move {
            let durability = durability(request.durability());
            let set = wire::set_from_pb(request.siblings).map_err(invalid)?;
            let partition = replica.partition_of(&request.key).map_err(invalid)?;
            replica
                .store_hint(request.target, partition, request.key, set, durability)
                .await
                .map_err(status)
        })
    }

    fn gossip(&self, to: &Member, _message: pb::GossipMessage) -> PeerFuture<pb::GossipMessage> {
        unimplemented(to, "gossip")
    }

    fn merkle_level(
        &self,
        to: &Member,
        request: pb::MerkleLevelRequest,
    ) -> PeerFuture<pb::MerkleLevelResponse> {
        self.route(to, "merkle_level", move |replica| async move {
            Ok(pb::MerkleLevelResponse {
                hashes: replica.tree_level(
                    request.partition,
                    replica.factor_of(request.n),
                    request.level,
                    &request.parents,
                ),
            })
        })
    }

    fn segment_keys(
        &self,
        to: &Member,
        request: pb::SegmentKeysRequest,
    ) -> PeerFuture<pb::SegmentKeysResponse> {
        self.route(to, "segment_keys", move |replica| async move {
            let segments: HashSet<u32> = request.segments.into_iter().collect();
            let keys = replica
                .segment_keys(request.partition, replica.factor_of(request.n), segments)
                .await
                .map_err(status)?;
            Ok(pb::SegmentKeysResponse {
                keys: keys
                    .into_iter()
                    .map(|(key, digest)| pb::KeyDigest { key, digest })
                    .collect(),
            })
        })
    }

    fn holds_hint(&self, to: &Member, request: pb::HoldsHintRequest) -> PeerFuture<bool> {
        self.route(to, "holds_hint", move |replica| async move {
            let partition = replica.partition_of(&request.key).map_err(invalid)?;
            replica.holds_hint(partition, &request.key).map_err(status)
        })
    }

    fn forget_tombstone(
        &self,
        to: &Member,
        request: pb::ForgetTombstoneRequest,
    ) -> PeerFuture<bool> {
        self.route(to, "forget_tombstone", move |replica| async move {
            let partition = replica.partition_of(&request.key).map_err(invalid)?;
            replica
                .forget_tombstone(partition, &request.key, request.digest)
                .map_err(status)
        })
    }

    fn stream_partition(
        &self,
        to: &Member,
        _request: pb::StreamPartitionRequest,
    ) -> PeerFuture<ChunkStream> {
        unimplemented(to, "partition streaming")
    }

    fn forward(&self, to: &Member, request: Forward) -> PeerFuture<Forwarded> {
        let handler = self
            .forwards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&to.id)
            .cloned();
        self.route(to, "forward", move |_| async move {
            match handler {
                Some(handler) => handler(request),
                None => Err(tonic::Status::unimplemented("no forward handler")),
            }
        })
    }

    fn ring(&self, to: &Member) -> PeerFuture<pb::GetRingResponse> {
        self.route(to, "ring", move |replica| async move {
            let ring = replica.topology().ring();
            Ok(pb::GetRingResponse {
                ring: Some(ring.to_pb()),
                preferences: ring.preferences_pb(),
            })
        })
    }

    fn status(&self, to: &Member) -> PeerFuture<pb::StatusResponse> {
        self.route(to, "status", move |replica| async move {
            Ok(pb::StatusResponse {
                id: replica.topology().id().to_owned(),
                epoch: replica.topology().ring().epoch(),
                keys: replica.storage().approximate_keys(),
                ..pb::StatusResponse::default()
            })
        })
    }
}
