//! What a test asks a running cluster through the `Admin` and `Peer`
//! services: member health, hint queues, anti-entropy passes, key placement
//! and each replica's local copy of a key.

use std::time::Duration;

use anyhow::Context;
use dynamo_proto::v1 as pb;

use crate::endpoints::Endpoints;
use crate::wait;

/// Where the keys of a cluster live, from one node's `Admin.GetRing`.
#[derive(Clone, Debug)]
pub struct Placement {
    partitions: u32,
    n: usize,
    members: Vec<String>,
    preferences: Vec<Vec<u32>>,
    /// Declared buckets and their N.
    buckets: Vec<(String, usize)>,
}

impl Placement {
    /// Member ids of the N replicas of `key`, in preference order.
    pub fn replicas(&self, key: &[u8]) -> Vec<String> {
        let partition = dynamo_node::ring::partition_of(key, self.partitions) as usize;
        self.preferences[partition]
            .iter()
            .take(self.n)
            .map(|&member| self.members[member as usize].clone())
            .collect()
    }

    /// Member ids of the fallbacks of `key` (sloppy quorum), in order.
    pub fn fallbacks(&self, key: &[u8]) -> Vec<String> {
        let partition = dynamo_node::ring::partition_of(key, self.partitions) as usize;
        self.preferences[partition]
            .iter()
            .skip(self.n)
            .map(|&member| self.members[member as usize].clone())
            .collect()
    }

    /// N of bucket `bucket` ("" is the default bucket), if declared.
    pub fn bucket_n(&self, bucket: &str) -> Option<usize> {
        if bucket.is_empty() {
            return Some(self.n);
        }
        self.buckets
            .iter()
            .find(|(name, _)| name == bucket)
            .map(|&(_, n)| n)
    }

    /// Member ids of the N replicas of `key` of `bucket`, in preference
    /// order (empty for an undeclared bucket).
    pub fn bucket_replicas(&self, bucket: &str, key: &[u8]) -> Vec<String> {
        let Some(n) = self.bucket_n(bucket) else {
            return Vec::new();
        };
        let partition = dynamo_ring::bucket_partition(bucket, key, self.partitions) as usize;
        self.preferences[partition]
            .iter()
            .take(n)
            .map(|&member| self.members[member as usize].clone())
            .collect()
    }

    /// The engine's bucket-qualified form of `key` of `bucket`, as replicas
    /// store and exchange it.
    pub fn engine_key(&self, bucket: &str, key: &[u8]) -> Vec<u8> {
        let n = self.bucket_n(bucket).unwrap_or(self.n);
        dynamo_ring::QualifiedKey {
            n: u8::try_from(n).unwrap_or(u8::MAX),
            bucket,
            key,
        }
        .encode()
    }

    /// True when member `id` replicates `key`.
    pub fn replicates(&self, id: &str, key: &[u8]) -> bool {
        self.replicas(key).iter().any(|replica| replica == id)
    }
}

/// Total keys queued as hints, per target member id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hints {
    /// `(target, keys)` summed over the nodes asked, sorted by target.
    pub queues: Vec<(String, u64)>,
    /// Nodes that said their hint store is full.
    pub full: Vec<String>,
}

impl Hints {
    /// Keys queued for `target`.
    pub fn for_target(&self, target: &str) -> u64 {
        self.queues
            .iter()
            .filter(|(id, _)| id == target)
            .map(|(_, keys)| keys)
            .sum()
    }

    /// Keys queued for anyone.
    pub fn total(&self) -> u64 {
        self.queues.iter().map(|(_, keys)| keys).sum()
    }
}

impl Endpoints {
    /// `Admin.Status` of node `i`.
    ///
    /// # Errors
    /// When the node does not answer in time.
    pub async fn status(&self, i: usize) -> anyhow::Result<pb::StatusResponse> {
        let response = self
            .admin(i)
            .status(pb::StatusRequest {})
            .await
            .with_context(|| format!("Admin.Status of node {i}"))?;
        Ok(response.into_inner())
    }

