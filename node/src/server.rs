//! The gRPC edge: the `Kv`, `Admin` and `Peer` services translate between
//! protobuf and the engine's parts, and map engine errors to
//! `tonic::Status`. Nothing else lives here; [`crate::startup`] opens the
//! node and starts the workers.
//!
//! Input from the network is checked here before the engine sees it, against
//! the node's [`Limits`] (docs/security.md): every refusal has a status a
//! caller can act on and is counted in `dynamo_limit_refusals_total`.
//! [`EdgeStatus`] gives bodies that do not decode `INVALID_ARGUMENT` and
//! messages over the size limit `RESOURCE_EXHAUSTED`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_server::{Admin, AdminServer};
use dynamo_proto::v1::kv_server::{Kv, KvServer};
use dynamo_proto::v1::peer_server::{Peer, PeerServer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{Service, http};
use tonic::metadata::AsciiMetadataValue;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::config::Limit;
use crate::coordinator::KvError;
use crate::exchange::{self, limit_status};
use crate::gossip::GossipError;
use crate::merkle::{FANOUT, INNER, LEAVES, ROOT, SEGMENTS};
use crate::metrics::Metrics;
use crate::node::Node;
use crate::peers::MAX_PEER_MESSAGE;
use crate::replica::ReplicaError;
use crate::shed::{Gate, Shed};
use crate::storage::StorageError;
use crate::tls::{Api, Authorize, Tls};
use crate::topology::AdoptError;
use crate::transfer::ServeStreamError;

/// Streams reset by the caller before this server accepted them that one
/// connection may have pending before it is closed.
const PENDING_RESETS: usize = 4096;

/// Response metadata of `Admin.Status` naming where the node serves
/// `/metrics` (absent when its HTTP server is off).
pub const METRICS_URL_HEADER: &str = "dynamo-metrics-url";

/// Inner Merkle nodes per tree: the most parents a leaf-level request may
/// name, so an answer holds at most [`SEGMENTS`] hashes.
const INNER_NODES: usize = SEGMENTS / FANOUT;

/// The services of one node.
#[derive(Clone)]
struct Services {
    node: Arc<Node>,
    /// Value of [`METRICS_URL_HEADER`].
    metrics_url: Option<AsciiMetadataValue>,
    /// Turns true when the server stops: long-lived streams end then.
    closing: watch::Receiver<bool>,
}

impl From<KvError> for Status {
    fn from(error: KvError) -> Self {
        let message = error.to_string();
        match error {
            KvError::InvalidArgument(_) | KvError::Context(_) => Status::invalid_argument(message),
            KvError::Unavailable { .. } => Status::unavailable(message),
            KvError::UnknownBucket { .. } => Status::not_found(message),
            KvError::Storage(StorageError::TooManySiblings { .. }) => {
                Status::failed_precondition(message)
            }
            KvError::Storage(_) => Status::internal(message),
            KvError::Forwarded(status) => *status,
        }
    }
}

/// The status of a refused ring.
fn adopt_status(error: &AdoptError) -> Status {
    let message = error.to_string();
    match error {
        AdoptError::Invalid(_) | AdoptError::Limit(_) => Status::invalid_argument(message),
        AdoptError::OtherCluster { .. }
        | AdoptError::Partitions { .. }
        | AdoptError::EpochJump { .. }
        | AdoptError::Bucket(_) => Status::failed_precondition(message),
    }
}

#[tonic::async_trait]
impl Kv for Services {
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        Ok(Response::new(
            self.node.coordinator().get(request.into_inner()).await?,
        ))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let request = request.into_inner();
        self.durability(request.durability)?;
        let answer = self.node.coordinator().put(request).await;
        Ok(Response::new(
            answer.map_err(|error| self.kv_status(error))?,
        ))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let request = request.into_inner();
        self.durability(request.durability)?;
        let answer = self.node.coordinator().delete(request).await;
        Ok(Response::new(
            answer.map_err(|error| self.kv_status(error))?,
        ))
    }
}

