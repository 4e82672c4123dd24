//! Partition transfers for explicit join and leave. A proposed ring names
//! the owners after the change; each node streams in, from a current
//! replica, every partition it gains, and reports progress. When the ring is
//! committed, nodes drop the partitions they no longer replicate.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use crate::node::Node;
use crate::ring::Ring;
use crate::storage::Durability;
use crate::wire;

/// Bytes per streamed chunk.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks buffered ahead of the network (flow control beyond HTTP/2's).
const CHUNKS_IN_FLIGHT: usize = 4;

/// Progress of the incoming transfers of one proposed ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Epoch of the proposed ring.
    pub epoch: u64,
    /// Partitions to receive.
    pub total: u32,
    /// Partitions received completely.
    pub done: BTreeSet<u32>,
    /// Keys received.
    pub keys: u64,
    /// Bytes received.
    pub bytes: u64,
    /// The last error of a retrying transfer.
    pub error: String,
}

impl Progress {
    /// Estimated bytes left: the mean of finished partitions times those left.
    pub fn bytes_left(&self) -> u64 {
        let done = self.done.len() as u64;
        let left = u64::from(self.total).saturating_sub(done);
        if done == 0 || left == 0 {
            0
        } else {
            self.bytes / done * left
        }
    }

    /// The progress as a message.
    pub fn to_pb(&self) -> pb::TransferStatusResponse {
        pb::TransferStatusResponse {
            epoch: self.epoch,
            partitions_total: self.total,
            partitions_done: self.done.len() as u32,
            keys_received: self.keys,
            bytes_received: self.bytes,
            bytes_left: self.bytes_left(),
            error: self.error.clone(),
        }
    }
}

/// Shared progress of the transfers in flight.
pub type SharedProgress = Arc<Mutex<Progress>>;

impl Node {
    /// Reacts to a newly installed ring: start streaming what this node gains
    /// from a change in flight, or drop what a committed change took away.
    pub(crate) fn on_new_ring(self: &Arc<Self>, ring: Arc<Ring>) {
        let Some(me) = ring.index_of(self.id()) else {
            return;
        };
        if ring.next_owners().is_some() {
            let gaining = ring.gaining(me);
            {
                let mut progress = self.transfers().lock().unwrap_or_else(|e| e.into_inner());
                *progress = Progress {
                    epoch: ring.epoch(),
                    total: gaining.len() as u32,
                    ..Progress::default()
                };
            }
            info!(
                epoch = ring.epoch(),
                partitions = gaining.len(),
                "streaming in partitions"
            );
            tokio::spawn(receive_all(Arc::clone(self), ring, gaining));
        } else {
            // Nodes adopt a committed ring one after another; until all have,
            // reads may still come here, so the data stays a little longer.
            // A weak handle, so a node that stops meanwhile is not kept open.
            let node = Arc::downgrade(self);
            let delay = self.config().request_timeout() * 2;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(node) = node.upgrade() {
                    let _ =
                        tokio::task::spawn_blocking(move || drop_unreplicated(&node, &ring, me))
                            .await;
                }
            });
        }
    }
}

/// Streams in every partition of `gaining`, retrying until done or until a
/// newer ring replaces `ring`.
async fn receive_all(node: Arc<Node>, ring: Arc<Ring>, gaining: Vec<u32>) {
    for partition in gaining {
        let current = || node.ring().epoch() == ring.epoch();
        let outcome = receive_with_retry(&node, &ring, partition, current, |error| {
            node.transfers()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .error = error;
        })
        .await;
        if !outcome {
            debug!(epoch = ring.epoch(), "transfer superseded by a newer ring");
            return;
        }
        let mut progress = node.transfers().lock().unwrap_or_else(|e| e.into_inner());
        if progress.epoch == ring.epoch() {
            progress.done.insert(partition);
            progress.error.clear();
        }
    }
    info!(epoch = ring.epoch(), "all incoming partitions received");
}

