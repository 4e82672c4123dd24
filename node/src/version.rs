//! Dotted version vectors: clocks, versions, sibling sets and their merge.
//!
//! A [`Version`] is a write: its dot `(node, counter)` names the event, and its
//! `past` is the clock of the context it replaced. A [`SiblingSet`] holds the
//! versions of one key that no other version has seen. Two writes with the same
//! stale context through the same coordinator get different dots, so both
//! survive as siblings (plain per-node vector clocks would lose one).

use std::collections::BTreeMap;

use bytes::Bytes;

/// Incarnation id of a node: a random number created with its data directory.
pub type NodeId = u64;

/// One event: the `counter`-th write coordinated by incarnation `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// Incarnation id of the coordinator.
    pub node: NodeId,
    /// Event counter on that coordinator.
    pub counter: u64,
}

/// A version vector: for each incarnation, the highest counter seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Clock(BTreeMap<NodeId, u64>);

impl Clock {
    /// An empty clock: has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a clock from `(node, counter)` pairs, keeping the highest counter
    /// per node.
    pub fn from_entries(entries: impl IntoIterator<Item = (NodeId, u64)>) -> Self {
        let mut clock = Self::new();
        for (node, counter) in entries {
            clock.observe(Dot { node, counter });
        }
        clock
    }

    /// The `(node, counter)` pairs in node order.
    pub fn entries(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.0.iter().map(|(node, counter)| (*node, *counter))
    }

    /// Number of nodes in the clock.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the clock has seen nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The highest counter seen from `node` (0 when none).
    pub fn get(&self, node: NodeId) -> u64 {
        self.0.get(&node).copied().unwrap_or(0)
    }

    /// True when this clock has seen `dot`.
    pub fn contains(&self, dot: Dot) -> bool {
        self.get(dot.node) >= dot.counter
    }

    /// Records `dot` as seen.
    pub fn observe(&mut self, dot: Dot) {
        let entry = self.0.entry(dot.node).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// Pointwise maximum with `other`.
    pub fn join(&mut self, other: &Clock) {
        for (node, counter) in other.entries() {
            self.observe(Dot { node, counter });
        }
    }

    /// True when this clock has seen everything `other` has seen.
    pub fn descends(&self, other: &Clock) -> bool {
        other
            .entries()
            .all(|(node, counter)| self.get(node) >= counter)
    }
}

/// One write of a key: a dot, the causal past it replaced, and the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The event that created this version.
    pub dot: Dot,
    /// Clock of the context the write replaced.
    pub past: Clock,
    /// The value; empty for a tombstone.
    pub value: Bytes,
    /// True when this version records a delete.
    pub tombstone: bool,
    /// Coordinator wall-clock time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl Version {
    /// The full clock of this version: its past plus its own dot.
    pub fn clock(&self) -> Clock {
        let mut clock = self.past.clone();
        clock.observe(self.dot);
        clock
    }

    /// True when `other` replaced this version (its past has seen our dot).
    pub fn is_obsoleted_by(&self, other: &Version) -> bool {
        other.dot != self.dot && other.past.contains(self.dot)
    }
}

/// The versions of one key that no other known version has replaced.
///
/// Versions are kept sorted by dot, so equal sets compare and encode equally.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiblingSet {
    versions: Vec<Version>,
}

impl SiblingSet {
    /// An empty set: the key does not exist here.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from arbitrary versions, dropping duplicates and versions
    /// that another one replaced.
    pub fn from_versions(versions: Vec<Version>) -> Self {
        let mut set = Self { versions };
        set.normalize();
        set
    }

    /// The versions, ordered by dot.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// Consumes the set, returning its versions.
    pub fn into_versions(self) -> Vec<Version> {
        self.versions
    }

    /// Number of siblings, tombstones included.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// True when there is no version at all.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Versions that are not tombstones.
    pub fn live(&self) -> impl Iterator<Item = &Version> {
        self.versions.iter().filter(|version| !version.tombstone)
    }

