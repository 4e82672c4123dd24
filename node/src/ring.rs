//! The partition ring: Q equal partitions of the MD5 space, their owners, and
//! the preference list of every partition. The math (partitions, the walk,
//! zones) lives in `dynamo-ring`; this type holds one ring, checks it and
//! converts it to and from its protobuf message.

use std::collections::HashSet;

use dynamo_proto::v1 as pb;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use dynamo_ring::{MAX_PARTITIONS, Position, partition_at, partition_of};

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Stable member name, for example `dynamo-2`.
    pub id: String,
    /// Address peers and clients dial, `host:port`.
    pub address: String,
    /// Failure zone; preference lists prefer distinct zones.
    #[serde(default)]
    pub zone: String,
    /// Capacity weight set by the operator's planner; 0 (rings from before
    /// weights) means 1. The node only carries it: owners decide placement.
    #[serde(default)]
    pub weight: u32,
}

/// Replication factor and default quorums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    /// Replicas per key (N).
    pub n: u32,
    /// Replies a read waits for (R).
    pub r: u32,
    /// Acknowledgements a write waits for (W).
    pub w: u32,
}

impl Default for Replication {
    fn default() -> Self {
        Self { n: 3, r: 2, w: 2 }
    }
}

/// A ring that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RingError {
    /// Q is not a power of two in range.
    #[error(transparent)]
    Partitions(#[from] dynamo_ring::PartitionsError),
    /// No members.
    #[error("a ring needs at least one member")]
    NoMembers,
    /// Two members share an id.
    #[error("member id {id:?} appears twice")]
    DuplicateMember {
        /// The repeated id.
        id: String,
    },
    /// N, R or W out of range.
    #[error("replication n={n} r={r} w={w} is invalid: need 1 <= r <= n and 1 <= w <= n")]
    Replication {
        /// N.
        n: u32,
        /// R.
        r: u32,
        /// W.
        w: u32,
    },
    /// The next owners do not match the partition count.
    #[error("the ring has {partitions} partitions but {next} next owners")]
    NextOwners {
        /// Q.
        partitions: usize,
        /// Length of the next owners.
        next: usize,
    },
    /// An owner index points past the member list.
    #[error(
        "partition {partition} is owned by member index {owner}, but the ring has {members} members"
    )]
    Owner {
        /// The partition.
        partition: usize,
        /// The bad index.
        owner: u32,
        /// Members in the ring.
        members: usize,
    },
}

/// The ring: epoch, members, partition owners and precomputed preference
/// orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    epoch: u64,
    cluster: String,
    members: Vec<Member>,
    owners: Vec<u32>,
    replication: Replication,
    /// For each partition: every member index, preference list first, then
    /// fallbacks in walk order.
    walks: Vec<Vec<u32>>,
    /// Owners after the change in flight, if any.
    next_owners: Option<Vec<u32>>,
    /// Preference walks of `next_owners`.
    next_walks: Vec<Vec<u32>>,
}

impl Ring {
    /// Builds the initial balanced ring every member computes alike from the
    /// same member list: members sorted by id, zones interleaved, partitions
    /// dealt round-robin.
    ///
    /// # Errors
    /// [`RingError`] when Q, the members or the replication are invalid.
    pub fn initial(
        cluster: &str,
        mut members: Vec<Member>,
        partitions: u32,
        replication: Replication,
    ) -> Result<Self, RingError> {
        members.sort_by(|a, b| a.id.cmp(&b.id));
        dynamo_ring::check_partitions(u64::from(partitions))?;
        let zones: Vec<&str> = members.iter().map(|m| m.zone.as_str()).collect();
        let owners = dynamo_ring::initial_owners(&zones, partitions);
        Self::new(1, cluster, members, owners, replication)
    }

    /// Builds a ring from its parts and precomputes preference orders.
    ///
    /// # Errors
    /// [`RingError`] when the parts do not form a valid ring.
    pub fn new(
        epoch: u64,
        cluster: &str,
        members: Vec<Member>,
        owners: Vec<u32>,
        replication: Replication,
    ) -> Result<Self, RingError> {
        dynamo_ring::check_partitions(owners.len() as u64)?;
        if members.is_empty() {
            return Err(RingError::NoMembers);
        }
        let mut seen = HashSet::new();
        for member in &members {
            if !seen.insert(member.id.as_str()) {
                return Err(RingError::DuplicateMember {
                    id: member.id.clone(),
                });
            }
        }
        let Replication { n, r, w } = replication;
        if n == 0 || r == 0 || w == 0 || r > n || w > n {
            return Err(RingError::Replication { n, r, w });
        }
        check_owners(&owners, members.len())?;
        let mut ring = Self {
            epoch,
            cluster: cluster.to_owned(),
            members,
            owners,
            replication,
            walks: Vec::new(),
            next_owners: None,
            next_walks: Vec::new(),
        };
        ring.walks = ring.walks_over(&ring.owners);
        Ok(ring)
    }

