//! One peer's `Peer.Exchange` stream: the batched hot path. Replica reads,
//! replica writes and hints queue for the peer, and one task sends whatever
//! is queued as one frame as soon as the previous frame has left, so a
//! lone call goes out at once and a busy link sends large frames, with no
//! fixed delay. Answers come back in frames too, in any order, and complete
//! each item's own future.
//!
//! The queue is bounded ([`LinkSettings::queue`]): a full queue fails the
//! call at once with [`PeerError::Overloaded`]. A broken stream fails every
//! item in flight on it with [`PeerError::Unreachable`]; the next item opens
//! a new stream. Dropping an item's future (its deadline passed) drops the
//! item: it is not sent if it has not left yet, and its answer is ignored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamo_proto::v1 as pb;
use dynamo_proto::v1::frame_item::Call;
use dynamo_proto::v1::item_reply::Outcome;
use dynamo_proto::v1::peer_client::PeerClient;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::debug;

use super::PeerError;
use crate::metrics::Metrics;

/// Bounds of one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSettings {
    /// Items waiting to be sent, at most.
    pub queue: usize,
    /// Items per frame, at most.
    pub frame_items: usize,
    /// Encoded bytes per frame, at most (a larger lone item still goes).
    pub frame_bytes: usize,
    /// Largest message either side may send.
    pub max_message: usize,
}

/// The answer to one item: what the peer sent back.
pub type ItemResult = Result<Outcome, PeerError>;

/// An item waiting to be sent.
struct Queued {
    call: Call,
    deadline: Instant,
    queued_at: Instant,
    reply: oneshot::Sender<ItemResult>,
}

/// The sending side of one peer's link; cheap to clone.
#[derive(Clone)]
pub struct Link {
    peer: String,
    queue: mpsc::Sender<Queued>,
}

impl Link {
    /// A link to the peer `peer` over `channel`; its task runs until every
    /// clone of the link is dropped.
    pub fn open(
        peer: String,
        channel: Channel,
        settings: LinkSettings,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let (queue, queued) = mpsc::channel(settings.queue.max(1));
        let sender = Sender {
            peer: peer.clone(),
            channel,
            settings,
            metrics,
            queued,
            next_id: 0,
        };
        tokio::spawn(sender.run());
        Self { peer, queue }
    }

