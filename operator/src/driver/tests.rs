//! The driver's step function against an in-memory cluster: a fake
//! [`Platform`] and a fake [`Admin`] that share one [`World`]. Nodes in the
//! world hold partitions, stream what a proposed ring makes them gain (one
//! partition per progress poll) and record any commit that names a replica
//! which does not hold its partition: a lost transfer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use dynamo_proto::v1 as pb;

use super::*;
use crate::admin::AdminError;

/// Partitions of every test ring.
const PARTITIONS: u32 = 16;
/// Zones members are dealt into (member i is in zone i mod this).
const ZONES: usize = 2;
/// Most steps a change may take before a test gives up.
const STEP_LIMIT: usize = 500;

/// One member process of the world.
struct Node {
    ring: pb::Ring,
    /// Epoch of the proposal whose transfers `pending` belong to.
    transfer_epoch: u64,
    /// Partitions of that proposal this node gains and has not streamed yet.
    pending: BTreeSet<u32>,
    /// Partitions it had to stream for that proposal.
    transfer_total: u32,
}

/// Everything outside the driver: nodes by address, what each member
/// holds, and the lost transfers seen.
#[derive(Default)]
struct World {
    nodes: BTreeMap<String, Node>,
    holds: BTreeMap<String, BTreeSet<u32>>,
    lost: Vec<String>,
    /// Capacity weights the platform reports, by member index (default 1).
    weights: BTreeMap<usize, u32>,
}

/// The member the platform puts at `index`.
fn member(index: usize) -> pb::Member {
    pb::Member {
        weight: 0,
        id: format!("m{index}"),
        address: format!("m{index}:7400"),
        zone: format!("z{}", index % ZONES),
    }
}

/// The replicas of every partition of `owners` among `members`.
fn preferences(members: &[pb::Member], owners: &[u32], n: u32) -> Vec<Vec<u32>> {
    let zones: Vec<&str> = members.iter().map(|m| m.zone.as_str()).collect();
    (0..owners.len() as u32)
        .map(|p| {
            let mut walk = dynamo_ring::walk(owners, &zones, p, n as usize);
            walk.truncate(n as usize);
            walk
        })
        .collect()
}

/// Partitions `member` replicates in `ring` (its current owners).
fn replicated(ring: &pb::Ring, owners: &[u32], member: &str) -> BTreeSet<u32> {
    let Some(index) = ring.members.iter().position(|m| m.id == member) else {
        return BTreeSet::new();
    };
    preferences(&ring.members, owners, ring.n)
        .iter()
        .enumerate()
        .filter(|(_, replicas)| replicas.contains(&(index as u32)))
        .map(|(p, _)| p as u32)
        .collect()
}

/// The world, shared by the fake platform and the fake Admin.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<World>>);

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.0.lock().expect("no test panicked holding the world")
    }
}

impl Platform for Shared {
    fn member(&self, index: usize) -> pb::Member {
        let weight = self.world().weights.get(&index).copied().unwrap_or(0);
        pb::Member {
            weight,
            ..member(index)
        }
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        id.strip_prefix('m')?.parse().ok()
    }

    async fn start(&self, index: usize, launch: Launch) -> Result<(), PlatformError> {
        let me = member(index);
        let mut world = self.world();
        if world.nodes.contains_key(&me.address) {
            return Ok(());
        }
        let ring = match launch {
            Launch::Bootstrap { mut members } => {
                // What every node computes from the same member list.
                members.sort_by(|a, b| a.id.cmp(&b.id));
                let zones: Vec<&str> = members.iter().map(|m| m.zone.as_str()).collect();
                let owners = dynamo_ring::initial_owners(&zones, PARTITIONS);
                pb::Ring {
                    buckets: Vec::new(),
                    epoch: 1,
                    members,
                    owners,
                    n: 3,
                    r: 2,
                    w: 2,
                    cluster: "test".into(),
                    next_owners: Vec::new(),
                }
            }
            Launch::Join { seeds } => {
                let seed = seeds
                    .iter()
                    .find_map(|address| world.nodes.get(address))
                    .expect("a joiner is given a running seed");
                seed.ring.clone()
            }
        };
        let holds = replicated(&ring, &ring.owners, &me.id);
        world.holds.insert(me.id.clone(), holds);
        world.nodes.insert(
            me.address,
            Node {
                ring,
                transfer_epoch: 0,
                pending: BTreeSet::new(),
                transfer_total: 0,
            },
        );
        Ok(())
    }

