//! The replica side of the peer hot path: one replica read, write or hint
//! served for another node, alone (the unary `Peer` calls) or as an item of
//! a frame on a `Peer.Exchange` stream. A stream's frames are served
//! concurrently; a frame's replica writes reach storage as one batch (one
//! journal append, one fsync when synced), its other items each on their
//! own, and every answer goes back as soon as it is ready, coalesced with
//! whatever else is ready, like the frames came (see
//! [`crate::peers::link`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::frame_item::Call;
use dynamo_proto::v1::item_reply::Outcome;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prost::Message;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::{Instrument, Span, debug, debug_span, field};

use crate::config::{Limit, LimitError};
use crate::metrics::ReplicaOp;
use crate::node::Node;
use crate::peers::FRAME_BYTES;
use crate::replica::ReplicaError;
use crate::ring::QualifiedKey;
use crate::storage::{Durability, Merge, StorageError};
use crate::version::SiblingSet;
use crate::wire::{self, WireError};

/// Items of one stream being served at a time; a peer sending more waits
/// (HTTP/2 flow control holds it back).
const ITEMS_IN_SERVICE: usize = 2048;

/// Answers of one stream waiting to be sent.
const ANSWERS_QUEUED: usize = 4096;

/// The answers to `Peer.Exchange` on the stream `frames`; serving stops
/// taking frames once `closing` turns true, and the answer stream ends when
/// the items taken are answered.
pub fn serve(
    node: Arc<Node>,
    mut frames: Streaming<pb::Frame>,
    mut closing: watch::Receiver<bool>,
) -> ReceiverStream<Result<pb::FrameReply, Status>> {
    let (replies, outgoing) = mpsc::channel(1);
    let (answers, queued) = mpsc::channel(ANSWERS_QUEUED);
    tokio::spawn(send_answers(queued, replies));
    tokio::spawn(async move {
        let in_service = Arc::new(Semaphore::new(ITEMS_IN_SERVICE));
        loop {
            let frame = tokio::select! {
                frame = frames.message() => frame,
                _ = closing.wait_for(|closing| *closing) => break,
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(status) => {
                    debug!(%status, "exchange stream broke");
                    break;
                }
            };
            let received = Instant::now();
            let wanted = frame.items.len().clamp(1, ITEMS_IN_SERVICE) as u32;
            let Ok(permits) = Arc::clone(&in_service).acquire_many_owned(wanted).await else {
                break;
            };
            let node = Arc::clone(&node);
            let answers = answers.clone();
            tokio::spawn(async move {
                serve_frame(&node, frame, received, &answers).await;
                drop(permits);
            });
        }
    });
    ReceiverStream::new(outgoing)
}

/// Sends the queued answers, as many per message as are queued when the
/// previous message has left.
async fn send_answers(
    mut queued: mpsc::Receiver<pb::ItemReply>,
    replies: mpsc::Sender<Result<pb::FrameReply, Status>>,
) {
    while let Some(first) = queued.recv().await {
        let mut bytes = first.encoded_len();
        let mut items = vec![first];
        while bytes < FRAME_BYTES {
            match queued.try_recv() {
                Ok(item) => {
                    bytes += item.encoded_len();
                    items.push(item);
                }
                Err(_) => break,
            }
        }
        if replies.send(Ok(pb::FrameReply { items })).await.is_err() {
            return;
        }
    }
}

/// Serves one frame received at `received`: its replica writes as one
/// storage batch per durability, every other item on its own, each answer
/// sent to `answers` as soon as it is ready.
async fn serve_frame(
    node: &Node,
    frame: pb::Frame,
    received: Instant,
    answers: &mpsc::Sender<pb::ItemReply>,
) {
    let mut buffered = Vec::new();
    let mut synced = Vec::new();
    let mut singles = FuturesUnordered::new();
    for item in frame.items {
        let late = is_late(item.timeout_ms, received);
        match item.call {
            Some(Call::Write(request)) if !late => match decode_write(node, request) {
                Ok((merge, Durability::Buffer)) => buffered.push((item.id, merge)),
                Ok((merge, Durability::Sync)) => synced.push((item.id, merge)),
                Err(status) => {
                    let _ = answers.send(reply(item.id, Err(status))).await;
                }
            },
            call => singles.push(serve_item(node, item.id, call, late)),
        }
    }
    let singles = async {
        while let Some(answer) = singles.next().await {
            let _ = answers.send(answer).await;
        }
    };
    let batches = async {
        for (durability, writes) in [(Durability::Buffer, buffered), (Durability::Sync, synced)] {
            if writes.is_empty() {
                continue;
            }
            for answer in write_batch(node, durability, writes).await {
                let _ = answers.send(answer).await;
            }
        }
    };
    tokio::join!(singles, batches);
}

/// True when the item's sender stopped waiting before it could be served.
fn is_late(timeout_ms: u32, received: Instant) -> bool {
    received.elapsed() >= Duration::from_millis(u64::from(timeout_ms))
}

