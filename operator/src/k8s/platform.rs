//! The Kubernetes [`Platform`]: member i is pod `NAME-i` of the cluster's
//! StatefulSet, in the zone of the Node its pod is bound to. Starting and
//! stopping members only record the intent (the pod count and how each
//! member launches) in the [`ClusterState`]; the
//! controller persists it in the status and then applies the ConfigMap and
//! StatefulSet it implies. Readiness comes from a snapshot of the pods taken
//! before the driver's step, plus an Admin call to the node.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dynamo_proto::v1 as pb;

use super::state::{ClusterState, LaunchMember, MemberLaunch};
use crate::admin::{Admin, GrpcAdmin};
use crate::driver::{Launch, Platform, PlatformError};

/// How the operator reaches member `index` of cluster `name` in `namespace`.
pub type AddressFn = Arc<dyn Fn(&str, &str, usize) -> String + Send + Sync>;

/// Addresses through the headless Service's DNS names.
pub fn cluster_dns() -> AddressFn {
    Arc::new(super::names::member_address)
}

/// What the pod snapshot says about one member's pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodView {
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
    namespace: String,
    name: String,
    address: AddressFn,
    pods: BTreeMap<usize, PodView>,
    admin: Arc<GrpcAdmin>,
    state: Mutex<ClusterState>,
}

impl KubePlatform {
    /// A platform for cluster `name` in `namespace`, with the pods seen just
    /// now and the persisted state to update, asking nodes through `admin`
    /// (the caller the driver shares).
    pub fn new(
        namespace: &str,
        name: &str,
        address: AddressFn,
        pods: BTreeMap<usize, PodView>,
        state: ClusterState,
        admin: Arc<GrpcAdmin>,
    ) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            address,
            pods,
            admin,
            state: Mutex::new(state),
        }
    }

    /// The state with every intent recorded so far.
    pub fn state(&self) -> ClusterState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records that the StatefulSet should run exactly the members of a
    /// converged ring of `members` (indexes 0..members), dropping pods and
    /// launches of members that are gone.
    pub fn settle(&self, members: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.pods = i32::try_from(members).unwrap_or(i32::MAX);
        state.launches.retain(|&index, _| index < members);
    }
}

impl Platform for KubePlatform {
    fn member(&self, index: usize) -> pb::Member {
        pb::Member {
            weight: 0,
            id: super::names::pod(&self.name, index),
            address: (self.address)(&self.namespace, &self.name, index),
            zone: self.zone(index).unwrap_or_default(),
        }
    }

    fn zone(&self, index: usize) -> Option<String> {
        self.pods.get(&index)?.zone.clone()
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        id.strip_prefix(super::names::stateful_set(&self.name).as_str())?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    fn known(&self) -> Vec<usize> {
        self.pods.keys().copied().collect()
    }

    async fn start(&self, index: usize, launch: Launch) -> Result<(), PlatformError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
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
        let wanted = i32::try_from(index + 1).unwrap_or(i32::MAX);
        state.pods = state.pods.max(wanted);
        Ok(())
    }

    async fn is_ready(&self, index: usize) -> bool {
        let pod_ready = self.pods.get(&index).is_some_and(|pod| pod.ready);
        pod_ready
            && self
                .admin
                .status(&(self.address)(&self.namespace, &self.name, index))
                .await
                .is_ok()
    }

    async fn stop(&self, index: usize) -> Result<(), PlatformError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let below = i32::try_from(index).unwrap_or(i32::MAX);
        state.pods = state.pods.min(below);
        state.launches.retain(|&i, _| i < index);
        Ok(())
    }
}
