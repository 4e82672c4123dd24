//! The Kubernetes [`Platform`]: member `index` is a pod of its pool's
//! StatefulSet (`<cluster>-<ordinal>` of StatefulSet `<cluster>` for the
//! implicit pool, `<cluster>-<pool>-<ordinal>` of `<cluster>-<pool>` for a
//! declared one), with its pool's weight, in its pool's zone or else the
//! zone of the Node its pod is bound to. Starting and stopping members only
//! record the intent (each pool's pod count and how each member launches)
//! in the [`ClusterState`]; the controller persists it in the status and
//! then applies the ConfigMap and StatefulSets it implies. Readiness comes
//! from a snapshot of the pods taken before the driver's step, plus an
//! Admin call to the node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use dynamo_crd::DEFAULT_POOL_WEIGHT;
use dynamo_proto::v1 as pb;

use super::cluster::ValidatedCluster;
use super::state::{ClusterState, LaunchMember, MemberLaunch};
use crate::admin::{Admin, GrpcAdmin};
use crate::driver::{Launch, Platform, PlatformError};
use crate::pools;

/// How the operator reaches member `member` (its pod name) of cluster
/// `cluster` in `namespace`: `(namespace, cluster, member)`.
pub type AddressFn = Arc<dyn Fn(&str, &str, &str) -> String + Send + Sync>;

/// Addresses through the headless Service's DNS names.
pub fn cluster_dns() -> AddressFn {
    Arc::new(super::names::member_address)
}

/// What the pod snapshot says about one member's pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodView {
    /// The pod's name, which is its member id.
    pub name: String,
    /// The pod's Ready condition is True.
    pub ready: bool,
    /// The zone of the pod's machine: `None` until the pod is placed on a
    /// Node, empty when the cluster ignores zones or the Node has no zone.
    pub zone: Option<String>,
    /// Why the pod is not ready, when Kubernetes says (a container's waiting
    /// or terminated reason and message).
    pub problem: Option<String>,
}

/// Members as StatefulSet pods.
pub struct KubePlatform {
    cluster: ValidatedCluster,
    address: AddressFn,
    pods: BTreeMap<usize, PodView>,
    admin: Arc<GrpcAdmin>,
    state: Mutex<ClusterState>,
}

impl KubePlatform {
    /// A platform for `cluster` (its spec and persisted state), with the
    /// pods seen just now, asking nodes through `admin` (the caller the
    /// driver shares).
    pub fn new(
        cluster: &ValidatedCluster,
        address: AddressFn,
        pods: BTreeMap<usize, PodView>,
        admin: Arc<GrpcAdmin>,
    ) -> Self {
        Self {
            state: Mutex::new(cluster.state.clone()),
            cluster: cluster.clone(),
            address,
            pods,
            admin,
        }
    }

    /// The state with every intent recorded so far.
    pub fn state(&self) -> ClusterState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the StatefulSets should run exactly `members`, the
    /// members of a converged ring: each pool's pods up to its highest
    /// member, launches of members that are gone dropped, and pools without
    /// members that the spec no longer declares forgotten.
    pub fn settle(&self, members: &BTreeSet<usize>) {
        let mut state = self.lock();
        for pool in super::pools::running(&self.cluster) {
            let pods = members
                .iter()
                .map(|&index| pools::split(index))
                .filter(|&(slot, _)| slot == pool.slot())
                .map(|(_, ordinal)| ordinal + 1)
                .max()
                .unwrap_or(0);
            let declared = pool.spec.is_some() || self.cluster.spec.pools.is_empty();
            if pods == 0 && !declared && !pool.name.is_empty() {
                state.pool_pods.remove(pool.name);
            } else {
                state.set_pods(pool.name, i32::try_from(pods).unwrap_or(i32::MAX));
            }
        }
        state.launches.retain(|index, _| members.contains(index));
    }

