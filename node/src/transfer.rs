//! Partition transfers for explicit join and leave. A proposed ring names
//! the owners after the change; each node streams in, from a current
//! replica, every partition it gains, and reports progress. When the ring is
//! committed, nodes drop the partitions they no longer replicate. The
//! [`Transfers`] worker reacts to every ring [`Topology`] puts in use.
//!
//! The serving side ([`Transfers::serve_partition`]) is bounded: at most
//! `limits.max_partition_streams` streams at once, each reading its next
//! chunk only once the reader has room for it, and ended with `ABORTED` when
//! its reader takes nothing for `limits.partition_stream_idle_ms`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use futures::StreamExt;
use futures::stream::BoxStream;
use thiserror::Error;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use crate::config::{Limit, Limits};
use crate::metrics::Metrics;
use crate::peers::{PeerError, Peers};
use crate::replica::{Replica, ReplicaError};
use crate::ring::Ring;
use crate::storage::{Durability, Storage, StorageError};
use crate::topology::Topology;
use crate::version::SiblingSet;
use crate::wire::{self, WireError};
use crate::worker::Stop;

/// Bytes per streamed chunk.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks buffered ahead of the network (flow control beyond HTTP/2's).
const CHUNKS_IN_FLIGHT: usize = 4;

/// Progress of the incoming transfers of one proposed ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Epoch of the proposed ring.
    pub epoch: u64,
    /// (partition, N) pairs to receive.
    pub total: u32,
    /// (partition, N) pairs received completely.
    pub done: BTreeSet<(u32, u32)>,
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

/// Why a stream of a partition stopped before its end.
#[derive(Debug, Error)]
pub enum StreamError {
    /// The source did not answer, refused, or broke off.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// No chunk arrived for too long.
    #[error("no chunk from {source_id} within {idle:?}")]
    Idle {
        /// Member id of the source.
        source_id: String,
        /// How long this node waited.
        idle: Duration,
    },
    /// The source sent versions this node cannot accept.
    #[error("{source_id} sent an invalid entry: {error}")]
    Invalid {
        /// Member id of the source.
        source_id: String,
        /// What is wrong with it.
        error: WireError,
    },
    /// Storing the chunk failed.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

/// Settings of [`Transfers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferSettings {
    /// How long a stream may go without a chunk.
    pub idle: Duration,
    /// How long a committed ring's dropped partitions are kept.
    pub drop_delay: Duration,
    /// Incoming rate limit in bytes per second; 0 is unlimited.
    pub bytes_per_second: u64,
    /// Bounds on streamed entries and on the streams this node serves.
    pub limits: Limits,
}

/// Partition streaming of one node.
pub struct Transfers {
    topology: Arc<Topology>,
    replica: Arc<Replica>,
    peers: Arc<Peers>,
    metrics: Arc<Metrics>,
    settings: TransferSettings,
    progress: Mutex<Progress>,
    /// One permit per partition stream this node may serve at once.
    streams_out: Arc<Semaphore>,
}

impl Transfers {
    /// Transfers storing into `replica`.
    pub fn new(
        topology: Arc<Topology>,
        replica: Arc<Replica>,
        peers: Arc<Peers>,
        metrics: Arc<Metrics>,
        settings: TransferSettings,
    ) -> Self {
        Self {
            topology,
            replica,
            peers,
            metrics,
            streams_out: Arc::new(Semaphore::new(settings.limits.max_partition_streams)),
            settings,
            progress: Mutex::default(),
        }
    }

    /// Progress of the incoming transfers.
    pub fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reacts to every ring put in use, starting with the current one,
    /// until stopped.
    pub async fn run(self: Arc<Self>, mut stop: Stop) {
        let mut rings = self.topology.changes();
        loop {
            let ring = Arc::clone(&rings.borrow_and_update());
            self.on_new_ring(ring);
            tokio::select! {
                changed = rings.changed() => if changed.is_err() { return },
                () = stop.stopped() => return,
            }
        }
    }