/// Serves one item that is not part of a write batch.
async fn serve_item(node: &Node, id: u64, call: Option<Call>, late: bool) -> pb::ItemReply {
    let outcome = match call {
        _ if late => Err(Status::deadline_exceeded(
            "the item's deadline passed before it was served",
        )),
        Some(Call::Read(request)) => read(node, request).map(Outcome::Read),
        Some(Call::Write(request)) => write(node, request).await.map(Outcome::Written),
        Some(Call::Hint(request)) => hint(node, request).await.map(Outcome::Written),
        None => Err(Status::invalid_argument("a frame item carries no call")),
    };
    reply(id, outcome)
}

/// The answer to item `id`.
fn reply(id: u64, outcome: Result<Outcome, Status>) -> pb::ItemReply {
    pb::ItemReply {
        id,
        outcome: Some(outcome.unwrap_or_else(|status| {
            Outcome::Error(pb::ItemError {
                code: status.code() as i32,
                message: status.message().to_owned(),
            })
        })),
    }
}

/// A replica write's key, partition and versions, and its durability.
fn decode_write(
    node: &Node,
    request: pb::ReplicaWriteRequest,
) -> Result<(Merge, Durability), Status> {
    let partition = peer_key(node, &request.key)?;
    let durability = replica_durability(durability(node, request.durability)?);
    let incoming = peer_set(node, request.siblings)?;
    let merge = Merge {
        partition,
        key: request.key,
        incoming,
    };
    Ok((merge, durability))
}

/// Applies the replica writes of one frame with one durability as one
/// storage batch, and answers each.
async fn write_batch(
    node: &Node,
    durability: Durability,
    writes: Vec<(u64, Merge)>,
) -> Vec<pb::ItemReply> {
    let started = Instant::now();
    let (ids, merges): (Vec<u64>, Vec<Merge>) = writes.into_iter().unzip();
    let span = debug_span!("replica_batch", node = node.id(), items = ids.len());
    let outcomes = node
        .replica()
        .merge_batch(merges, durability)
        .instrument(span)
        .await;
    let elapsed = started.elapsed();
    for _ in &ids {
        node.metrics().replica(ReplicaOp::Write, elapsed);
    }
    let written = || Outcome::Written(pb::ReplicaWriteResponse {});
    match outcomes {
        Ok(outcomes) => ids
            .into_iter()
            .zip(outcomes)
            .map(|(id, outcome)| reply(id, outcome.map(|()| written()).map_err(|e| e.to_status())))
            .collect(),
        Err(error) => {
            let status = replica_status(node, &error);
            ids.into_iter()
                .map(|id| reply(id, Err(status.clone())))
                .collect()
        }
    }
}

/// `Peer.ReplicaRead`: this node's copy of a key.
///
/// # Errors
/// The status of a [`crate::replica::ReplicaError`].
pub fn read(
    node: &Node,
    request: pb::ReplicaReadRequest,
) -> Result<pb::ReplicaReadResponse, Status> {
    let started = Instant::now();
    let partition = peer_key(node, &request.key)?;
    let span = replica_span(node, ReplicaOp::Read, partition, &request.key);
    let _entered = span.enter();
    let result = node
        .replica()
        .read(partition, &request.key)
        .map(|set| pb::ReplicaReadResponse {
            siblings: Some(wire::set_to_pb(&set)),
        })
        .map_err(|error| error.to_status());
    node.metrics().replica(ReplicaOp::Read, started.elapsed());
    result
}

/// `Peer.ReplicaWrite`: merges versions into this node's copy of a key.
///
/// # Errors
/// INVALID_ARGUMENT for input that breaks a limit or does not decode, else
/// the status of a [`crate::replica::ReplicaError`].
pub async fn write(
    node: &Node,
    request: pb::ReplicaWriteRequest,
) -> Result<pb::ReplicaWriteResponse, Status> {
    let pb::ReplicaWriteRequest {
        key,
        siblings,
        durability,
    } = request;
    let merge = |partition, key, incoming, durability| async move {
        node.replica()
            .merge(partition, key, incoming, durability)
            .await
            .map(drop)
    };
    store(node, ReplicaOp::Write, key, siblings, durability, merge).await
}

/// `Peer.HintWrite`: keeps versions for another replica as a hint.
///
/// # Errors
/// INVALID_ARGUMENT for input that breaks a limit or does not decode, or an
/// unknown target, else the status of a [`crate::replica::ReplicaError`].
pub async fn hint(
    node: &Node,
    request: pb::HintWriteRequest,
) -> Result<pb::ReplicaWriteResponse, Status> {
    let pb::HintWriteRequest {
        target,
        key,
        siblings,
        durability,
    } = request;
    let keep = |partition, key, incoming, durability| async move {
        node.replica()
            .store_hint(target.clone(), partition, key, incoming, durability)
            .await?;
        node.metrics().hint_stored(&target);
        Ok(())
    };
    store(node, ReplicaOp::Hint, key, siblings, durability, keep).await
}

