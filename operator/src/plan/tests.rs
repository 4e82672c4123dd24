//! Planner tests: examples, errors, and the balance, movement, zone-spread
//! and determinism properties.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

/// Member `i`; zones are dealt round-robin (`zones == 0`: no zone).
fn member(i: usize, zones: usize) -> PlanMember {
    let zone = if zones == 0 {
        String::new()
    } else {
        format!("z{}", i % zones)
    };
    PlanMember::new(format!("m{i:03}"), zone)
}

fn members(ids: impl IntoIterator<Item = usize>, zones: usize) -> Vec<PlanMember> {
    ids.into_iter().map(|i| member(i, zones)).collect()
}

fn ids(layout: &Layout) -> Vec<&str> {
    layout.members.iter().map(|m| m.id.as_str()).collect()
}

fn distinct_zones(layout: &Layout) -> usize {
    let zones: BTreeSet<&str> = layout.members.iter().map(|m| m.zone.as_str()).collect();
    zones.len()
}

fn check_balanced(layout: &Layout) -> Result<(), TestCaseError> {
    prop_assert!(layout.validate().is_ok());
    let q = layout.owners.len() as u32;
    let s = layout.members.len() as u32;
    for (index, owned) in layout.owned().into_iter().enumerate() {
        prop_assert!(
            owned == q / s || owned == q.div_ceil(s),
            "member {index} owns {owned} of {q} partitions with {s} members"
        );
    }
    Ok(())
}

/// Every preference list has min(n, S) members spanning min(n, zones) zones.
fn check_spread(layout: &Layout, n: usize) -> Result<(), TestCaseError> {
    let want_zones = n.min(distinct_zones(layout));
    for p in 0..layout.partitions() {
        let list = preference_list(layout, p, n);
        prop_assert_eq!(list.len(), n.min(layout.members.len()));
        let distinct: BTreeSet<u32> = list.iter().copied().collect();
        prop_assert_eq!(
            distinct.len(),
            list.len(),
            "partition {} repeats a member",
            p
        );
        let zones: BTreeSet<&str> = list
            .iter()
            .map(|&m| layout.members[m as usize].zone.as_str())
            .collect();
        prop_assert!(
            zones.len() >= want_zones,
            "partition {p} spans {} zones",
            zones.len()
        );
    }
    Ok(())
}

/// Partitions the plain walk visits from `p` before it has seen
/// min(n, zones) distinct zones.
fn walk_steps(layout: &Layout, p: usize, n: usize) -> usize {
    let q = layout.owners.len();
    let want = n.min(distinct_zones(layout));
    let mut seen = BTreeSet::new();
    (0..q)
        .position(|step| {
            let owner = layout.owners[(p + step) % q] as usize;
            seen.insert(layout.members[owner].zone.as_str());
            seen.len() >= want
        })
        .map_or(q, |step| step + 1)
}

/// Share of partitions whose walk meets min(n, zones) zones in as many steps.
fn direct_share(layout: &Layout, n: usize) -> f64 {
    let want = n.min(distinct_zones(layout));
    let q = layout.owners.len();
    let direct = (0..q).filter(|&p| walk_steps(layout, p, n) == want).count();
    direct as f64 / q as f64
}

/// Widest gap between partitions of `member`, in multiples of the even gap.
fn widest_gap(layout: &Layout, member: usize) -> f64 {
    let q = layout.owners.len();
    let own: Vec<usize> = (0..q)
        .filter(|&p| layout.owners[p] as usize == member)
        .collect();
    let (Some(first), Some(last)) = (own.first(), own.last()) else {
        return 0.0;
    };
    let wrap = first + q - last;
    let widest = own.windows(2).map(|w| w[1] - w[0]).fold(wrap, usize::max);
    (widest * own.len()) as f64 / q as f64
}

