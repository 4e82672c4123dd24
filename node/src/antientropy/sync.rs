//! One anti-entropy exchange between this node and one peer for one
//! partition: compare roots, descend into differing inner nodes and leaf
//! segments, compare key digests there, and merge only differing keys both
//! ways. Also tombstone garbage collection, run by a partition's first
//! replica.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use prost::Message;
use thiserror::Error;

use super::{Pacer, Stats};
use crate::merkle::{self, INNER, KeyHash, LEAVES, ROOT, set_digest};
use crate::peers::{PeerError, Peers};
use crate::replica::{Replica, ReplicaError};
use crate::ring::{Member, Ring};
use crate::storage::{Durability, StorageError};
use crate::wire;

/// Why an exchange stopped.
#[derive(Debug, Error)]
pub enum SyncError {
    /// The peer did not answer or refused.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Local storage failed.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

impl From<StorageError> for SyncError {
    fn from(error: StorageError) -> Self {
        Self::Replica(ReplicaError::Storage(error))
    }
}

/// One exchange of a partition with one peer.
pub struct Exchange<'a> {
    /// This node's replicas.
    pub replica: &'a Replica,
    /// The peer client.
    pub peers: &'a Arc<Peers>,
    /// The other replica.
    pub peer: &'a Member,
}

impl Exchange<'_> {
    /// Brings this node's and the peer's copies of the keys of `partition`
    /// whose bucket has N = `n` in line (one tree per (partition, N), so
    /// only replicas of that N compare).
    ///
    /// # Errors
    /// [`SyncError`] when the peer could not be reached or storage failed.
    pub async fn run(&self, partition: u32, n: u32, pacer: &mut Pacer) -> Result<Stats, SyncError> {
        let mut stats = Stats {
            exchanges: 1,
            ..Stats::default()
        };
        let replica = self.replica;
        let remote_root = self
            .level(&mut stats, partition, n, ROOT, Vec::new())
            .await?;
        if remote_root == replica.tree_level(partition, n, ROOT, &[]) {
            return Ok(stats);
        }
        stats.differing = 1;
        let remote_inner = self
            .level(&mut stats, partition, n, INNER, Vec::new())
            .await?;
        let inner = merkle::differing(&replica.tree_level(partition, n, INNER, &[]), &remote_inner);
        let remote_leaves = self
            .level(&mut stats, partition, n, LEAVES, inner.clone())
            .await?;
        let segments = merkle::differing_segments(
            &inner,
            &replica.tree_level(partition, n, LEAVES, &inner),
            &remote_leaves,
        );
        if segments.is_empty() {
            return Ok(stats);
        }
        let request = pb::SegmentKeysRequest {
            partition,
            n,
            segments: segments.iter().copied().collect(),
        };
        stats.bytes_sent += request.encoded_len() as u64;
        let response = self.peers.segment_keys(self.peer, request).await?;
        stats.bytes_received += response.encoded_len() as u64;
        let remote: BTreeMap<Bytes, u64> = response
            .keys
            .into_iter()
            .map(|entry| (entry.key, entry.digest))
            .collect();
        let storage = replica.storage();
        let local: BTreeMap<Bytes, u64> = storage
            .scan_partition(partition, n, |key, _| {
                segments.contains(&KeyHash::of(key).segment)
            })?
            .into_iter()
            .collect();
        let keys: BTreeSet<&Bytes> = local
            .iter()
            .filter(|(key, digest)| remote.get(*key) != Some(digest))
            .map(|(key, _)| key)
            .chain(remote.keys().filter(|key| !local.contains_key(*key)))
            .collect();
        let deadline = || tokio::time::Instant::now() + self.peers.settings().ceiling;
        for key in keys {
            pacer.wait().await;
            let mut merged = storage.read(partition, key)?;
            if remote.contains_key(key) {
                stats.bytes_sent +=
                    pb::ReplicaReadRequest { key: key.clone() }.encoded_len() as u64;
                let theirs = self
                    .peers
                    .replica_read(self.peer, key.clone(), deadline())
                    .await?;
                let response = pb::ReplicaReadResponse {
                    siblings: Some(wire::set_to_pb(&theirs)),
                };
                stats.bytes_received += response.encoded_len() as u64;
                merged = storage.merge(partition, key, &theirs, Durability::Buffer)?;
            }
            if remote.get(key) != Some(&set_digest(&merged)) {
                let message = wire::set_to_pb(&merged);
                let request = pb::ReplicaWriteRequest {
                    key: key.clone(),
                    siblings: Some(message.clone()),
                    durability: pb::Durability::Buffer.into(),
                };
                stats.bytes_sent += request.encoded_len() as u64;
                self.peers
                    .replica_write(
                        self.peer,
                        key.clone(),
                        message,
                        Durability::Buffer,
                        deadline(),
                    )
                    .await?;
            }
            stats.keys_repaired += 1;
        }
        Ok(stats)
    }

    /// The peer's hashes of one tree level, counting the bytes.
    async fn level(
        &self,
        stats: &mut Stats,
        partition: u32,
        n: u32,
        level: u32,
        parents: Vec<u32>,
    ) -> Result<Vec<u64>, PeerError> {
        let request = pb::MerkleLevelRequest {
            partition,
            n,
            level,
            parents,
        };
        stats.bytes_sent += request.encoded_len() as u64;
        let response = self.peers.merkle_level(self.peer, request).await?;
        stats.bytes_received += response.encoded_len() as u64;
        Ok(response.hashes)
    }
}

/// Drops tombstones of `partition` in buckets with N = `n` older than
/// `cutoff_ms`, held identically by every replica of that N, and not shadowing a hint queued anywhere (a late hint
/// would bring the deleted value back). Returns how many were dropped.
pub async fn collect_tombstones(
    replica: &Replica,
    peers: &Arc<Peers>,
    ring: &Ring,
    me: &str,
    partition: u32,
    n: u32,
    cutoff_ms: u64,
) -> u64 {
    let storage = replica.storage();
    let candidates = storage.scan_partition(partition, n, |_, set| {
        set.live().next().is_none() && set.versions().iter().all(|v| v.timestamp_ms <= cutoff_ms)
    });
    let Ok(candidates) = candidates else {
        return 0;
    };
    let others: Vec<&Member> = ring
        .preference(partition, n)
        .iter()
        .map(|&member| ring.member(member))
        .filter(|member| member.id != me)
        .collect();
    let everyone: Vec<&Member> = ring.members().iter().filter(|m| m.id != me).collect();
    let mut dropped = 0;
    'keys: for (key, digest) in candidates {
        if !matches!(replica.holds_hint(partition, &key), Ok(false)) {
            continue;
        }
        for member in &everyone {
            if !matches!(peers.holds_hint(member, key.clone()).await, Ok(false)) {
                continue 'keys;
            }
        }
        for member in &others {
            let deadline = tokio::time::Instant::now() + peers.settings().ceiling;
            match peers.replica_read(member, key.clone(), deadline).await {
                Ok(set) if set_digest(&set) == digest => {}
                _ => continue 'keys,
            }
        }
        for member in &others {
            if !matches!(
                peers.forget_tombstone(member, key.clone(), digest).await,
                Ok(true)
            ) {
                // The others still hold it; anti-entropy brings it back here
                // as a tombstone, never as a value.
                continue 'keys;
            }
        }
        if matches!(replica.forget_tombstone(partition, &key, digest), Ok(true)) {
            dropped += 1;
        }
    }
    dropped
}