    /// The same ring with a membership change in flight towards
    /// `next_owners`.
    ///
    /// # Errors
    /// [`RingError`] when the next owners do not fit the ring.
    pub fn with_next_owners(mut self, next_owners: Vec<u32>) -> Result<Self, RingError> {
        if next_owners.len() != self.owners.len() {
            return Err(RingError::NextOwners {
                partitions: self.owners.len(),
                next: next_owners.len(),
            });
        }
        check_owners(&next_owners, self.members.len())?;
        self.next_walks = self.walks_over(&next_owners);
        self.next_owners = Some(next_owners);
        Ok(self)
    }

    /// The full preference walk of every partition over `owners` (see
    /// [`dynamo_ring::walk`]).
    fn walks_over(&self, owners: &[u32]) -> Vec<Vec<u32>> {
        let zones: Vec<&str> = self.members.iter().map(|m| m.zone.as_str()).collect();
        let n = self.replication.n as usize;
        (0..owners.len() as u32)
            .map(|p| dynamo_ring::walk(owners, &zones, p, n))
            .collect()
    }

    /// Ring version; the highest epoch wins.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Cluster name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// A 64-bit id of the cluster name, embedded in contexts.
    pub fn cluster_id(&self) -> u64 {
        let digest = Md5::digest(self.cluster.as_bytes());
        u64::from_le_bytes(digest[..8].try_into().expect("md5 is 16 bytes"))
    }

    /// Members in ring order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Replication factor and default quorums.
    pub fn replication(&self) -> Replication {
        self.replication
    }

    /// Number of partitions Q.
    pub fn partitions(&self) -> u32 {
        self.owners.len() as u32
    }

    /// Owner index of each partition.
    pub fn owners(&self) -> &[u32] {
        &self.owners
    }

    /// The index of the member named `id`.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.members
            .iter()
            .position(|member| member.id == id)
            .map(|index| index as u32)
    }

    /// The member at `index`.
    pub fn member(&self, index: u32) -> &Member {
        &self.members[index as usize]
    }

    /// The partition a key hashes to: the top log2(Q) bits of its MD5.
    pub fn partition_of(&self, key: &[u8]) -> u32 {
        partition_of(key, self.partitions())
    }

    /// The partition holding ring position `position`.
    pub fn partition_at(&self, position: Position) -> u32 {
        partition_at(position, self.partitions())
    }

    /// The N member indexes that replicate `partition`, in preference order
    /// (fewer when the ring has fewer than N members).
    pub fn preference(&self, partition: u32) -> &[u32] {
        let walk = &self.walks[partition as usize];
        &walk[..walk.len().min(self.replication.n as usize)]
    }

    /// The replicas of `partition` after the change in flight, if any.
    pub fn next_preference(&self, partition: u32) -> Option<&[u32]> {
        let walk = self.next_walks.get(partition as usize)?;
        Some(&walk[..walk.len().min(self.replication.n as usize)])
    }

    /// Owners after the change in flight, if any.
    pub fn next_owners(&self) -> Option<&[u32]> {
        self.next_owners.as_deref()
    }

    /// Where a write of `partition` goes: the preference list, plus the
    /// replicas the change in flight adds.
    pub fn write_set(&self, partition: u32) -> Vec<u32> {
        let mut set = self.preference(partition).to_vec();
        for &member in self.next_preference(partition).unwrap_or_default() {
            if !set.contains(&member) {
                set.push(member);
            }
        }
        set
    }

    /// Partitions `member` replicates after the change but not before: what
    /// it must stream in.
    pub fn gaining(&self, member: u32) -> Vec<u32> {
        (0..self.partitions())
            .filter(|&p| {
                self.next_preference(p)
                    .is_some_and(|next| next.contains(&member))
                    && !self.preference(p).contains(&member)
            })
            .collect()
    }

    /// True when `member` replicates `partition` now.
    pub fn replicates(&self, member: u32, partition: u32) -> bool {
        self.preference(partition).contains(&member)
    }

    /// Every member index in preference order for `partition`: the
    /// preference list, then fallbacks for sloppy quorum.
    pub fn walk(&self, partition: u32) -> &[u32] {
        &self.walks[partition as usize]
    }

    /// Number of partitions `member` owns.
    pub fn owned_by(&self, member: u32) -> u32 {
        self.owners.iter().filter(|&&owner| owner == member).count() as u32
    }

    /// The ring as a message.
    pub fn to_pb(&self) -> pb::Ring {
        pb::Ring {
            epoch: self.epoch,
            members: self
                .members
                .iter()
                .map(|member| pb::Member {
                    weight: member.weight,
                    id: member.id.clone(),
                    address: member.address.clone(),
                    zone: member.zone.clone(),
                })
                .collect(),
            owners: self.owners.clone(),
            n: self.replication.n,
            r: self.replication.r,
            w: self.replication.w,
            cluster: self.cluster.clone(),
            next_owners: self.next_owners.clone().unwrap_or_default(),
        }
    }

    /// Preference orders of every partition as messages.
    pub fn preferences_pb(&self) -> Vec<pb::Preference> {
        self.walks
            .iter()
            .map(|walk| pb::Preference {
                members: walk.clone(),
            })
            .collect()
    }

    /// Checks and converts a ring message.
    ///
    /// # Errors
    /// [`RingError`] when the message is not a valid ring.
    pub fn from_pb(message: pb::Ring) -> Result<Self, RingError> {
        let members = message
            .members
            .into_iter()
            .map(|member| Member {
                id: member.id,
                address: member.address,
                zone: member.zone,
                weight: member.weight,
            })
            .collect();
        let ring = Self::new(
            message.epoch,
            &message.cluster,
            members,
            message.owners,
            Replication {
                n: message.n,
                r: message.r,
                w: message.w,
            },
        )?;
        if message.next_owners.is_empty() {
            Ok(ring)
        } else {
            ring.with_next_owners(message.next_owners)
        }
    }
}

