//! The replica side of the peer hot path: one replica read, write or hint
//! served for another node, alone (the unary `Peer` calls) or as an item of
//! a frame on a `Peer.Exchange` stream. A stream's frames are served
//! concurrently, each item answered as soon as it is done; the answers go
//! back coalesced, like the frames came (see [`crate::peers::link`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_proto::v1 as pb;
use dynamo_proto::v1::frame_item::Call;
use dynamo_proto::v1::item_reply::Outcome;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prost::Message;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::{Instrument, Span, debug, debug_span};

use crate::metrics::ReplicaOp;
use crate::node::Node;
use crate::peers::FRAME_BYTES;
use crate::ring::Position;
use crate::storage::Durability;
use crate::wire;

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
                let mut items: FuturesUnordered<_> = frame
                    .items
                    .into_iter()
                    .map(|item| serve_item(&node, item, received))
                    .collect();
                while let Some(answer) = items.next().await {
                    if answers.send(answer).await.is_err() {
                        break;
                    }
                }
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

/// Serves one item of a frame received at `received`.
async fn serve_item(node: &Node, item: pb::FrameItem, received: Instant) -> pb::ItemReply {
    let late = received.elapsed() >= Duration::from_millis(u64::from(item.timeout_ms));
    let outcome = match item.call {
        _ if late => Err(Status::deadline_exceeded(
            "the item's deadline passed before it was served",
        )),
        Some(Call::Read(request)) => read(node, request).map(Outcome::Read),
        Some(Call::Write(request)) => write(node, request).await.map(Outcome::Written),
        Some(Call::Hint(request)) => hint(node, request).await.map(Outcome::Written),
        None => Err(Status::invalid_argument("a frame item carries no call")),
    };
    pb::ItemReply {
        id: item.id,
        outcome: Some(outcome.unwrap_or_else(|status| {
            Outcome::Error(pb::ItemError {
                code: status.code() as i32,
                message: status.message().to_owned(),
            })
        })),
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
    let (partition, span) = replica_span(node, ReplicaOp::Read, &request.key);
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
/// INVALID_ARGUMENT for undecodable versions, else the status of a
/// [`crate::replica::ReplicaError`].
pub async fn write(
    node: &Node,
    request: pb::ReplicaWriteRequest,
) -> Result<pb::ReplicaWriteResponse, Status> {
    let started = Instant::now();
    let (partition, span) = replica_span(node, ReplicaOp::Write, &request.key);
    let result = async {
        let durability = replica_durability(request.durability());
        let incoming = wire::set_from_pb(request.siblings)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        node.replica()
            .merge(partition, request.key, incoming, durability)
            .await
            .map_err(|error| error.to_status())?;
        Ok(pb::ReplicaWriteResponse {})
    }
    .instrument(span)
    .await;
    node.metrics().replica(ReplicaOp::Write, started.elapsed());
    result
}

/// `Peer.HintWrite`: keeps versions for another replica as a hint.
///
/// # Errors
/// INVALID_ARGUMENT for undecodable versions or an unknown target, else
/// the status of a [`crate::replica::ReplicaError`].
pub async fn hint(
    node: &Node,
    request: pb::HintWriteRequest,
) -> Result<pb::ReplicaWriteResponse, Status> {
    let started = Instant::now();
    let (partition, span) = replica_span(node, ReplicaOp::Hint, &request.key);
    let result = async {
        let durability = replica_durability(request.durability());
        let incoming = wire::set_from_pb(request.siblings)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        let target = request.target;
        node.replica()
            .store_hint(target.clone(), partition, request.key, incoming, durability)
            .await
            .map_err(|error| error.to_status())?;
        node.metrics().hint_stored(&target);
        Ok(pb::ReplicaWriteResponse {})
    }
    .instrument(span)
    .await;
    node.metrics().replica(ReplicaOp::Hint, started.elapsed());
    result
}

/// The span of a call served as a replica, with the key's ids; the key is
/// hashed once, for the partition and the span both.
fn replica_span(node: &Node, op: ReplicaOp, key: &[u8]) -> (u32, Span) {
    let position = Position::of(key);
    let partition = node.ring().partition_at(position);
    let span = debug_span!(
        "replica",
        node = node.id(),
        op = op.as_str(),
        partition,
        key_hash = %position,
    );
    (partition, span)
}

/// The durability a replica applies: what the message asks for, `DEFAULT`
/// meaning buffered (the coordinator resolved its own default).
fn replica_durability(asked: pb::Durability) -> Durability {
    wire::durability_from_pb(asked, Durability::Buffer)
}