/// The join bound: ceil(Q/(S+1)) plus 10%, rounded up.
fn join_bound(q: usize, joined: usize) -> usize {
    (q.div_ceil(joined) * 11).div_ceil(10)
}

#[test]
fn initial_deals_round_robin_with_zones_interleaved() {
    let given = vec![
        PlanMember::new("c", "x"),
        PlanMember::new("a", "x"),
        PlanMember::new("b", "y"),
    ];
    let layout = initial(&given, 8, 2).expect("valid input");
    assert_eq!(ids(&layout), ["a", "b", "c"]);
    // Zone x holds a and c, zone y holds b: dealt a, b, c.
    assert_eq!(layout.owners, [0, 1, 2, 0, 1, 2, 0, 1]);
    assert_eq!(layout.owned(), [3, 3, 2]);
}

#[test]
fn errors_name_what_is_wrong() {
    let three = members(0..3, 2);
    for q in [0, 3, 96, 131_072] {
        assert_eq!(
            initial(&three, q, 3),
            Err(PlanError::Partitions(dynamo_ring::PartitionsError {
                partitions: u64::from(q)
            }))
        );
    }
    assert_eq!(initial(&[], 64, 3), Err(PlanError::NoMembers));
    assert_eq!(initial(&three, 64, 0), Err(PlanError::Replication { n: 0 }));
    let twice = members([0, 1, 0], 2);
    assert_eq!(
        initial(&twice, 64, 3),
        Err(PlanError::DuplicateMember { id: "m000".into() })
    );
    let layout = initial(&three, 64, 3).expect("valid input");
    assert_eq!(next(&layout, &[], 3), Err(PlanError::NoMembers));
    assert_eq!(
        next(&layout, &twice, 3),
        Err(PlanError::DuplicateMember { id: "m000".into() })
    );
    let mut broken = layout;
    broken.owners[5] = 3;
    assert_eq!(
        next(&broken, &three, 3),
        Err(PlanError::Owner {
            partition: 5,
            owner: 3,
            members: 3
        })
    );
    let message = PlanError::from(dynamo_ring::PartitionsError { partitions: 3 }).to_string();
    assert!(message.contains("power of two"), "{message}");
}

#[test]
fn one_member_owns_everything_and_replicates_alone() {
    let layout = initial(&members([0], 0), 64, 3).expect("valid input");
    assert!(layout.owners.iter().all(|&owner| owner == 0));
    assert_eq!(preference_list(&layout, 17, 3), [0]);
    let two = next(&layout, &members(0..2, 0), 3).expect("valid input");
    assert_eq!(two.owned(), [32, 32]);
    assert_eq!(preference_list(&two, 0, 3).len(), 2);
    assert_eq!(moves(&layout, &two).len(), 32);
}

#[test]
fn preference_list_prefers_new_zones_then_walk_order() {
    let member = PlanMember::new;
    let layout = Layout {
        members: vec![
            member("a", "x"),
            member("b", "x"),
            member("c", "y"),
            member("d", "z"),
            member("e", "x"),
        ],
        owners: vec![0, 1, 2, 0, 3, 1, 2, 3],
    };
    // Walk from 0: a b c d; zones first: a (x), c (y), d (z).
    assert_eq!(preference_list(&layout, 0, 3), [0, 2, 3]);
    // Walk from 5: b c d a; zones first b c d, then a fills the fourth slot.
    assert_eq!(preference_list(&layout, 5, 4), [1, 2, 3, 0]);
    // e owns nothing: it comes last, as on the node.
    assert_eq!(preference_list(&layout, 1, 9), [1, 2, 3, 0, 4]);
}