fn check_owners(owners: &[u32], members: usize) -> Result<(), RingError> {
    match owners
        .iter()
        .enumerate()
        .find(|(_, owner)| **owner as usize >= members)
    {
        Some((partition, &owner)) => Err(RingError::Owner {
            partition,
            owner,
            members,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(count: usize, zones: usize) -> Vec<Member> {
        (0..count)
            .map(|i| Member {
                weight: 0,
                id: format!("node-{i}"),
                address: format!("127.0.0.1:{}", 7400 + i),
                zone: format!("zone-{}", i % zones.max(1)),
            })
            .collect()
    }

    #[test]
    fn invalid_rings_are_refused() {
        let three = members(3, 1);
        let ok = Replication::default();
        assert!(matches!(
            Ring::initial("c", three.clone(), 100, ok),
            Err(RingError::Partitions(dynamo_ring::PartitionsError {
                partitions: 100
            }))
        ));
        let small = Ring::initial("c", members(2, 1), 64, ok).expect("fewer members than n");
        assert_eq!(small.preference(0).len(), 2);
        let bad_r = Replication { n: 3, r: 4, w: 2 };
        assert!(Ring::initial("c", three, 64, bad_r).is_err());
    }

    #[test]
    fn preference_lists_and_write_sets_follow_the_walk() {
        let ring =
            Ring::initial("c", members(4, 2), 8, Replication::default()).expect("valid ring");
        for p in 0..ring.partitions() {
            assert_eq!(ring.walk(p).len(), 4);
            assert_eq!(ring.preference(p), &ring.walk(p)[..3]);
            assert_eq!(ring.write_set(p), ring.preference(p));
        }
        assert_eq!(ring.partition_of(b""), partition_of(b"", 8));
        let round_trip = Ring::from_pb(ring.to_pb()).expect("own message is valid");
        assert_eq!(round_trip, ring);
    }

    #[test]
    fn weights_survive_the_wire_and_old_members_decode() {
        let mut heavy = members(3, 1);
        heavy[2].weight = 2;
        let ring =
            Ring::new(4, "c", heavy, vec![0, 1, 2, 2], Replication::default()).expect("valid ring");
        assert_eq!(ring.to_pb().members[2].weight, 2);
        let round_trip = Ring::from_pb(ring.to_pb()).expect("own message is valid");
        assert_eq!(round_trip.member(2).weight, 2);
        let old: Member = serde_json::from_str(r#"{"id": "a", "address": "a:7400"}"#)
            .expect("a member from before weights decodes");
        assert_eq!(old.weight, 0);
    }

    proptest! {
        #[test]
        fn every_member_computes_the_same_ring(count in 3usize..10, seed in any::<u64>()) {
            let mut shuffled = members(count, 2);
            shuffled.rotate_left((seed % count as u64) as usize);
            let a = Ring::initial("c", members(count, 2), 64, Replication::default());
            let b = Ring::initial("c", shuffled, 64, Replication::default());
            prop_assert_eq!(a, b);
        }
    }
}
