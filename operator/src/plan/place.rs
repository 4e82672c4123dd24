//! Placement engine of the planner: brings every member to its target count
//! with the fewest moves, choosing positions that keep neighbouring
//! partitions in different zones.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::PlanMember;

/// Farthest distance scanned when measuring how close a member's own
/// partitions already sit to a free one.
const SPACING_SCAN: usize = 64;

/// Fills the free partitions (`None`) and moves donors' excess to receivers
/// so that every member owns its weighted share of Q, rounded down or up
/// (`floor(Q/S)` or `ceil(Q/S)` when all weights are equal).
pub(super) fn rebalance(members: &[PlanMember], owners: Vec<Option<u32>>, n: usize) -> Vec<u32> {
    let q = owners.len();
    let mut counts = vec![0usize; members.len()];
    for &owner in owners.iter().flatten() {
        counts[owner as usize] += 1;
    }
    let weights: Vec<u32> = members.iter().map(|member| member.weight).collect();
    let targets = targets(&counts, &weights, q);
    let mut need: Vec<usize> = counts
        .iter()
        .zip(&targets)
        .map(|(&count, &target)| target.saturating_sub(count))
        .collect();
    let mut excess: Vec<usize> = counts
        .iter()
        .zip(&targets)
        .map(|(&count, &target)| count.saturating_sub(target))
        .collect();
    let mut board = Board::new(members, owners, n);

    // Free partitions, in ring order, each to the best-fitting receiver.
    for p in 0..q {
        if board.owners[p].is_some() {
            continue;
        }
        let member = (0..members.len())
            .filter(|&m| need[m] > 0)
            .min_by_key(|&m| {
                let spacing = (q / targets[m].max(1)).clamp(1, SPACING_SCAN);
                let crowding = spacing - board.gap(p, m as u32, spacing);
                (board.clashes(p, m as u32), crowding, Reverse(need[m]), m)
            })
            .expect("receivers need at least as many partitions as are free");
        board.owners[p] = Some(member as u32);
        need[member] -= 1;
    }

    // Donors' excess: each receiver takes one partition per equal arc.
    let receivers: Vec<usize> = (0..members.len()).filter(|&m| need[m] > 0).collect();
    for (rank, &member) in receivers.iter().enumerate() {
        let offset = rank * (q / need[member]) / receivers.len();
        receive(&mut board, member as u32, need[member], offset, &mut excess);
    }
    board
        .owners
        .into_iter()
        .map(|owner| owner.expect("every partition has been given an owner"))
        .collect()
}

/// Gives `member` `wanted` partitions from donors with excess left.
///
/// The ring, rotated by `offset`, is cut into `wanted` equal arcs and each
/// arc yields one partition: repeatedly the best candidate of all arcs not
/// served yet, by fewest added clashes, then nearest its arc's middle. Arcs
/// without donors left are made up for by the best candidates anywhere.
fn receive(board: &mut Board, member: u32, wanted: usize, offset: usize, excess: &mut [usize]) {
    let q = board.owners.len();
    let mut arcs = Arcs {
        of: vec![0; q],
        from_middle: vec![0; q],
        served: vec![false; wanted],
        spread: true,
    };
    for arc in 0..wanted {
        let start = offset + arc_edge(arc, wanted, q);
        let end = offset + arc_edge(arc + 1, wanted, q);
        let middle = (end - start) / 2;
        for position in start..end {
            arcs.of[position % q] = arc;
            arcs.from_middle[position % q] = (position - start).abs_diff(middle);
        }
    }
    let reach = board.zone_window.max(board.member_window);
    let mut left = wanted;
    for spread in [true, false] {
        if left == 0 {
            break;
        }
        arcs.spread = spread;
        // Exact key of every candidate; refreshed around each change.
        let mut keys: Vec<Option<Key>> =
            (0..q).map(|p| arcs.key(board, p, member, excess)).collect();
        let mut queue: BTreeSet<Key> = keys.iter().flatten().copied().collect();
        while left > 0 {
            let Some(key) = queue.pop_first() else {
                break;
            };
            let p = key.partition;
            keys[p] = None;
            // Donors running out and arcs being served only remove candidates.
            let Some(donor) = board.donor(p, excess) else {
                continue;
            };
            if spread && arcs.served[arcs.of[p]] {
                continue;
            }
            board.owners[p] = Some(member);
            excess[donor as usize] -= 1;
            arcs.served[arcs.of[p]] = true;
            left -= 1;
            for distance in 1..=reach {
                for near in [(p + distance) % q, (p + q - distance) % q] {
                    if let Some(stale) = keys[near].take() {
                        queue.remove(&stale);
                    }
                    keys[near] = arcs.key(board, near, member, excess);
                    queue.extend(keys[near]);
                }
            }
        }
    }
    assert_eq!(left, 0, "donors' excess covers what receivers need");
}

