//! The partition ring as the client sees it: members, owners, preference
//! lists, and which partition a key falls in.

use md5::{Digest as _, Md5};

use dynamo_proto::v1 as pb;

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Stable member name, for example `dynamo-2`.
    pub id: String,
    /// Address clients dial, `host:port`.
    pub address: String,
    /// Failure zone.
    pub zone: String,
}

impl From<pb::Member> for Member {
    fn from(member: pb::Member) -> Self {
        Self {
            id: member.id,
            address: member.address,
            zone: member.zone,
        }
    }
}

/// The partition of `key` among `partitions` equal partitions.
///
/// The MD5 digest of the key, read as a big-endian 128-bit number, is cut
/// into `partitions` equal ranges; the partition is the top
/// `log2(partitions)` bits. With 256 partitions it is the first byte of the
/// digest.
///
/// # Panics
///
/// When `partitions` is not a power of two (a [`Ring`] never has such a
/// count).
///
/// # Examples
///
/// ```
/// // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72
/// assert_eq!(dynamo_client::partition_of(b"abc", 256), 0x90);
/// ```
pub fn partition_of(key: &[u8], partitions: usize) -> usize {
    assert!(
        partitions.is_power_of_two(),
        "partition count {partitions} is not a power of two"
    );
    let bits = partitions.trailing_zeros();
    if bits == 0 {
        return 0;
    }
    let digest: [u8; 16] = Md5::digest(key).into();
    let hash = u128::from_be_bytes(digest);
    usize::try_from(hash >> (128 - bits)).expect("a partition index is below the partition count")
}

/// `value` as an index into a list of `members` members; `place` says where
/// the value appeared, for the error message.
fn member_index(
    value: u32,
    members: usize,
    place: impl FnOnce() -> String,
) -> Result<usize, String> {
    usize::try_from(value)
        .ok()
        .filter(|index| *index < members)
        .ok_or_else(|| format!("{} names member {value}, but there are {members}", place()))
}

/// Why a `GetRing` answer cannot be used for routing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRing {
    /// The first inconsistency found, as a sentence.
    pub message: String,
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
}

impl TryFrom<pb::GetRingResponse> for Ring {
    type Error = InvalidRing;

    /// Checks a `GetRing` answer and builds the ring from it.
    ///
    /// # Errors
    ///
    /// [`InvalidRing`] describing the first inconsistency: no ring, no
    /// members, a partition count that is not a power of two, N of zero, a
    /// preference list missing or empty, or an index outside the member
    /// list.
    fn try_from(response: pb::GetRingResponse) -> Result<Self, InvalidRing> {
        Self::from_proto(response).map_err(|message| InvalidRing { message })
    }
}

impl Ring {
    /// The checks behind `TryFrom`, with a plain message as the error.
    fn from_proto(response: pb::GetRingResponse) -> Result<Self, String> {
        let ring = response.ring.ok_or("the answer has no ring")?;
        if ring.members.is_empty() {
            return Err("the ring has no members".into());
        }
        let partitions = ring.owners.len();
        if !partitions.is_power_of_two() {
            return Err(format!(
                "the ring has {partitions} partitions, which is not a power of two"
            ));
        }
        if ring.n == 0 {
            return Err("the ring has a replication factor N of 0".into());
        }
        if response.preferences.len() != partitions {
            return Err(format!(
                "the ring has {partitions} partitions but {} preference lists",
                response.preferences.len()
            ));
        }
        let members = ring.members.len();
        let owners = ring
            .owners
            .iter()
            .enumerate()
            .map(|(partition, owner)| {
                member_index(*owner, members, || {
                    format!("the owner of partition {partition}")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let preferences = response
            .preferences
            .iter()
            .enumerate()
            .map(|(partition, preference)| {
                if preference.members.is_empty() {
                    return Err(format!(
                        "partition {partition} has an empty preference list"
                    ));
                }
                preference
                    .members
                    .iter()
                    .map(|member| {
                        member_index(*member, members, || {
                            format!("the preference list of partition {partition}")
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
        })
    }

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
        partition_of(key, self.partitions())
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
        &self.preferences[partition][..self.preference_len(partition)]
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
                epoch: 7,
                members: (0..members)
                    .map(|i| pb::Member {
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
    fn partition_is_the_top_bits_of_md5() {
        // MD5("abc") = 90 01 50 98 3c d2 4f b0 d6 96 3f 7d 28 e1 7f 72
        assert_eq!(partition_of(b"abc", 256), 0x90);
        assert_eq!(partition_of(b"abc", 1024), 0b10_0100_0000);
        assert_eq!(partition_of(b"abc", 2), 1);
        assert_eq!(partition_of(b"abc", 1), 0);
        // MD5("") = d4 1d 8c d9 ...
        assert_eq!(partition_of(b"", 256), 0xd4);
        assert_eq!(partition_of(b"", 65536), 0xd41d);
        // MD5("The quick brown fox jumps over the lazy dog") = 9e 10 7d 9d ...
        let fox = b"The quick brown fox jumps over the lazy dog";
        assert_eq!(partition_of(fox, 1 << 16), 0x9e10);
    }

    #[test]
    fn partition_of_full_width() {
        // Top 32 bits of MD5("abc"), where usize is wide enough.
        if let Some(partitions) = 1usize.checked_shl(32) {
            assert_eq!(partition_of(b"abc", partitions), 0x9001_5098);
        }
    }

    #[test]
    #[should_panic(expected = "not a power of two")]
    fn partition_count_must_be_a_power_of_two() {
        partition_of(b"abc", 12);
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
            let message = Ring::try_from(response).expect_err(expected).message;
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