    /// The member id of `index`: its pod's name, else the name its pool
    /// gives it; `None` for an index of a pool the cluster does not run.
    fn id(&self, index: usize) -> Option<String> {
        match self.pods.get(&index) {
            Some(pod) => Some(pod.name.clone()),
            None => super::pools::member_id(&self.cluster, index),
        }
    }

    fn address_of(&self, id: &str) -> String {
        (self.address)(&self.cluster.namespace, &self.cluster.name, id)
    }

    /// The pool name of member `index`, from the cluster or its pod's name.
    fn pool_name(&self, index: usize) -> Option<String> {
        let id = self.id(index)?;
        pools::parse_member(&self.cluster.name, &id).map(|(pool, _)| pool)
    }
}

impl Platform for KubePlatform {
    /// Member `index` as the ring names it; an index of a pool the cluster
    /// does not run has an empty id and address (the driver only asks for
    /// the members the spec wants, whose pools it runs).
    fn member(&self, index: usize) -> pb::Member {
        let id = self.id(index).unwrap_or_default();
        let weight = pools::pool_of(&self.cluster.spec, index)
            .map_or(DEFAULT_POOL_WEIGHT, |pool| pool.weight);
        pb::Member {
            weight,
            address: if id.is_empty() {
                String::new()
            } else {
                self.address_of(&id)
            },
            id,
            zone: self.zone(index).unwrap_or_default(),
        }
    }

    fn zone(&self, index: usize) -> Option<String> {
        let pool_zone = pools::pool_of(&self.cluster.spec, index).and_then(|pool| pool.zone);
        match pool_zone {
            Some(zone) => Some(zone.to_owned()),
            None => self.pods.get(&index)?.zone.clone(),
        }
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        pools::index_of(&self.cluster.name, id)
    }

    fn known(&self) -> Vec<usize> {
        self.pods.keys().copied().collect()
    }

    async fn start(&self, index: usize, launch: Launch) -> Result<(), PlatformError> {
        let pool = self.pool_name(index).unwrap_or_default();
        let mut state = self.lock();
        let launch = match launch {
            Launch::Bootstrap { members } => {
                if state.bootstrap_members.is_empty() {
                    state.bootstrap_members = members.iter().map(LaunchMember::from).collect();
                }
                MemberLaunch::Bootstrap
            }
            Launch::Join { seeds } => MemberLaunch::Join { seeds },
        };
        // A running member keeps the launch it started with.
        state.launches.entry(index).or_insert(launch);
        let (_, ordinal) = pools::split(index);
        let wanted = i32::try_from(ordinal + 1).unwrap_or(i32::MAX);
        let pods = state.pods_of(&pool).max(wanted);
        state.set_pods(&pool, pods);
        Ok(())
    }

    async fn is_ready(&self, index: usize) -> bool {
        let Some(pod) = self.pods.get(&index).filter(|pod| pod.ready) else {
            return false;
        };
        self.admin.status(&self.address_of(&pod.name)).await.is_ok()
    }

