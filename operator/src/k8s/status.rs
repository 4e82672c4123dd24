//! The status the operator writes: phase, members, transfer progress and the
//! Available / Progressing / Degraded conditions, computed from the pods,
//! the ring the driver observed and the persisted state. Pure.

use std::collections::BTreeMap;

use dynamo_crd::{
    CONDITION_AVAILABLE, CONDITION_DEGRADED, CONDITION_PROGRESSING, ClusterPhase,
    DynamoClusterSpec, DynamoClusterStatus, MemberState, MemberStatus, PoolStatus, TransferStatus,
};
use dynamo_proto::v1 as pb;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::cluster::selector_string;
use super::platform::PodView;
use super::state::ClusterState;
use crate::driver::{Change, Step};

/// Why the cluster is degraded, as a condition reason and a sentence that
/// says what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// PascalCase condition and Event reason.
    pub reason: String,
    /// What is wrong and what to change.
    pub message: String,
}

/// Everything the status is computed from.
pub struct Observation<'a> {
    /// The cluster's name.
    pub name: &'a str,
    /// `metadata.generation` of the spec that was acted upon.
    pub generation: Option<i64>,
    /// The spec that was acted upon (its quorums and pools).
    pub spec: &'a DynamoClusterSpec,
    /// The persisted state after the driver's step.
    pub state: &'a ClusterState,
    /// The storage pods by member index.
    pub pods: &'a BTreeMap<usize, PodView>,
    /// The newest ring the driver saw, if a node answered.
    pub ring: Option<&'a pb::Ring>,
    /// Why the spec or the cluster needs attention.
    pub problem: Option<Problem>,
}

fn owned(owners: &[u32], members: usize) -> Vec<u32> {
    let mut counts = vec![0; members];
    for &owner in owners {
        if let Some(count) = counts.get_mut(owner as usize) {
            *count += 1;
        }
    }
    counts
}

/// The members of `ring` and their membership state.
pub fn members(ring: &pb::Ring) -> Vec<MemberStatus> {
    let now = owned(&ring.owners, ring.members.len());
    let in_flight = !ring.next_owners.is_empty();
    let next = owned(&ring.next_owners, ring.members.len());
    ring.members
        .iter()
        .enumerate()
        .map(|(position, member)| {
            let state = match (in_flight, now[position], next[position]) {
                (true, 0, gains) if gains > 0 => MemberState::Joining,
                (true, holds, 0) if holds > 0 => MemberState::Leaving,
                (false, 0, _) => MemberState::Left,
                _ => MemberState::Normal,
            };
            MemberStatus {
                name: member.id.clone(),
                state,
                partitions: now[position],
                zone: (!member.zone.is_empty()).then(|| member.zone.clone()),
            }
        })
        .collect()
}

/// Whether the pod of ring member `member` is ready.
fn is_ready(observation: &Observation<'_>, member: &str) -> bool {
    crate::pools::index_of(observation.name, member)
        .and_then(|index| observation.pods.get(&index))
        .is_some_and(|pod| pod.ready)
}

