//! The replica side of reads and writes: this node's copy of a key, read,
//! merged with versions from elsewhere, or written as a new version; hints
//! kept for other replicas; and the recovery gate, which keeps a partition
//! that is being streamed back after an empty-disk start from answering
//! reads (an empty answer would count towards R as "no such key").
//!
//! The `Peer` handlers, the in-memory peer transport and the coordinator's
//! own copy all go through [`Replica`].
//!
//! Buffered writes only reach the operating system and take microseconds,
//! so they run in place on the async workers unless storage stalled writers
//! recently ([`crate::stall`]); synced writes wait for an fsync and run on
//! the blocking pool.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use thiserror::Error;

use crate::merkle::KeyHash;
use crate::ring::QualifiedKeyError;
use crate::stall::StallDetector;
use crate::storage::{Durability, Merge, NewWrite, Storage, StorageError};
use crate::topology::Topology;
use crate::version::{Dot, SiblingSet};

/// Why a replica operation failed.
#[derive(Debug, Error)]
pub enum ReplicaError {
    /// The partition is being streamed back after an empty-disk start.
    #[error("partition {partition} is being streamed back after an empty-disk restart")]
    Recovering {
        /// The partition.
        partition: u32,
    },
    /// A hint names a node that is not in the ring.
    #[error("hint target {target:?} is not a member of the ring")]
    UnknownHintTarget {
        /// The named target.
        target: String,
    },
    /// Local storage failed or refused.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The runtime shut down while a storage task ran.
    #[error("the node is shutting down")]
    ShuttingDown,
}

impl ReplicaError {
    /// The gRPC status a peer gets for this error.
    pub fn to_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            Self::Recovering { .. } | Self::ShuttingDown => tonic::Status::unavailable(message),
            Self::UnknownHintTarget { .. } => tonic::Status::invalid_argument(message),
            Self::Storage(StorageError::HintsFull { .. }) => {
                tonic::Status::resource_exhausted(message)
            }
            Self::Storage(StorageError::TooManySiblings { .. }) => {
                tonic::Status::failed_precondition(message)
            }
            Self::Storage(_) => tonic::Status::internal(message),
        }
    }
}

/// This node's replicas.
pub struct Replica {
    storage: Arc<Storage>,
    topology: Arc<Topology>,
    stalls: StallDetector,
    recovering: Mutex<BTreeSet<u32>>,
}

impl Replica {
    /// The replicas kept in `storage`, for the ring of `topology`.
    pub fn new(storage: Arc<Storage>, topology: Arc<Topology>) -> Self {
        Self {
            storage,
            topology,
            stalls: StallDetector::default(),
            recovering: Mutex::default(),
        }
    }

    /// Local storage.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// The ring holder this replica answers for.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// The N a peer's tree or stream request names: 0 is the ring's N (the
    /// default bucket, as peers from before buckets send).
    pub fn factor_of(&self, requested: u32) -> u32 {
        match requested {
            0 => self.topology.ring().replication().n,
            n => n,
        }
    }

    /// The partition of engine key `key` (bucket-qualified) in the ring in
    /// use.
    ///
    /// # Errors
    /// [`QualifiedKeyError`] when the key does not decode.
    pub fn partition_of(&self, key: &[u8]) -> Result<u32, QualifiedKeyError> {
        self.topology.ring().engine_partition(key)
    }

    /// Partitions being streamed back after an empty-disk start.
    pub fn recovering(&self) -> MutexGuard<'_, BTreeSet<u32>> {
        self.recovering.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while `partition` is being streamed back.
    pub fn is_recovering(&self, partition: u32) -> bool {
        self.recovering().contains(&partition)
    }

    /// The local copy of a key.
    ///
    /// # Errors
    /// [`ReplicaError::Recovering`] while the partition is being streamed
    /// back, or a storage failure.
    pub fn read(&self, partition: u32, key: &[u8]) -> Result<SiblingSet, ReplicaError> {
        if self.is_recovering(partition) {
            return Err(ReplicaError::Recovering { partition });
        }
        Ok(self.storage.read(partition, key)?)
    }