/// Order of a candidate partition for a receiver: fewest added clashes, then
/// nearest its arc's middle, then lowest partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    worse: i64,
    from_middle: usize,
    partition: usize,
}

/// The arcs of one receiver.
struct Arcs {
    /// Arc of each partition.
    of: Vec<usize>,
    /// Distance of each partition from its arc's middle.
    from_middle: Vec<usize>,
    /// Arcs that gave a partition already.
    served: Vec<bool>,
    /// Whether to keep to one partition per arc.
    spread: bool,
}

impl Arcs {
    /// The candidate key of `p` for `member`, if `p` is a candidate.
    fn key(&self, board: &Board, p: usize, member: u32, excess: &[usize]) -> Option<Key> {
        let donor = board.donor(p, excess)?;
        if self.spread && self.served[self.of[p]] {
            return None;
        }
        Some(Key {
            worse: board.clashes(p, member) - board.clashes(p, donor),
            from_middle: if self.spread { self.from_middle[p] } else { 0 },
            partition: p,
        })
    }
}

/// Target count per member: its exact share `Q * weight / W` (W the total
/// weight) rounded down, plus one for as many members as partitions are left,
/// chosen among those whose share has a fraction, owning the most above
/// their rounded-down share now (ties by index, so new members come last).
///
/// Giving the extra partitions to members already above their floor keeps
/// them from being donors, so the number of moves stays the fewest any
/// layout within one partition of the exact shares allows.
fn targets(counts: &[usize], weights: &[u32], q: usize) -> Vec<usize> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let share = |m: usize| q as u64 * u64::from(weights[m]);
    let floors: Vec<usize> = (0..counts.len())
        .map(|m| usize::try_from(share(m) / total).expect("a share is at most Q"))
        .collect();
    let left = q - floors.iter().sum::<usize>();
    let mut ranked: Vec<usize> = (0..counts.len())
        .filter(|&m| share(m) % total != 0)
        .collect();
    ranked.sort_by_key(|&m| (Reverse(counts[m] as i64 - floors[m] as i64), m));
    let mut targets = floors;
    for &m in ranked.iter().take(left) {
        targets[m] += 1;
    }
    targets
}

/// Start of arc `arc` when the ring of `q` partitions is cut into `arcs`.
fn arc_edge(arc: usize, arcs: usize, q: usize) -> usize {
    let edge = arc as u64 * q as u64 / arcs as u64;
    usize::try_from(edge).expect("an arc edge lies within the ring")
}

/// Owners being planned, with what the clash measure needs.
struct Board {
    owners: Vec<Option<u32>>,
    /// Zone number of each member.
    zones: Vec<usize>,
    /// Distance within which a shared zone counts as a clash.
    zone_window: usize,
    /// Distance within which the same member counts as a clash.
    member_window: usize,
}

