//! The partition ring: Q equal partitions of the MD5 space, their owners, and
//! the preference list of every partition. The math (partitions, the walk,
//! zones) lives in `dynamo-ring`; this type holds one ring, checks it and
//! converts it to and from its protobuf message. It also holds the table of
//! buckets: each has its own N, and its preference list of a partition is
//! the first N members of the partition's one walk.

use std::collections::HashSet;

use dynamo_proto::v1 as pb;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use dynamo_ring::{
    Durability, MAX_PARTITIONS, Position, QualifiedKey, QualifiedKeyError, partition_at,
    partition_of,
};

use crate::durability;

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

/// A declared bucket: keys of one kind with their own replication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// The bucket's name (never empty: the default bucket is not declared).
    pub name: String,
    /// N, R and W of the bucket.
    pub replication: Replication,
    /// Durability of writes that leave it to the bucket; `None` is the
    /// node's configured default.
    #[serde(default)]
    pub durability: Option<Durability>,
}

/// How the keys of one bucket are replicated, as a request needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketRules {
    /// N, R and W.
    pub replication: Replication,
    /// Durability when the request says DEFAULT; `None` is the node's.
    pub durability: Option<Durability>,
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
    /// A bucket name is invalid.
    #[error(transparent)]
    BucketName(#[from] dynamo_ring::BucketNameError),
    /// Two buckets share a name.
    #[error("bucket {name:?} is declared twice")]
    DuplicateBucket {
        /// The repeated name.
        name: String,
    },
    /// A bucket's N, R or W is out of range.
    #[error(
        "bucket {name:?} has n={n} r={r} w={w}: need 1 <= r <= n, 1 <= w <= n and n <= {max}",
        max = dynamo_ring::MAX_BUCKET_N
    )]
    BucketReplication {
        /// The bucket.
        name: String,
        /// N.
        n: u32,
        /// R.
        r: u32,
        /// W.
        w: u32,
    },
    /// A bucket's durability is not a known value.
    #[error("bucket {name:?} has durability {value}, which is unknown")]
    BucketDurability {
        /// The bucket.
        name: String,
        /// The wire value.
        value: i32,
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
    /// Declared buckets, sorted by name.
    buckets: Vec<Bucket>,
    /// For each partition: every member index in preference order (the walk
    /// for N = every member). The first N entries are the preference list
    /// of a bucket with that N, the rest its fallbacks.
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
            buckets: Vec::new(),
            walks: Vec::new(),
            next_owners: None,
            next_walks: Vec::new(),
        };
        ring.walks = ring.walks_over(&ring.owners);
        Ok(ring)
    }

    /// The same ring with `buckets` declared (in any order).
    ///
    /// # Errors
    /// [`RingError`] when a name is invalid or repeated, or a bucket's N, R
    /// or W is out of range.
    pub fn with_buckets(mut self, mut buckets: Vec<Bucket>) -> Result<Self, RingError> {
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        for (i, bucket) in buckets.iter().enumerate() {
            dynamo_ring::check_bucket_name(&bucket.name)?;
            if i > 0 && buckets[i - 1].name == bucket.name {
                return Err(RingError::DuplicateBucket {
                    name: bucket.name.clone(),
                });
            }
            let Replication { n, r, w } = bucket.replication;
            if n == 0 || r == 0 || w == 0 || r > n || w > n || n > dynamo_ring::MAX_BUCKET_N {
                return Err(RingError::BucketReplication {
                    name: bucket.name.clone(),
                    n,
                    r,
                    w,
                });
            }
        }
        self.buckets = buckets;
        Ok(self)
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
        // The walk for every member: its first k entries are the walk for
        // N = k (a property test in dynamo-ring checks it), so one walk
        // serves every bucket and the default bucket's lists stay those of
        // the walk for its N.
        (0..owners.len() as u32)
            .map(|p| dynamo_ring::walk(owners, &zones, p, zones.len()))
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

    /// The partition a default-bucket key hashes to: the top log2(Q) bits
    /// of its MD5.
    pub fn partition_of(&self, key: &[u8]) -> u32 {
        partition_of(key, self.partitions())
    }

    /// The partition of a bucket-qualified engine key (see
    /// [`QualifiedKey`]), as it arrives from a peer or the disk.
    ///
    /// # Errors
    /// [`QualifiedKeyError`] when the key does not decode.
    pub fn engine_partition(&self, key: &[u8]) -> Result<u32, QualifiedKeyError> {
        Ok(QualifiedKey::decode(key)?.partition(self.partitions()))
    }

    /// The engine key of `key` in bucket `bucket` ("" is the default
    /// bucket), `None` when the bucket is not declared.
    pub fn engine_key(&self, bucket: &str, key: &[u8]) -> Option<Vec<u8>> {
        let rules = self.bucket(bucket)?;
        let qualified = QualifiedKey {
            n: bucket_factor(rules.replication.n),
            bucket,
            key,
        };
        Some(qualified.encode())
    }

    /// The partition holding ring position `position`.
    pub fn partition_at(&self, position: Position) -> u32 {
        partition_at(position, self.partitions())
    }

    /// Declared buckets, sorted by name (the default bucket is not listed).
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// The rules of bucket `name`: the ring's replication for the default
    /// bucket "", `None` when the bucket is not declared.
    pub fn bucket(&self, name: &str) -> Option<BucketRules> {
        if name.is_empty() {
            return Some(BucketRules {
                replication: self.replication,
                durability: None,
            });
        }
        let index = self
            .buckets
            .binary_search_by(|bucket| bucket.name.as_str().cmp(name))
            .ok()?;
        let bucket = &self.buckets[index];
        Some(BucketRules {
            replication: bucket.replication,
            durability: bucket.durability,
        })
    }

    /// Every replication factor in use (the default bucket's and each
    /// bucket's), ascending and distinct: a partition keeps one Merkle tree
    /// and one transfer unit per N.
    pub fn factors(&self) -> Vec<u32> {
        let mut factors: Vec<u32> = std::iter::once(self.replication.n)
            .chain(self.buckets.iter().map(|bucket| bucket.replication.n))
            .collect();
        factors.sort_unstable();
        factors.dedup();
        factors
    }

    /// The `n` member indexes that replicate `partition` for a bucket with
    /// N = `n`, in preference order (fewer when the ring has fewer members).
    pub fn preference(&self, partition: u32, n: u32) -> &[u32] {
        prefix(&self.walks[partition as usize], n)
    }

    /// The replicas of `partition` for N = `n` after the change in flight,
    /// if any.
    pub fn next_preference(&self, partition: u32, n: u32) -> Option<&[u32]> {
        Some(prefix(self.next_walks.get(partition as usize)?, n))
    }

    /// Owners after the change in flight, if any.
    pub fn next_owners(&self) -> Option<&[u32]> {
        self.next_owners.as_deref()
    }

    /// Where a write of `partition` for N = `n` goes: the preference list,
    /// plus the replicas the change in flight adds.
    pub fn write_set(&self, partition: u32, n: u32) -> Vec<u32> {
        let mut set = self.preference(partition, n).to_vec();
        for &member in self.next_preference(partition, n).unwrap_or_default() {
            if !set.contains(&member) {
                set.push(member);
            }
        }
        set
    }

    /// The (partition, N) pairs `member` replicates after the change but
    /// not before: what it must stream in, N ascending within a partition.
    pub fn gaining(&self, member: u32) -> Vec<(u32, u32)> {
        let factors = self.factors();
        (0..self.partitions())
            .flat_map(|p| factors.iter().map(move |&n| (p, n)))
            .filter(|&(p, n)| {
                self.next_preference(p, n)
                    .is_some_and(|next| next.contains(&member))
                    && !self.replicates(member, p, n)
            })
            .collect()
    }

    /// True when `member` replicates `partition` for N = `n` now.
    pub fn replicates(&self, member: u32, partition: u32, n: u32) -> bool {
        self.preference(partition, n).contains(&member)
    }

    /// Every member index in preference order for `partition`: the first N
    /// entries are a bucket's preference list, the rest its fallbacks for
    /// sloppy quorum.
    pub fn walk(&self, partition: u32) -> &[u32] {
        &self.walks[partition as usize]
    }

    /// Checks that `next` may follow this ring: no declared bucket is
    /// dropped and no bucket's N (nor the default N) changes. R, W and
    /// durability may change, and new buckets may appear.
    ///
    /// # Errors
    /// [`BucketChange`] naming the first bucket that would change.
    pub fn check_successor(&self, next: &Ring) -> Result<(), BucketChange> {
        if next.replication.n != self.replication.n {
            return Err(BucketChange::Factor {
                bucket: String::new(),
                ours: self.replication.n,
                theirs: next.replication.n,
            });
        }
        for bucket in &self.buckets {
            match next.bucket(&bucket.name) {
                None => {
                    return Err(BucketChange::Dropped {
                        bucket: bucket.name.clone(),
                    });
                }
                Some(rules) if rules.replication.n != bucket.replication.n => {
                    return Err(BucketChange::Factor {
                        bucket: bucket.name.clone(),
                        ours: bucket.replication.n,
                        theirs: rules.replication.n,
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
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
            buckets: self
                .buckets
                .iter()
                .map(|bucket| pb::Bucket {
                    name: bucket.name.clone(),
                    n: bucket.replication.n,
                    r: bucket.replication.r,
                    w: bucket.replication.w,
                    durability: bucket
                        .durability
                        .map_or(pb::Durability::Default, durability::durability_to_pb)
                        .into(),
                })
                .collect(),
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
        let buckets = message
            .buckets
            .into_iter()
            .map(|bucket| {
                let durability = durability::check_durability(bucket.durability).map_err(|_| {
                    RingError::BucketDurability {
                        name: bucket.name.clone(),
                        value: bucket.durability,
                    }
                })?;
                Ok(Bucket {
                    replication: Replication {
                        n: bucket.n,
                        r: bucket.r,
                        w: bucket.w,
                    },
                    durability: durability::durability_of_pb(durability),
                    name: bucket.name,
                })
            })
            .collect::<Result<Vec<_>, RingError>>()?;
        let ring = ring.with_buckets(buckets)?;
        if message.next_owners.is_empty() {
            Ok(ring)
        } else {
            ring.with_next_owners(message.next_owners)
        }
    }
}

/// A ring change that would alter what a bucket's keys are: refused, since
/// keys already stored under a bucket's N would have no home.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BucketChange {
    /// A declared bucket is missing from the new ring.
    #[error("the new ring drops bucket {bucket:?}; buckets are never removed")]
    Dropped {
        /// The bucket.
        bucket: String,
    },
    /// A bucket's N differs.
    #[error(
        "the new ring changes the n of bucket {bucket:?} from {ours} to {theirs}; a bucket's n never changes",
        bucket = if bucket.is_empty() { "(default)" } else { bucket }
    )]
    Factor {
        /// The bucket ("" for the default bucket).
        bucket: String,
        /// N in the ring in use.
        ours: u32,
        /// N in the new ring.
        theirs: u32,
    },
}

/// N as the one byte of a qualified key: declared buckets are checked to
/// fit, and a default N above 255 (no real ring) is capped.
pub fn bucket_factor(n: u32) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// The first `n` entries of a walk (all of it when shorter).
fn prefix(walk: &[u32], n: u32) -> &[u32] {
    &walk[..walk.len().min(n as usize)]
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
        assert_eq!(small.preference(0, 3).len(), 2);
        let bad_r = Replication { n: 3, r: 4, w: 2 };
        assert!(Ring::initial("c", three, 64, bad_r).is_err());
    }

    #[test]
    fn preference_lists_and_write_sets_follow_the_walk() {
        let ring =
            Ring::initial("c", members(4, 2), 8, Replication::default()).expect("valid ring");
        for p in 0..ring.partitions() {
            assert_eq!(ring.walk(p).len(), 4);
            assert_eq!(ring.preference(p, 3), &ring.walk(p)[..3]);
            assert_eq!(ring.write_set(p, 3), ring.preference(p, 3));
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