    /// Key placement as node `i` sees it.
    ///
    /// # Errors
    /// When the node does not answer or its ring is incomplete.
    pub async fn placement(&self, i: usize) -> anyhow::Result<Placement> {
        let response = self
            .admin(i)
            .get_ring(pb::GetRingRequest {})
            .await
            .with_context(|| format!("Admin.GetRing of node {i}"))?
            .into_inner();
        let ring = response.ring.context("GetRing returned no ring")?;
        anyhow::ensure!(
            response.preferences.len() == ring.owners.len(),
            "GetRing returned {} preference lists for {} partitions",
            response.preferences.len(),
            ring.owners.len()
        );
        Ok(Placement {
            partitions: u32::try_from(ring.owners.len()).context("partition count")?,
            n: ring.n as usize,
            members: ring.members.into_iter().map(|member| member.id).collect(),
            preferences: response
                .preferences
                .into_iter()
                .map(|preference| preference.members)
                .collect(),
            buckets: ring
                .buckets
                .into_iter()
                .map(|bucket| (bucket.name, bucket.n as usize))
                .collect(),
        })
    }

    /// What node `i` stores locally for default-bucket `key`.
    ///
    /// # Errors
    /// When the node does not answer in time.
    pub async fn replica_read(&self, i: usize, key: &[u8]) -> anyhow::Result<pb::SiblingSet> {
        self.bucket_replica_read(i, "", key).await
    }

    /// What node `i` stores locally for `key` of `bucket`.
    ///
    /// # Errors
    /// When the node does not answer in time.
    pub async fn bucket_replica_read(
        &self,
        i: usize,
        bucket: &str,
        key: &[u8],
    ) -> anyhow::Result<pb::SiblingSet> {
        let engine_key = self.placement(i).await?.engine_key(bucket, key);
        let response = self
            .peer(i)
            .replica_read(pb::ReplicaReadRequest {
                key: engine_key.into(),
            })
            .await
            .with_context(|| format!("Peer.ReplicaRead of node {i}"))?;
        Ok(response.into_inner().siblings.unwrap_or_default())
    }

    /// Runs one anti-entropy pass on node `i` and returns its figures.
    ///
    /// # Errors
    /// When the node fails the pass or does not finish in time.
    pub async fn anti_entropy(&self, i: usize) -> anyhow::Result<pb::AntiEntropyResponse> {
        let response = self
            .slow_admin(i)
            .anti_entropy(pb::AntiEntropyRequest {})
            .await
            .with_context(|| format!("Admin.AntiEntropy of node {i}"))?;
        Ok(response.into_inner())
    }

    /// Hint queues summed over `nodes`.
    ///
    /// # Errors
    /// When one of them does not answer.
    pub async fn hints(&self, nodes: &[usize]) -> anyhow::Result<Hints> {
        let mut hints = Hints::default();
        for &i in nodes {
            let status = self.status(i).await?;
            if status.hints_full {
                hints.full.push(status.id.clone());
            }
            for queue in status.hints {
                match hints.queues.iter_mut().find(|(id, _)| *id == queue.target) {
                    Some((_, keys)) => *keys += queue.keys,
                    None => hints.queues.push((queue.target, queue.keys)),
                }
            }
        }
        hints.queues.sort();
        Ok(hints)
    }

    /// Waits until every node sees every other member `up`; returns how
    /// long that took.
    ///
    /// # Errors
    /// When that does not happen within `timeout`.
    pub async fn wait_all_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let (_, took) = wait::until("every node to see every member up", timeout, || async {
            for i in 0..self.len() {
                let status = self.status(i).await?;
                if let Some(member) = status
                    .members
                    .iter()
                    .find(|member| member.state != "up" && member.state != "self")
                {
                    anyhow::bail!(
                        "node {i} sees {} as {}",
                        member.member.as_ref().map_or("?", |m| m.id.as_str()),
                        member.state
                    );
                }
            }
            Ok(Some(()))
        })
        .await?;
        Ok(took)
    }

    /// Waits until no node has a hint queued; returns how long that took.
    ///
    /// # Errors
    /// When hints remain after `timeout`.
    pub async fn wait_hints_drained(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let all: Vec<usize> = (0..self.len()).collect();
        let (_, took) = wait::until("every hint queue to drain", timeout, || async {
            let hints = self.hints(&all).await?;
            if hints.total() == 0 {
                Ok(Some(()))
            } else {
                anyhow::bail!("still queued: {:?}", hints.queues)
            }
        })
        .await?;
        Ok(took)
    }
}
