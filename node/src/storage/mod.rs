//! Local storage in fjall: one database per node with the keyspaces `data`
//! (partition big-endian + bucket-qualified key -> sibling set), `hints`
//! (see [`hints`]) and `meta` (format, incarnation id, dot counter ceiling,
//! ring).
//!
//! A bucket-qualified key starts with its bucket's N (see
//! [`dynamo_ring::QualifiedKey`]), so the keys of one (partition, N) are one
//! contiguous range: the unit of Merkle trees, transfers and drops.
//!
//! Every read-modify-write of a key runs under one of a fixed set of striped
//! locks, so concurrent writes of one key never lose each other. Each write
//! also updates its (partition, N) Merkle tree in the same critical section.

mod group_commit;
pub mod hints;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fjall::config::PinningPolicy;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use thiserror::Error;

use crate::codec;
use crate::encoding::DecodeError;
use crate::merkle::{KeyHash, Tree, set_digest};
use crate::version::{Clock, Dot, NodeId, SiblingSet, Version};
use group_commit::GroupCommit;

const LOCK_STRIPES: usize = 1024;
const DOT_LEASE: u64 = 100_000;
/// Memtable size of the `data` keyspace. fjall's default of 64 MiB lets a
/// node hold several hundred MiB in memtables while flushes catch up; 16 MiB
/// memtables flush in a fraction of the time and keep the node small.
const DATA_MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;
const META_INCARNATION: &[u8] = b"incarnation";
const META_DOT_CEILING: &[u8] = b"dot_ceiling";
const META_RING: &[u8] = b"ring";
const META_FORMAT: &[u8] = b"format";
/// The layout of `data` keys: 2 is partition + bucket-qualified key. Data
/// directories from before (partition + bare key, no format record) are
/// refused rather than misread.
const FORMAT: u64 = 2;

/// Versions of one key to merge into its local copy, an item of
/// [`Storage::merge_batch`].
#[derive(Clone, Debug)]
pub struct Merge {
    /// The key's partition.
    pub partition: u32,
    /// The key.
    pub key: Bytes,
    /// Versions from elsewhere.
    pub incoming: SiblingSet,
}

