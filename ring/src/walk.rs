//! The preference walk: which members replicate a partition, and which stand
//! in for them when they are down.

use std::collections::HashSet;

/// Every member index in preference order for `partition`.
///
/// Walks the ring clockwise from `partition` over `owners` (the owner of
/// each partition, as an index into `zones`, which holds every member's
/// zone) and collects distinct members. The first `n` entries are the
/// preference list: members in zones not used yet first, then the rest in
/// walk order, then members that own nothing (by index) when the walk met
/// fewer than `n`. The entries after them are the fallbacks of a sloppy
/// quorum, in the same order. The result always holds every member once.
///
/// # Panics
/// When an owner is not an index into `zones`, or `partition` is not below
/// `owners.len()` (a validated ring has neither).
///
/// # Examples
/// ```
/// // Members a (zone x), b (x), c (y); partitions owned a, b, c, a.
/// let zones = ["x", "x", "y"];
/// let owners = [0, 1, 2, 0];
/// // From partition 0 the walk meets a, b, c; zones first: a (x), c (y).
/// assert_eq!(dynamo_ring::walk(&owners, &zones, 0, 2), [0, 2, 1]);
/// ```
pub fn walk<Z: AsRef<str>>(owners: &[u32], zones: &[Z], partition: u32, n: usize) -> Vec<u32> {
    let members = zones.len();
    let q = owners.len();
    let start = partition as usize;
    assert!(
        q == 0 || start < q,
        "partition {partition} is outside a ring of {q}"
    );
    // Distinct owners clockwise; the rest of the ring changes nothing once
    // every member has been met.
    let mut met = vec![false; members];
    let mut order: Vec<u32> = Vec::with_capacity(members);
    for step in 0..q {
        if order.len() == members {
            break;
        }
        let owner = owners[(start + step) % q];
        if !std::mem::replace(&mut met[owner as usize], true) {
            order.push(owner);
        }
    }
    let mut chosen: Vec<u32> = Vec::with_capacity(members);
    let mut taken = vec![false; members];
    let mut take = |member: u32, chosen: &mut Vec<u32>| {
        if !std::mem::replace(&mut taken[member as usize], true) {
            chosen.push(member);
        }
    };
    let mut zones_used: HashSet<&str> = HashSet::new();
    for &member in &order {
        if chosen.len() < n && zones_used.insert(zones[member as usize].as_ref()) {
            take(member, &mut chosen);
        }
    }
    for &member in &order {
        if chosen.len() >= n {
            break;
        }
        take(member, &mut chosen);
    }
    for &member in &order {
        take(member, &mut chosen);
    }
    // Members that own no partition still serve as fallbacks.
    for member in 0..members as u32 {
        take(member, &mut chosen);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// The walk as the paper states it, visiting the whole ring: the
    /// reference the faster [`walk`] must agree with.
    fn reference(owners: &[u32], zones: &[String], partition: usize, n: usize) -> Vec<u32> {
        let q = owners.len();
        let mut order: Vec<u32> = Vec::new();
        for step in 0..q {
            let owner = owners[(partition + step) % q];
            if !order.contains(&owner) {
                order.push(owner);
            }
        }
        let mut chosen: Vec<u32> = Vec::new();
        let mut zones_used = BTreeSet::new();
        for &member in &order {
            if chosen.len() < n && zones_used.insert(zones[member as usize].as_str()) {
                chosen.push(member);
            }
        }
        for &member in &order {
            if chosen.len() < n && !chosen.contains(&member) {
                chosen.push(member);
            }
        }
        for member in order.iter().copied().chain(0..zones.len() as u32) {
            if !chosen.contains(&member) {
                chosen.push(member);
            }
        }
        chosen
    }

    #[test]
    fn prefers_new_zones_then_walk_order() {
        // a (x), b (x), c (y), d (z), e (x) owning nothing.
        let zones = ["x", "x", "y", "z", "x"];
        let owners = [0, 1, 2, 0, 3, 1, 2, 3];
        // Walk from 0: a b c d; zones first: a (x), c (y), d (z).
        assert_eq!(&walk(&owners, &zones, 0, 3)[..3], [0, 2, 3]);
        // Walk from 5: b c d a; zones first b c d, then a fills the fourth slot.
        assert_eq!(&walk(&owners, &zones, 5, 4)[..4], [1, 2, 3, 0]);
        // e owns nothing: it comes last.
        assert_eq!(walk(&owners, &zones, 1, 9), [1, 2, 3, 0, 4]);
    }

    #[test]
    fn one_member_replicates_alone() {
        assert_eq!(walk(&[0; 64], &["z"], 17, 3), [0]);
        assert_eq!(walk(&[0; 4], &["z", "z"], 1, 3), [0, 1]);
    }

    proptest! {
        #[test]
        fn matches_the_reference_walk(
            zones in prop::collection::vec(0usize..4, 1..8),
            owners in prop::collection::vec(any::<prop::sample::Index>(), 16),
            n in 1usize..=9,
        ) {
            let zones: Vec<String> = zones.iter().map(|zone| format!("z{zone}")).collect();
            let owners: Vec<u32> = owners.iter().map(|o| o.index(zones.len()) as u32).collect();
            for p in 0..owners.len() {
                let got = walk(&owners, &zones, p as u32, n);
                prop_assert_eq!(&got, &reference(&owners, &zones, p, n));
                let distinct: BTreeSet<u32> = got.iter().copied().collect();
                prop_assert_eq!(distinct.len(), zones.len());
            }
        }

        /// One walk serves every N: the first k entries of the walk for N
        /// members are the preference list for N = k, so a bucket's list is
        /// a prefix of the full walk.
        #[test]
        fn shorter_preference_lists_are_prefixes(
            zones in prop::collection::vec(0usize..4, 1..9),
            owners in prop::collection::vec(any::<prop::sample::Index>(), 16),
        ) {
            let zones: Vec<String> = zones.iter().map(|zone| format!("z{zone}")).collect();
            let owners: Vec<u32> = owners.iter().map(|o| o.index(zones.len()) as u32).collect();
            for p in 0..owners.len() as u32 {
                let full = walk(&owners, &zones, p, zones.len());
                for k in 1..=zones.len() {
                    prop_assert_eq!(&walk(&owners, &zones, p, k)[..k], &full[..k]);
                }
            }
        }
    }
}