    /// The causal context of the whole set: the join of every version's clock.
    pub fn context(&self) -> Clock {
        let mut clock = Clock::new();
        for version in &self.versions {
            clock.join(&version.past);
            clock.observe(version.dot);
        }
        clock
    }

    /// The highest counter of `node` anywhere in this set.
    pub fn max_counter(&self, node: NodeId) -> u64 {
        self.context().get(node)
    }

    /// Applies a local write: drops every version `context` has seen and adds
    /// `version`, whose past must be `context`.
    pub fn apply(&mut self, context: &Clock, version: Version) {
        self.versions.retain(|old| !context.contains(old.dot));
        self.versions.push(version);
        self.normalize();
    }

    /// Merges another replica's set into this one. Returns true when this set
    /// changed.
    pub fn merge(&mut self, other: &SiblingSet) -> bool {
        let known = |dot: Dot| self.versions.iter().any(|own| own.dot == dot);
        let missing: Vec<Version> = other
            .versions
            .iter()
            .filter(|version| !known(version.dot))
            .cloned()
            .collect();
        if missing.is_empty() {
            return false;
        }
        let before: Vec<Dot> = self.versions.iter().map(|version| version.dot).collect();
        self.versions.extend(missing);
        self.normalize();
        !self.versions.iter().map(|version| version.dot).eq(before)
    }

    /// True when every version of `other` is in this set or replaced by one.
    pub fn covers(&self, other: &SiblingSet) -> bool {
        other.versions.iter().all(|theirs| {
            self.versions
                .iter()
                .any(|own| own.dot == theirs.dot || theirs.is_obsoleted_by(own))
        })
    }