    async fn is_ready(&self, index: usize) -> bool {
        self.world().nodes.contains_key(&member(index).address)
    }

    async fn stop(&self, index: usize) -> Result<(), PlatformError> {
        let me = member(index);
        let mut world = self.world();
        world.nodes.remove(&me.address);
        world.holds.remove(&me.id);
        Ok(())
    }
}

/// The error of a call to a node that does not run.
fn down(address: &str) -> AdminError {
    AdminError::NoRing {
        address: address.to_owned(),
    }
}

impl Admin for Shared {
    async fn ring(&self, address: &str) -> Result<pb::Ring, AdminError> {
        let world = self.world();
        let node = world.nodes.get(address).ok_or_else(|| down(address))?;
        Ok(node.ring.clone())
    }

    async fn status(&self, address: &str) -> Result<pb::StatusResponse, AdminError> {
        let world = self.world();
        let node = world.nodes.get(address).ok_or_else(|| down(address))?;
        Ok(pb::StatusResponse {
            epoch: node.ring.epoch,
            ..Default::default()
        })
    }

    async fn propose(&self, address: &str, ring: &pb::Ring) -> Result<u64, AdminError> {
        let mut world = self.world();
        let node = world.nodes.get_mut(address).ok_or_else(|| down(address))?;
        if ring.epoch > node.ring.epoch {
            let id = ring
                .members
                .iter()
                .find(|m| m.address == address)
                .map(|m| m.id.clone())
                .unwrap_or_default();
            let now = replicated(ring, &ring.owners, &id);
            let next = replicated(ring, &ring.next_owners, &id);
            node.pending = next.difference(&now).copied().collect();
            node.transfer_total = node.pending.len() as u32;
            node.transfer_epoch = ring.epoch;
            node.ring = ring.clone();
        }
        Ok(node.ring.epoch)
    }

    async fn commit(&self, address: &str, ring: &pb::Ring) -> Result<u64, AdminError> {
        let mut world = self.world();
        let world = &mut *world;
        let node = world.nodes.get_mut(address).ok_or_else(|| down(address))?;
        if ring.epoch > node.ring.epoch {
            node.ring = ring.clone();
        }
        let epoch = node.ring.epoch;
        // Every replica the committed ring names must hold its partition.
        for (partition, replicas) in preferences(&ring.members, &ring.owners, ring.n)
            .iter()
            .enumerate()
        {
            for &replica in replicas {
                let id = &ring.members[replica as usize].id;
                let held = world
                    .holds
                    .get(id)
                    .is_some_and(|held| held.contains(&(partition as u32)));
                if !held {
                    world.lost.push(format!(
                        "epoch {}: {id} replicates partition {partition} without holding it",
                        ring.epoch
                    ));
                }
            }
        }
        Ok(epoch)
    }

    async fn transfers(&self, address: &str) -> Result<pb::TransferStatusResponse, AdminError> {
        let mut world = self.world();
        let world = &mut *world;
        let node = world.nodes.get_mut(address).ok_or_else(|| down(address))?;
        // One partition streams in per poll.
        if let Some(partition) = node.pending.pop_first() {
            let id = node
                .ring
                .members
                .iter()
                .find(|m| m.address == address)
                .map(|m| m.id.clone())
                .unwrap_or_default();
            world.holds.entry(id).or_default().insert(partition);
        }
        Ok(pb::TransferStatusResponse {
            epoch: node.transfer_epoch,
            partitions_total: node.transfer_total,
            partitions_done: node.transfer_total - node.pending.len() as u32,
            bytes_left: node.pending.len() as u64 * 100,
            ..Default::default()
        })
    }
}

fn shape(replicas: usize) -> Shape {
    Shape {
        name: "test".into(),
        members: (0..replicas).collect(),
        partitions: PARTITIONS,
        n: 3,
        r: 2,
        w: 2,
        buckets: Vec::new(),
    }
}

fn driver(world: &Shared, replicas: usize, state: DriverState) -> Driver<Shared, Shared> {
    Driver::new(
        world.clone(),
        Arc::new(world.clone()),
        shape(replicas),
        state,
    )
}