#[test]
fn next_keeps_order_appends_new_sorted_and_remaps() {
    let start = initial(&members(0..4, 2), 64, 3).expect("valid input");
    let desired = vec![
        member(9, 2),
        member(3, 2),
        member(5, 2),
        member(0, 2),
        member(2, 2),
    ];
    let layout = next(&start, &desired, 3).expect("valid input");
    assert_eq!(ids(&layout), ["m000", "m002", "m003", "m005", "m009"]);
    // m001 left: its partitions moved; the index shift of m002 and m003 is
    // no move, and what they keep is theirs still.
    let moved: BTreeSet<u32> = moves(&start, &layout).into_iter().collect();
    for p in 0..64 {
        let before = &start.members[start.owners[p] as usize].id;
        let after = &layout.members[layout.owners[p] as usize].id;
        assert_eq!(moved.contains(&(p as u32)), before != after);
    }
}

#[test]
fn next_without_change_moves_nothing() {
    let start = initial(&members(0..5, 3), 256, 3).expect("valid input");
    let same = next(&start, &start.members, 3).expect("valid input");
    assert_eq!(same, start);
    assert!(moves(&start, &same).is_empty());
}

#[test]
fn next_rebalances_a_lopsided_layout() {
    let lopsided = Layout {
        members: members(0..2, 0),
        owners: vec![0; 64],
    };
    let layout = next(&lopsided, &lopsided.members, 3).expect("valid input");
    assert_eq!(layout.owned(), [32, 32]);
    assert_eq!(moves(&lopsided, &layout).len(), 32);
}

/// A layout reached by `churn` rounds of one join and one leave, so that the
/// tested change does not start from the initial pattern.
fn churned(count: usize, zones: usize, q: u32, n: usize, churn: usize) -> (Layout, usize) {
    let mut layout = initial(&members(0..count, zones), q, n).expect("valid input");
    let mut next_id = count;
    for round in 0..churn {
        let mut desired = layout.members.clone();
        desired.push(member(next_id, zones));
        next_id += 1;
        layout = next(&layout, &desired, n).expect("valid input");
        desired.remove((round * 7) % count);
        layout = next(&layout, &desired, n).expect("valid input");
    }
    (layout, next_id)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn initial_is_balanced_spread_and_order_free(
        count in 1usize..=64, zones in 0usize..=4, log_q in 6u32..=10, n in 1usize..=4,
    ) {
        let q = 1 << log_q;
        let given = members(0..count, zones);
        let layout = initial(&given, q, n).expect("valid input");
        check_balanced(&layout)?;
        check_spread(&layout, n)?;
        let reversed: Vec<PlanMember> = given.iter().rev().cloned().collect();
        prop_assert_eq!(&initial(&reversed, q, n).expect("valid input"), &layout);
        if zones >= n && count.is_multiple_of(zones) && (q as usize).is_multiple_of(count) {
            prop_assert_eq!(direct_share(&layout, n), 1.0);
        }
    }

    #[test]
    fn join_moves_one_share_to_the_newcomer(
        count in 1usize..=63, zones in 0usize..=4, log_q in 6u32..=10, n in 1usize..=4,
        churn in 0usize..=2,
    ) {
        let q = 1u32 << log_q;
        let (before, new_id) = churned(count, zones, q, n, churn);
        let mut desired = before.members.clone();
        desired.push(member(new_id, zones));
        let after = next(&before, &desired, n).expect("valid input");
        prop_assert_eq!(&next(&before, &desired, n).expect("valid input"), &after);
        check_balanced(&after)?;
        check_spread(&after, n)?;
        let moved = moves(&before, &after);
        prop_assert!(moved.len() <= join_bound(q as usize, count + 1));
        let newcomer = (after.members.len() - 1) as u32;
        prop_assert!(moved.iter().all(|&p| after.owners[p as usize] == newcomer));
    }

    #[test]
    fn leave_moves_exactly_the_leavers_partitions(
        count in 2usize..=64, zones in 0usize..=4, log_q in 6u32..=10, n in 1usize..=4,
        churn in 0usize..=2, leaver in any::<prop::sample::Index>(),
    ) {
        let q = 1u32 << log_q;
        let (before, _) = churned(count, zones, q, n, churn);
        let leaver = leaver.index(before.members.len());
        let mut desired = before.members.clone();
        desired.remove(leaver);
        let after = next(&before, &desired, n).expect("valid input");
        check_balanced(&after)?;
        check_spread(&after, n)?;
        let owned: Vec<u32> = (0..q).filter(|&p| before.owners[p as usize] == leaver as u32).collect();
        prop_assert_eq!(moves(&before, &after), owned);
    }

    #[test]
    fn changes_of_several_members_stay_balanced(
        count in 1usize..=62, zones in 0usize..=4, log_q in 6u32..=10, n in 1usize..=4,
        steps in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 1..4),
    ) {
        let q = 1u32 << log_q;
        let mut layout = initial(&members(0..count, zones), q, n).expect("valid input");
        let mut next_id = count;
        for (leaver, shrink) in steps {
            // Add two, remove one (or, when shrinking, add one and remove two).
            let mut desired = layout.members.clone();
            let (added, removed) = if shrink && desired.len() > 2 { (1, 2) } else { (2, 1) };
            for _ in 0..added {
                desired.push(member(next_id, zones));
                next_id += 1;
            }
            for _ in 0..removed {
                desired.remove(leaver.index(desired.len()));
            }
            let after = next(&layout, &desired, n).expect("valid input");
            prop_assert_eq!(&next(&layout, &desired, n).expect("valid input"), &after);
            check_balanced(&after)?;
            check_spread(&after, n)?;
            let wanted: BTreeSet<&str> = desired.iter().map(|m| m.id.as_str()).collect();
            prop_assert_eq!(ids(&after).into_iter().collect::<BTreeSet<_>>(), wanted);
            layout = after;
        }
    }
}