/// The declared pools of the spec, then pools the state or the ring still
/// has members of, each with its members in the ring (`members`) and the
/// partitions they own. Empty for a cluster without pools that never had
/// any.
pub fn pools(observation: &Observation<'_>, members: &[MemberStatus]) -> Vec<PoolStatus> {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let of_ring: Vec<(String, &MemberStatus)> = members
        .iter()
        .filter_map(|member| {
            let (pool, _) = crate::pools::parse_member(observation.name, &member.name)?;
            Some((pool, member))
        })
        .collect();
    let mut names: Vec<(String, i32, u32)> = observation
        .spec
        .pools
        .iter()
        .map(|pool| (pool.name.clone(), pool.replicas, pool.weight.max(1)))
        .collect();
    let draining = observation
        .state
        .pool_pods
        .keys()
        .cloned()
        .chain(of_ring.iter().map(|(pool, _)| pool.clone()))
        .filter(|pool| !pool.is_empty());
    for pool in draining {
        if names.iter().all(|(name, _, _)| *name != pool) {
            let weight = observation
                .ring
                .into_iter()
                .flat_map(|ring| &ring.members)
                .find(|m| {
                    crate::pools::parse_member(observation.name, &m.id)
                        .is_some_and(|(p, _)| p == pool)
                })
                .map_or(1, crate::driver::weight);
            names.push((pool, 0, weight));
        }
    }
    names
        .into_iter()
        .map(|(name, replicas, weight)| {
            let in_pool: Vec<&MemberStatus> = of_ring
                .iter()
                .filter(|(pool, _)| *pool == name)
                .map(|(_, member)| *member)
                .collect();
            PoolStatus {
                replicas,
                members: count(in_pool.len()),
                ready_members: count(
                    in_pool
                        .iter()
                        .filter(|member| is_ready(observation, &member.name))
                        .count(),
                ),
                weight,
                partitions: in_pool.iter().map(|member| member.partitions).sum(),
                name,
            }
        })
        .collect()
}

/// The condition reason of a driver step.
pub fn step_reason(step: &Step) -> &'static str {
    match step {
        Step::Idle => "Converged",
        Step::Bootstrap => "Bootstrapping",
        Step::StartMember { .. } => "StartingMember",
        Step::Stream {
            change: Change::Leave,
            ..
        } => "Leaving",
        Step::Stream { .. } => "Joining",
        Step::StopMember { .. } => "StoppingMember",
    }
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
        observed_generation: None,
    }
}

/// Keeps the transition time of a condition whose status did not change.
fn stamp(mut new: Condition, previous: Option<&DynamoClusterStatus>, now: Timestamp) -> Condition {
    let old = previous.and_then(|status| status.condition(&new.type_));
    new.last_transition_time = match old {
        Some(old) if old.status == new.status => old.last_transition_time.clone(),
        _ => Time(now),
    };
    new
}

