//! The observed state of a cluster: `DynamoClusterStatus`, written by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Condition type: the cluster serves reads and writes at the configured quorums.
pub const CONDITION_AVAILABLE: &str = "Available";
/// Condition type: the operator is changing the cluster (creating it, or adding
/// or removing a node).
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: the cluster runs with fewer healthy nodes than it should, or
/// its spec cannot be carried out (for example `replication.factor` > `replicas`).
pub const CONDITION_DEGRADED: &str = "Degraded";

/// Observed state of a DynamoCluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[schemars(transform = crate::formats::kubernetes_integer_formats)]
#[serde(rename_all = "camelCase")]
pub struct DynamoClusterStatus {
    /// Number of storage pods that exist (the scale subresource reads it).
    #[serde(default)]
    pub replicas: i32,

    /// Number of storage pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Label selector of the storage pods, in string form, for the scale
    /// subresource (`kubectl scale`, HorizontalPodAutoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Lifecycle phase: Pending, Creating, Running, Scaling, Degraded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,

    /// Epoch of the ring the operator last committed: a counter that every
    /// ring change the nodes adopt raises by one. A join raises it twice (the
    /// ring with the transfers, then the ring without them) and a leave
    /// three times (the ring with the transfers, the ring without them, and
    /// the ring without the leaver), so it orders rings; it does not count
    /// members or changes.
    #[serde(default)]
    pub epoch: u64,

    /// Nodes of the ring and their state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub members: Vec<MemberStatus>,

    /// The node pools of `spec.pools`, and pools removed from it whose nodes
    /// still leave: replicas wanted, nodes in the ring and ready, weight and
    /// partitions owned. Empty for a cluster without pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub pools: Vec<PoolStatus>,

    /// Progress of the partition transfers of the membership change under way.
    /// Absent when no transfer runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferStatus>,

    /// Conditions of the cluster: Available, Progressing and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Resumable state of the operator's membership driver. The driver
    /// persists the step it is in here, so that an operator restart resumes
    /// the membership change where it stopped. Opaque to users; its shape
    /// belongs to the operator and may change between releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "opaque_object_schema")]
    pub driver: Option<serde_json::Value>,
}

/// Lifecycle phase of a cluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
// No schema description of its own: kube would put it in place of the
// `phase` field's description (the field is an `Option`).
#[schemars(description = "")]
pub enum ClusterPhase {
    /// Accepted, nothing created yet.
    Pending,
    /// The first nodes are starting and the first ring is being committed.
    Creating,
    /// Every node is in the ring and no membership change is under way.
    Running,
    /// A node is joining or leaving.
    Scaling,
    /// The cluster serves requests but some nodes are down or the spec
    /// cannot be carried out; see the Degraded condition.
    Degraded,
    /// The operator cannot make progress without help; see the conditions.
    Failed,
}

/// A node of the ring.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod name of the node (its stable StatefulSet identity).
    pub name: String,
    /// Membership state of the node.
    pub state: MemberState,
    /// Number of partitions the node owns in the committed ring.
    #[serde(default)]
    pub partitions: u32,
    /// Zone of the node, when the cluster is zone-aware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// A node pool as the ring sees it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Name of the pool.
    pub name: String,
    /// Nodes the spec asks for (0 for a pool removed from the spec that
    /// still drains).
    #[serde(default)]
    pub replicas: i32,
    /// Nodes of the pool in the ring.
    #[serde(default)]
    pub members: i32,
    /// Nodes of the pool in the ring whose pods are ready.
    #[serde(default)]
    pub ready_members: i32,
    /// Capacity weight of each node of the pool.
    #[serde(default)]
    pub weight: u32,
    /// Partitions the pool's nodes own in the committed ring, together.
    #[serde(default)]
    pub partitions: u32,
}

/// Membership state of a node.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Streaming the partitions it is taking over.
    Joining,
    /// Owns its partitions and serves them.
    Normal,
    /// Handing its partitions to other nodes.
    Leaving,
    /// Out of the ring; its pod can be removed.
    Left,
}

/// Progress of the partition transfers of a membership change.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TransferStatus {
    /// Partitions that still have to be streamed.
    #[serde(default)]
    pub partitions_left: u32,
    /// Bytes that still have to be streamed, as far as the nodes know.
    #[serde(default)]
    pub bytes_left: u64,
    /// Step of the membership change, in words (for example
    /// `join dynamo-3: streaming`).
    #[serde(default)]
    pub step: String,
}

impl DynamoClusterStatus {
    /// The condition of the given type, if the status has one.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions
            .iter()
            .find(|condition| condition.type_ == type_)
    }
}

/// Schema of a free-form JSON object that the API server keeps as it is.
fn opaque_object_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