    /// Merges versions from elsewhere (a coordinator, read repair, a
    /// delivered hint, a transfer) into the local copy. Returns the merged
    /// set.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn merge(
        &self,
        partition: u32,
        key: Bytes,
        incoming: SiblingSet,
        durability: Durability,
    ) -> Result<SiblingSet, ReplicaError> {
        self.write(durability, move |storage| {
            storage.merge(partition, &key, &incoming, durability)
        })
        .await
    }

    /// Merges versions of many keys (one frame of replica writes) with one
    /// journal append; see [`Storage::merge_batch`]. Returns each key's
    /// outcome, in order.
    ///
    /// # Errors
    /// A storage failure that fails the whole batch.
    pub async fn merge_batch(
        &self,
        items: Vec<Merge>,
        durability: Durability,
    ) -> Result<Vec<Result<(), ReplicaError>>, ReplicaError> {
        let outcomes = self
            .write(durability, move |storage| {
                storage.merge_batch(&items, durability)
            })
            .await?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.map_err(ReplicaError::from))
            .collect())
    }

    /// Writes a new version coordinated by this node: a fresh dot that
    /// replaces what the write's context has seen. Returns the key's new
    /// set and the dot.
    ///
    /// # Errors
    /// A storage failure, or too many siblings (nothing is written then).
    pub async fn write_new_version(
        &self,
        partition: u32,
        key: Bytes,
        write: NewWrite,
        max_siblings: usize,
        durability: Durability,
    ) -> Result<(SiblingSet, Dot), ReplicaError> {
        self.write(durability, move |storage| {
            storage.write_new_version(partition, &key, write, max_siblings, durability)
        })
        .await
    }

    /// Keeps versions meant for replica `target` as a hint (this node is a
    /// fallback of a sloppy quorum).
    ///
    /// # Errors
    /// [`ReplicaError::UnknownHintTarget`], or a storage failure (a full
    /// hint store among them).
    pub async fn store_hint(
        &self,
        target: String,
        partition: u32,
        key: Bytes,
        incoming: SiblingSet,
        durability: Durability,
    ) -> Result<(), ReplicaError> {
        if self.topology.ring().index_of(&target).is_none() {
            return Err(ReplicaError::UnknownHintTarget { target });
        }
        self.write(durability, move |storage| {
            storage
                .hints()
                .add(&target, partition, &key, &incoming, durability)
        })
        .await
    }

    /// Hashes of one level of the Merkle tree of (partition, N).
    pub fn tree_level(&self, partition: u32, n: u32, level: u32, parents: &[u32]) -> Vec<u64> {
        self.storage.tree_level(partition, n, level, parents)
    }

    /// Every key of some leaf segments of the tree of (partition, N), with
    /// its digest.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn segment_keys(
        &self,
        partition: u32,
        n: u32,
        segments: HashSet<u32>,
    ) -> Result<Vec<(Bytes, u64)>, ReplicaError> {
        let storage = Arc::clone(&self.storage);
        blocking(move || {
            storage.scan_partition(partition, n, |key, _| {
                segments.contains(&KeyHash::of(key).segment)
            })
        })
        .await
    }

    /// True when this node holds a hint for `key`, for any target.
    ///
    /// # Errors
    /// A storage failure.
    pub fn holds_hint(&self, partition: u32, key: &[u8]) -> Result<bool, ReplicaError> {
        Ok(self.storage.hints().holds(partition, key)?)
    }

    /// Drops a key whose versions are all tombstones, if its digest is
    /// still `digest`. Returns true when dropped.
    ///
    /// # Errors
    /// A storage failure.
    pub fn forget_tombstone(
        &self,
        partition: u32,
        key: &[u8],
        digest: u64,
    ) -> Result<bool, ReplicaError> {
        Ok(self.storage.forget_tombstone(partition, key, digest)?)
    }

    /// Runs a storage write with `durability`, in place or on the blocking
    /// pool (see the module documentation).
    async fn write<T: Send + 'static>(
        &self,
        durability: Durability,
        write: impl FnOnce(&Storage) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, ReplicaError> {
        let started = Instant::now();
        if durability == Durability::Buffer && !self.stalls.offloading(started) {
            let result = write(&self.storage);
            self.stalls.record(started, Instant::now());
            return Ok(result?);
        }
        let storage = Arc::clone(&self.storage);
        blocking(move || write(&storage)).await
    }
}

/// Runs `work` on the blocking pool; a panic there resumes here.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, ReplicaError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(ReplicaError::ShuttingDown),
    }
}
