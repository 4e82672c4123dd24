//! The partition ring as the client sees it: members, owners, preference
//! lists, and which partition a key falls in.

use dynamo_proto::v1 as pb;
use dynamo_ring::{PartitionsError, check_partitions, partition_of};

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Stable member name, for example `dynamo-2`.
    pub id: String,
    /// Address clients dial, `host:port`.
    pub address: String,
    /// Failure zone.
    pub zone: String,
    /// Capacity weight, at least 1: the member owns its weighted share of
    /// the partitions (rings from before weights read as 1).
    pub weight: u32,
}

impl From<pb::Member> for Member {
    fn from(member: pb::Member) -> Self {
        Self {
            id: member.id,
            address: member.address,
            zone: member.zone,
            weight: member.weight.max(1),
        }
    }
}

/// Why a `GetRing` answer cannot be used for routing: the first
/// inconsistency found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRing {
    /// The answer carries no ring.
    #[error("the answer has no ring")]
    NoRing,
    /// The ring has no members.
    #[error("the ring has no members")]
    NoMembers,
    /// The partition count is not a valid Q.
    #[error("the ring has {} partitions, which is not a power of two up to {}", .source.partitions, dynamo_ring::MAX_PARTITIONS)]
    Partitions {
        /// The invalid count.
        #[from]
        source: PartitionsError,
    },
    /// N is zero.
    #[error("the ring has a replication factor N of 0")]
    NoReplication,
    /// There is not one preference list per partition.
    #[error("the ring has {partitions} partitions but {lists} preference lists")]
    PreferenceCount {
        /// Partitions in the ring.
        partitions: usize,
        /// Preference lists in the answer.
        lists: usize,
    },
    /// A partition's preference list is empty.
    #[error("partition {partition} has an empty preference list")]
    EmptyPreference {
        /// The partition.
        partition: usize,
    },
    /// A partition's owner is not a member.
    #[error("the owner of partition {partition} names member {member}, but there are {members}")]
    Owner {
        /// The partition.
        partition: usize,
        /// The index given.
        member: u32,
        /// Members in the ring.
        members: usize,
    },
    /// A preference list names a member that does not exist.
    #[error(
        "the preference list of partition {partition} names member {member}, but there are {members}"
    )]
    Preference {
        /// The partition.
        partition: usize,
        /// The index given.
        member: u32,
        /// Members in the ring.
        members: usize,
    },
}

/// `value` as an index into a list of `members` members.
fn member_index(value: u32, members: usize) -> Option<usize> {
    usize::try_from(value).ok().filter(|index| *index < members)
}

/// The ring a node reported: who owns which partition and which members
/// replicate it, in preference order.
///
/// Built only from a consistent [`pb::GetRingResponse`] (through
/// `TryFrom`), so every index it holds is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    epoch: u64,
    cluster: String,
    n: u32,
    r: u32,
    w: u32,
    members: Vec<Member>,
    owners: Vec<usize>,
    preferences: Vec<Vec<usize>>,
    buckets: Vec<BucketInfo>,
}

/// A declared bucket: keys of one kind with their own N, R and W.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    /// The bucket's name.
    pub name: String,
    /// Replicas per key (N).
    pub n: u32,
    /// Default read quorum R.
    pub r: u32,
    /// Default write quorum W.
    pub w: u32,
    /// Durability of writes that leave it to the bucket; `None` is the
    /// node's default.
    pub durability: Option<dynamo_ring::Durability>,
}

impl TryFrom<pb::GetRingResponse> for Ring {
    type Error = InvalidRing;