/// A storage failure.
#[derive(Debug, Error)]
pub enum StorageError {
    /// fjall failed.
    #[error("storage I/O failed: {0}")]
    Fjall(#[from] fjall::Error),
    /// A stored record does not decode.
    #[error("stored record for partition {partition} is corrupt: {source}")]
    Corrupt {
        /// The partition of the record.
        partition: u32,
        /// The decode failure.
        source: DecodeError,
    },
    /// A meta record does not decode.
    #[error("meta record {name} is corrupt")]
    CorruptMeta {
        /// The record name.
        name: &'static str,
    },
    /// The data directory was written in a layout this node does not read.
    #[error(
        "the data directory holds keys in storage format {found} (1 = before buckets), but this node reads format {FORMAT}; start it on an empty directory and let it recover from its peers"
    )]
    Format {
        /// The format found.
        found: u64,
    },
    /// The hint store holds its configured maximum.
    #[error("the hint store is full ({limit} keys)")]
    HintsFull {
        /// The configured limit.
        limit: u64,
    },
    /// A coordinated write would leave too many siblings.
    #[error(
        "the key would have {count} siblings, more than the limit of {limit}; read it and write with its context to resolve them"
    )]
    TooManySiblings {
        /// Siblings the write would leave.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// How hard a write is pushed to disk before it returns: the one type the
/// client, the coordinator and the storage engine share.
pub use dynamo_ring::Durability;

/// What a new local write carries.
#[derive(Clone, Debug)]
pub struct NewWrite {
    /// The value; empty for a delete.
    pub value: bytes::Bytes,
    /// True for a delete.
    pub tombstone: bool,
    /// The clock of the context the write replaces.
    pub context: Clock,
    /// Coordinator wall-clock time in milliseconds.
    pub timestamp_ms: u64,
}

/// Sizes of a node's fjall database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Per keyspace: name, disk space of its tables, approximate item count.
    pub keyspaces: Vec<(&'static str, u64, u64)>,
    /// Disk space of the journals.
    pub journal_bytes: u64,
    /// Bytes held in memtables.
    pub write_buffer_bytes: u64,
}

/// One node's fjall database.
pub struct Storage {
    db: Database,
    data: Keyspace,
    meta: Keyspace,
    hints: hints::HintStore,
    /// One Merkle tree per (partition, N).
    trees: Mutex<HashMap<(u32, u8), Tree>>,
    locks: Box<[Mutex<()>]>,
    lock_hasher: RandomState,
    incarnation: NodeId,
    fresh: bool,
    next_dot: AtomicU64,
    dot_ceiling: Mutex<u64>,
    group_commit: GroupCommit,
    /// Most versions a merge may grow a key's set to.
    max_versions: usize,
}

impl Storage {
    /// Opens (or creates) the database in `path`. A new directory gets a new
    /// random incarnation id.
    ///
    /// # Errors
    /// [`StorageError`] when fjall cannot open the directory or meta is corrupt.
    pub fn open(path: &Path, max_hints: u64) -> Result<Self, StorageError> {
        let db = Database::builder(path).open()?;
        let data = db.keyspace("data", || {
            KeyspaceCreateOptions::default()
                .max_memtable_size(DATA_MEMTABLE_BYTES)
                // A get consults a filter and an index block of every level.
                // Unpinned, they compete with data blocks for the block
                // cache, and once evicted every get reads and checksums
                // them again: at a million keys that was most of a get's CPU.
                .filter_block_pinning_policy(PinningPolicy::all(true))
                .index_block_pinning_policy(PinningPolicy::all(true))
        })?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        let hints = hints::HintStore::open(&db, max_hints)?;
        let fresh = meta.get(META_INCARNATION)?.is_none();
        check_format(&db, &meta, &data, &hints, fresh)?;
        let incarnation = match meta.get(META_INCARNATION)? {
            Some(bytes) => read_u64(&bytes, "incarnation")?,
            None => {
                let id = rand::random::<u64>() | 1;
                meta.insert(META_INCARNATION, id.to_le_bytes().to_vec())?;
                db.persist(PersistMode::SyncAll)?;
                id
            }
        };
        let ceiling = match meta.get(META_DOT_CEILING)? {
            Some(bytes) => read_u64(&bytes, "dot_ceiling")?,
            None => 0,
        };
        let locks = (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        let trees = Mutex::new(build_trees(&data)?);
        Ok(Self {
            db,
            data,
            meta,
            hints,
            trees,
            locks,
            lock_hasher: RandomState::new(),
            incarnation,
            fresh,
            // Every counter up to the stored ceiling may have been handed out.
            next_dot: AtomicU64::new(ceiling),
            dot_ceiling: Mutex::new(ceiling),
            group_commit: GroupCommit::default(),
            max_versions: usize::MAX,
        })
    }

    /// The same storage refusing merges (of replica data and of hints) that
    /// would grow a key's set past `max_versions` versions; unbounded by
    /// default.
    pub fn with_max_versions(mut self, max_versions: usize) -> Self {
        self.max_versions = max_versions;
        self.hints.set_max_versions(max_versions);
        self
    }

    /// True when this open created the database: the node starts with an
    /// empty disk.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// This node's incarnation id.
    pub fn incarnation(&self) -> NodeId {
        self.incarnation
    }

    /// The local sibling set of a key (empty when absent).
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure or a corrupt record.
    pub fn read(&self, partition: u32, key: &[u8]) -> Result<SiblingSet, StorageError> {
        match self.data.get(data_key(partition, key))? {
            Some(bytes) => {
                codec::decode(&bytes).map_err(|source| StorageError::Corrupt { partition, source })
            }
            None => Ok(SiblingSet::new()),
        }
    }

    /// Writes a new version of a key: gives it a fresh dot, replaces the
    /// versions its context has seen, stores the new set and returns it with
    /// the new dot.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure or when the write would leave more than
    /// `max_siblings` siblings (nothing is written then).
    pub fn write_new_version(
        &self,
        partition: u32,
        key: &[u8],
        write: NewWrite,
        max_siblings: usize,
        durability: Durability,
    ) -> Result<(SiblingSet, Dot), StorageError> {
        let guard = self.lock(partition, key);
        let mut set = self.read(partition, key)?;
        let dot = self.next_dot()?;
        let version = Version {
            dot,
            past: write.context.clone(),
            value: write.value,
            tombstone: write.tombstone,
            timestamp_ms: write.timestamp_ms,
        };
        let old = (!set.is_empty()).then(|| set_digest(&set));
        set.apply(&write.context, version);
        if set.len() > max_siblings {
            return Err(StorageError::TooManySiblings {
                count: set.len(),
                limit: max_siblings,
            });
        }
        self.store(partition, key, old, &set)?;
        drop(guard);
        self.make_durable(durability)?;
        Ok((set, dot))
    }

    /// Merges versions from another replica into the local copy. Returns the
    /// merged set.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure or a corrupt local record, or
    /// [`StorageError::TooManySiblings`] when the merge would grow the set
    /// past the bound of [`Storage::with_max_versions`] (nothing is written
    /// then).
    pub fn merge(
        &self,
        partition: u32,
        key: &[u8],
        incoming: &SiblingSet,
        durability: Durability,
    ) -> Result<SiblingSet, StorageError> {
        let guard = self.lock(partition, key);
        let mut set = self.read(partition, key)?;
        let old = (!set.is_empty()).then(|| set_digest(&set));
        let before = set.len();
        if set.merge(incoming) {
            check_growth(before, set.len(), self.max_versions)?;
            self.store(partition, key, old, &set)?;
        }
        drop(guard);
        // Even an unchanged set is fsynced: the caller may acknowledge it as
        // durable, and the version may have come from an unsynced write.
        self.make_durable(durability)?;
        Ok(set)
    }

    /// Merges versions of many keys (one frame of replica writes) into the
    /// local copies with one journal append and at most one fsync. Each
    /// key's outcome is its own: a corrupt local record, or a merge past the
    /// version bound (as in [`Storage::merge`]), fails only its key.
    ///
    /// # Errors
    /// [`StorageError`] when the batch could not be written or fsynced (no
    /// key of it is acknowledged then).
    pub fn merge_batch(
        &self,
        items: &[Merge],
        durability: Durability,
    ) -> Result<Vec<Result<(), StorageError>>, StorageError> {
        // Stripes are taken in ascending order, so two batches never wait
        // on each other; a single-key write holds one stripe only.
        let mut stripes: Vec<usize> = items
            .iter()
            .map(|item| self.stripe(item.partition, &item.key))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let guards: Vec<_> = stripes
            .iter()
            .map(|&stripe| self.lock_stripe(stripe))
            .collect();
        let mut batch = self.db.batch();
        let mut merged: HashMap<(u32, &[u8]), SiblingSet> = HashMap::new();
        let mut tree = Vec::new();
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let slot = (item.partition, &item.key[..]);
            let mut set = match merged.remove(&slot) {
                Some(set) => set,
                None => match self.read(item.partition, &item.key) {
                    Ok(set) => set,
                    Err(error) => {
                        outcomes.push(Err(error));
                        continue;
                    }
                },
            };
            let old = (!set.is_empty()).then(|| set_digest(&set));
            // Only a merge that could pass the version bound pays for a copy
            // to fall back to.
            let unchanged =
                (set.len() + item.incoming.len() > self.max_versions).then(|| set.clone());
            if set.merge(&item.incoming) {
                if let Some(unchanged) = unchanged
                    && let Err(error) = check_growth(unchanged.len(), set.len(), self.max_versions)
                {
                    merged.insert(slot, unchanged);
                    outcomes.push(Err(error));
                    continue;
                }
                batch.insert(
                    &self.data,
                    data_key(item.partition, &item.key),
                    codec::encode(&set),
                );
                tree.push((item.partition, &item.key[..], old, set_digest(&set)));
            }
            merged.insert(slot, set);
            outcomes.push(Ok(()));
        }
        batch.commit()?;
        for (partition, key, old, new) in tree {
            self.tree_update(partition, key, old, Some(new));
        }
        drop(guards);
        self.make_durable(durability)?;
        Ok(outcomes)
    }

    /// Approximate number of keys stored.
    pub fn approximate_keys(&self) -> u64 {
        self.data.approximate_len() as u64
    }

    /// Sizes of the database, read from fjall's own bookkeeping.
    pub fn sizes(&self) -> Sizes {
        Sizes {
            keyspaces: vec![
                (
                    "data",
                    self.data.disk_space(),
                    self.data.approximate_len() as u64,
                ),
                (
                    "hints",
                    self.hints.disk_space(),
                    self.hints.approximate_len(),
                ),
                (
                    "meta",
                    self.meta.disk_space(),
                    self.meta.approximate_len() as u64,
                ),
            ],
            journal_bytes: self.db.journal_disk_space().unwrap_or(0),
            write_buffer_bytes: self.db.write_buffer_size(),
        }
    }

    /// Fsyncs everything written so far.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Removes a key whose versions are all tombstones, if its digest is
    /// still `digest`. Returns true when removed.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure or a corrupt record.
    pub fn forget_tombstone(
        &self,
        partition: u32,
        key: &[u8],
        digest: u64,
    ) -> Result<bool, StorageError> {
        let _guard = self.lock(partition, key);
        let set = self.read(partition, key)?;
        if set.is_empty() || set.live().next().is_some() || set_digest(&set) != digest {
            return Ok(false);
        }
        self.data.remove(data_key(partition, key))?;
        self.tree_update(partition, key, Some(digest), None);
        Ok(true)
    }

    /// Hashes of one level of the Merkle tree of the keys of `partition`
    /// whose bucket has N = `n`.
    pub fn tree_level(&self, partition: u32, n: u32, level: u32, parents: &[u32]) -> Vec<u64> {
        let trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        let tree = u8::try_from(n)
            .ok()
            .and_then(|n| trees.get(&(partition, n)));
        match tree {
            Some(tree) => tree.level(level, parents),
            None => Tree::default().level(level, parents),
        }
    }

    /// Every key of `partition` whose bucket has N = `n`, with its set
    /// digest, filtered by `keep`.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure or a corrupt record.
    pub fn scan_partition(
        &self,
        partition: u32,
        n: u32,
        mut keep: impl FnMut(&[u8], &SiblingSet) -> bool,
    ) -> Result<Vec<(Bytes, u64)>, StorageError> {
        let mut out = Vec::new();
        let Some(prefix) = shard_prefix(partition, n) else {
            return Ok(out);
        };
        for item in self.data.prefix(prefix) {
            let (key, value) = item.into_inner()?;
            let set = codec::decode(&value)
                .map_err(|source| StorageError::Corrupt { partition, source })?;
            let user_key = &key[4..];
            if keep(user_key, &set) {
                out.push((Bytes::copy_from_slice(user_key), set_digest(&set)));
            }
        }
        Ok(out)
    }

    /// Up to about `max_bytes` of the records of `partition` whose bucket
    /// has N = `n`, after key `after` (exclusive; empty starts at the
    /// beginning), in key order.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure or a corrupt record.
    pub fn chunk(
        &self,
        partition: u32,
        n: u32,
        after: &[u8],
        max_bytes: usize,
    ) -> Result<Vec<(Bytes, SiblingSet)>, StorageError> {
        use std::ops::Bound;
        let Some(prefix) = shard_prefix(partition, n) else {
            return Ok(Vec::new());
        };
        let lower = if after.is_empty() {
            Bound::Included(prefix.to_vec())
        } else {
            Bound::Excluded(data_key(partition, after))
        };
        // The next (partition, N) prefix; N = 255 ends at the next partition.
        let upper = match u64::from_be_bytes([
            0, 0, 0, prefix[0], prefix[1], prefix[2], prefix[3], prefix[4],
        ])
        .checked_add(1)
        .filter(|&next| next < 1 << 40)
        {
            Some(next) => Bound::Excluded(next.to_be_bytes()[3..].to_vec()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in self.data.range::<Vec<u8>, _>((lower, upper)) {
            let (key, value) = item.into_inner()?;
            bytes += key.len() + value.len();
            let set = codec::decode(&value)
                .map_err(|source| StorageError::Corrupt { partition, source })?;
            out.push((Bytes::copy_from_slice(&key[4..]), set));
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes every key of `partition` whose bucket has N = `n`: a
    /// (partition, N) this node no longer replicates. Returns how many keys
    /// were removed.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure.
    pub fn drop_partition(&self, partition: u32, n: u32) -> Result<u64, StorageError> {
        let mut removed = 0;
        let Some(prefix) = shard_prefix(partition, n) else {
            return Ok(0);
        };
        loop {
            let keys: Vec<_> = self
                .data
                .prefix(prefix)
                .take(1024)
                .map(|item| item.key())
                .collect::<Result<_, _>>()?;
            if keys.is_empty() {
                break;
            }
            let mut batch = self.db.batch();
            for key in &keys {
                batch.remove(&self.data, key.clone());
            }
            batch.commit()?;
            removed += keys.len() as u64;
        }
        self.trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(partition, prefix[4]));
        Ok(removed)
    }

    /// The (partition, N) pairs that hold at least one key, sorted.
    pub fn partitions_with_data(&self) -> Vec<(u32, u32)> {
        let trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        let mut partitions: Vec<(u32, u32)> = trees
            .keys()
            .map(|&(partition, n)| (partition, u32::from(n)))
            .collect();
        partitions.sort_unstable();
        partitions
    }

    /// The hint store.
    pub fn hints(&self) -> &hints::HintStore {
        &self.hints
    }

    /// The persisted ring, if any (an encoded `dynamo.v1.Ring`).
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure.
    pub fn load_ring(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.meta.get(META_RING)?.map(|bytes| bytes.to_vec()))
    }

    /// Persists an encoded ring durably.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure.
    pub fn save_ring(&self, encoded: Vec<u8>) -> Result<(), StorageError> {
        self.meta.insert(META_RING, encoded)?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Writes `set` to the journal and the Merkle tree. The journal write
    /// reaches the operating system; [`Storage::make_durable`] fsyncs it.
    fn store(
        &self,
        partition: u32,
        key: &[u8],
        old: Option<u64>,
        set: &SiblingSet,
    ) -> Result<(), StorageError> {
        self.data
            .insert(data_key(partition, key), codec::encode(set))?;
        self.tree_update(partition, key, old, Some(set_digest(set)));
        Ok(())
    }

    /// Fsyncs the journal when `durability` asks for it. Concurrent callers
    /// share one fsync (group commit), and none holds a key lock meanwhile.
    fn make_durable(&self, durability: Durability) -> Result<(), StorageError> {
        match durability {
            Durability::Buffer => Ok(()),
            Durability::Sync => Ok(self
                .group_commit
                .sync(|| self.db.persist(PersistMode::SyncData))?),
        }
    }

    /// Number of fsyncs that made writes durable (each may cover many writes).
    pub fn group_fsyncs(&self) -> u64 {
        self.group_commit.fsyncs()
    }

    fn tree_update(&self, partition: u32, key: &[u8], old: Option<u64>, new: Option<u64>) {
        let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        trees
            .entry((partition, key_factor(key)))
            .or_default()
            .update(KeyHash::of(key), old, new);
    }

    fn lock(&self, partition: u32, key: &[u8]) -> std::sync::MutexGuard<'_, ()> {
        self.lock_stripe(self.stripe(partition, key))
    }

    fn stripe(&self, partition: u32, key: &[u8]) -> usize {
        self.lock_hasher.hash_one((partition, key)) as usize % LOCK_STRIPES
    }

    fn lock_stripe(&self, stripe: usize) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned stripe only means another write panicked; the data is in
        // fjall, not behind the mutex.
        self.locks[stripe]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands out the next dot of this incarnation. Counters are leased in
    /// blocks whose ceiling is fsynced first, so a restart never reuses one.
    fn next_dot(&self) -> Result<Dot, StorageError> {
        let counter = self.next_dot.fetch_add(1, Ordering::SeqCst) + 1;
        let mut ceiling = self
            .dot_ceiling
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if counter > *ceiling {
            let new_ceiling = counter + DOT_LEASE;
            self.meta
                .insert(META_DOT_CEILING, new_ceiling.to_le_bytes().to_vec())?;
            self.db.persist(PersistMode::SyncAll)?;
            *ceiling = new_ceiling;
        }
        Ok(Dot {
            node: self.incarnation,
            counter,
        })
    }
}

/// Builds every (partition, N) Merkle tree from the stored records.
fn build_trees(data: &Keyspace) -> Result<HashMap<(u32, u8), Tree>, StorageError> {
    let mut trees: HashMap<(u32, u8), Tree> = HashMap::new();
    for item in data.iter() {
        let (key, value) = item.into_inner()?;
        let Some((partition, user_key)) = split_data_key(&key) else {
            continue;
        };
        let set =
            codec::decode(&value).map_err(|source| StorageError::Corrupt { partition, source })?;
        trees
            .entry((partition, key_factor(user_key)))
            .or_default()
            .update(KeyHash::of(user_key), None, Some(set_digest(&set)));
    }
    Ok(trees)
}

/// Refuses a data directory of another format, and marks a new one.
fn check_format(
    db: &Database,
    meta: &Keyspace,
    data: &Keyspace,
    hints: &hints::HintStore,
    fresh: bool,
) -> Result<(), StorageError> {
    let found = match meta.get(META_FORMAT)? {
        Some(bytes) => read_u64(&bytes, "format")?,
        // A directory from before buckets; empty ones are simply adopted.
        None if !fresh && (!data.is_empty()? || hints.approximate_len() > 0) => 1,
        None => {
            meta.insert(META_FORMAT, FORMAT.to_le_bytes().to_vec())?;
            db.persist(PersistMode::SyncAll)?;
            FORMAT
        }
    };
    if found != FORMAT {
        return Err(StorageError::Format { found });
    }
    Ok(())
}

/// The first 5 bytes of the data keys of (partition, N), `None` for an N no
/// key can have.
fn shard_prefix(partition: u32, n: u32) -> Option<[u8; 5]> {
    let n = u8::try_from(n).ok()?;
    let [a, b, c, d] = partition.to_be_bytes();
    Some([a, b, c, d, n])
}

/// The N of a bucket-qualified key: its first byte (0 for a key too short
/// to have one, which no checked key is).
fn key_factor(key: &[u8]) -> u8 {
    key.first().copied().unwrap_or(0)
}

fn split_data_key(key: &[u8]) -> Option<(u32, &[u8])> {
    let partition = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    Some((partition, &key[4..]))
}

fn data_key(partition: u32, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len());
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Refuses a merge that grows a set from `before` to `after` versions past
/// `limit`; a merge that does not grow it is always taken.
fn check_growth(before: usize, after: usize, limit: usize) -> Result<(), StorageError> {
    if after > limit && after > before {
        return Err(StorageError::TooManySiblings {
            count: after,
            limit,
        });
    }
    Ok(())
}

fn read_u64(bytes: &[u8], name: &'static str) -> Result<u64, StorageError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::CorruptMeta { name })?;
    Ok(u64::from_le_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn write(value: &str, context: Clock) -> NewWrite {
        NewWrite {
            value: Bytes::copy_from_slice(value.as_bytes()),
            tombstone: false,
            context,
            timestamp_ms: 1,
        }
    }

    #[test]
    fn writes_survive_reopen_and_dots_are_never_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (incarnation, first) = {
            let storage = Storage::open(dir.path(), 100).expect("open");
            let (_, dot) = storage
                .write_new_version(3, b"k", write("a", Clock::new()), 10, Durability::Sync)
                .expect("write");
            (storage.incarnation(), dot)
        };
        let storage = Storage::open(dir.path(), 100).expect("reopen");
        assert_eq!(storage.incarnation(), incarnation);
        let set = storage.read(3, b"k").expect("read");
        assert_eq!(set.versions()[0].value, Bytes::from_static(b"a"));
        let (set, second) = storage
            .write_new_version(3, b"k", write("b", Clock::new()), 10, Durability::Buffer)
            .expect("write");
        assert_eq!(set.len(), 2, "a blind write adds a sibling");
        assert_eq!(second.node, first.node);
        assert!(
            second.counter > first.counter,
            "dots are not reused after a restart"
        );
    }

    #[test]
    fn a_batch_of_merges_ends_where_merging_one_by_one_ends() {
        let (source_dir, batch_dir, single_dir) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let source = Storage::open(source_dir.path(), 100).expect("open");
        let mut merges = Vec::new();
        for (i, key) in ["a", "b", "a", "c", "b"].iter().enumerate() {
            let (set, _) = source
                .write_new_version(
                    7,
                    key.as_bytes(),
                    write(&format!("v{i}"), Clock::new()),
                    10,
                    Durability::Buffer,
                )
                .expect("write");
            merges.push(Merge {
                partition: 7,
                key: Bytes::copy_from_slice(key.as_bytes()),
                incoming: set,
            });
        }
        let batched = Storage::open(batch_dir.path(), 100).expect("open");
        let outcomes = batched
            .merge_batch(&merges, Durability::Sync)
            .expect("batch");
        assert!(outcomes.iter().all(Result::is_ok));
        let single = Storage::open(single_dir.path(), 100).expect("open");
        for merge in &merges {
            single
                .merge(
                    merge.partition,
                    &merge.key,
                    &merge.incoming,
                    Durability::Buffer,
                )
                .expect("merge");
        }
        for key in ["a", "b", "c"] {
            let expected = single.read(7, key.as_bytes()).expect("read");
            assert_eq!(
                batched.read(7, key.as_bytes()).expect("read"),
                expected,
                "{key}"
            );
            assert_eq!(
                source.read(7, key.as_bytes()).expect("read"),
                expected,
                "{key}"
            );
        }
        // Raw test keys: each key's first byte stands for its N.
        for n in [b'a', b'b', b'c'].map(u32::from) {
            assert_eq!(
                batched.tree_level(7, n, 0, &[]),
                single.tree_level(7, n, 0, &[])
            );
        }
        drop(batched);
        let reopened = Storage::open(batch_dir.path(), 100).expect("reopen");
        assert_eq!(
            reopened.read(7, b"a").expect("read"),
            single.read(7, b"a").expect("read")
        );
    }

    #[test]
    fn merges_may_not_grow_a_set_past_the_version_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), 100)
            .expect("open")
            .with_max_versions(2);
        let version = |node: u64| Version {
            dot: Dot { node, counter: 1 },
            past: Clock::new(),
            value: Bytes::from_static(b"v"),
            tombstone: false,
            timestamp_ms: 1,
        };
        let two = SiblingSet::from_versions(vec![version(1), version(2)]);
        storage
            .merge(0, b"k", &two, Durability::Buffer)
            .expect("fits");
        let third = SiblingSet::from_versions(vec![version(3)]);
        assert!(matches!(
            storage.merge(0, b"k", &third, Durability::Buffer),
            Err(StorageError::TooManySiblings { count: 3, limit: 2 })
        ));
        assert_eq!(storage.read(0, b"k").expect("read").len(), 2, "unchanged");
        // A merge that replaces versions without growing the set is taken.
        let mut past = Clock::new();
        past.observe(Dot {
            node: 1,
            counter: 1,
        });
        let newer = Version {
            dot: Dot {
                node: 4,
                counter: 1,
            },
            past,
            ..version(4)
        };
        let replacing = SiblingSet::from_versions(vec![newer]);
        let merged = storage
            .merge(0, b"k", &replacing, Durability::Buffer)
            .expect("does not grow");
        assert_eq!(merged.len(), 2);
        let hint = storage.hints().add("t", 0, b"h", &two, Durability::Buffer);
        assert!(hint.is_ok());
        assert!(matches!(
            storage
                .hints()
                .add("t", 0, b"h", &third, Durability::Buffer),
            Err(StorageError::TooManySiblings { .. })
        ));
    }

    #[test]
    fn sibling_limit_refuses_without_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), 100).expect("open");
        for value in ["a", "b"] {
            storage
                .write_new_version(0, b"k", write(value, Clock::new()), 2, Durability::Buffer)
                .expect("write");
        }
        let refused =
            storage.write_new_version(0, b"k", write("c", Clock::new()), 2, Durability::Buffer);
        assert!(matches!(
            refused,
            Err(StorageError::TooManySiblings { count: 3, limit: 2 })
        ));
        assert_eq!(storage.read(0, b"k").expect("read").len(), 2);
    }

    /// The tree of raw test key "live": its first byte stands for its N.
    const LIVE_N: u32 = b'l' as u32;

    #[test]
    fn trees_are_rebuilt_on_open_and_forget_drops_only_tombstones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, tomb_digest) = {
            let storage = Storage::open(dir.path(), 100).expect("open");
            storage
                .write_new_version(5, b"live", write("v", Clock::new()), 10, Durability::Buffer)
                .expect("write");
            let deleted = NewWrite {
                tombstone: true,
                ..write("", Clock::new())
            };
            let (set, _) = storage
                .write_new_version(5, b"gone", deleted, 10, Durability::Buffer)
                .expect("delete");
            (storage.tree_level(5, LIVE_N, 0, &[]), set_digest(&set))
        };
        let storage = Storage::open(dir.path(), 100).expect("reopen");
        assert_eq!(storage.tree_level(5, LIVE_N, 0, &[]), root);
        assert_ne!(root, vec![0]);
        let live = storage.read(5, b"live").expect("read");
        assert!(
            !storage
                .forget_tombstone(5, b"live", set_digest(&live))
                .expect("forget")
        );
        assert!(
            !storage
                .forget_tombstone(5, b"gone", tomb_digest ^ 1)
                .expect("forget")
        );
        assert!(
            storage
                .forget_tombstone(5, b"gone", tomb_digest)
                .expect("forget")
        );
        assert!(storage.read(5, b"gone").expect("read").is_empty());
    }

    #[test]
    fn new_directories_get_new_incarnations() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let first = Storage::open(a.path(), 100).expect("open").incarnation();
        let second = Storage::open(b.path(), 100).expect("open").incarnation();
        assert_ne!(first, second);
    }
}