/// Checks the key, the durability and the versions of a replica write or
/// hint, lets `apply` store them, and times it.
async fn store<F, Fut>(
    node: &Node,
    op: ReplicaOp,
    key: Bytes,
    siblings: Option<pb::SiblingSet>,
    asked: i32,
    apply: F,
) -> Result<pb::ReplicaWriteResponse, Status>
where
    F: FnOnce(u32, Bytes, SiblingSet, Durability) -> Fut,
    Fut: Future<Output = Result<(), ReplicaError>>,
{
    let started = Instant::now();
    let partition = peer_key(node, &key)?;
    let span = replica_span(node, op, partition, &key);
    let result = async {
        let durability = replica_durability(durability(node, asked)?);
        let incoming = peer_set(node, siblings)?;
        apply(partition, key, incoming, durability)
            .await
            .map_err(|error| replica_status(node, &error))?;
        Ok(pb::ReplicaWriteResponse {})
    }
    .instrument(span)
    .await;
    node.metrics().replica(op, started.elapsed());
    result
}

/// The span of a call served as a replica, with the key's ids (a checked
/// engine key); the key is hashed again only when the span is enabled.
fn replica_span(node: &Node, op: ReplicaOp, partition: u32, key: &[u8]) -> Span {
    let span = debug_span!(
        "replica",
        node = node.id(),
        op = op.as_str(),
        partition,
        key_hash = field::Empty,
    );
    if !span.is_disabled()
        && let Ok(qualified) = QualifiedKey::decode(key)
    {
        span.record("key_hash", field::display(qualified.position()));
    }
    span
}

/// Counts a refusal for `limit` and passes its status on.
pub fn refuse(node: &Node, limit: Limit, status: Status) -> Status {
    node.metrics().limit_refused(limit);
    status
}

/// Checks a key from a peer against the node's limits (the client ones).
///
/// # Errors
/// INVALID_ARGUMENT for an empty or oversized key, counted.
pub fn peer_key(node: &Node, key: &[u8]) -> Result<u32, Status> {
    let qualified = QualifiedKey::decode(key).map_err(|error| {
        refuse(
            node,
            Limit::Malformed,
            Status::invalid_argument(error.to_string()),
        )
    })?;
    node.config()
        .limits
        .check_key(qualified.key)
        .map_err(|error| refuse(node, error.limit(), limit_status(&error)))?;
    Ok(qualified.partition(node.ring().partitions()))
}

/// Checks and converts a sibling set a peer sent to be stored.
///
/// # Errors
/// INVALID_ARGUMENT for a set that breaks a limit or does not decode,
/// counted.
pub fn peer_set(node: &Node, set: Option<pb::SiblingSet>) -> Result<SiblingSet, Status> {
    wire::set_from_peer(set, &node.config().limits)
        .map_err(|error| refuse(node, wire_limit(&error), wire_status(&error)))
}

/// The durability field of a request, refusing values the protocol does not
/// define.
///
/// # Errors
/// INVALID_ARGUMENT, counted as malformed.
pub fn durability(node: &Node, value: i32) -> Result<pb::Durability, Status> {
    wire::check_durability(value).map_err(|error| {
        refuse(
            node,
            Limit::Malformed,
            Status::invalid_argument(error.to_string()),
        )
    })
}

/// The status of a failed replica call, counting limit refusals.
pub fn replica_status(node: &Node, error: &ReplicaError) -> Status {
    match error {
        ReplicaError::Storage(StorageError::TooManySiblings { .. }) => {
            node.metrics().limit_refused(Limit::ReplicaSiblings);
        }
        ReplicaError::Storage(StorageError::HintsFull { .. }) => {
            node.metrics().limit_refused(Limit::Hints);
        }
        _ => {}
    }
    error.to_status()
}

/// The status of input that breaks a limit: always the caller's to fix.
pub fn limit_status(error: &LimitError) -> Status {
    Status::invalid_argument(error.to_string())
}

/// The status of a sibling set from a peer that cannot be taken.
fn wire_status(error: &WireError) -> Status {
    match error {
        WireError::Limit(error) => limit_status(error),
        other => Status::invalid_argument(other.to_string()),
    }
}

/// The limit a wire error counts against.
fn wire_limit(error: &WireError) -> Limit {
    match error {
        WireError::Limit(error) => error.limit(),
        WireError::TooManyVersions { .. } => Limit::ReplicaSiblings,
        WireError::TooManyClockEntries { .. } | WireError::ZeroDot | WireError::Key(_) => {
            Limit::Malformed
        }
    }
}

/// The durability a replica applies: what the message asks for, `DEFAULT`
/// meaning buffered (the coordinator resolved its own default).
fn replica_durability(asked: pb::Durability) -> Durability {
    wire::durability_from_pb(asked, Durability::Buffer)
}