#[tonic::async_trait]
impl Admin for Services {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let node = &self.node;
        let ring = node.ring();
        let now = std::time::Instant::now();
        let membership = node.membership();
        let members = ring
            .members()
            .iter()
            .enumerate()
            .map(|(index, member)| {
                let state = membership.liveness(&member.id, now).as_str();
                let last_heard_ms = membership
                    .last_heard(&member.id, now)
                    .map_or(u64::MAX, |age| age.as_millis() as u64);
                pb::MemberStatus {
                    member: Some(pb::Member {
                        weight: 0,
                        id: member.id.clone(),
                        address: member.address.clone(),
                        zone: member.zone.clone(),
                    }),
                    state: state.into(),
                    partitions: ring.owned_by(index as u32),
                    last_heard_ms,
                }
            })
            .collect();
        drop(membership);
        let hints = node
            .storage()
            .hints()
            .counts()
            .into_iter()
            .map(|(target, keys)| pb::HintQueue { target, keys })
            .collect();
        let anti_entropy = node
            .anti_entropy()
            .runs()
            .iter()
            .map(|(&partition, &finished_ms)| pb::AntiEntropyRun {
                partition,
                finished_ms,
            })
            .collect();
        let mut response = Response::new(pb::StatusResponse {
            id: node.id().to_owned(),
            incarnation: format!("{:016x}", node.storage().incarnation()),
            epoch: ring.epoch(),
            members,
            keys: node.storage().approximate_keys(),
            uptime_seconds: node.started().elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").into(),
            hints,
            hints_full: node.storage().hints().is_full(),
            anti_entropy,
            recovering_partitions: node.recovering().len() as u32,
            transfer: ring
                .next_owners()
                .is_some()
                .then(|| node.transfer_progress().to_pb()),
        });
        if let Some(url) = &self.metrics_url {
            response
                .metadata_mut()
                .insert(METRICS_URL_HEADER, url.clone());
        }
        Ok(response)
    }

    async fn propose_ring(
        &self,
        request: Request<pb::RingChange>,
    ) -> Result<Response<pb::RingChangeResponse>, Status> {
        self.install(request.into_inner(), true)
    }

    async fn commit_ring(
        &self,
        request: Request<pb::RingChange>,
    ) -> Result<Response<pb::RingChangeResponse>, Status> {
        self.install(request.into_inner(), false)
    }

    async fn transfer_status(
        &self,
        _request: Request<pb::TransferStatusRequest>,
    ) -> Result<Response<pb::TransferStatusResponse>, Status> {
        Ok(Response::new(self.node.transfer_progress().to_pb()))
    }

    async fn anti_entropy(
        &self,
        _request: Request<pb::AntiEntropyRequest>,
    ) -> Result<Response<pb::AntiEntropyResponse>, Status> {
        let stats = self.node.anti_entropy().pass().await;
        Ok(Response::new(pb::AntiEntropyResponse {
            exchanges: stats.exchanges,
            differing: stats.differing,
            keys_repaired: stats.keys_repaired,
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            tombstones_dropped: stats.tombstones_dropped,
        }))
    }

    async fn get_ring(
        &self,
        _request: Request<pb::GetRingRequest>,
    ) -> Result<Response<pb::GetRingResponse>, Status> {
        let ring = self.node.ring();
        Ok(Response::new(pb::GetRingResponse {
            ring: Some(ring.to_pb()),
            preferences: ring.preferences_pb(),
        }))
    }
}

impl Services {
    /// Counts a refusal for `limit` and passes its status on.
    fn refuse(&self, limit: Limit, status: Status) -> Status {
        exchange::refuse(&self.node, limit, status)
    }

    /// Checks a key from a peer against the client limits.
    fn peer_key(&self, key: &[u8]) -> Result<u32, Status> {
        exchange::peer_key(&self.node, key)
    }

    /// Checks a partition number from a peer.
    fn partition(&self, partition: u32) -> Result<(), Status> {
        let partitions = self.node.ring().partitions();
        if partition >= partitions {
            return Err(self.refuse(
                Limit::Shape,
                Status::invalid_argument(format!(
                    "partition {partition} does not exist; the ring has {partitions}"
                )),
            ));
        }
        Ok(())
    }

    /// The durability field of a request, refusing values the protocol does
    /// not define.
    fn durability(&self, value: i32) -> Result<pb::Durability, Status> {
        exchange::durability(&self.node, value)
    }

    /// The status of a failed client request, counting a sibling refusal.
    fn kv_status(&self, error: KvError) -> Status {
        if matches!(
            error,
            KvError::Storage(StorageError::TooManySiblings { .. })
        ) {
            self.node.metrics().limit_refused(Limit::Siblings);
        }
        error.into()
    }