/// Streams one partition from the other replicas in turn until a stream
/// completes, backing off between attempts and resuming after the last key
/// received. Gives up (returning false) once `keep_going` turns false;
/// `on_error` hears every failure.
pub(crate) async fn receive_with_retry(
    node: &Arc<Node>,
    ring: &Ring,
    partition: u32,
    keep_going: impl Fn() -> bool,
    mut on_error: impl FnMut(String),
) -> bool {
    let me = ring.index_of(node.id());
    let sources: Vec<u32> = ring
        .preference(partition)
        .iter()
        .copied()
        .filter(|&m| Some(m) != me)
        .collect();
    if sources.is_empty() {
        return true;
    }
    let mut after = Bytes::new();
    for attempt in 0u64.. {
        if !keep_going() {
            return false;
        }
        let source = sources[attempt as usize % sources.len()];
        match receive(node, ring, partition, source, &mut after).await {
            Ok(()) => {
                node.metrics().stream_completed();
                return true;
            }
            Err(error) => {
                warn!(partition, source = ring.member(source).id, %error, "stream failed; retrying");
                on_error(error);
                let backoff = Duration::from_millis(200 * (attempt + 1).min(10));
                tokio::time::sleep(backoff).await;
            }
        }
    }
    false
}

/// Streams one partition from `source`, starting after key `after`, and
/// merges every key locally; `after` follows the last key stored.
async fn receive(
    node: &Arc<Node>,
    ring: &Ring,
    partition: u32,
    source: u32,
    after: &mut Bytes,
) -> Result<(), String> {
    let address = &ring.member(source).address;
    let mut client = node.peers().peer(address)?;
    let request = pb::StreamPartitionRequest {
        partition,
        after: after.clone(),
    };
    let mut stream = client
        .stream_partition(request)
        .await
        .map_err(|status| status.message().to_owned())?
        .into_inner();
    let idle = node.config().request_timeout() * 4;
    loop {
        let chunk = match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(status))) => return Err(status.message().to_owned()),
            Ok(None) => return Ok(()),
            Err(_) => return Err(format!("no chunk from {address} within {idle:?}")),
        };
        let mut bytes = 0u64;
        let keys = chunk.entries.len() as u64;
        let mut entries = Vec::with_capacity(chunk.entries.len());
        for entry in chunk.entries {
            bytes += (entry.key.len()
                + entry
                    .siblings
                    .as_ref()
                    .map_or(0, prost::Message::encoded_len)) as u64;
            let set = wire::set_from_pb(entry.siblings).map_err(|e| e.to_string())?;
            entries.push((entry.key, set));
        }
        let last = entries.last().map(|(key, _)| key.clone());
        let storing = Arc::clone(node);
        tokio::task::spawn_blocking(move || {
            for (key, set) in entries {
                storing
                    .storage()
                    .merge(partition, &key, &set, Durability::Buffer)?;
            }
            Ok::<_, crate::storage::StorageError>(())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if let Some(last) = last {
            *after = last;
        }
        let rate = node.config().background.transfer_bytes_per_second;
        if rate > 0 {
            tokio::time::sleep(Duration::from_secs_f64(bytes as f64 / rate as f64)).await;
        }
        node.metrics().streamed(keys, bytes);
        let mut progress = node.transfers().lock().unwrap_or_else(|e| e.into_inner());
        progress.keys += keys;
        progress.bytes += bytes;
    }
}

/// Serves a partition as a stream of chunks, read off the async workers.
pub fn stream_partition(
    node: Arc<Node>,
    partition: u32,
    after: Bytes,
) -> ReceiverStream<Result<pb::PartitionChunk, tonic::Status>> {
    let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut after = after;
        loop {
            let chunk = match node.storage().chunk(partition, &after, CHUNK_BYTES) {
                Ok(chunk) => chunk,
                Err(error) => {
                    let _ = sender.blocking_send(Err(tonic::Status::internal(error.to_string())));
                    return;
                }
            };
            let Some((last, _)) = chunk.last() else {
                return;
            };
            after = last.clone();
            let entries = chunk
                .into_iter()
                .map(|(key, set)| pb::PartitionEntry {
                    key,
                    siblings: Some(wire::set_to_pb(&set)),
                })
                .collect();
            if sender
                .blocking_send(Ok(pb::PartitionChunk { entries }))
                .is_err()
            {
                return;
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// Deletes the data of partitions this node does not replicate in `ring`.
fn drop_unreplicated(node: &Node, ring: &Ring, me: u32) {
    for partition in node.storage().partitions_with_data() {
        if partition >= ring.partitions() || ring.replicates(me, partition) {
            continue;
        }
        if node.ring().epoch() != ring.epoch() {
            return;
        }
        match node.storage().drop_partition(partition) {
            Ok(keys) => info!(
                partition,
                keys, "dropped a partition this node no longer replicates"
            ),
            Err(error) => warn!(partition, %error, "cannot drop a partition"),
        }
    }
}
