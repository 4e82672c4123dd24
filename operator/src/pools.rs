//! Node pools as the driver sees them: every member has a platform index
//! made of its pool's slot and its ordinal in the pool, and a name made of
//! the cluster, the pool and the ordinal.
//!
//! A cluster without `spec.pools` is one implicit pool (slot 0) whose
//! members keep the names of a cluster before pools, `<cluster>-<ordinal>`.
//! A declared pool's members are `<cluster>-<pool>-<ordinal>`. The slot of
//! a declared pool is a hash of its name, so indexes need no stored table
//! and stay the same when pools are added, removed or reordered; two pool
//! names of one cluster whose slots collide are refused ([`check_slots`]).
//! Names parse back to indexes without the spec ([`index_of`]), so members
//! of a pool that was removed from the spec are still recognised, and
//! leave.

use std::collections::BTreeSet;

use dynamo_crd::{DEFAULT_POOL_WEIGHT, DynamoClusterSpec, PoolSpec};

/// Bits of a platform index that hold the ordinal within the pool.
pub const ORDINAL_BITS: u32 = 20;
/// Most members one pool may have (2^20).
pub const MAX_ORDINALS: usize = 1 << ORDINAL_BITS;

/// One pool of a spec: the implicit pool (empty name) or a declared one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool<'a> {
    /// Pool name; empty for the implicit pool of a spec without pools.
    pub name: &'a str,
    /// Members the pool should run.
    pub replicas: usize,
    /// Capacity weight of each member.
    pub weight: u32,
    /// Zone every member of the pool is in, when the pool sets one.
    pub zone: Option<&'a str>,
    /// The declared pool, `None` for the implicit pool.
    pub spec: Option<&'a PoolSpec>,
}

impl Pool<'_> {
    /// The pool's slot: the high bits of its members' indexes.
    pub fn slot(&self) -> usize {
        slot(self.name)
    }

    /// Platform index of the pool's member `ordinal`.
    pub fn index(&self, ordinal: usize) -> usize {
        index(self.slot(), ordinal)
    }
}

/// The pools of `spec`: its declared pools, or one implicit pool of
/// `spec.replicas` members of weight 1.
pub fn pools(spec: &DynamoClusterSpec) -> Vec<Pool<'_>> {
    if spec.pools.is_empty() {
        return vec![Pool {
            name: "",
            replicas: usize::try_from(spec.replicas).unwrap_or(0),
            weight: DEFAULT_POOL_WEIGHT,
            zone: None,
            spec: None,
        }];
    }
    spec.pools
        .iter()
        .map(|pool| Pool {
            name: &pool.name,
            replicas: usize::try_from(pool.replicas).unwrap_or(0),
            weight: pool.weight.max(1),
            zone: pool.zone.as_deref(),
            spec: Some(pool),
        })
        .collect()
}

/// Platform indexes of every member `spec` asks for.
pub fn members(spec: &DynamoClusterSpec) -> BTreeSet<usize> {
    pools(spec)
        .iter()
        .flat_map(|pool| (0..pool.replicas.min(MAX_ORDINALS)).map(|ordinal| pool.index(ordinal)))
        .collect()
}

/// The pool of `spec` that platform index `index` belongs to, if the spec
/// still declares it.
pub fn pool_of(spec: &DynamoClusterSpec, index: usize) -> Option<Pool<'_>> {
    let (slot, _) = split(index);
    pools(spec).into_iter().find(|pool| pool.slot() == slot)
}

/// Checks that no two pools of `spec` share a slot.
///
/// # Errors
/// A sentence naming both pools, asking to rename one.
pub fn check_slots(spec: &DynamoClusterSpec) -> Result<(), String> {
    let pools = pools(spec);
    for (i, a) in pools.iter().enumerate() {
        if let Some(b) = pools[i + 1..].iter().find(|b| b.slot() == a.slot()) {
            return Err(format!(
                "pools {} and {} have the same member index slot: rename one of them",
                a.name, b.name
            ));
        }
    }
    Ok(())
}

