//! The partition ring: Q equal partitions of the MD5 space, their owners, and
//! the preference list of every partition.

use std::collections::{BTreeMap, HashSet};

use dynamo_proto::v1 as pb;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Most partitions a ring may have.
pub const MAX_PARTITIONS: u32 = 1 << 16;

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
    #[error("partitions must be a power of two between 1 and {MAX_PARTITIONS}, not {partitions}")]
    Partitions {
        /// The partition count given.
        partitions: u64,
    },
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
        let mut zones: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (index, member) in members.iter().enumerate() {
            zones.entry(&member.zone).or_default().push(index as u32);
        }
        let mut dealt = Vec::with_capacity(members.len());
        let deepest = zones.values().map(Vec::len).max().unwrap_or(0);
        for round in 0..deepest {
            dealt.extend(zones.values().filter_map(|ids| ids.get(round)));
        }
        let owners = if dealt.is_empty() {
            Vec::new()
        } else {
            (0..partitions as usize)
                .map(|p| dealt[p % dealt.len()])
                .collect()
        };
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
        let partitions = owners.len() as u64;
        if !partitions.is_power_of_two() || partitions > u64::from(MAX_PARTITIONS) {
            return Err(RingError::Partitions { partitions });
        }
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
        ring.walks = (0..ring.owners.len())
            .map(|p| ring.walk_from(&ring.owners, p))
            .collect();
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
        self.next_walks = (0..next_owners.len())
            .map(|p| self.walk_from(&next_owners, p))
            .collect();
        self.next_owners = Some(next_owners);
        Ok(self)
    }

    /// Walks clockwise from `partition` over `owners`: distinct owners, the
    /// first N preferring zones not used yet, then the rest in walk order.
    fn walk_from(&self, owners: &[u32], partition: usize) -> Vec<u32> {
        let q = owners.len();
        let mut order: Vec<u32> = Vec::with_capacity(self.members.len());
        for step in 0..q {
            let owner = owners[(partition + step) % q];
            if !order.contains(&owner) {
                order.push(owner);
            }
        }
        let n = self.replication.n as usize;
        let mut chosen: Vec<u32> = Vec::with_capacity(order.len());
        let mut zones_used: HashSet<&str> = HashSet::new();
        for &member in &order {
            if chosen.len() < n && zones_used.insert(self.members[member as usize].zone.as_str()) {
                chosen.push(member);
            }
        }
        for &member in &order {
            if chosen.len() < n && !chosen.contains(&member) {
                chosen.push(member);
            }
        }
        for &member in &order {
            if !chosen.contains(&member) {
                chosen.push(member);
            }
        }
        // Members that own no partition still serve as fallbacks.
        for member in 0..self.members.len() as u32 {
            if !chosen.contains(&member) {
                chosen.push(member);
            }
        }
        chosen
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

/// A key's position on the ring: the top 64 bits of its MD5. Shown in logs
/// and spans as 16 hex digits (`key_hash`), so one key's requests can be
/// followed across nodes without logging the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(pub u64);

impl Position {
    /// The position of `key`.
    pub fn of(key: &[u8]) -> Self {
        let digest = Md5::digest(key);
        Self(u64::from_be_bytes(
            digest[..8].try_into().expect("md5 is 16 bytes"),
        ))
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The partition of `key` among `partitions` (a power of two).
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    partition_at(Position::of(key), partitions)
}

/// The partition holding `position` among `partitions` (a power of two).
pub fn partition_at(position: Position, partitions: u32) -> u32 {
    let bits = partitions.trailing_zeros();
    if bits == 0 {
        0
    } else {
        (position.0 >> (64 - bits)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(count: usize, zones: usize) -> Vec<Member> {
        (0..count)
            .map(|i| Member {
                id: format!("node-{i}"),
                address: format!("127.0.0.1:{}", 7400 + i),
                zone: format!("zone-{}", i % zones.max(1)),
            })
            .collect()
    }

    #[test]
    fn partition_is_the_top_bits_of_md5() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(partition_of(b"", 256), 0xd4);
        assert_eq!(partition_of(b"", 2), 1);
        assert_eq!(partition_of(b"", 1), 0);
    }

    #[test]
    fn invalid_rings_are_refused() {
        let three = members(3, 1);
        let ok = Replication::default();
        assert!(matches!(
            Ring::initial("c", three.clone(), 100, ok),
            Err(RingError::Partitions { partitions: 100 })
        ));
        let small = Ring::initial("c", members(2, 1), 64, ok).expect("fewer members than n");
        assert_eq!(small.preference(0).len(), 2);
        let bad_r = Replication { n: 3, r: 4, w: 2 };
        assert!(Ring::initial("c", three, 64, bad_r).is_err());
    }

    proptest! {
        #[test]
        fn initial_ring_is_balanced_and_zone_spread(
            count in 3usize..20, zones in 1usize..5, log_q in 4u32..11,
        ) {
            let q = 1u32 << log_q;
            let ring = Ring::initial("c", members(count, zones), q, Replication::default())
                .expect("valid ring");
            let floor = q / count as u32;
            for member in 0..count as u32 {
                let owned = ring.owned_by(member);
                prop_assert!(owned == floor || owned == floor + 1, "{owned} vs {floor}");
            }
            for p in 0..q {
                let pref = ring.preference(p);
                let distinct: HashSet<_> = pref.iter().collect();
                prop_assert_eq!(distinct.len(), 3);
                let zones_used: HashSet<_> = pref.iter().map(|&m| &ring.member(m).zone).collect();
                prop_assert_eq!(zones_used.len(), zones.min(3));
                prop_assert_eq!(ring.walk(p).len(), count);
            }
        }

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