    /// Checks a Merkle level request: an existing partition and level, and
    /// at most one parent per inner node, each existing.
    fn merkle_request(&self, request: &pb::MerkleLevelRequest) -> Result<(), Status> {
        self.partition(request.partition)?;
        let shape =
            |message: String| Err(self.refuse(Limit::Shape, Status::invalid_argument(message)));
        if ![ROOT, INNER, LEAVES].contains(&request.level) {
            return shape(format!(
                "Merkle level {} does not exist; levels are {ROOT} (root), {INNER} (inner) and {LEAVES} (leaves)",
                request.level
            ));
        }
        if request.parents.len() > INNER_NODES {
            return shape(format!(
                "the request names {} parents; a tree has {INNER_NODES} inner nodes",
                request.parents.len()
            ));
        }
        if let Some(parent) = request.parents.iter().find(|&&p| p as usize >= INNER_NODES) {
            return shape(format!(
                "inner node {parent} does not exist; a tree has {INNER_NODES}"
            ));
        }
        Ok(())
    }

    /// Installs a proposed (`change` true) or committed ring. Installing the
    /// ring in use again is a no-op, so the driver may repeat a step.
    fn install(
        &self,
        request: pb::RingChange,
        change: bool,
    ) -> Result<Response<pb::RingChangeResponse>, Status> {
        let candidate = request
            .ring
            .ok_or_else(|| Status::invalid_argument("the request carries no ring"))?;
        let current = self.node.ring();
        if candidate.cluster != current.cluster() {
            let error = AdoptError::OtherCluster {
                ours: current.cluster().to_owned(),
                theirs: candidate.cluster,
            };
            return Err(self.refuse(error.limit(), adopt_status(&error)));
        }
        if change == candidate.next_owners.is_empty() {
            return Err(Status::invalid_argument(if change {
                "a proposed ring must carry next owners"
            } else {
                "a committed ring must not carry next owners"
            }));
        }
        if candidate.epoch == current.epoch() {
            if candidate == current.to_pb() {
                return Ok(Response::new(pb::RingChangeResponse {
                    epoch: current.epoch(),
                }));
            }
            return Err(Status::failed_precondition(format!(
                "this node already uses a different ring with epoch {}",
                current.epoch()
            )));
        }
        if candidate.epoch < current.epoch() {
            return Err(Status::failed_precondition(format!(
                "ring epoch {} is older than this node's epoch {}",
                candidate.epoch,
                current.epoch()
            )));
        }
        self.node
            .adopt_ring(candidate)
            .map_err(|error| self.refuse(error.limit(), adopt_status(&error)))?;
        Ok(Response::new(pb::RingChangeResponse {
            epoch: self.node.ring().epoch(),
        }))
    }
}

#[tonic::async_trait]
impl Peer for Services {
    type StreamPartitionStream = crate::transfer::PartitionStream;

    async fn stream_partition(
        &self,
        request: Request<pb::StreamPartitionRequest>,
    ) -> Result<Response<Self::StreamPartitionStream>, Status> {
        let request = request.into_inner();
        self.partition(request.partition)?;
        if !request.after.is_empty() {
            self.peer_key(&request.after)?;
        }
        // The transfers count a busy refusal themselves.
        match self.node.transfers().serve_partition(
            request.partition,
            self.node.replica().factor_of(request.n),
            request.after,
        ) {
            Ok(stream) => Ok(Response::new(stream)),
            Err(error @ ServeStreamError::Busy { .. }) => {
                Err(Status::resource_exhausted(error.to_string()))
            }
        }
    }

    async fn replica_read(
        &self,
        request: Request<pb::ReplicaReadRequest>,
    ) -> Result<Response<pb::ReplicaReadResponse>, Status> {
        exchange::read(&self.node, request.into_inner()).map(Response::new)
    }