#[test]
fn joins_keep_walks_short_and_newcomers_spread() {
    // Six zone-balanced members; each join adds one more, zones round-robin.
    for q in [256, 1024] {
        let mut layout = initial(&members(0..6, 3), q, 3).expect("valid input");
        assert!(
            direct_share(&layout, 3) > 0.98,
            "only the wrap-around may repeat a zone"
        );
        for newcomer in 6..12 {
            let mut desired = layout.members.clone();
            desired.push(member(newcomer, 3));
            layout = next(&layout, &desired, 3).expect("valid input");
            let share = direct_share(&layout, 3);
            let gap = widest_gap(&layout, newcomer);
            assert!(share >= 0.65, "Q={q} S={}: {share:.2} direct", newcomer + 1);
            assert!(gap <= 3.0, "Q={q} S={}: widest gap {gap:.1}", newcomer + 1);
        }
    }
}

/// Prints how often the plain walk meets N zones in N steps; run with
/// `--ignored --nocapture` when tuning the placement.
#[test]
#[ignore = "diagnostic output for tuning, asserts nothing"]
fn report_walk_quality() {
    for (count, zones, n) in [(6, 3, 3), (9, 3, 3), (12, 4, 3), (7, 3, 3), (16, 3, 2)] {
        for q in [256u32, 1024] {
            let (mut layout, mut next_id) = churned(count, zones, q, n, 0);
            let mut line = format!("S={count} Z={zones} N={n} Q={q}:");
            for _ in 0..6 {
                let mut desired = layout.members.clone();
                desired.push(member(next_id, zones));
                next_id += 1;
                layout = next(&layout, &desired, n).expect("valid input");
                let newest = layout.members.len() - 1;
                line += &format!(
                    " {:.2}/{:.1}",
                    direct_share(&layout, n),
                    widest_gap(&layout, newest)
                );
            }
            println!("{line}");
            let (mut layout, _) = churned(count + 6, zones, q, n, 0);
            let mut line = format!("  leaves from S={}:", count + 6);
            for round in 0..6 {
                let mut desired = layout.members.clone();
                desired.remove((round * 5) % desired.len());
                layout = next(&layout, &desired, n).expect("valid input");
                line += &format!(" {:.2}", direct_share(&layout, n));
            }
            println!("{line}");
        }
    }
}

