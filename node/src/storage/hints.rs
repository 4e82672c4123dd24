//! The hint store: versions a fallback node keeps for a replica that was
//! unreachable (sloppy quorum), until that replica acknowledges them.
//!
//! Keys are `target length u16 BE | target id | partition u32 BE | user key`,
//! so one target's hints are a contiguous range. The store is bounded; a
//! full store refuses new keys and the coordinator tries the next fallback.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Durability, StorageError};
use crate::codec;
use crate::version::SiblingSet;

/// One hinted key.
#[derive(Clone, Debug, PartialEq)]
pub struct Hint {
    /// Partition of the key.
    pub partition: u32,
    /// The key.
    pub key: Bytes,
    /// Versions to deliver.
    pub set: SiblingSet,
}

/// The persisted, bounded hint store.
pub struct HintStore {
    db: Database,
    hints: Keyspace,
    limit: u64,
    /// Most versions a hinted key may hold.
    max_versions: usize,
    /// Keys queued per target; the lock also serializes hint writes.
    counts: Mutex<BTreeMap<String, u64>>,
}

impl HintStore {
    /// Opens the `hints` keyspace and counts what it holds.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure.
    pub fn open(db: &Database, limit: u64) -> Result<Self, StorageError> {
        let hints = db.keyspace("hints", KeyspaceCreateOptions::default)?;
        let mut counts = BTreeMap::new();
        for item in hints.iter() {
            let key = item.key()?;
            if let Some((target, _, _)) = split_key(&key) {
                *counts.entry(target.to_owned()).or_insert(0) += 1;
            }
        }
        Ok(Self {
            db: db.clone(),
            hints,
            limit,
            max_versions: usize::MAX,
            counts: Mutex::new(counts),
        })
    }

    /// Refuses hints that would grow a key's set past `max_versions`.
    pub fn set_max_versions(&mut self, max_versions: usize) {
        self.max_versions = max_versions;
    }

    /// Adds versions for `target`, merging with a hint already queued.
    ///
    /// # Errors
    /// [`StorageError::HintsFull`] when a new key would pass the limit,
    /// [`StorageError::TooManySiblings`] when the key's hinted set would grow
    /// past [`HintStore::set_max_versions`], or I/O failure.
    pub fn add(
        &self,
        target: &str,
        partition: u32,
        key: &[u8],
        incoming: &SiblingSet,
        durability: Durability,
    ) -> Result<(), StorageError> {
        let mut counts = self.lock();
        let hint_key = make_key(target, partition, key);
        let mut set = match self.hints.get(&hint_key)? {
            Some(bytes) => codec::decode(&bytes)
                .map_err(|source| StorageError::Corrupt { partition, source })?,
            None => {
                if counts.values().sum::<u64>() >= self.limit {
                    return Err(StorageError::HintsFull { limit: self.limit });
                }
                SiblingSet::new()
            }
        };
        let is_new = set.is_empty();
        let before = set.len();
        set.merge(incoming);
        super::check_growth(before, set.len(), self.max_versions)?;
        let mut batch = self.db.batch();
        if durability == Durability::Sync {
            batch = batch.durability(Some(PersistMode::SyncData));
        }
        batch.insert(&self.hints, hint_key, codec::encode(&set));
        batch.commit()?;
        if is_new {
            *counts.entry(target.to_owned()).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Up to `limit` hints queued for `target`.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure or a corrupt record.
    pub fn pending(&self, target: &str, limit: usize) -> Result<Vec<Hint>, StorageError> {
        let mut out = Vec::new();
        for item in self.hints.prefix(target_prefix(target)).take(limit) {
            let (key, value) = item.into_inner()?;
            let Some((_, partition, user_key)) = split_key(&key) else {
                continue;
            };
            let set = codec::decode(&value)
                .map_err(|source| StorageError::Corrupt { partition, source })?;
            out.push(Hint {
                partition,
                key: Bytes::copy_from_slice(user_key),
                set,
            });
        }
        Ok(out)
    }

    /// Deletes a delivered hint, unless more versions arrived for it since it
    /// was read (those are delivered next round).
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure.
    pub fn delivered(&self, target: &str, hint: &Hint) -> Result<bool, StorageError> {
        let mut counts = self.lock();
        let hint_key = make_key(target, hint.partition, &hint.key);
        let Some(bytes) = self.hints.get(&hint_key)? else {
            return Ok(false);
        };
        let current = codec::decode(&bytes).map_err(|source| StorageError::Corrupt {
            partition: hint.partition,
            source,
        })?;
        if current != hint.set {
            return Ok(false);
        }
        self.hints.remove(hint_key)?;
        if let Some(count) = counts.get_mut(target) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(target);
            }
        }
        Ok(true)
    }

