//! One anti-entropy exchange between this node and one peer for one
//! partition: compare roots, descend into differing inner nodes and leaf
//! segments, compare key digests there, and merge only differing keys both
//! ways. Also tombstone garbage collection, run by a partition's first
//! replica.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::peer_client::PeerClient;
use prost::Message;
use tonic::transport::Channel;

use super::merkle::{self, FANOUT, INNER, KeyHash, LEAVES, ROOT, set_digest};
use super::{Pacer, Stats, now_ms};
use crate::node::Node;
use crate::peers::peer_call;
use crate::ring::Ring;
use crate::storage::Durability;
use crate::wire;

/// Byte counters of one exchange.
struct Traffic<'a> {
    node: &'a Node,
    address: String,
    stats: Stats,
}

impl Traffic<'_> {
    /// One `Peer` call whose request and response sizes are counted.
    async fn metered<Req, Resp, F, Fut>(&mut self, request: Req, call: F) -> Result<Resp, String>
    where
        Req: Message,
        Resp: Message,
        F: FnOnce(PeerClient<Channel>, Req) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.stats.bytes_sent += request.encoded_len() as u64;
        let timeout = self.node.config().peer_timeout();
        let response = peer_call(self.node.peers(), &self.address, timeout, |client| {
            call(client, request)
        })
        .await?;
        self.stats.bytes_received += response.encoded_len() as u64;
        Ok(response)
    }

    async fn level(
        &mut self,
        partition: u32,
        level: u32,
        parents: Vec<u32>,
    ) -> Result<Vec<u64>, String> {
        let request = pb::MerkleLevelRequest {
            partition,
            level,
            parents,
        };
        let response = self
            .metered(request, |mut c, r| async move { c.merkle_level(r).await })
            .await?;
        Ok(response.hashes)
    }

    async fn segment_keys(
        &mut self,
        partition: u32,
        segments: Vec<u32>,
    ) -> Result<Vec<pb::KeyDigest>, String> {
        let request = pb::SegmentKeysRequest {
            partition,
            segments,
        };
        let response = self
            .metered(request, |mut c, r| async move { c.segment_keys(r).await })
            .await?;
        Ok(response.keys)
    }

    async fn read(&mut self, key: Bytes) -> Result<pb::ReplicaReadResponse, String> {
        let request = pb::ReplicaReadRequest { key };
        self.metered(request, |mut c, r| async move { c.replica_read(r).await })
            .await
    }

    async fn write(&mut self, key: Bytes, siblings: pb::SiblingSet) -> Result<(), String> {
        let request = pb::ReplicaWriteRequest {
            key,
            siblings: Some(siblings),
            sync: false,
        };
        self.metered(request, |mut c, r| async move { c.replica_write(r).await })
            .await?;
        Ok(())
    }
}

