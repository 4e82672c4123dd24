//! A Merkle tree per partition replica: a fixed number of leaf segments, each
//! the XOR of its keys' entry hashes, under one level of inner nodes and a
//! root. XOR makes every update O(1): a write folds out the key's old entry
//! and folds in the new one.

use std::collections::BTreeSet;

use md5::{Digest, Md5};

use crate::version::SiblingSet;

/// Leaf segments per tree.
pub const SEGMENTS: usize = 1024;
/// Children per inner node (and inner nodes under the root).
pub const FANOUT: usize = 32;

/// Tree levels as numbered on the wire.
pub const ROOT: u32 = 0;
/// The inner level.
pub const INNER: u32 = 1;
/// The leaf level.
pub const LEAVES: u32 = 2;

/// One partition replica's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    leaves: Vec<u64>,
    inner: Vec<u64>,
    root: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Self {
            leaves: vec![0; SEGMENTS],
            inner: vec![0; SEGMENTS / FANOUT],
            root: 0,
        }
    }
}

/// Where a key sits in the tree and what it contributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyHash {
    /// Leaf segment of the key.
    pub segment: u32,
    hash: u64,
}

impl KeyHash {
    /// Hashes a key once; reuse it for the old and new entry of a write.
    pub fn of(key: &[u8]) -> Self {
        let digest = Md5::digest(key);
        // The partition uses the top bits; the segment uses other bits so keys
        // of one partition spread over all segments.
        let low = u64::from_le_bytes(digest[8..16].try_into().expect("md5 is 16 bytes"));
        Self {
            segment: (low % SEGMENTS as u64) as u32,
            hash: u64::from_le_bytes(digest[..8].try_into().expect("md5 is 16 bytes")),
        }
    }

    /// The key's leaf entry for a set with `digest`.
    fn entry(self, digest: u64) -> u64 {
        mix(self.hash ^ mix(digest))
    }
}

impl Tree {
    /// Records that a key's set digest changed from `old` to `new` (`None`
    /// for absent).
    pub fn update(&mut self, key: KeyHash, old: Option<u64>, new: Option<u64>) {
        let mut delta = 0;
        if let Some(old) = old {
            delta ^= key.entry(old);
        }
        if let Some(new) = new {
            delta ^= key.entry(new);
        }
        let segment = key.segment as usize;
        self.leaves[segment] ^= delta;
        self.inner[segment / FANOUT] ^= delta;
        self.root ^= delta;
    }

    /// The root hash.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Hashes of `level`: the root, or the children of each parent in turn.
    /// Out-of-range parents give no hashes.
    pub fn level(&self, level: u32, parents: &[u32]) -> Vec<u64> {
        match level {
            ROOT => vec![self.root],
            INNER => self.inner.clone(),
            LEAVES => parents
                .iter()
                .filter(|&&parent| (parent as usize) < self.inner.len())
                .flat_map(|&parent| {
                    let start = parent as usize * FANOUT;
                    self.leaves[start..start + FANOUT].iter().copied()
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Indexes where two equally long hash lists differ.
pub fn differing(local: &[u64], remote: &[u64]) -> Vec<u32> {
    local
        .iter()
        .zip(remote)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(index, _)| index as u32)
        .collect()
}

/// The leaf segments where `local` and `remote` differ, numbered below
/// [`SEGMENTS`]: `inner` are the inner nodes asked for (each below
/// `SEGMENTS / FANOUT`), `local` this tree's [`Tree::level`] of [`LEAVES`]
/// under them and `remote` the peer's answer, which may be of any length.
pub fn differing_segments(inner: &[u32], local: &[u64], remote: &[u64]) -> BTreeSet<u32> {
    differing(local, remote)
        .into_iter()
        .map(|i| inner[i as usize / FANOUT] * FANOUT as u32 + i % FANOUT as u32)
        .collect()
}

/// Digest of a sibling set: its dots and tombstone flags. A dot names one
/// version, so equal digests mean equal sets.
pub fn set_digest(set: &SiblingSet) -> u64 {
    set.versions()
        .iter()
        .fold(0x5851_f42d_4c95_7f2d, |acc, version| {
            let flag = u64::from(version.tombstone);
            mix(acc ^ mix(version.dot.node) ^ mix(version.dot.counter.wrapping_add(flag << 63)))
        })
}

/// splitmix64's finalizer: a fast, well-spread 64-bit mix.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_peer_answer_of_any_length_names_only_segments_under_the_nodes_asked() {
        let local = vec![0; 2 * FANOUT];
        let mut remote = vec![0; 3 * FANOUT];
        remote[1] = 1;
        remote[FANOUT + 2] = 1;
        remote[2 * FANOUT + 3] = 1;
        let segments = differing_segments(&[4, 30], &local, &remote);
        assert_eq!(
            segments.into_iter().collect::<Vec<_>>(),
            vec![4 * FANOUT as u32 + 1, 30 * FANOUT as u32 + 2]
        );
        assert!(differing_segments(&[4, 30], &local, &[]).is_empty());
    }

    proptest! {
        #[test]
        fn tree_depends_only_on_the_final_contents(
            writes in proptest::collection::vec((0u8..40, 0u64..4), 0..200),
        ) {
            // Apply writes incrementally, then build a fresh tree from the end
            // state: both must match.
            let mut incremental = Tree::default();
            let mut state = std::collections::BTreeMap::new();
            for (key, digest) in writes {
                let hash = KeyHash::of(&[key]);
                let new = if digest == 0 { None } else { Some(digest) };
                let old = match new {
                    Some(d) => state.insert(key, d),
                    None => state.remove(&key),
                };
                incremental.update(hash, old, new);
            }
            let mut fresh = Tree::default();
            for (key, digest) in &state {
                fresh.update(KeyHash::of(&[*key]), None, Some(*digest));
            }
            prop_assert_eq!(incremental, fresh);
        }

        #[test]
        fn one_changed_key_shows_in_one_path(key in any::<[u8; 8]>(), a in 1u64.., b in 1u64..) {
            prop_assume!(a != b);
            let hash = KeyHash::of(&key);
            let mut left = Tree::default();
            let mut right = Tree::default();
            left.update(hash, None, Some(a));
            right.update(hash, None, Some(b));
            prop_assert_ne!(left.root(), right.root());
            let inner = differing(&left.level(INNER, &[]), &right.level(INNER, &[]));
            prop_assert_eq!(inner.clone(), vec![hash.segment / FANOUT as u32]);
            let leaves = differing(&left.level(LEAVES, &inner), &right.level(LEAVES, &inner));
            prop_assert_eq!(leaves, vec![hash.segment % FANOUT as u32]);
        }
    }
}