/// Q for `weights`: the smallest power of two that is at least their total
/// (and at least 64), doubled `extra` times.
fn weighted_q(weights: &[u32], extra: u32) -> u32 {
    let total: u32 = weights.iter().sum();
    total.next_power_of_two().max(64) << extra
}

/// Members `0..weights.len()` with the given capacity weights.
fn weighted(weights: &[u32], zones: usize) -> Vec<PlanMember> {
    (0..weights.len())
        .map(|i| member(i, zones).with_weight(weights[i]))
        .collect()
}

/// The floor and ceiling of every member's exact share of Q.
fn share_bounds(layout: &Layout) -> Vec<(u32, u32)> {
    let q = u64::from(layout.partitions());
    let total: u64 = layout.members.iter().map(|m| u64::from(m.weight)).sum();
    layout
        .members
        .iter()
        .map(|m| {
            let share = q * u64::from(m.weight);
            ((share / total) as u32, share.div_ceil(total) as u32)
        })
        .collect()
}

/// Every member owns its exact weighted share rounded down or up, and at
/// least one partition.
fn check_weighted(layout: &Layout) -> Result<(), TestCaseError> {
    prop_assert!(layout.validate().is_ok());
    prop_assert!(layout.owned().iter().all(|&owned| owned > 0));
    for ((index, owned), (low, high)) in layout
        .owned()
        .into_iter()
        .enumerate()
        .zip(share_bounds(layout))
    {
        prop_assert!(
            (low..=high).contains(&owned),
            "member {} of weight {} owns {}, share is {}..={}",
            index,
            layout.members[index].weight,
            owned,
            low,
            high
        );
    }
    Ok(())
}

/// The fewest moves from `before` to any layout of `after`'s members within
/// one partition of their shares: enough to fill every member to its lower
/// bound, and enough to empty the leavers and bring every member down to its
/// upper bound; whichever is more.
fn fewest_moves(before: &Layout, after: &Layout) -> usize {
    let mut fill = 0;
    let mut drain = before.owners.len();
    let owned = before.owned();
    for (member, (low, high)) in after.members.iter().zip(share_bounds(after)) {
        let had = before
            .members
            .iter()
            .position(|m| m.id == member.id)
            .map_or(0, |index| owned[index]);
        fill += low.saturating_sub(had) as usize;
        drain -= had.min(high) as usize;
    }
    fill.max(drain)
}

/// The number of moved partitions is the fewest any layout within one
/// partition of the shares allows.
fn check_fewest_moves(before: &Layout, after: &Layout) -> Result<(), TestCaseError> {
    let moved = moves(before, after);
    prop_assert_eq!(moved.len(), fewest_moves(before, after));
    Ok(())
}

#[test]
fn weights_outside_the_range_are_refused() {
    for weight in [0, MAX_WEIGHT + 1] {
        let given = vec![member(0, 0), member(1, 0).with_weight(weight)];
        assert_eq!(
            initial(&given, 64, 3),
            Err(PlanError::Weight {
                id: "m001".into(),
                weight
            })
        );
    }
    let heavy = vec![member(0, 0).with_weight(MAX_WEIGHT); 5];
    let heavy: Vec<PlanMember> = heavy
        .into_iter()
        .enumerate()
        .map(|(i, m)| PlanMember {
            id: format!("m{i}"),
            ..m
        })
        .collect();
    assert_eq!(
        initial(&heavy, 64, 3),
        Err(PlanError::TooLight {
            partitions: 64,
            total: 80
        })
    );
    assert!(initial(&heavy, 128, 3).is_ok());
    let message = PlanError::Weight {
        id: "m001".into(),
        weight: 0,
    }
    .to_string();
    assert!(message.contains("between 1 and 16"), "{message}");
}

