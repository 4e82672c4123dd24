//! Token planner: the pure function that decides which member owns each of
//! the ring's Q partitions.
//!
//! The operator computes every ring with this module and commits it; nodes
//! never change ownership on their own (DESIGN.md §2, §5). A [`Layout`] is the
//! member list plus the owner of every partition, nothing else: epochs and
//! transfers belong to the driver.
//!
//! # Algorithm
//!
//! * [`initial`] sorts the members by id, interleaves the zones (the first
//!   member of every zone, then the second, ...) and deals the partitions
//!   round-robin. Consecutive partitions then belong to different members and,
//!   as far as the zones allow, to different zones. It is the same ring a node
//!   builds from its configuration when none was persisted.
//! * [`next`] first fixes a *target* count for every member of the new set:
//!   `floor(Q/S)` for all, plus one for the `Q mod S` members that own the most
//!   partitions now (ties by position, new members last). Partitions of removed
//!   members are *free*; a member above its target is a *donor* of its excess,
//!   one below it a *receiver*. Only free partitions and donors' excess change
//!   owner, and each goes to a receiver, so the number of moves is the sum of
//!   the receivers' needs: the fewest any balanced layout allows.
//!   - Free partitions are handed out in ring order, each to the receiver that
//!     clashes least with the partition's neighbours, then the one whose own
//!     partitions are farthest away.
//!   - A receiver that still needs `k` partitions cuts the ring into `k` equal
//!     arcs, one partition per arc. Among the arcs not served yet it takes
//!     the donor partition whose change of owner adds the fewest clashes
//!     (possibly removing some), nearest its arc's middle, and repeats. Its
//!     partitions end up spread around the ring, not bunched together.
//!
//!   A clash is a neighbour within `min(N, zones) - 1` steps in the same zone,
//!   or within `N - 1` steps owned by the same member, weighted more the
//!   closer it is. Few clashes mean that the plain walk from a partition meets
//!   N distinct zones in about N steps. The preference list spans
//!   `min(N, zones)` zones regardless, since the walk goes round the whole
//!   ring and every member owns a partition when `Q >= S`.
//!
//! Why the bounds hold, from a balanced layout (S members, `a = floor(Q/S)`):
//! * Join (S to S+1): new targets are `b` or `b+1` with `b = floor(Q/(S+1)) <= a`.
//!   The `b+1` slots go to the members that own the most, and there are enough
//!   members owning `a+1` when `a = b`, so no old member is below its target:
//!   the newcomer receives exactly `b` partitions, all from donors.
//! * Leave (S to S-1): new targets are at least `a`, and when they equal `a`
//!   the `a+1` slots (`Q mod (S-1) = a + Q mod S` of them) cover every kept
//!   member owning `a+1`. No kept member is a donor, so exactly the leaver's
//!   partitions move, and they go to receivers chosen by need.
//!
//! Everything iterates vectors and B-trees in a fixed order: the same input
//! always gives the same layout.

mod place;

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

pub use dynamo_ring::MAX_PARTITIONS;

/// Most capacity weight a member may have; the least is 1.
pub const MAX_WEIGHT: u32 = 16;

/// A member as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlanMember {
    /// Node id, unique in the ring.
    pub id: String,
    /// Failure zone; may be empty when the cluster has no zones.
    pub zone: String,
    /// Capacity weight in `1..=MAX_WEIGHT`: the member's share of the Q
    /// partitions is `Q * weight / total weight`, rounded down or up.
    pub weight: u32,
}

impl PlanMember {
    /// A member of weight 1.
    pub fn new(id: impl Into<String>, zone: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            zone: zone.into(),
            weight: 1,
        }
    }

    /// The same member with capacity weight `weight`.
    #[must_use]
    pub fn with_weight(self, weight: u32) -> Self {
        Self { weight, ..self }
    }
}

/// Members and the owner of every partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Ring members; [`Layout::owners`] holds indexes into this list.
    pub members: Vec<PlanMember>,
    /// Owner (index into [`Layout::members`]) of each partition; its length is Q.
    pub owners: Vec<u32>,
}

impl Layout {
    /// Number of partitions Q.
    ///
    /// # Panics
    /// When the owner list is longer than `u32::MAX` (never for a valid layout).
    pub fn partitions(&self) -> u32 {
        u32::try_from(self.owners.len()).expect("a layout has at most MAX_PARTITIONS partitions")
    }

