//! The operator's resumable state of one cluster, kept in the custom
//! resource's `status.driver`: the membership driver's step, the pods the
//! StatefulSets should run (one per pool) and how each member was launched.
//!
//! It is written before any object is changed, so an operator that stops
//! at any moment re-applies the same intent after a restart.

use std::collections::BTreeMap;

use dynamo_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::driver::DriverState;

/// A member of the first ring, as the bootstrap configuration lists it.
///
/// It carries no capacity weight on purpose: the nodes deal the first
/// ring's partitions evenly whatever the weights say, so a first ring with
/// weights would claim shares it does not have. Its members read as weight
/// 1, and the driver then gives each heavier pool member its share.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchMember {
    /// Member id (pod name).
    pub id: String,
    /// Address peers dial.
    pub address: String,
    /// Failure zone, empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
}

impl From<&pb::Member> for LaunchMember {
    fn from(member: &pb::Member) -> Self {
        Self {
            id: member.id.clone(),
            address: member.address.clone(),
            zone: member.zone.clone(),
        }
    }
}

/// How a member's node starts when its data volume holds no ring yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum MemberLaunch {
    /// One of the first members: computes the first ring from
    /// [`ClusterState::bootstrap_members`].
    Bootstrap,
    /// Joins a running cluster by fetching the ring from these addresses.
    Join {
        /// Addresses of running members.
        seeds: Vec<String>,
    },
}

/// Everything the operator persists about a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    /// The membership driver's state.
    #[serde(default)]
    pub driver: DriverState,
    /// Pods the implicit pool's StatefulSet runs (its `replicas`): the
    /// StatefulSet of a cluster without `spec.pools`.
    #[serde(default)]
    pub pods: i32,
    /// Pods each declared pool's StatefulSet runs, by pool name. A pool
    /// removed from the spec stays here until its last member left. A
    /// status written before pools has none: the implicit pool only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pool_pods: BTreeMap<String, i32>,
    /// Partitions the cluster was created with; 0 before it was created.
    #[serde(default)]
    pub partitions: u32,
    /// The members of the first ring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap_members: Vec<LaunchMember>,
    /// How each member index was launched.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub launches: BTreeMap<usize, MemberLaunch>,
}

impl ClusterState {
    /// Pods the StatefulSet of pool `pool` (empty: the implicit pool) runs.
    pub fn pods_of(&self, pool: &str) -> i32 {
        if pool.is_empty() {
            self.pods
        } else {
            self.pool_pods.get(pool).copied().unwrap_or(0)
        }
    }

    /// Records that the StatefulSet of pool `pool` runs `pods` pods.
    pub fn set_pods(&mut self, pool: &str, pods: i32) {
        if pool.is_empty() {
            self.pods = pods;
        } else {
            self.pool_pods.insert(pool.to_owned(), pods);
        }
    }

    /// Pods of every pool's StatefulSet together.
    pub fn total_pods(&self) -> i32 {
        self.pool_pods
            .values()
            .fold(self.pods, |total, &pods| total.saturating_add(pods))
    }

    /// Reads the state from a status' opaque `driver` value; a missing or
    /// unreadable value is a fresh state (the driver re-derives its step
    /// from the nodes).
    pub fn from_status(value: Option<&serde_json::Value>) -> Self {
        value
            .and_then(|value| serde_json::from_value(value.clone()).ok())
            .unwrap_or_default()
    }

    /// The value to store in the status.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Step;

    #[test]
    fn a_status_written_before_pools_is_the_implicit_pool() {
        let old = serde_json::json!({
            "pods": 3,
            "partitions": 64,
            "launches": {"0": {"kind": "bootstrap"}, "2": {"kind": "join", "seeds": ["a:1"]}},
        });
        let state = ClusterState::from_status(Some(&old));
        assert_eq!((state.pods_of(""), state.total_pods()), (3, 3));
        assert!(state.pool_pods.is_empty());
        assert_eq!(state.launches.len(), 2);
        assert!(state.to_value().get("poolPods").is_none());
    }

    #[test]
    fn pods_are_counted_per_pool() {
        let mut state = ClusterState::default();
        state.set_pods("", 2);
        state.set_pods("small", 3);
        state.set_pods("large", 1);
        assert_eq!(state.pods_of("small"), 3);
        assert_eq!(state.pods_of("gone"), 0);
        assert_eq!(state.total_pods(), 6);
    }

    #[test]
    fn the_state_survives_the_status_round_trip() {
        let mut state = ClusterState {
            pods: 4,
            partitions: 64,
            bootstrap_members: vec![LaunchMember {
                id: "demo-0".into(),
                address: "demo-0.demo-peers.ns.svc:7400".into(),
                zone: String::new(),
            }],
            ..ClusterState::default()
        };
        state.launches.insert(0, MemberLaunch::Bootstrap);
        state.launches.insert(
            3,
            MemberLaunch::Join {
                seeds: vec!["a:1".into()],
            },
        );
        state.driver.step = Step::Stream {
            epoch: 7,
            change: crate::driver::Change::Join,
            member: "demo-3".into(),
        };
        let value = state.to_value();
        assert_eq!(value["launches"]["3"]["kind"], "join");
        assert_eq!(value["driver"]["step"]["step"], "stream");
        assert_eq!(ClusterState::from_status(Some(&value)), state);
        state.pool_pods.insert("large".into(), 1);
        assert_eq!(value["poolPods"], serde_json::Value::Null, "not yet set");
        let value = state.to_value();
        assert_eq!(value["poolPods"]["large"], 1);
        assert_eq!(ClusterState::from_status(Some(&value)), state);
        let garbage = serde_json::json!({"pods": "many"});
        assert_eq!(
            ClusterState::from_status(Some(&garbage)),
            ClusterState::default()
        );
    }
}