#[test]
fn double_weight_owns_twice_the_partitions() {
    let layout = initial(&weighted(&[1, 1, 2], 0), 256, 3).expect("valid input");
    assert_eq!(layout.owned(), [64, 64, 128]);
    let lighter = next(&layout, &weighted(&[1, 1, 1], 0), 3).expect("valid input");
    // The extra partition stays with the member that owned the most.
    assert_eq!(lighter.owned(), [85, 85, 86]);
    assert_eq!(moves(&layout, &lighter).len(), 42);
}

#[test]
fn light_members_among_heavy_ones_own_a_partition() {
    let mut weights = vec![MAX_WEIGHT; 15];
    weights.extend([1, 1, 1, 1]);
    let layout = initial(&weighted(&weights, 2), 256, 3).expect("valid input");
    check_weighted(&layout).expect("shares within one partition");
    let mut heavier = layout.members.clone();
    heavier[0].weight = 1;
    let after = next(&layout, &heavier, 3).expect("valid input");
    check_weighted(&after).expect("shares within one partition");
}

#[test]
fn shares_follow_weights_for_every_small_cluster() {
    // Seeded, exhaustive over S: weights cycle through 1..=8 from a seed.
    for s in 1..=64usize {
        for seed in 0..3 {
            let weights: Vec<u32> = (0..s)
                .map(|i| ((i * 5 + seed * 3) % 8 + 1) as u32)
                .collect();
            let q = weighted_q(&weights, 0);
            let layout = initial(&weighted(&weights, 3), q, 3).expect("valid input");
            check_weighted(&layout).expect("shares within one partition");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn weighted_layouts_follow_shares_and_spread(
        weights in prop::collection::vec(1u32..=MAX_WEIGHT, 1..=64), zones in 0usize..=4,
        extra in 0u32..=2, n in 1usize..=4,
    ) {
        let q = weighted_q(&weights, extra);
        let layout = initial(&weighted(&weights, zones), q, n).expect("valid input");
        check_weighted(&layout)?;
        check_spread(&layout, n)?;
    }

    #[test]
    fn weight_change_moves_only_what_the_new_shares_need(
        weights in prop::collection::vec(1u32..=8, 1..=64), zones in 0usize..=4,
        extra in 0u32..=2, n in 1usize..=4, changed in any::<prop::sample::Index>(),
        weight in 1u32..=8,
    ) {
        let q = weighted_q(&weights, extra + 1);
        let before = initial(&weighted(&weights, zones), q, n).expect("valid input");
        let mut desired = before.members.clone();
        let changed = changed.index(desired.len());
        desired[changed].weight = weight;
        let after = next(&before, &desired, n).expect("valid input");
        check_weighted(&after)?;
        check_spread(&after, n)?;
        check_fewest_moves(&before, &after)?;
        let unchanged = next(&after, &desired, n).expect("valid input");
        prop_assert!(moves(&after, &unchanged).is_empty());
    }

    #[test]
    fn weighted_joins_and_leaves_move_the_fewest(
        weights in prop::collection::vec(1u32..=8, 2..=64), zones in 0usize..=4,
        extra in 0u32..=2, n in 1usize..=4, leaver in any::<prop::sample::Index>(),
        weight in 1u32..=8,
    ) {
        let q = weighted_q(&weights, extra + 1);
        let before = initial(&weighted(&weights, zones), q, n).expect("valid input");
        let mut joined = before.members.clone();
        joined.push(member(weights.len(), zones).with_weight(weight));
        let after = next(&before, &joined, n).expect("valid input");
        check_weighted(&after)?;
        check_spread(&after, n)?;
        check_fewest_moves(&before, &after)?;
        let mut left = after.members.clone();
        left.remove(leaver.index(left.len()));
        let last = next(&after, &left, n).expect("valid input");
        check_weighted(&last)?;
        check_spread(&last, n)?;
        check_fewest_moves(&after, &last)?;
    }
}