    /// Partitions owned by each member, by member index.
    pub fn owned(&self) -> Vec<u32> {
        let mut owned = vec![0; self.members.len()];
        for &owner in &self.owners {
            if let Some(count) = owned.get_mut(owner as usize) {
                *count += 1;
            }
        }
        owned
    }

    /// Checks that Q is valid, the members are unique and every owner exists.
    ///
    /// # Errors
    /// The first [`PlanError`] found.
    pub fn validate(&self) -> Result<(), PlanError> {
        check_partitions(self.owners.len() as u64)?;
        check_members(&self.members)?;
        let members = self.members.len();
        match self
            .owners
            .iter()
            .enumerate()
            .find(|&(_, &owner)| owner as usize >= members)
        {
            Some((partition, &owner)) => Err(PlanError::Owner {
                partition: partition as u32,
                owner,
                members,
            }),
            None => Ok(()),
        }
    }
}

/// Why a layout cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// Q is not a power of two in `1..=MAX_PARTITIONS`.
    #[error(transparent)]
    Partitions(#[from] dynamo_ring::PartitionsError),
    /// The member set is empty.
    #[error("a ring needs at least one member")]
    NoMembers,
    /// Two members share an id.
    #[error("member id {id:?} appears more than once")]
    DuplicateMember {
        /// The repeated id.
        id: String,
    },
    /// A member's weight is outside `1..=MAX_WEIGHT`.
    #[error("member {id:?} has weight {weight}; it must be between 1 and {MAX_WEIGHT}")]
    Weight {
        /// The member.
        id: String,
        /// The weight given.
        weight: u32,
    },
    /// Weighted members need at least as many partitions as their total
    /// weight, so that each owns its share and at least one partition.
    #[error(
        "{partitions} partitions are too few for a total weight of {total}; weighted members need at least one partition per unit of weight"
    )]
    TooLight {
        /// Q.
        partitions: u32,
        /// Sum of the members' weights.
        total: u64,
    },
    /// The replication factor is zero.
    #[error("replication factor n is {n}; it must be at least 1")]
    Replication {
        /// The replication factor given.
        n: usize,
    },
    /// A partition's owner index is outside the member list.
    #[error(
        "partition {partition} is owned by member index {owner}, but there are {members} members"
    )]
    Owner {
        /// The partition.
        partition: u32,
        /// Its owner index.
        owner: u32,
        /// Number of members in the layout.
        members: usize,
    },
}

/// The first layout for a set of members: sorted by id, zones interleaved,
/// partitions dealt round-robin (the ring a node builds from its config).
///
/// # Errors
/// [`PlanError`] when Q is not a power of two up to [`MAX_PARTITIONS`], `n` is zero, the
/// members are empty or repeat an id, a weight is out of range, or weighted
/// members weigh more than Q.
///
/// # Examples
/// ```
/// use dynamo_operator::plan::{PlanMember, initial};
/// let members: Vec<_> = ["a", "b"]
///     .iter()
///     .map(|id| PlanMember::new(*id, ""))
///     .collect();
/// let layout = initial(&members, 8, 3)?;
/// assert_eq!(layout.owners, [0, 1, 0, 1, 0, 1, 0, 1]);
/// # Ok::<(), dynamo_operator::plan::PlanError>(())
/// ```
pub fn initial(members: &[PlanMember], partitions: u32, n: usize) -> Result<Layout, PlanError> {
    check_partitions(u64::from(partitions))?;
    check_replication(n)?;
    check_members(members)?;
    check_weights(members, partitions)?;
    let mut members = members.to_vec();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let owners = dynamo_ring::initial_owners(&zones(&members), partitions);
    // Equal weights: already balanced, and rebalancing keeps every owner.
    let owners = place::rebalance(&members, owners.into_iter().map(Some).collect(), n);
    Ok(Layout { members, owners })
}

