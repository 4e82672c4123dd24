//! Node pools: groups of storage nodes with their own size, scheduling and
//! capacity weight, declared in `spec.pools`.
//!
//! A cluster without pools is one implicit pool made of the top-level
//! fields. With pools, `spec.replicas` is the total number of nodes and
//! must equal the sum of the pools' `replicas` (a CEL rule and
//! [`DynamoClusterSpec::validate`](crate::DynamoClusterSpec::validate)),
//! so `status.replicas` and the replication rules keep meaning the whole
//! cluster; a pool is scaled by editing its own `replicas`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::spec::StorageSpec;

/// Default capacity weight of a pool's nodes.
pub const DEFAULT_POOL_WEIGHT: u32 = 1;
/// Largest capacity weight of a ring member.
pub const MAX_POOL_WEIGHT: u32 = 16;
/// Most pools a cluster may declare (the CRD's `maxItems`, which also
/// bounds the cost of the CEL rules over the list).
pub const MAX_POOLS: usize = 16;
/// Pattern of a pool name: a DNS label (RFC 1123).
pub const POOL_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest pool name, so that `<cluster>-<pool>-<ordinal>` stays a valid
/// pod name for cluster names of common length.
pub const MAX_POOL_NAME_LEN: u32 = 20;
/// CEL rule on `pools`: no two pools share a name.
pub const POOL_NAMES_UNIQUE_RULE: &str = "self.all(p, self.exists_one(q, q.name == p.name))";

/// One pool of storage nodes. Its nodes share resources, storage,
/// scheduling and a capacity weight: a node of weight 2 owns about twice the
/// partitions of a node of weight 1.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// Name of the pool, a DNS label. Its StatefulSet is named
    /// `<cluster>-<pool>`, and its pods carry the label
    /// `dynamokv.io/pool: <pool>`. Renaming a pool removes it and adds a new
    /// one.
    #[schemars(length(min = 1, max = 20), regex(pattern = POOL_NAME_PATTERN))]
    pub name: String,

    /// Number of nodes of the pool (0 or more). The operator adds or removes
    /// one node at a time and moves its partitions first.
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// Capacity weight of each node of the pool, from 1 to 16.
    #[serde(default = "default_pool_weight")]
    #[schemars(range(min = 1, max = 16))]
    pub weight: u32,

    /// CPU and memory of the pool's node containers; `spec.resources` when
    /// not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Persistent volume of each node of the pool; `spec.storage` when not
    /// set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// Node labels the pool's pods' nodes must have; `spec.nodeSelector`
    /// when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the pool's pods; `spec.tolerations` when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity rules of the pool's pods; `spec.affinity` when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Zone of every node of the pool, used for replica placement instead
    /// of the zone label of the Kubernetes node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

fn default_pool_weight() -> u32 {
    DEFAULT_POOL_WEIGHT
}

/// Whether `name` is a pool name: a DNS label of at most
/// [`MAX_POOL_NAME_LEN`] characters.
pub fn is_pool_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    !name.is_empty()
        && name.len() <= MAX_POOL_NAME_LEN as usize
        && bytes.iter().all(inner)
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_are_dns_labels() {
        for name in ["a", "ssd", "big-1", "0x"] {
            assert!(is_pool_name(name), "{name}");
        }
        for name in ["", "-a", "a-", "Big", "a_b", "a.b", "abcdefghijklmnopqrstu"] {
            assert!(!is_pool_name(name), "{name}");
        }
    }

    #[test]
    fn a_pool_needs_a_name_and_replicas_only() {
        let pool: PoolSpec = serde_yaml::from_str("name: big\nreplicas: 2\n").expect("parses");
        assert_eq!((pool.weight, pool.zone, pool.storage), (1, None, None));
    }
}