    async fn replica_write(
        &self,
        request: Request<pb::ReplicaWriteRequest>,
    ) -> Result<Response<pb::ReplicaWriteResponse>, Status> {
        exchange::write(&self.node, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn hint_write(
        &self,
        request: Request<pb::HintWriteRequest>,
    ) -> Result<Response<pb::ReplicaWriteResponse>, Status> {
        exchange::hint(&self.node, request.into_inner())
            .await
            .map(Response::new)
    }

    type ExchangeStream = ReceiverStream<Result<pb::FrameReply, Status>>;

    async fn exchange(
        &self,
        request: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<Self::ExchangeStream>, Status> {
        Ok(Response::new(exchange::serve(
            Arc::clone(&self.node),
            request.into_inner(),
            self.closing.clone(),
        )))
    }

    async fn gossip(
        &self,
        request: Request<pb::GossipMessage>,
    ) -> Result<Response<pb::GossipMessage>, Status> {
        let message = request.into_inner();
        let from = message.from.clone();
        let gossip = self.node.gossip();
        gossip.receive(message).map_err(|error| {
            let status = match &error {
                GossipError::Limit(limit) => limit_status(limit),
                GossipError::Ring(adopt) => adopt_status(adopt),
            };
            self.refuse(error.limit(), status)
        })?;
        self.node.topology().heard_from(&from);
        Ok(Response::new(gossip.message()))
    }

    async fn merkle_level(
        &self,
        request: Request<pb::MerkleLevelRequest>,
    ) -> Result<Response<pb::MerkleLevelResponse>, Status> {
        let request = request.into_inner();
        self.merkle_request(&request)?;
        let replica = self.node.replica();
        let hashes = replica.tree_level(
            request.partition,
            replica.factor_of(request.n),
            request.level,
            &request.parents,
        );
        Ok(Response::new(pb::MerkleLevelResponse { hashes }))
    }

    async fn segment_keys(
        &self,
        request: Request<pb::SegmentKeysRequest>,
    ) -> Result<Response<pb::SegmentKeysResponse>, Status> {
        let request = request.into_inner();
        self.partition(request.partition)?;
        if request.segments.len() > SEGMENTS
            || request.segments.iter().any(|&s| s as usize >= SEGMENTS)
        {
            return Err(self.refuse(
                Limit::Shape,
                Status::invalid_argument(format!(
                    "a tree has {SEGMENTS} leaf segments; the request names {} segments, \
                     each below {SEGMENTS}",
                    request.segments.len()
                )),
            ));
        }
        let segments: HashSet<u32> = request.segments.into_iter().collect();
        let replica = self.node.replica();
        let keys = replica
            .segment_keys(request.partition, replica.factor_of(request.n), segments)
            .await
            .map_err(|error| error.to_status())?;
        Ok(Response::new(pb::SegmentKeysResponse {
            keys: keys
                .into_iter()
                .map(|(key, digest)| pb::KeyDigest { key, digest })
                .collect(),
        }))
    }

    async fn holds_hint(
        &self,
        request: Request<pb::HoldsHintRequest>,
    ) -> Result<Response<pb::HoldsHintResponse>, Status> {
        let key = request.into_inner().key;
        let partition = self.peer_key(&key)?;
        let held = self
            .node
            .replica()
            .holds_hint(partition, &key)
            .map_err(|error| error.to_status())?;
        Ok(Response::new(pb::HoldsHintResponse { held }))
    }

    async fn forget_tombstone(
        &self,
        request: Request<pb::ForgetTombstoneRequest>,
    ) -> Result<Response<pb::ForgetTombstoneResponse>, Status> {
        let request = request.into_inner();
        let partition = self.peer_key(&request.key)?;
        let forgotten = self
            .node
            .replica()
            .forget_tombstone(partition, &request.key, request.digest)
            .map_err(|error: ReplicaError| error.to_status())?;
        Ok(Response::new(pb::ForgetTombstoneResponse { forgotten }))
    }
}

/// The gRPC server of a node.
pub struct Server {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    /// Serves `node`'s services on `listener`, over `tls` when set;
    /// `Admin.Status` names `metrics_url` when set.
    pub fn serve(
        node: Arc<Node>,
        listener: TcpListener,
        metrics_url: Option<AsciiMetadataValue>,
        tls: Option<Arc<Tls>>,
    ) -> Self {
        let limits = node.config().limits;
        let metrics = Arc::clone(node.metrics());
        let (closing_tx, closing) = watch::channel(false);
        let services = Services {
            node,
            metrics_url,
            closing,
        };
        // Large enough that an oversized value reaches the coordinator and
        // gets a clear INVALID_ARGUMENT instead of a transport error.
        let client_message = limits
            .max_value_bytes
            .saturating_mul(2)
            .saturating_add(limits.max_key_bytes)
            .saturating_add(1 << 20);
        let kv = KvServer::new(services.clone())
            .max_decoding_message_size(client_message)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        let peer = PeerServer::new(services.clone())
            .max_decoding_message_size(limits.max_peer_message_bytes)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        let admin = AdminServer::new(services);
        let authorize = |service| match &tls {
            Some(tls) => tls.authorize(service),
            None => Authorize::open(service),
        };
        // Callers are authorized before they take a place in the shedder.
        let kv = authorize(Api::Kv).wrap(Shed::new(
            EdgeStatus::new(kv, &metrics),
            Gate::kv(&limits, &metrics),
        ));
        let peer = authorize(Api::Peer).wrap(Shed::new(
            EdgeStatus::new(peer, &metrics),
            Gate::peer(&limits, &metrics),
        ));
        let admin = authorize(Api::Admin).wrap(EdgeStatus::new(admin, &metrics));
        let (stop, stopped) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            // Coordinators drop calls that missed their deadline or
            // are no longer needed once a quorum answered; each drop
            // resets a stream. h2's default tolerates only 20 resets
            // of streams not yet accepted before it closes the whole
            // connection, which after a paused node resumes would fail
            // every call on it.
            .http2_max_pending_accept_reset_streams(Some(PENDING_RESETS))
            .add_service(kv)
            .add_service(admin)
            .add_service(peer);
        let shutdown = async move {
            let _ = stopped.await;
            // Exchange streams last as long as their peer's link;
            // ending them lets the graceful shutdown finish.
            let _ = closing_tx.send(true);
        };
        let task = match tls {
            Some(tls) => {
                tokio::spawn(router.serve_with_incoming_shutdown(tls.incoming(listener), shutdown))
            }
            // Replies are small and latency-bound: never wait on Nagle's algorithm.
            None => tokio::spawn(router.serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )),
        };
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Stops accepting requests and waits for the ones in flight.
    ///
    /// # Errors
    /// The server's failure.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Waits until the server ends (by itself it only does on error).
    ///
    /// # Errors
    /// The server's failure.
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        match (&mut self.task).await {
            Ok(result) => Ok(result?),
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(ServeError::Cancelled),
        }
    }
}

/// A generated gRPC service whose own refusals of bad input (before any
/// handler runs) get the codes gRPC asks for: a body that does not decode,
/// or no body, is `INVALID_ARGUMENT` instead of tonic's `INTERNAL`, and a
/// message over the decoding limit is `RESOURCE_EXHAUSTED` instead of
/// `OUT_OF_RANGE`. Each is counted as a limit refusal.
#[derive(Clone)]
struct EdgeStatus<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> EdgeStatus<S> {
    fn new(inner: S, metrics: &Arc<Metrics>) -> Self {
        Self {
            inner,
            metrics: Arc::clone(metrics),
        }
    }
}

impl<S: NamedService> NamedService for EdgeStatus<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for EdgeStatus<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        EdgeFuture {
            inner: self.inner.call(request),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// The response future of [`EdgeStatus`].
struct EdgeFuture<F> {
    inner: F,
    metrics: Arc<Metrics>,
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => return Poll::Pending,
        };
        if let Some((limit, status)) = edge_refusal(response.headers()) {
            self.metrics.limit_refused(limit);
            let headers = response.headers_mut();
            // The status travels in the headers of a trailers-only answer.
            if status.add_header(headers).is_err() {
                headers.insert(Status::GRPC_STATUS, (status.code() as i32).into());
            }
        }
        Poll::Ready(Ok(response))
    }
}

/// The status an answer of tonic's own to bad input should have had, with
/// the limit it counts against; `None` for every other answer.
fn edge_refusal(headers: &http::HeaderMap) -> Option<(Limit, Status)> {
    let code = headers.get(Status::GRPC_STATUS)?;
    let code = Code::from_bytes(code.as_bytes());
    if !matches!(code, Code::Internal | Code::OutOfRange) {
        return None;
    }
    let status = Status::from_header_map(headers)?;
    let message = status.message();
    if code == Code::Internal
        && (message.starts_with("failed to decode Protobuf message")
            || message == "Missing request message.")
    {
        let message = format!("the request body is not a valid message: {message}");
        return Some((Limit::Malformed, Status::invalid_argument(message)));
    }
    if code == Code::OutOfRange && message.starts_with("Error, decoded message length too large") {
        return Some((
            Limit::MessageBytes,
            Status::resource_exhausted(message.to_owned()),
        ));
    }
    None
}

/// Why the gRPC server ended.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed.
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The server task was cancelled (the runtime is shutting down).
    #[error("the gRPC server was cancelled")]
    Cancelled,
}