    /// Checks a `GetRing` answer and builds the ring from it.
    ///
    /// # Errors
    ///
    /// [`InvalidRing`] describing the first inconsistency: no ring, no
    /// members, a partition count that is not a power of two up to
    /// [`MAX_PARTITIONS`](dynamo_ring::MAX_PARTITIONS), N of zero, a
    /// preference list missing or empty, or an index outside the member
    /// list.
    fn try_from(response: pb::GetRingResponse) -> Result<Self, InvalidRing> {
        let ring = response.ring.ok_or(InvalidRing::NoRing)?;
        if ring.members.is_empty() {
            return Err(InvalidRing::NoMembers);
        }
        let partitions = ring.owners.len();
        check_partitions(partitions as u64)?;
        if ring.n == 0 {
            return Err(InvalidRing::NoReplication);
        }
        if response.preferences.len() != partitions {
            return Err(InvalidRing::PreferenceCount {
                partitions,
                lists: response.preferences.len(),
            });
        }
        let members = ring.members.len();
        let owners = ring
            .owners
            .iter()
            .enumerate()
            .map(|(partition, &member)| {
                member_index(member, members).ok_or(InvalidRing::Owner {
                    partition,
                    member,
                    members,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let preferences = response
            .preferences
            .iter()
            .enumerate()
            .map(|(partition, preference)| {
                if preference.members.is_empty() {
                    return Err(InvalidRing::EmptyPreference { partition });
                }
                preference
                    .members
                    .iter()
                    .map(|&member| {
                        member_index(member, members).ok_or(InvalidRing::Preference {
                            partition,
                            member,
                            members,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            epoch: ring.epoch,
            cluster: ring.cluster,
            n: ring.n,
            r: ring.r,
            w: ring.w,
            members: ring.members.into_iter().map(Member::from).collect(),
            owners,
            preferences,
            buckets: ring
                .buckets
                .into_iter()
                .map(|bucket| BucketInfo {
                    durability: match bucket.durability() {
                        pb::Durability::Default => None,
                        pb::Durability::Buffer => Some(dynamo_ring::Durability::Buffer),
                        pb::Durability::Sync => Some(dynamo_ring::Durability::Sync),
                    },
                    name: bucket.name,
                    n: bucket.n,
                    r: bucket.r,
                    w: bucket.w,
                })
                .collect(),
        })
    }
}

impl Ring {
    /// Monotonic ring version; a higher epoch is newer.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Name of the cluster.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Replication factor N.
    pub fn n(&self) -> u32 {
        self.n
    }

    /// Default read quorum R.
    pub fn r(&self) -> u32 {
        self.r
    }

    /// Default write quorum W.
    pub fn w(&self) -> u32 {
        self.w
    }

    /// Every member, in ring order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Number of partitions Q (a power of two).
    pub fn partitions(&self) -> usize {
        self.owners.len()
    }

    /// The partition `key` falls in; see [`partition_of`].
    pub fn partition_of(&self, key: &[u8]) -> usize {
        // A checked ring has at most MAX_PARTITIONS partitions.
        partition_of(key, self.partitions() as u32) as usize
    }

    /// Declared buckets (the default bucket is not listed).
    pub fn buckets(&self) -> &[BucketInfo] {
        &self.buckets
    }

    /// N of bucket `name`: the ring's N for the default bucket "", `None`
    /// for a bucket this ring does not declare.
    pub fn bucket_n(&self, name: &str) -> Option<u32> {
        if name.is_empty() {
            return Some(self.n);
        }
        self.buckets
            .iter()
            .find(|bucket| bucket.name == name)
            .map(|bucket| bucket.n)
    }

    /// The partition `key` of bucket `bucket` falls in; see
    /// [`dynamo_ring::bucket_partition`].
    pub fn bucket_partition_of(&self, bucket: &str, key: &[u8]) -> usize {
        dynamo_ring::bucket_partition(bucket, key, self.partitions() as u32) as usize
    }

    /// The preference list of `partition` for a bucket with N = `n`: the
    /// first `n` members of its walk.
    ///
    /// # Panics
    ///
    /// When `partition` is not below [`partitions`](Self::partitions).
    pub fn bucket_preference_list(
        &self,
        partition: usize,
        n: u32,
    ) -> impl Iterator<Item = &Member> {
        self.bucket_preference(partition, n)
            .iter()
            .map(|index| &self.members[*index])
    }

    /// The fallbacks of `partition` for a bucket with N = `n`: the walk
    /// after its first `n` members.
    ///
    /// # Panics
    ///
    /// When `partition` is not below [`partitions`](Self::partitions).
    pub fn bucket_fallbacks(&self, partition: usize, n: u32) -> impl Iterator<Item = &Member> {
        let all = &self.preferences[partition];
        all[self.bucket_preference(partition, n).len()..]
            .iter()
            .map(|index| &self.members[*index])
    }

    /// Member indexes of the first `n` entries of the walk of `partition`.
    pub(crate) fn bucket_preference(&self, partition: usize, n: u32) -> &[usize] {
        let all = &self.preferences[partition];
        &all[..all.len().min(usize::try_from(n).unwrap_or(usize::MAX))]
    }

    /// The owner of `partition`.
    ///
    /// # Panics
    ///
    /// When `partition` is not below [`partitions`](Self::partitions).
    pub fn owner(&self, partition: usize) -> &Member {
        &self.members[self.owners[partition]]
    }

    /// The preference list of `partition`: the first N replicas in order.
    ///
    /// # Panics
    ///
    /// When `partition` is not below [`partitions`](Self::partitions).
    pub fn preference_list(&self, partition: usize) -> impl Iterator<Item = &Member> {
        self.preference_indexes(partition)
            .iter()
            .map(|index| &self.members[*index])
    }

    /// The fallbacks of `partition`: members after the preference list that
    /// stand in for unreachable replicas (sloppy quorum).
    ///
    /// # Panics
    ///
    /// When `partition` is not below [`partitions`](Self::partitions).
    pub fn fallbacks(&self, partition: usize) -> impl Iterator<Item = &Member> {
        let all = &self.preferences[partition];
        all[self.preference_len(partition)..]
            .iter()
            .map(|index| &self.members[*index])
    }

    /// How many partitions `member` owns.
    pub fn partitions_owned(&self, member: &Member) -> usize {
        self.owners
            .iter()
            .filter(|owner| self.members[**owner].id == member.id)
            .count()
    }

    /// Member indexes of the preference list of `partition` (at most N).
    pub(crate) fn preference_indexes(&self, partition: usize) -> &[usize] {
        self.bucket_preference(partition, self.n)
    }

    /// Member indexes of every replica of `partition`: preference list, then
    /// fallbacks.
    pub(crate) fn candidate_indexes(&self, partition: usize) -> &[usize] {
        &self.preferences[partition]
    }

    fn preference_len(&self, partition: usize) -> usize {
        let n = usize::try_from(self.n).unwrap_or(usize::MAX);
        self.preferences[partition].len().min(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ring of `members` members (`m0` at `h0:7400`, ...) with N = 3 and
    /// `partitions` partitions; partition p is owned by member p mod size and
    /// its preference list walks the members from there.
    pub(crate) fn sample(members: u32, partitions: u32) -> pb::GetRingResponse {
        pb::GetRingResponse {
            ring: Some(pb::Ring {
                buckets: Vec::new(),
                epoch: 7,
                members: (0..members)
                    .map(|i| pb::Member {
                        weight: 0,
                        id: format!("m{i}"),
                        address: format!("h{i}:7400"),
                        zone: format!("z{}", i % 3),
                    })
                    .collect(),
                owners: (0..partitions).map(|p| p % members).collect(),
                n: 3,
                r: 2,
                w: 2,
                cluster: "test".into(),
                next_owners: Vec::new(),
            }),
            preferences: (0..partitions)
                .map(|p| pb::Preference {
                    members: (0..members).map(|i| (p + i) % members).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn ring_exposes_preference_lists_and_fallbacks() {
        let ring = Ring::try_from(sample(5, 8)).expect("sample ring is consistent");
        assert_eq!(ring.partitions(), 8);
        assert_eq!((ring.n(), ring.r(), ring.w(), ring.epoch()), (3, 2, 2, 7));
        let ids = |members: Vec<&Member>| members.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
        assert_eq!(ring.owner(6).id, "m1");
        assert_eq!(ids(ring.preference_list(6).collect()), ["m1", "m2", "m3"]);
        assert_eq!(ids(ring.fallbacks(6).collect()), ["m4", "m0"]);
        assert_eq!(ring.partitions_owned(&ring.members()[0]), 2);
        assert_eq!(ring.partitions_owned(&ring.members()[4]), 1);
    }

    #[test]
    fn short_preference_lists_are_accepted() {
        let ring = Ring::try_from(sample(2, 4)).expect("two members are enough");
        assert_eq!(ring.preference_list(0).count(), 2);
        assert_eq!(ring.fallbacks(0).count(), 0);
    }

    #[test]
    fn inconsistent_rings_are_rejected() {
        let check = |edit: fn(&mut pb::GetRingResponse), expected: &str| {
            let mut response = sample(3, 4);
            edit(&mut response);
            let message = Ring::try_from(response).expect_err(expected).to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        };
        check(|r| r.ring = None, "no ring");
        check(
            |r| {
                r.preferences.pop();
            },
            "3 preference lists",
        );
        check(
            |r| r.preferences[1].members.clear(),
            "partition 1 has an empty",
        );
        check(
            |r| r.preferences[2].members[0] = 9,
            "preference list of partition 2 names member 9",
        );
        check(|r| ring_mut(r).owners.push(0), "5 partitions");
        check(
            |r| ring_mut(r).owners[3] = 3,
            "owner of partition 3 names member 3",
        );
        check(|r| ring_mut(r).n = 0, "N of 0");
        check(|r| ring_mut(r).members.clear(), "no members");
    }

    fn ring_mut(response: &mut pb::GetRingResponse) -> &mut pb::Ring {
        response.ring.as_mut().expect("sample has a ring")
    }
}