    /// True when a hint for `key` is queued for any target.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure.
    pub fn holds(&self, partition: u32, key: &[u8]) -> Result<bool, StorageError> {
        let targets: Vec<String> = self.lock().keys().cloned().collect();
        for target in targets {
            if self.hints.contains_key(make_key(&target, partition, key))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Keys queued per target.
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.lock()
            .iter()
            .map(|(target, count)| (target.clone(), *count))
            .collect()
    }

    /// Disk space of the hint tables.
    pub fn disk_space(&self) -> u64 {
        self.hints.disk_space()
    }

    /// Approximate number of hinted keys on disk.
    pub fn approximate_len(&self) -> u64 {
        self.hints.approximate_len() as u64
    }

    /// True when the store holds its limit.
    pub fn is_full(&self) -> bool {
        self.lock().values().sum::<u64>() >= self.limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn target_prefix(target: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + target.len());
    out.extend_from_slice(&(target.len() as u16).to_be_bytes());
    out.extend_from_slice(target.as_bytes());
    out
}

/// The hint store key of `key` in `partition`, queued for `target`.
pub fn make_key(target: &str, partition: u32, key: &[u8]) -> Vec<u8> {
    let mut out = target_prefix(target);
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits a hint store key read from disk into target, partition and user
/// key; `None` when the bytes are not such a key.
pub fn split_key(key: &[u8]) -> Option<(&str, u32, &[u8])> {
    let len = u16::from_be_bytes(key.get(..2)?.try_into().ok()?) as usize;
    let target = std::str::from_utf8(key.get(2..2 + len)?).ok()?;
    let rest = key.get(2 + len..)?;
    let partition = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    Some((target, partition, &rest[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Clock, Dot, Version};

    fn set(counter: u64) -> SiblingSet {
        SiblingSet::from_versions(vec![Version {
            dot: Dot { node: 1, counter },
            past: Clock::new(),
            value: Bytes::from_static(b"v"),
            tombstone: false,
            timestamp_ms: 0,
        }])
    }

    #[test]
    fn hints_survive_restart_and_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Database::builder(dir.path()).open().expect("open");
            let store = HintStore::open(&db, 2).expect("hints");
            store
                .add("b", 1, b"k1", &set(1), Durability::Sync)
                .expect("add");
            store
                .add("b", 1, b"k1", &set(2), Durability::Sync)
                .expect("merge");
            store
                .add("c", 2, b"k2", &set(3), Durability::Sync)
                .expect("add");
            assert!(matches!(
                store.add("c", 2, b"k3", &set(4), Durability::Sync),
                Err(StorageError::HintsFull { limit: 2 })
            ));
            assert!(store.is_full());
        }
        let db = Database::builder(dir.path()).open().expect("reopen");
        let store = HintStore::open(&db, 2).expect("hints");
        assert_eq!(store.counts(), vec![("b".into(), 1), ("c".into(), 1)]);
        let pending = store.pending("b", 10).expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].set.len(), 2, "both merged versions are kept");
        store
            .add("b", 1, b"k1", &set(5), Durability::Buffer)
            .expect("more");
        assert!(
            !store.delivered("b", &pending[0]).expect("changed"),
            "newer versions stay"
        );
        let pending = store.pending("b", 10).expect("pending");
        assert!(store.delivered("b", &pending[0]).expect("delivered"));
        assert_eq!(store.counts(), vec![("c".into(), 1)]);
    }
}