/// Steps until the driver reports convergence; returns the steps taken.
async fn converge(driver: &mut Driver<Shared, Shared>) -> usize {
    for steps in 1..=STEP_LIMIT {
        if driver.step().await.expect("a step succeeds") {
            return steps;
        }
    }
    panic!(
        "no convergence within {STEP_LIMIT} steps: {}",
        driver.state().message
    );
}

/// Steps until the driver reports convergence (at most [`STEP_LIMIT`]
/// steps); returns the step in progress after each.
async fn steps_until_converged(driver: &mut Driver<Shared, Shared>) -> Vec<Step> {
    let mut seen = Vec::new();
    for _ in 0..STEP_LIMIT {
        let converged = driver.step().await.expect("a step succeeds");
        seen.push(driver.state().step.clone());
        if converged {
            break;
        }
    }
    seen
}

/// A world converged at `replicas` members, and the driver's state.
async fn cluster(replicas: usize) -> (Shared, DriverState) {
    let world = Shared::default();
    let mut driver = driver(&world, replicas, DriverState::default());
    converge(&mut driver).await;
    (world, driver.state().clone())
}

/// The ring every running node has; panics if they differ.
fn agreed_ring(world: &Shared) -> pb::Ring {
    let world = world.world();
    let rings: BTreeSet<String> = world
        .nodes
        .values()
        .map(|node| format!("{:?}", node.ring))
        .collect();
    assert_eq!(rings.len(), 1, "the nodes disagree: {rings:#?}");
    world
        .nodes
        .values()
        .next()
        .expect("a converged cluster runs")
        .ring
        .clone()
}