/// The status for `observation`; conditions keep their transition times
/// from `previous` when their status holds.
pub fn build_status(
    observation: &Observation<'_>,
    previous: Option<&DynamoClusterStatus>,
    now: Timestamp,
) -> DynamoClusterStatus {
    let state = observation.state;
    let driver = &state.driver;
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let ready = observation.pods.values().filter(|pod| pod.ready).count();
    let members = match observation.ring {
        Some(ring) => members(ring),
        None => previous.map(|p| p.members.clone()).unwrap_or_default(),
    };
    let ring_size = members.len();
    let ready_members = members
        .iter()
        .filter(|member| is_ready(observation, &member.name))
        .count();
    let replication = observation.spec.replication;
    let tolerated = replication
        .factor
        .saturating_sub(replication.read_quorum.max(replication.write_quorum))
        as usize;
    let converging = driver.step != Step::Idle;

    let available = if !driver.bootstrapped || ring_size == 0 {
        condition(
            CONDITION_AVAILABLE,
            false,
            "NotCreated",
            "the first ring is not committed yet".into(),
        )
    } else if ready_members + tolerated >= ring_size {
        condition(
            CONDITION_AVAILABLE,
            true,
            "QuorumsMet",
            format!("{ready_members} of {ring_size} nodes are ready"),
        )
    } else {
        condition(
            CONDITION_AVAILABLE,
            false,
            "TooFewReadyNodes",
            format!(
                "{ready_members} of {ring_size} nodes are ready; some keys may not reach R={} or W={}",
                replication.read_quorum, replication.write_quorum
            ),
        )
    };
    let progressing = match &observation.problem {
        // Nothing runs because of the problem (a refused spec, say): say so
        // rather than "Converged" with no message.
        Some(problem) if !converging => condition(
            CONDITION_PROGRESSING,
            false,
            &problem.reason,
            format!("no change is running: {}", problem.message),
        ),
        _ if !converging && driver.message.is_empty() => condition(
            CONDITION_PROGRESSING,
            false,
            step_reason(&driver.step),
            "no change is running".into(),
        ),
        _ => condition(
            CONDITION_PROGRESSING,
            converging,
            step_reason(&driver.step),
            driver.message.clone(),
        ),
    };
    let not_ready = ring_size.saturating_sub(ready_members);
    let degraded = match &observation.problem {
        Some(problem) => condition(
            CONDITION_DEGRADED,
            true,
            &problem.reason,
            problem.message.clone(),
        ),
        None if driver.bootstrapped && not_ready > 0 => condition(
            CONDITION_DEGRADED,
            true,
            "NodesNotReady",
            format!("{not_ready} of {ring_size} nodes are not ready"),
        ),
        None => condition(
            CONDITION_DEGRADED,
            false,
            "AsExpected",
            "every node is ready".into(),
        ),
    };

    let phase = match (&observation.problem, driver.bootstrapped) {
        (Some(_), false) if state.total_pods() == 0 => ClusterPhase::Failed,
        (Some(_), true) => ClusterPhase::Degraded,
        _ if !driver.bootstrapped && state.total_pods() == 0 => ClusterPhase::Pending,
        _ if !driver.bootstrapped || driver.step == Step::Bootstrap => ClusterPhase::Creating,
        _ if converging => ClusterPhase::Scaling,
        _ if not_ready > 0 => ClusterPhase::Degraded,
        _ => ClusterPhase::Running,
    };
    let transfer = match &driver.step {
        Step::Stream { change, member, .. } => Some(TransferStatus {
            partitions_left: driver.partitions_left,
            bytes_left: driver.bytes_left,
            step: format!("{change} {member}: streaming"),
        }),
        _ => None,
    };
    DynamoClusterStatus {
        replicas: count(observation.pods.len()),
        ready_replicas: count(ready),
        selector: Some(selector_string(observation.name)),
        phase: Some(phase),
        epoch: driver.epoch,
        pools: pools(observation, &members),
        members,
        transfer,
        conditions: [available, progressing, degraded]
            .into_iter()
            .map(|c| stamp(c, previous, now))
            .collect(),
        observed_generation: observation.generation,
        driver: Some(state.to_value()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(owners: Vec<u32>, next_owners: Vec<u32>, members: usize) -> pb::Ring {
        pb::Ring {
            epoch: 4,
            members: (0..members)
                .map(|i| pb::Member {
                    weight: 0,
                    id: format!("demo-{i}"),
                    address: String::new(),
                    zone: if i == 0 { "a".into() } else { String::new() },
                })
                .collect(),
            owners,
            next_owners,
            ..pb::Ring::default()
        }
    }

    #[test]
    fn pools_sum_the_partitions_of_their_members_in_the_ring() {
        let spec: DynamoClusterSpec = serde_yaml::from_str(
            "replicas: 3\npools:\n- {name: small, replicas: 2}\n- {name: large, replicas: 1, weight: 2}\n",
        )
        .expect("a spec");
        let state = ClusterState {
            pool_pods: BTreeMap::from([
                ("small".into(), 2),
                ("large".into(), 1),
                ("old".into(), 1),
            ]),
            ..ClusterState::default()
        };
        let ids = ["demo-small-0", "demo-small-1", "demo-large-0", "demo-old-0"];
        let ring = pb::Ring {
            members: ids
                .iter()
                .map(|id| pb::Member {
                    id: (*id).into(),
                    weight: if id.contains("old") { 3 } else { 0 },
                    ..pb::Member::default()
                })
                .collect(),
            owners: vec![0, 1, 2, 2, 0, 1, 2, 2, 3],
            ..pb::Ring::default()
        };
        let pods: BTreeMap<usize, PodView> = ids
            .iter()
            .filter(|id| **id != "demo-small-1")
            .map(|id| {
                let index = crate::pools::index_of("demo", id).expect("a member name");
                (
                    index,
                    PodView {
                        ready: true,
                        ..PodView::default()
                    },
                )
            })
            .collect();
        let observation = Observation {
            name: "demo",
            generation: None,
            spec: &spec,
            state: &state,
            pods: &pods,
            ring: Some(&ring),
            problem: None,
        };
        let statuses = pools(&observation, &members(&ring));
        let summary: Vec<_> = statuses
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.replicas,
                    p.members,
                    p.ready_members,
                    p.weight,
                    p.partitions,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("small", 2, 2, 1, 1, 4),
                ("large", 1, 1, 1, 2, 4),
                ("old", 0, 1, 1, 3, 1),
            ]
        );
        let plain = Observation {
            spec: &DynamoClusterSpec::with_replicas(3),
            state: &ClusterState::default(),
            ..observation
        };
        let implicit = pb::Ring {
            members: vec![pb::Member {
                id: "demo-0".into(),
                ..pb::Member::default()
            }],
            owners: vec![0],
            ..pb::Ring::default()
        };
        assert!(pools(&plain, &members(&implicit)).is_empty());
    }

    #[test]
    fn member_states_follow_the_change_in_flight() {
        let joining = members(&ring(vec![0, 1, 0, 1], vec![0, 1, 2, 2], 3));
        let states: Vec<_> = joining.iter().map(|m| m.state).collect();
        assert_eq!(
            states,
            [
                MemberState::Normal,
                MemberState::Normal,
                MemberState::Joining
            ]
        );
        assert_eq!(joining[0].partitions, 2);
        assert_eq!(joining[0].zone.as_deref(), Some("a"));
        let leaving = members(&ring(vec![0, 1, 2, 2], vec![0, 1, 0, 1], 3));
        assert_eq!(leaving[2].state, MemberState::Leaving);
        let left = members(&ring(vec![0, 1, 0, 1], Vec::new(), 3));
        assert_eq!(left[2].state, MemberState::Left);
    }

    #[test]
    fn transition_times_hold_while_the_status_holds() {
        let mut state = ClusterState::default();
        state.driver.bootstrapped = true;
        let pods: BTreeMap<usize, PodView> = (0..3)
            .map(|i| {
                (
                    i,
                    PodView {
                        ready: true,
                        ..PodView::default()
                    },
                )
            })
            .collect();
        let ring = ring(vec![0, 1, 2, 0], Vec::new(), 3);
        let observation = Observation {
            name: "demo",
            generation: Some(2),
            spec: &DynamoClusterSpec::with_replicas(3),
            state: &state,
            pods: &pods,
            ring: Some(&ring),
            problem: None,
        };
        let first = build_status(&observation, None, Timestamp::from_second(100).expect("t"));
        assert_eq!(first.phase, Some(ClusterPhase::Running));
        let available = first.condition(CONDITION_AVAILABLE).expect("available");
        assert_eq!(
            (available.status.as_str(), available.reason.as_str()),
            ("True", "QuorumsMet")
        );
        let second = build_status(
            &observation,
            Some(&first),
            Timestamp::from_second(200).expect("t"),
        );
        assert_eq!(first, second);
    }

    #[test]
    fn a_refused_spec_says_why_nothing_progresses() {
        let state = ClusterState::default();
        let pods = BTreeMap::new();
        let problem = Problem {
            reason: "ReplicationExceedsReplicas".into(),
            message: "spec.replication.factor is 3, but the cluster has only 2 nodes".into(),
        };
        let observation = Observation {
            name: "demo",
            generation: Some(1),
            spec: &DynamoClusterSpec::with_replicas(3),
            state: &state,
            pods: &pods,
            ring: None,
            problem: Some(problem.clone()),
        };
        let status = build_status(&observation, None, Timestamp::from_second(100).expect("t"));
        let progressing = status
            .condition(CONDITION_PROGRESSING)
            .expect("progressing");
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("False", problem.reason.as_str())
        );
        assert!(
            progressing.message.contains(&problem.message),
            "{}",
            progressing.message
        );
        let degraded = status.condition(CONDITION_DEGRADED).expect("degraded");
        assert_eq!(degraded.status, "True");
    }
}