impl Board {
    fn new(members: &[PlanMember], owners: Vec<Option<u32>>, n: usize) -> Self {
        let mut numbers: BTreeMap<&str, usize> = BTreeMap::new();
        let zones = members
            .iter()
            .map(|member| {
                let next = numbers.len();
                *numbers.entry(member.zone.as_str()).or_insert(next)
            })
            .collect();
        // Never let a window reach round the ring back to the partition itself.
        let widest = owners.len().saturating_sub(1) / 2;
        let zone_window = if numbers.len() > 1 {
            (n.min(numbers.len()) - 1).min(widest)
        } else {
            0
        };
        let member_window = n.min(members.len()).saturating_sub(1).min(widest);
        Self {
            owners,
            zones,
            zone_window,
            member_window,
        }
    }

    /// How badly `member` owning `p` clashes with the owners around it:
    /// each neighbour in its zone or equal to it, weighted by closeness.
    fn clashes(&self, p: usize, member: u32) -> i64 {
        let q = self.owners.len();
        let zone = self.zones[member as usize];
        let mut clashes = 0;
        for distance in 1..=self.zone_window.max(self.member_window) {
            for neighbour in [(p + distance) % q, (p + q - distance) % q] {
                let Some(owner) = self.owners[neighbour] else {
                    continue;
                };
                if distance <= self.zone_window && self.zones[owner as usize] == zone {
                    clashes += (self.zone_window + 1 - distance) as i64;
                }
                if distance <= self.member_window && owner == member {
                    clashes += (self.member_window + 1 - distance) as i64;
                }
            }
        }
        clashes
    }

    /// Distance from `p` to the nearest partition `member` owns, up to
    /// `limit` (at most Q).
    fn gap(&self, p: usize, member: u32, limit: usize) -> usize {
        let q = self.owners.len();
        (1..limit)
            .find(|&distance| {
                self.owners[(p + distance) % q] == Some(member)
                    || self.owners[(p + q - distance) % q] == Some(member)
            })
            .unwrap_or(limit)
    }

    /// The owner of `p` when it still has partitions to give away.
    fn donor(&self, p: usize, excess: &[usize]) -> Option<u32> {
        self.owners[p].filter(|&owner| excess[owner as usize] > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_favour_members_owning_most() {
        assert_eq!(targets(&[3, 5, 0], &[1, 1, 1], 10), vec![3, 4, 3]);
        assert_eq!(targets(&[4, 4, 0], &[1, 1, 1], 8), vec![3, 3, 2]);
        assert_eq!(targets(&[0], &[1], 1), vec![1]);
        assert_eq!(targets(&[1, 0, 0], &[1, 1, 1], 1), vec![1, 0, 0]);
    }

    #[test]
    fn targets_follow_weights() {
        assert_eq!(targets(&[0, 0, 0], &[1, 1, 2], 16), vec![4, 4, 8]);
        // 10 * 2/3 = 6.67 and 10 * 1/3 = 3.33: one extra, to the member
        // furthest above its floor.
        assert_eq!(targets(&[5, 5], &[2, 1], 10), vec![6, 4]);
        assert_eq!(targets(&[7, 3], &[2, 1], 10), vec![7, 3]);
        // Exact shares get no extra even when they own more.
        assert_eq!(targets(&[8, 0, 0], &[2, 1, 1], 8), vec![4, 2, 2]);
    }

    #[test]
    fn arcs_cover_the_ring() {
        let edges: Vec<usize> = (0..=3).map(|arc| arc_edge(arc, 3, 64)).collect();
        assert_eq!(edges, [0, 21, 42, 64]);
    }

    #[test]
    fn clashes_weigh_zone_and_member() {
        let member = PlanMember::new;
        let members = [
            member("a", "x"),
            member("b", "y"),
            member("c", "z"),
            member("d", "x"),
        ];
        let owners = vec![
            Some(1),
            Some(0),
            None,
            Some(2),
            Some(1),
            Some(3),
            Some(2),
            Some(0),
        ];
        let board = Board::new(&members, owners, 2);
        // Partition 2 sits between a and c; with N = 2 only distance 1 counts.
        assert_eq!(board.clashes(2, 0), 2, "same member and zone next door");
        assert_eq!(board.clashes(2, 1), 0, "nothing shared");
        assert_eq!(board.clashes(2, 3), 1, "zone shared with a");
    }
}