    async fn stop(&self, index: usize) -> Result<(), PlatformError> {
        let Some(pool) = self.pool_name(index) else {
            return Ok(());
        };
        let mut state = self.lock();
        let (slot, ordinal) = pools::split(index);
        let below = i32::try_from(ordinal).unwrap_or(i32::MAX);
        let pods = state.pods_of(&pool).min(below);
        state.set_pods(&pool, pods);
        state.launches.retain(|&i, _| {
            let (other_slot, other) = pools::split(i);
            other_slot != slot || other < ordinal
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    use crate::k8s::cluster::fixture as cluster;

    const POOLED: &str = "  replicas: 3\n  pools:\n  - {name: small, replicas: 2}\n  - {name: large, replicas: 1, weight: 2, zone: b}\n";

    fn platform(cluster: &ValidatedCluster, pods: &[(&str, &str)]) -> KubePlatform {
        let pods = pods
            .iter()
            .map(|&(name, zone)| {
                let index = pools::index_of("demo", name).expect("a member name");
                let view = PodView {
                    name: name.into(),
                    ready: true,
                    zone: Some(zone.into()),
                    problem: None,
                };
                (index, view)
            })
            .collect();
        let admin = Arc::new(GrpcAdmin::new(Duration::from_millis(50), None));
        KubePlatform::new(cluster, cluster_dns(), pods, admin)
    }

    #[test]
    fn pool_members_are_named_weighed_and_zoned_by_their_pool() {
        let cluster = cluster(POOLED);
        let platform = platform(&cluster, &[("demo-small-0", "a")]);
        let small = pools::index(pools::slot("small"), 0);
        let large = pools::index(pools::slot("large"), 0);
        let member = platform.member(small);
        assert_eq!(
            (member.id.as_str(), member.weight, member.zone.as_str()),
            ("demo-small-0", 1, "a")
        );
        assert_eq!(member.address, "demo-small-0.demo-peers.ns.svc:7400");
        let member = platform.member(large);
        assert_eq!(
            (member.id.as_str(), member.weight, member.zone.as_str()),
            ("demo-large-0", 2, "b"),
            "the pool's zone before its pod is placed"
        );
        assert_eq!(platform.index_of("demo-large-0"), Some(large));
        assert_eq!(platform.index_of("demo-3"), Some(3));
        assert_eq!(platform.index_of("other-0"), None);
    }

    #[test]
    fn the_implicit_pool_keeps_weight_one_and_the_nodes_zone() {
        let cluster = cluster("  replicas: 3\n");
        let platform = platform(&cluster, &[("demo-1", "z")]);
        let member = platform.member(1);
        assert_eq!(
            (member.id.as_str(), member.weight, member.zone.as_str()),
            ("demo-1", 1, "z")
        );
        assert_eq!(crate::driver::weight(&pb::Member::default()), member.weight);
    }

    #[tokio::test]
    async fn starts_and_stops_count_pods_per_pool() {
        let cluster = cluster(POOLED);
        let platform = platform(&cluster, &[]);
        let small = |ordinal| pools::index(pools::slot("small"), ordinal);
        let large = pools::index(pools::slot("large"), 0);
        for index in [small(0), small(1), large] {
            let seeds = vec!["a:1".into()];
            platform
                .start(index, Launch::Join { seeds })
                .await
                .expect("start");
        }
        let state = platform.state();
        assert_eq!(
            (state.pods_of("small"), state.pods_of("large"), state.pods),
            (2, 1, 0)
        );
        platform.stop(small(1)).await.expect("stop");
        let state = platform.state();
        assert_eq!((state.pods_of("small"), state.pods_of("large")), (1, 1));
        assert!(state.launches.contains_key(&large));
        assert!(!state.launches.contains_key(&small(1)));
    }

    #[tokio::test]
    async fn members_of_a_removed_pool_still_leave_and_the_pool_is_forgotten() {
        let mut cluster = cluster(POOLED);
        cluster.state.set_pods("small", 2);
        cluster.state.set_pods("large", 1);
        cluster.state.set_pods("old", 2);
        let old = |ordinal| pools::index(pools::slot("old"), ordinal);
        cluster
            .state
            .launches
            .insert(old(1), MemberLaunch::Bootstrap);
        let platform = platform(&cluster, &[("demo-old-0", "a")]);
        assert_eq!(
            platform.member(old(1)).id,
            "demo-old-1",
            "named from the state"
        );
        assert_eq!(platform.member(old(0)).weight, 1);
        platform.stop(old(1)).await.expect("stop");
        assert_eq!(platform.state().pods_of("old"), 1);
        platform.stop(old(0)).await.expect("stop");
        assert_eq!(platform.state().pods_of("old"), 0);
        platform.settle(&pools::members(&cluster.spec));
        let state = platform.state();
        assert_eq!(
            state.pool_pods,
            BTreeMap::from([("large".into(), 1), ("small".into(), 2)])
        );
        assert!(state.launches.is_empty());
    }
}