/// Slot of pool `name`: 0 for the implicit pool, else a 31-bit FNV-1a hash
/// of the name, never 0.
pub fn slot(name: &str) -> usize {
    if name.is_empty() {
        return 0;
    }
    let mut hash: u32 = 0x811c_9dc5;
    for &byte in name.as_bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash & 0x7fff_ffff).max(1) as usize
}

/// Platform index of member `ordinal` of the pool in `slot`.
pub fn index(slot: usize, ordinal: usize) -> usize {
    (slot << ORDINAL_BITS) | (ordinal & (MAX_ORDINALS - 1))
}

/// The slot and the ordinal of platform index `index`.
pub fn split(index: usize) -> (usize, usize) {
    (index >> ORDINAL_BITS, index & (MAX_ORDINALS - 1))
}

/// Name of member `ordinal` of pool `pool` (empty: the implicit pool) of
/// cluster `cluster`.
pub fn member_name(cluster: &str, pool: &str, ordinal: usize) -> String {
    if pool.is_empty() {
        format!("{cluster}-{ordinal}")
    } else {
        format!("{cluster}-{pool}-{ordinal}")
    }
}

/// The pool name (empty: the implicit pool) and ordinal of member `name` of
/// cluster `cluster`; `None` when `name` is not a member name of it.
pub fn parse_member(cluster: &str, name: &str) -> Option<(String, usize)> {
    let rest = name.strip_prefix(cluster)?.strip_prefix('-')?;
    let ordinal = |text: &str| text.parse::<usize>().ok().filter(|&o| o < MAX_ORDINALS);
    if let Some(ordinal) = ordinal(rest) {
        return Some((String::new(), ordinal));
    }
    let (pool, number) = rest.rsplit_once('-')?;
    dynamo_crd::is_pool_name(pool).then_some(())?;
    Some((pool.to_owned(), ordinal(number)?))
}

/// Platform index of member `name` of cluster `cluster`.
pub fn index_of(cluster: &str, name: &str) -> Option<usize> {
    let (pool, ordinal) = parse_member(cluster, name)?;
    Some(index(slot(&pool), ordinal))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> DynamoClusterSpec {
        serde_yaml::from_str(yaml).expect("a spec")
    }

    #[test]
    fn a_spec_without_pools_is_one_implicit_pool_at_slot_zero() {
        let spec = DynamoClusterSpec::with_replicas(3);
        assert_eq!(members(&spec), BTreeSet::from([0, 1, 2]));
        assert_eq!(member_name("demo", "", 2), "demo-2");
        assert_eq!(index_of("demo", "demo-2"), Some(2));
        assert_eq!(pool_of(&spec, 1).map(|p| p.weight), Some(1));
    }

    #[test]
    fn pool_members_round_trip_through_their_names() {
        let spec = spec(
            "replicas: 3\npools:\n- {name: small, replicas: 2}\n- {name: big-2, replicas: 1, weight: 2, zone: b}\n",
        );
        let wanted = members(&spec);
        assert_eq!(wanted.len(), 3);
        for &index in &wanted {
            let pool = pool_of(&spec, index).expect("a declared pool");
            let (_, ordinal) = split(index);
            let name = member_name("demo", pool.name, ordinal);
            assert_eq!(index_of("demo", &name), Some(index), "{name}");
        }
        let big = pool_of(&spec, index(slot("big-2"), 0)).expect("big-2");
        assert_eq!((big.weight, big.zone), (2, Some("b")));
        assert!(check_slots(&spec).is_ok());
    }

    #[test]
    fn names_of_other_clusters_and_garbage_do_not_parse() {
        for name in [
            "other-1",
            "demo",
            "demo-",
            "demo-x",
            "demo-Big-1",
            "demo-big-x",
        ] {
            assert_eq!(index_of("demo", name), None, "{name}");
        }
        // A removed pool's members still parse, so they can leave.
        assert_eq!(
            index_of("demo", "demo-gone-4"),
            Some(index(slot("gone"), 4))
        );
    }

    #[test]
    fn slots_are_stable_and_never_zero_for_declared_pools() {
        assert_eq!(slot("ssd"), slot("ssd"));
        assert_ne!(slot("ssd"), slot("hdd"));
        assert!(["a", "b", "ssd", "0"].iter().all(|name| slot(name) > 0));
    }
}