    /// Sends one item and waits for its answer; nothing is queued until
    /// the returned future is polled.
    pub async fn call(&self, call: Call, deadline: Instant) -> ItemResult {
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            call,
            deadline,
            queued_at: Instant::now(),
            reply,
        };
        self.queue.try_send(queued).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => PeerError::Overloaded {
                peer: self.peer.clone(),
                limit: self.queue.max_capacity(),
            },
            mpsc::error::TrySendError::Closed(_) => self.unreachable("the link is closed"),
        })?;
        answer
            .await
            .unwrap_or_else(|_| Err(self.unreachable("the link dropped the item")))
    }

    fn unreachable(&self, reason: &str) -> PeerError {
        PeerError::Unreachable {
            peer: self.peer.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// Items sent on one stream and not answered yet.
#[derive(Default)]
struct Pending {
    state: Mutex<PendingState>,
}

#[derive(Default)]
struct PendingState {
    waiting: HashMap<u64, oneshot::Sender<ItemResult>>,
    /// Set once the stream broke: no item may wait on it any more.
    broken: Option<PeerError>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the items of a frame; false when the stream already broke
    /// (the items are failed with its error then).
    fn register(&self, items: Vec<(u64, oneshot::Sender<ItemResult>)>) -> bool {
        let mut state = self.lock();
        if let Some(error) = &state.broken {
            for (_, reply) in items {
                let _ = reply.send(Err(error.clone()));
            }
            return false;
        }
        // Items whose caller gave up and whose answer never came are
        // dropped here, so a silent peer cannot grow the map without bound
        // between two breaks of its stream.
        if state.waiting.len() > 4 * items.len().max(1024) {
            state.waiting.retain(|_, reply| !reply.is_closed());
        }
        state.waiting.extend(items);
        true
    }

    fn complete(&self, id: u64, outcome: ItemResult) {
        let reply = self.lock().waiting.remove(&id);
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }

    /// Fails every waiting item and any later one with `error`.
    fn break_with(&self, error: PeerError) {
        let waiting = {
            let mut state = self.lock();
            state.broken = Some(error.clone());
            std::mem::take(&mut state.waiting)
        };
        for (_, reply) in waiting {
            let _ = reply.send(Err(error.clone()));
        }
    }

    fn is_broken(&self) -> bool {
        self.lock().broken.is_some()
    }
}

/// The task that owns a link's queue and its current stream.
struct Sender {
    peer: String,
    channel: Channel,
    settings: LinkSettings,
    metrics: Option<Arc<Metrics>>,
    queued: mpsc::Receiver<Queued>,
    next_id: u64,
}

/// One open stream: where frames go and who waits on its answers.
struct Stream {
    frames: mpsc::Sender<pb::Frame>,
    pending: Arc<Pending>,
}

impl Sender {
    async fn run(mut self) {
        let mut stream: Option<Stream> = None;
        while let Some(first) = self.queued.recv().await {
            let batch = self.drain(first);
            if stream.as_ref().is_none_or(|s| s.pending.is_broken()) {
                stream = Some(self.open());
            }
            let Some(open) = &stream else { continue };
            let (frame, replies) = self.frame(batch);
            if frame.items.is_empty() {
                continue;
            }
            let items = frame.items.len();
            if !open.pending.register(replies) {
                stream = None;
                continue;
            }
            if let Some(metrics) = &self.metrics {
                metrics.peer_frame(items);
            }
            if open.frames.send(frame).await.is_err() {
                // The call ended; its reader fails what was registered.
                open.pending.break_with(PeerError::Unreachable {
                    peer: self.peer.clone(),
                    reason: "the exchange stream closed".to_owned(),
                });
                stream = None;
            }
        }
    }

    /// `first` and whatever else is queued, within the frame's bounds.
    fn drain(&mut self, first: Queued) -> Vec<Queued> {
        let mut bytes = first.call.encoded_len();
        let mut batch = vec![first];
        while batch.len() < self.settings.frame_items.max(1) && bytes < self.settings.frame_bytes {
            match self.queued.try_recv() {
                Ok(item) => {
                    bytes += item.call.encoded_len();
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        batch
    }

    /// The frame of `batch`: items whose caller gave up are left out, and
    /// items already past their deadline fail here.
    fn frame(
        &mut self,
        batch: Vec<Queued>,
    ) -> (pb::Frame, Vec<(u64, oneshot::Sender<ItemResult>)>) {
        let now = Instant::now();
        let mut items = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for queued in batch {
            if queued.reply.is_closed() {
                continue;
            }
            if let Some(metrics) = &self.metrics {
                metrics.peer_queue_wait(now.saturating_duration_since(queued.queued_at));
            }
            let left = queued.deadline.saturating_duration_since(now);
            if left.is_zero() {
                let _ = queued.reply.send(Err(PeerError::Timeout {
                    peer: self.peer.clone(),
                    waited_ms: 0,
                }));
                continue;
            }
            self.next_id += 1;
            items.push(pb::FrameItem {
                id: self.next_id,
                timeout_ms: millis(left),
                call: Some(queued.call),
            });
            replies.push((self.next_id, queued.reply));
        }
        (pb::Frame { items }, replies)
    }

    /// Opens a new stream; its reader task completes items as answers come
    /// and fails them all when the stream ends.
    fn open(&self) -> Stream {
        let (frames, outgoing) = mpsc::channel(1);
        let pending = Arc::new(Pending::default());
        let mut client = PeerClient::new(self.channel.clone())
            .max_decoding_message_size(self.settings.max_message)
            .max_encoding_message_size(self.settings.max_message);
        let reader = Arc::clone(&pending);
        let peer = self.peer.clone();
        tokio::spawn(async move {
            let outcome = async {
                let mut answers = client
                    .exchange(ReceiverStream::new(outgoing))
                    .await?
                    .into_inner();
                while let Some(reply) = answers.message().await? {
                    for item in reply.items {
                        reader.complete(item.id, outcome_of(&peer, item.outcome));
                    }
                }
                Ok::<_, tonic::Status>(())
            }
            .await;
            let error = match outcome {
                Ok(()) => PeerError::Unreachable {
                    peer: peer.clone(),
                    reason: "the peer ended the exchange stream".to_owned(),
                },
                Err(status) => match PeerError::from_status(&peer, status) {
                    refused @ PeerError::Refused { .. } => refused,
                    other => PeerError::Unreachable {
                        peer: peer.clone(),
                        reason: format!("the exchange stream broke: {other}"),
                    },
                },
            };
            debug!(peer, %error, "exchange stream ended");
            reader.break_with(error);
        });
        Stream { frames, pending }
    }
}

/// An item's outcome as the caller sees it.
fn outcome_of(peer: &str, outcome: Option<Outcome>) -> ItemResult {
    match outcome {
        Some(Outcome::Error(error)) => Err(PeerError::from_status(
            peer,
            tonic::Status::new(tonic::Code::from(error.code), error.message),
        )),
        Some(outcome) => Ok(outcome),
        None => Err(PeerError::from_status(
            peer,
            tonic::Status::internal("an item's answer carried no outcome"),
        )),
    }
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis())
        .unwrap_or(u32::MAX)
        .max(1)
}