/// The next layout: from `current` to the member set `desired`, balanced and
/// with the fewest partition moves.
///
/// Members kept (matched by id, zone taken from `desired`) stay in their
/// current order; new members follow, sorted by id; removed members are
/// dropped and owner indexes remapped. An unbalanced `current` is rebalanced.
///
/// # Errors
/// [`PlanError`] when `current` is invalid, `n` is zero, `desired` is empty,
/// repeats an id, has a weight out of range, or weighs more than Q.
///
/// # Examples
/// ```
/// use dynamo_operator::plan::{PlanMember, initial, moves, next};
/// let member = |id: &str| PlanMember::new(id, "");
/// let two = initial(&[member("a"), member("b")], 64, 3)?;
/// let three = next(&two, &[member("a"), member("b"), member("c")], 3)?;
/// assert_eq!(three.owned(), [22, 21, 21]);
/// assert_eq!(moves(&two, &three).len(), 21);
/// # Ok::<(), dynamo_operator::plan::PlanError>(())
/// ```
pub fn next(current: &Layout, desired: &[PlanMember], n: usize) -> Result<Layout, PlanError> {
    current.validate()?;
    check_replication(n)?;
    check_members(desired)?;
    check_weights(desired, current.partitions())?;
    let wanted: BTreeMap<&str, &PlanMember> = desired.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut members = Vec::with_capacity(desired.len());
    let mut remap = vec![None; current.members.len()];
    for (index, member) in current.members.iter().enumerate() {
        if let Some(&kept) = wanted.get(member.id.as_str()) {
            remap[index] = Some(members.len() as u32);
            members.push(kept.clone());
        }
    }
    let existing: BTreeSet<&str> = current.members.iter().map(|m| m.id.as_str()).collect();
    let mut added: Vec<&PlanMember> = desired
        .iter()
        .filter(|m| !existing.contains(m.id.as_str()))
        .collect();
    added.sort_by(|a, b| a.id.cmp(&b.id));
    members.extend(added.into_iter().cloned());
    let owners = current
        .owners
        .iter()
        .map(|&owner| remap[owner as usize])
        .collect();
    let owners = place::rebalance(&members, owners, n);
    Ok(Layout { members, owners })
}

/// Partitions whose owner (compared by member id) differs between two
/// layouts, in ascending order. With different Q, partitions missing from one
/// side count as moved.
pub fn moves(from: &Layout, to: &Layout) -> Vec<u32> {
    (0..from.owners.len().max(to.owners.len()))
        .filter(|&p| owner_id(from, p).is_none() || owner_id(from, p) != owner_id(to, p))
        .map(|p| p as u32)
        .collect()
}

/// The member indexes that replicate `partition`: the first `n` of the
/// ring's preference walk ([`dynamo_ring::walk`]), the same walk the nodes
/// and clients use. With fewer than `n` members it holds them all.
///
/// # Panics
/// When `partition` is not below Q.
pub fn preference_list(layout: &Layout, partition: u32, n: usize) -> Vec<u32> {
    let mut walk = dynamo_ring::walk(&layout.owners, &zones(&layout.members), partition, n);
    walk.truncate(n);
    walk
}

/// The zone of every member, by index.
fn zones(members: &[PlanMember]) -> Vec<&str> {
    members.iter().map(|member| member.zone.as_str()).collect()
}

/// Id of the owner of partition `p`, if the layout has one.
fn owner_id(layout: &Layout, p: usize) -> Option<&str> {
    layout
        .owners
        .get(p)
        .and_then(|&owner| layout.members.get(owner as usize))
        .map(|member| member.id.as_str())
}

fn check_partitions(partitions: u64) -> Result<(), PlanError> {
    dynamo_ring::check_partitions(partitions)?;
    Ok(())
}

fn check_replication(n: usize) -> Result<(), PlanError> {
    if n == 0 {
        Err(PlanError::Replication { n })
    } else {
        Ok(())
    }
}

/// With any weight above 1, Q must be at least the total weight (with equal
/// weights, any Q: a member beyond the Q-th simply owns nothing).
fn check_weights(members: &[PlanMember], partitions: u32) -> Result<(), PlanError> {
    let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    if members.iter().any(|m| m.weight > 1) && total > u64::from(partitions) {
        Err(PlanError::TooLight { partitions, total })
    } else {
        Ok(())
    }
}

fn check_members(members: &[PlanMember]) -> Result<(), PlanError> {
    if members.is_empty() {
        return Err(PlanError::NoMembers);
    }
    if let Some(member) = members
        .iter()
        .find(|m| !(1..=MAX_WEIGHT).contains(&m.weight))
    {
        return Err(PlanError::Weight {
            id: member.id.clone(),
            weight: member.weight,
        });
    }
    let mut seen = BTreeSet::new();
    match members.iter().find(|m| !seen.insert(m.id.as_str())) {
        Some(member) => Err(PlanError::DuplicateMember {
            id: member.id.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