    /// Reacts to a newly installed ring: start streaming what this node gains
    /// from a change in flight, or drop what a committed change took away.
    fn on_new_ring(self: &Arc<Self>, ring: Arc<Ring>) {
        let Some(me) = ring.index_of(self.topology.id()) else {
            return;
        };
        if ring.next_owners().is_some() {
            let gaining = ring.gaining(me);
            *self.progress() = Progress {
                epoch: ring.epoch(),
                total: gaining.len() as u32,
                ..Progress::default()
            };
            info!(
                epoch = ring.epoch(),
                partitions = gaining.len(),
                "streaming in partitions"
            );
            tokio::spawn(Arc::clone(self).receive_all(ring, gaining));
        } else {
            // Nodes adopt a committed ring one after another; until all have,
            // reads may still come here, so the data stays a little longer.
            // A weak handle, so a node that stops meanwhile is not kept open.
            let transfers = Arc::downgrade(self);
            let delay = self.settings.drop_delay;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(transfers) = transfers.upgrade() {
                    let storage = Arc::clone(transfers.replica.storage());
                    let topology = Arc::clone(&transfers.topology);
                    drop(transfers);
                    let _ = tokio::task::spawn_blocking(move || {
                        drop_unreplicated(&storage, &topology, &ring, me);
                    })
                    .await;
                }
            });
        }
    }

    /// Streams in every (partition, N) of `gaining`, retrying until done or
    /// until a newer ring replaces `ring`.
    async fn receive_all(self: Arc<Self>, ring: Arc<Ring>, gaining: Vec<(u32, u32)>) {
        for (partition, n) in gaining {
            let current = || self.topology.ring().epoch() == ring.epoch();
            let outcome = self
                .receive_with_retry(&ring, partition, n, current, |error| {
                    self.progress().error = error.to_string();
                })
                .await;
            if !outcome {
                debug!(epoch = ring.epoch(), "transfer superseded by a newer ring");
                return;
            }
            let mut progress = self.progress();
            if progress.epoch == ring.epoch() {
                progress.done.insert((partition, n));
                progress.error.clear();
            }
        }
        info!(epoch = ring.epoch(), "all incoming partitions received");
    }

    /// Streams the keys of `partition` whose bucket has N = `n` from that
    /// N's other replicas in turn until a stream completes, backing off
    /// between attempts and resuming after the last key received. Gives up
    /// (returning false) once `keep_going` turns false; `on_error` hears
    /// every failure.
    pub async fn receive_with_retry(
        &self,
        ring: &Ring,
        partition: u32,
        n: u32,
        keep_going: impl Fn() -> bool,
        mut on_error: impl FnMut(&StreamError),
    ) -> bool {
        let me = ring.index_of(self.topology.id());
        let sources: Vec<u32> = ring
            .preference(partition, n)
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
            match self.receive(ring, partition, n, source, &mut after).await {
                Ok(()) => {
                    self.metrics.stream_completed();
                    return true;
                }
                Err(error) => {
                    warn!(partition, n, source = ring.member(source).id, %error, "stream failed; retrying");
                    on_error(&error);
                    let backoff = Duration::from_millis(200 * (attempt + 1).min(10));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
        false
    }

    /// Streams the keys of (partition, N) from `source`, starting after key
    /// `after`, and merges every key locally; `after` follows the last key
    /// stored.
    async fn receive(
        &self,
        ring: &Ring,
        partition: u32,
        n: u32,
        source: u32,
        after: &mut Bytes,
    ) -> Result<(), StreamError> {
        let member = ring.member(source);
        let mut stream = self
            .peers
            .stream_partition(member, partition, n, after.clone())
            .await?;
        let idle = self.settings.idle;
        loop {
            let chunk = match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(error))) => return Err(error.into()),
                Ok(None) => return Ok(()),
                Err(_) => {
                    return Err(StreamError::Idle {
                        source_id: member.id.clone(),
                        idle,
                    });
                }
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
                let entry = entry_from_peer(entry, &self.settings.limits).map_err(|error| {
                    StreamError::Invalid {
                        source_id: member.id.clone(),
                        error,
                    }
                })?;
                entries.push(entry);
            }
            let last = entries.last().map(|(key, _)| key.clone());
            let storage = Arc::clone(self.replica.storage());
            let stored = tokio::task::spawn_blocking(move || {
                for (key, set) in entries {
                    storage.merge(partition, &key, &set, Durability::Buffer)?;
                }
                Ok::<_, StorageError>(())
            })
            .await;
            match stored {
                Ok(result) => result.map_err(ReplicaError::from)?,
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(_) => return Err(ReplicaError::ShuttingDown.into()),
            }
            if let Some(last) = last {
                *after = last;
            }
            let rate = self.settings.bytes_per_second;
            if rate > 0 {
                tokio::time::sleep(Duration::from_secs_f64(bytes as f64 / rate as f64)).await;
            }
            self.metrics.streamed(keys, bytes);
            let mut progress = self.progress();
            progress.keys += keys;
            progress.bytes += bytes;
        }
    }
}