/// Checks that `ring` has `replicas` members m0.., each owning its share,
/// that every replica holds its partitions and no transfer was lost.
fn check_converged(world: &Shared, ring: &pb::Ring, replicas: usize) {
    let ids: Vec<&str> = ring.members.iter().map(|m| m.id.as_str()).collect();
    let expected: Vec<String> = (0..replicas).map(|i| member(i).id).collect();
    assert_eq!(ids, expected);
    assert!(ring.next_owners.is_empty(), "a change is still in flight");
    let owned = owned(&ring.owners, replicas);
    let floor = PARTITIONS / replicas as u32;
    assert!(
        owned.iter().all(|&o| o == floor || o == floor + 1),
        "unbalanced: {owned:?}"
    );
    let world = world.world();
    assert_eq!(world.nodes.len(), replicas, "exactly the members run");
    assert!(world.lost.is_empty(), "lost transfers: {:#?}", world.lost);
    for member in &ring.members {
        let wanted = replicated(ring, &ring.owners, &member.id);
        let held = &world.holds[&member.id];
        assert!(
            wanted.is_subset(held),
            "{} lacks {:?}",
            member.id,
            wanted.difference(held).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn bootstrap_starts_the_first_members_and_converges() {
    let (world, state) = cluster(3).await;
    assert!(state.bootstrapped);
    assert_eq!(state.step, Step::Idle);
    let ring = agreed_ring(&world);
    assert_eq!(ring.epoch, 1);
    check_converged(&world, &ring, 3);
}

#[tokio::test]
async fn join_streams_then_commits() {
    let (world, state) = cluster(3).await;
    let mut driver = driver(&world, 4, state);
    let seen = steps_until_converged(&mut driver).await;
    assert!(seen.contains(&Step::StartMember {
        member: "m3".into()
    }));
    assert!(seen.iter().any(|step| matches!(
        step,
        Step::Stream { change: Change::Join, member, .. } if member == "m3"
    )));
    assert_eq!(seen.last(), Some(&Step::Idle));
    let ring = agreed_ring(&world);
    // Propose, then commit.
    assert_eq!(ring.epoch, 3);
    check_converged(&world, &ring, 4);
}

#[tokio::test]
async fn leave_streams_commits_and_stops_the_member() {
    let (world, state) = cluster(4).await;
    let mut driver = driver(&world, 3, state);
    let seen = steps_until_converged(&mut driver).await;
    assert!(seen.iter().any(|step| matches!(
        step,
        Step::Stream { change: Change::Leave, member, .. } if member == "m3"
    )));
    assert!(seen.contains(&Step::StopMember {
        member: "m3".into()
    }));
    let ring = agreed_ring(&world);
    // Propose, commit the leaver owning nothing, then remove it.
    assert_eq!(ring.epoch, 4);
    check_converged(&world, &ring, 3);
}

#[tokio::test]
async fn a_change_of_mind_waits_for_the_change_in_flight() {
    let (world, state) = cluster(3).await;
    let mut driver = driver(&world, 4, state);
    while !matches!(driver.state().step, Step::Stream { .. }) {
        driver.step().await.expect("a step succeeds");
    }
    driver.set_shape(shape(3));
    driver.step().await.expect("a step succeeds");
    let refusal = driver.refusal().expect("shrinking mid-join is refused");
    assert!(refusal.contains("join is unfinished"), "{refusal}");
    converge(&mut driver).await;
    check_converged(&world, &agreed_ring(&world), 3);
}

/// Runs the change from `from` to `to` members without a crash, then once
/// per step boundary with a crash there: the driver is dropped and a new
/// one resumes from the state persisted (as JSON) at that boundary. Every
/// run must end with the same ring, and no commit may lose a transfer.
async fn resumes_after_a_crash_at_every_step(from: usize, to: usize) {
    let (world, state) = cluster(from).await;
    let mut clean = driver(&world, to, state);
    let steps = converge(&mut clean).await;
    let expected = agreed_ring(&world);
    check_converged(&world, &expected, to);
    assert!(steps > 3, "the change takes several steps ({steps})");

    for crash_after in 0..steps {
        let (world, state) = cluster(from).await;
        let mut first = driver(&world, to, state);
        for _ in 0..crash_after {
            first.step().await.expect("a step succeeds");
        }
        let persisted = serde_json::to_string(first.state()).expect("the state serializes");
        drop(first);
        let resumed: DriverState = serde_json::from_str(&persisted).expect("the state parses");
        let mut second = driver(&world, to, resumed);
        converge(&mut second).await;
        let ring = agreed_ring(&world);
        assert_eq!(ring, expected, "after a crash after step {crash_after}");
        check_converged(&world, &ring, to);
    }
}

#[tokio::test]
async fn join_resumes_after_a_crash_at_every_step() {
    resumes_after_a_crash_at_every_step(3, 4).await;
}

#[tokio::test]
async fn leave_resumes_after_a_crash_at_every_step() {
    resumes_after_a_crash_at_every_step(4, 3).await;
}

#[test]
fn the_change_kind_keeps_its_wire_name() {
    let step = Step::Stream {
        epoch: 7,
        change: Change::Leave,
        member: "m3".into(),
    };
    let value = serde_json::to_value(&step).expect("serializes");
    assert_eq!(value["change"], "leave");
    assert_eq!(serde_json::from_value::<Step>(value).expect("parses"), step);
    assert_eq!(Change::Join.to_string(), "join");
    assert_eq!(Change::Reweigh.to_string(), "reweigh");
}

#[tokio::test]
async fn a_weight_change_streams_the_new_share_then_commits() {
    let (world, state) = cluster(3).await;
    let before = agreed_ring(&world);
    world.world().weights.insert(2, 2);
    let mut driver = driver(&world, 3, state);
    let seen = steps_until_converged(&mut driver).await;
    assert!(seen.iter().any(|step| matches!(
        step,
        Step::Stream { change: Change::Reweigh, member, .. } if member == "m2"
    )));
    let ring = agreed_ring(&world);
    assert_eq!(ring.epoch, before.epoch + 2, "propose, then commit");
    assert_eq!(weight(&ring.members[2]), 2);
    let owned = owned(&ring.owners, 3);
    assert_eq!(owned[2], PARTITIONS / 2, "{owned:?}");
    // Only what m2 gained moved.
    let moved = (0..PARTITIONS as usize)
        .filter(|&p| ring.owners[p] != before.owners[p])
        .count();
    let had = before.owners.iter().filter(|&&o| o == 2).count();
    assert_eq!(moved, PARTITIONS as usize / 2 - had);
    let world_now = world.world();
    assert!(world_now.lost.is_empty(), "lost: {:#?}", world_now.lost);
    for member in &ring.members {
        let wanted = replicated(&ring, &ring.owners, &member.id);
        assert!(
            wanted.is_subset(&world_now.holds[&member.id]),
            "{}",
            member.id
        );
    }
}

/// A shape asking for the members at `indexes`.
fn shape_of(indexes: &[usize]) -> Shape {
    Shape {
        members: indexes.iter().copied().collect(),
        ..shape(0)
    }
}

#[tokio::test]
async fn a_member_swapped_for_another_joins_first_then_leaves() {
    let (world, state) = cluster(3).await;
    let mut driver = driver(&world, 3, state);
    driver.set_shape(shape_of(&[0, 1, 7]));
    let seen = steps_until_converged(&mut driver).await;
    let join = seen
        .iter()
        .position(
            |s| matches!(s, Step::Stream { change: Change::Join, member, .. } if member == "m7"),
        )
        .expect("m7 joins");
    let leave = seen
        .iter()
        .position(
            |s| matches!(s, Step::Stream { change: Change::Leave, member, .. } if member == "m2"),
        )
        .expect("m2 leaves");
    assert!(join < leave, "the join goes first: {seen:?}");
    let ring = agreed_ring(&world);
    let ids: Vec<&str> = ring.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m0", "m1", "m7"]);
    assert!(world.world().lost.is_empty());
}

#[tokio::test]
async fn a_leave_below_the_widest_n_is_refused() {
    let (world, state) = cluster(3).await;
    let mut driver = driver(&world, 2, state);
    let epoch = agreed_ring(&world).epoch;
    for _ in 0..3 {
        assert!(!driver.step().await.expect("a step succeeds"));
    }
    let refusal = driver.refusal().expect("a leave below N is refused");
    assert!(refusal.contains("refusing to remove m2"), "{refusal}");
    assert_eq!(agreed_ring(&world).epoch, epoch, "nothing was proposed");
}

fn bucket(name: &str, n: u32, r: u32) -> pb::Bucket {
    pb::Bucket {
        name: name.into(),
        n,
        r,
        w: r,
        durability: 0,
    }
}

#[tokio::test]
async fn buckets_are_added_and_updated_but_never_removed_or_resized() {
    let (world, state) = cluster(3).await;
    let before = agreed_ring(&world);
    let mut wanted = shape(3);
    wanted.buckets = vec![
        bucket("carts", 1, 1),
        bucket("ledger", 3, 2),
        bucket("huge", 4, 2),
    ];
    let mut driver = driver(&world, 3, state);
    driver.set_shape(wanted.clone());
    converge(&mut driver).await;
    let ring = agreed_ring(&world);
    assert_eq!(ring.owners, before.owners, "buckets move no partition");
    assert_eq!(
        ring.buckets,
        wanted.buckets[..2],
        "N = 4 waits for a fourth member"
    );
    let refusal = driver.refusal().expect("the N = 4 bucket waits");
    assert!(refusal.contains("bucket huge waits"), "{refusal}");

    // R changes; a removal and an N change are refused.
    wanted.buckets = vec![bucket("carts", 2, 1), bucket("ledger", 3, 3)];
    driver.set_shape(wanted);
    converge(&mut driver).await;
    let ring = agreed_ring(&world);
    assert_eq!(
        ring.buckets,
        [bucket("carts", 1, 1), bucket("ledger", 3, 3)]
    );
    let refusal = driver.refusal().expect("the N change is refused");
    assert!(refusal.contains("carts keeps N = 1"), "{refusal}");

    driver.set_shape(shape(3));
    converge(&mut driver).await;
    let refusal = driver.refusal().expect("the removal is refused");
    assert!(refusal.contains("ledger stays"), "{refusal}");
    assert_eq!(agreed_ring(&world).buckets.len(), 2);
}

#[test]
fn the_shape_declares_the_spec_buckets_with_their_durability() {
    let spec: dynamo_crd::DynamoClusterSpec = serde_yaml::from_str(
        "replicas: 3\nbuckets:\n- {name: carts, factor: 3, readQuorum: 2, writeQuorum: 1}\n- {name: ledger, factor: 1, readQuorum: 1, writeQuorum: 1, durability: sync}\n",
    )
    .expect("a spec");
    let shape = Shape::from_spec("demo", &spec, BTreeSet::from([0, 1, 2]));
    assert_eq!(
        shape.buckets,
        [
            pb::Bucket {
                name: "carts".into(),
                n: 3,
                r: 2,
                w: 1,
                durability: pb::Durability::Default as i32,
            },
            pb::Bucket {
                name: "ledger".into(),
                n: 1,
                r: 1,
                w: 1,
                durability: pb::Durability::Sync as i32,
            },
        ]
    );
}