/// Brings this node's and `peer`'s copies of `partition` in line.
///
/// # Errors
/// A sentence when the peer could not be reached or storage failed.
pub async fn exchange(
    node: &Arc<Node>,
    ring: &Ring,
    partition: u32,
    peer: u32,
    pacer: &mut Pacer,
) -> Result<Stats, String> {
    let mut traffic = Traffic {
        node,
        address: ring.member(peer).address.clone(),
        stats: Stats {
            exchanges: 1,
            ..Stats::default()
        },
    };
    let storage = node.storage();
    let remote_root = traffic.level(partition, ROOT, Vec::new()).await?;
    if remote_root == storage.tree_level(partition, ROOT, &[]) {
        return Ok(traffic.stats);
    }
    traffic.stats.differing = 1;
    let remote_inner = traffic.level(partition, INNER, Vec::new()).await?;
    let inner = merkle::differing(&storage.tree_level(partition, INNER, &[]), &remote_inner);
    let remote_leaves = traffic.level(partition, LEAVES, inner.clone()).await?;
    let segments: BTreeSet<u32> = merkle::differing(
        &storage.tree_level(partition, LEAVES, &inner),
        &remote_leaves,
    )
    .into_iter()
    .map(|i| inner[i as usize / FANOUT] * FANOUT as u32 + i % FANOUT as u32)
    .collect();
    if segments.is_empty() {
        return Ok(traffic.stats);
    }
    let remote: BTreeMap<Bytes, u64> = traffic
        .segment_keys(partition, segments.iter().copied().collect())
        .await?
        .into_iter()
        .map(|entry| (entry.key, entry.digest))
        .collect();
    let local: BTreeMap<Bytes, u64> = storage
        .scan_partition(partition, |key, _| {
            segments.contains(&KeyHash::of(key).segment)
        })
        .map_err(|error| error.to_string())?
        .into_iter()
        .collect();
    let keys: BTreeSet<&Bytes> = local
        .iter()
        .filter(|(key, digest)| remote.get(*key) != Some(digest))
        .map(|(key, _)| key)
        .chain(remote.keys().filter(|key| !local.contains_key(*key)))
        .collect();
    for key in keys {
        pacer.wait().await;
        let mut merged = storage.read(partition, key).map_err(|e| e.to_string())?;
        if remote.contains_key(key) {
            let theirs = traffic.read(key.clone()).await?;
            let theirs = wire::set_from_pb(theirs.siblings).map_err(|e| e.to_string())?;
            merged = storage
                .merge(partition, key, &theirs, Durability::Buffer)
                .map_err(|e| e.to_string())?;
        }
        if remote.get(key) != Some(&set_digest(&merged)) {
            traffic.write(key.clone(), wire::set_to_pb(&merged)).await?;
        }
        traffic.stats.keys_repaired += 1;
    }
    Ok(traffic.stats)
}

/// Drops tombstones of `partition` that are older than the grace period,
/// held identically by every replica, and not shadowing a hint queued
/// anywhere (a late hint would bring the deleted value back). Returns how
/// many were dropped.
pub async fn collect_tombstones(node: &Arc<Node>, ring: &Ring, partition: u32) -> u64 {
    let cutoff = now_ms().saturating_sub(node.config().background.tombstone_grace_ms);
    let candidates = node.storage().scan_partition(partition, |_, set| {
        set.live().next().is_none() && set.versions().iter().all(|v| v.timestamp_ms <= cutoff)
    });
    let Ok(candidates) = candidates else {
        return 0;
    };
    let me = ring.index_of(node.id());
    let others: Vec<String> = ring
        .preference(partition)
        .iter()
        .filter(|&&member| Some(member) != me)
        .map(|&member| ring.member(member).address.clone())
        .collect();
    let everyone: Vec<String> = ring
        .members()
        .iter()
        .filter(|member| member.id != node.id())
        .map(|member| member.address.clone())
        .collect();
    let timeout = node.config().peer_timeout();
    let mut dropped = 0;
    'keys: for (key, digest) in candidates {
        if !matches!(node.storage().hints().holds(partition, &key), Ok(false)) {
            continue;
        }
        for address in &everyone {
            let request = pb::HoldsHintRequest { key: key.clone() };
            let held = peer_call(node.peers(), address, timeout, |mut c| async move {
                c.holds_hint(request).await
            })
            .await;
            if !matches!(held, Ok(pb::HoldsHintResponse { held: false })) {
                continue 'keys;
            }
        }
        for address in &others {
            let request = pb::ReplicaReadRequest { key: key.clone() };
            let copy = peer_call(node.peers(), address, timeout, |mut c| async move {
                c.replica_read(request).await
            })
            .await
            .and_then(|response| wire::set_from_pb(response.siblings).map_err(|e| e.to_string()));
            match copy {
                Ok(set) if set_digest(&set) == digest => {}
                _ => continue 'keys,
            }
        }
        for address in &others {
            let request = pb::ForgetTombstoneRequest {
                key: key.clone(),
                digest,
            };
            let forgotten = peer_call(node.peers(), address, timeout, |mut c| async move {
                c.forget_tombstone(request).await
            })
            .await;
            if !matches!(
                forgotten,
                Ok(pb::ForgetTombstoneResponse { forgotten: true })
            ) {
                // The others still hold it; anti-entropy brings it back here
                // as a tombstone, never as a value.
                continue 'keys;
            }
        }
        if matches!(
            node.storage().forget_tombstone(partition, &key, digest),
            Ok(true)
        ) {
            dropped += 1;
        }
    }
    dropped
}
