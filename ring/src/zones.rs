//! Zones in the first ring: members of different failure zones take turns,
//! so neighbouring partitions (and so preference lists) span zones.

use std::collections::BTreeMap;

/// Member indexes in dealing order: the first member of every zone (zones
/// by name), then the second of every zone, and so on. `zones` holds each
/// member's zone; within a zone members keep their order.
///
/// # Examples
/// ```
/// assert_eq!(dynamo_ring::deal(&["x", "x", "y"]), [0, 2, 1]);
/// ```
pub fn deal<Z: AsRef<str>>(zones: &[Z]) -> Vec<u32> {
    let mut by_zone: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (index, zone) in (0u32..).zip(zones) {
        by_zone.entry(zone.as_ref()).or_default().push(index);
    }
    let deepest = by_zone.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|round| {
            by_zone
                .values()
                .filter_map(move |ids| ids.get(round).copied())
        })
        .collect()
}

/// The owners of the first ring: `partitions` partitions dealt round-robin
/// in [`deal`] order. Every member computes the same ring from the same
/// member list when the members are given in the same order (sorted by id,
/// by convention). Empty when there are no members.
///
/// # Examples
/// ```
/// assert_eq!(dynamo_ring::initial_owners(&["x", "x", "y"], 4), [0, 2, 1, 0]);
/// ```
pub fn initial_owners<Z: AsRef<str>>(zones: &[Z], partitions: u32) -> Vec<u32> {
    let dealt = deal(zones);
    if dealt.is_empty() {
        return Vec::new();
    }
    (0..partitions as usize)
        .map(|p| dealt[p % dealt.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::walk;

    fn zones(count: usize, zones: usize) -> Vec<String> {
        (0..count)
            .map(|i| format!("zone-{}", i % zones.max(1)))
            .collect()
    }

    #[test]
    fn no_members_own_nothing() {
        assert!(initial_owners::<&str>(&[], 8).is_empty());
    }

    proptest! {
        #[test]
        fn initial_ring_is_balanced_and_zone_spread(
            count in 3usize..20, zone_count in 1usize..5, log_q in 4u32..11,
        ) {
            let q = 1u32 << log_q;
            let zones = zones(count, zone_count);
            let owners = initial_owners(&zones, q);
            prop_assert_eq!(owners.len(), q as usize);
            let floor = q / count as u32;
            for member in 0..count as u32 {
                let owned = owners.iter().filter(|&&o| o == member).count() as u32;
                prop_assert!(owned == floor || owned == floor + 1, "{owned} vs {floor}");
            }
            for p in 0..q {
                let all = walk(&owners, &zones, p, 3);
                prop_assert_eq!(all.len(), count);
                let preference = &all[..3];
                let distinct: BTreeSet<_> = preference.iter().collect();
                prop_assert_eq!(distinct.len(), 3);
                let used: BTreeSet<_> = preference.iter().map(|&m| &zones[m as usize]).collect();
                prop_assert_eq!(used.len(), zone_count.min(3));
            }
        }
    }
}