/// Checks and converts one entry of a streamed partition chunk: its key
/// and its sibling set, held to `limits` like a replica write.
///
/// # Errors
/// [`WireError`] when the key or the set breaks a limit or an invariant.
pub fn entry_from_peer(
    entry: pb::PartitionEntry,
    limits: &Limits,
) -> Result<(Bytes, SiblingSet), WireError> {
    wire::check_engine_key(&entry.key, limits)?;
    let set = wire::set_from_peer(entry.siblings, limits)?;
    Ok((entry.key, set))
}

/// The chunks of a partition this node serves.
pub type PartitionStream = BoxStream<'static, Result<pb::PartitionChunk, tonic::Status>>;

/// Why this node does not serve a partition stream.
#[derive(Debug, Error)]
pub enum ServeStreamError {
    /// Every stream slot is taken.
    #[error(
        "this node already serves {limit} partition streams (limits.max_partition_streams); retry later"
    )]
    Busy {
        /// `limits.max_partition_streams`.
        limit: usize,
    },
}

impl Transfers {
    /// Serves the keys of `partition` whose bucket has N = `n`, after key
    /// `after`, as a stream of chunks, read off
    /// the async workers, when a stream slot is free. The stream holds its
    /// slot until it ends, its reader goes away, or its reader takes no
    /// chunk for `limits.partition_stream_idle_ms` (then it ends with
    /// `ABORTED`, never as if complete).
    ///
    /// # Errors
    /// [`ServeStreamError::Busy`] when `limits.max_partition_streams`
    /// streams are being served.
    pub fn serve_partition(
        &self,
        partition: u32,
        n: u32,
        after: Bytes,
    ) -> Result<PartitionStream, ServeStreamError> {
        let limits = self.settings.limits;
        let Ok(permit) = Arc::clone(&self.streams_out).try_acquire_owned() else {
            self.metrics.limit_refused(Limit::PartitionStreams);
            return Err(ServeStreamError::Busy {
                limit: limits.max_partition_streams,
            });
        };
        let storage = Arc::clone(self.replica.storage());
        let metrics = Arc::clone(&self.metrics);
        let idle = limits.partition_stream_idle();
        let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (abort, aborted) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _permit = permit;
            let mut after = after;
            loop {
                // Room for the chunk first: an unread stream waits here, as
                // a parked task holding no chunk and no thread.
                let slot = match tokio::time::timeout(idle, sender.reserve()).await {
                    Ok(Ok(slot)) => slot,
                    Ok(Err(_)) => return,
                    Err(_) => {
                        metrics.limit_refused(Limit::StreamIdle);
                        let _ = abort.send(tonic::Status::aborted(format!(
                            "the reader took no chunk of partition {partition} for {idle:?} \
                             (limits.partition_stream_idle_ms); resume after the last key received"
                        )));
                        return;
                    }
                };
                let storage = Arc::clone(&storage);
                let start = after.clone();
                let read = tokio::task::spawn_blocking(move || {
                    storage.chunk(partition, n, &start, CHUNK_BYTES)
                })
                .await;
                let chunk = match read {
                    Ok(Ok(chunk)) => chunk,
                    Ok(Err(error)) => {
                        slot.send(Err(tonic::Status::internal(error.to_string())));
                        return;
                    }
                    Err(_) => {
                        slot.send(Err(tonic::Status::unavailable("the node is shutting down")));
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
                slot.send(Ok(pb::PartitionChunk { entries }));
            }
        });
        // After the last chunk, the reason the stream was cut off, if it was.
        let ending = futures::stream::once(async move { aborted.await.ok().map(Err) })
            .filter_map(std::future::ready);
        Ok(ReceiverStream::new(receiver).chain(ending).boxed())
    }
}

/// Deletes the keys of each (partition, N) this node does not replicate in
/// `ring`, unless a newer ring is in use by then. A node may keep a
/// partition's keys of one N and drop those of another.
fn drop_unreplicated(storage: &Storage, topology: &Topology, ring: &Ring, me: u32) {
    for (partition, n) in storage.partitions_with_data() {
        if partition >= ring.partitions() || ring.replicates(me, partition, n) {
            continue;
        }
        if topology.ring().epoch() != ring.epoch() {
            return;
        }
        match storage.drop_partition(partition, n) {
            Ok(keys) => info!(
                partition,
                n, keys, "dropped keys of a partition this node no longer replicates"
            ),
            Err(error) => warn!(partition, n, %error, "cannot drop a partition"),
        }
    }
}