    /// Sorts by dot, removes duplicate dots and versions another replaced.
    fn normalize(&mut self) {
        self.versions.sort_by_key(|version| version.dot);
        self.versions.dedup_by_key(|version| version.dot);
        let obsolete: Vec<bool> = self
            .versions
            .iter()
            .map(|version| {
                self.versions
                    .iter()
                    .any(|other| version.is_obsoleted_by(other))
            })
            .collect();
        let mut index = 0;
        self.versions.retain(|_| {
            let keep = !obsolete[index];
            index += 1;
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: NodeId = 0xA;
    const B: NodeId = 0xB;

    fn version(node: NodeId, counter: u64, past: &Clock, value: &str) -> Version {
        Version {
            dot: Dot { node, counter },
            past: past.clone(),
            value: Bytes::copy_from_slice(value.as_bytes()),
            tombstone: false,
            timestamp_ms: counter,
        }
    }

    #[test]
    fn concurrent_writes_with_the_same_context_both_survive() {
        let mut set = SiblingSet::new();
        let stale = Clock::new();
        set.apply(&stale, version(A, 1, &stale, "x"));
        set.apply(&stale, version(A, 2, &stale, "y"));
        assert_eq!(set.len(), 2);
        let ctx = set.context();
        set.apply(&ctx, version(A, 3, &ctx, "z"));
        assert_eq!(set.len(), 1);
        assert_eq!(set.versions()[0].value, Bytes::from_static(b"z"));
    }

    #[test]
    fn a_write_replaces_only_what_its_context_saw() {
        let mut set = SiblingSet::new();
        let empty = Clock::new();
        set.apply(&empty, version(A, 1, &empty, "a1"));
        let seen = set.context();
        set.apply(&empty, version(B, 1, &empty, "b1"));
        set.apply(&seen, version(A, 2, &seen, "a2"));
        let values: Vec<_> = set.versions().iter().map(|v| v.value.clone()).collect();
        assert_eq!(
            values,
            vec![Bytes::from_static(b"a2"), Bytes::from_static(b"b1")]
        );
    }

    #[test]
    fn merge_drops_replaced_versions_from_either_side() {
        let empty = Clock::new();
        let old = version(A, 1, &empty, "old");
        let new = version(B, 1, &old.clock(), "new");
        let mut left = SiblingSet::from_versions(vec![old]);
        let right = SiblingSet::from_versions(vec![new.clone()]);
        assert!(left.merge(&right));
        assert_eq!(left.versions(), &[new]);
        assert!(!left.merge(&right), "merging again changes nothing");
    }

    #[test]
    fn clock_ordering() {
        let small = Clock::from_entries([(A, 1)]);
        let big = Clock::from_entries([(A, 2), (B, 1)]);
        assert!(big.descends(&small));
        assert!(!small.descends(&big));
        assert!(big.contains(Dot {
            node: B,
            counter: 1
        }));
        assert!(!big.contains(Dot {
            node: B,
            counter: 2
        }));
    }

    /// A causally consistent history: each write read some earlier versions
    /// (its context) on one of three coordinators.
    fn arb_history() -> impl Strategy<Value = Vec<Version>> {
        proptest::collection::vec((0u64..3, any::<u64>()), 1..12).prop_map(|steps| {
            let mut history: Vec<Version> = Vec::new();
            let mut counters = [0u64; 3];
            for (node, seen_mask) in steps {
                let mut past = Clock::new();
                for (i, earlier) in history.iter().enumerate() {
                    if seen_mask & (1 << i) != 0 {
                        past.join(&earlier.clock());
                    }
                }
                // Replicas hold a coordinator's dots as a prefix (they get its
                // whole sibling set), so seeing (n, k) means seeing every
                // earlier dot of n.
                loop {
                    let before = past.clone();
                    for earlier in history.iter().filter(|e| before.contains(e.dot)) {
                        past.join(&earlier.clock());
                    }
                    if past == before {
                        break;
                    }
                }
                counters[node as usize] += 1;
                let counter = counters[node as usize];
                history.push(Version {
                    dot: Dot { node, counter },
                    past,
                    value: Bytes::from(format!("{node}:{counter}")),
                    tombstone: counter % 4 == 0,
                    timestamp_ms: counter,
                });
            }
            history
        })
    }

    /// Three replicas' sets, each a subset of one history.
    fn arb_sets() -> impl Strategy<Value = (SiblingSet, SiblingSet, SiblingSet)> {
        (arb_history(), any::<[u16; 3]>()).prop_map(|(history, masks)| {
            let pick = |mask: u16| {
                SiblingSet::from_versions(
                    history
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, v)| v.clone())
                        .collect(),
                )
            };
            (pick(masks[0]), pick(masks[1]), pick(masks[2]))
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative((a, b, _) in arb_sets()) {
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            prop_assert_eq!(ab, ba);
        }

        #[test]
        fn merge_is_associative((a, b, c) in arb_sets()) {
            let mut left = a.clone();
            left.merge(&b);
            left.merge(&c);
            let mut bc = b.clone();
            bc.merge(&c);
            let mut right = a.clone();
            right.merge(&bc);
            prop_assert_eq!(left, right);
        }

        #[test]
        fn merge_is_idempotent_and_covers_both((a, b, _) in arb_sets()) {
            let mut merged = a.clone();
            merged.merge(&b);
            let again = merged.clone();
            prop_assert!(!merged.clone().merge(&again));
            prop_assert!(merged.covers(&a));
            prop_assert!(merged.covers(&b));
        }

        #[test]
        fn no_sibling_replaces_another((a, b, _) in arb_sets()) {
            let mut merged = a;
            merged.merge(&b);
            for x in merged.versions() {
                for y in merged.versions() {
                    prop_assert!(!x.is_obsoleted_by(y));
                }
            }
        }

        #[test]
        fn context_descends_every_sibling((set, _, _) in arb_sets()) {
            let ctx = set.context();
            for version in set.versions() {
                prop_assert!(ctx.descends(&version.clock()));
            }
        }

        #[test]
        fn a_write_with_the_full_context_leaves_one_version((set, _, _) in arb_sets()) {
            let mut set = set;
            let ctx = set.context();
            let dot = Dot { node: 7, counter: ctx.get(7) + 1 };
            set.apply(&ctx, Version {
                dot,
                past: ctx.clone(),
                value: Bytes::from_static(b"new"),
                tombstone: false,
                timestamp_ms: 0,
            });
            prop_assert_eq!(set.len(), 1);
            prop_assert_eq!(set.versions()[0].dot, dot);
        }
    }
}
