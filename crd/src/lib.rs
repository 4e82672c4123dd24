//! The `DynamoCluster` custom resource (`dynamokv.io/v1alpha1`, short name `dyc`).
//!
//! [`DynamoCluster`] is what a user applies; its [`DynamoClusterSpec`] says
//! how many nodes to run, the ring's partition count and the N/R/W quorums,
//! and its [`DynamoClusterStatus`] is where the operator reports the ring,
//! the members and the progress of membership changes.
//!
//! * [`DynamoCluster::crd`] (from [`CustomResourceExt`]) builds the
//!   CustomResourceDefinition, with the status and scale subresources,
//!   printer columns and CEL rules; the `crdgen` binary prints it.
//! * [`DynamoClusterSpec::validate`] checks a spec without an API server.
//! * [`DynamoCluster::from_yaml`] reads a manifest file for the local platform.
//!
//! # Examples
//!
//! ```
//! use dynamo_crd::{CustomResourceExt, DynamoCluster};
//!
//! let crd = DynamoCluster::crd();
//! assert_eq!(crd.metadata.name.as_deref(), Some("dynamoclusters.dynamokv.io"));
//! ```

mod buckets;
mod formats;
mod manifest;
mod network;
mod pools;
mod spec;
mod status;
mod tls;
mod validate;
mod yaml;

pub use buckets::{
    BUCKET_FACTOR_AT_MOST_REPLICAS_RULE, BUCKET_NAME_PATTERN, BUCKET_NAMES_UNIQUE_RULE,
    BUCKETS_KEPT_RULE, BucketSpec, MAX_BUCKETS,
};
pub use kube::CustomResourceExt;
pub use manifest::ManifestError;
pub use network::NetworkPolicySpec;
pub use pools::{
    DEFAULT_POOL_WEIGHT, MAX_POOL_NAME_LEN, MAX_POOL_WEIGHT, MAX_POOLS, POOL_NAME_PATTERN,
    POOL_NAMES_UNIQUE_RULE, PoolSpec, is_pool_name,
};
pub use spec::{
    DEFAULT_ANTI_ENTROPY_INTERVAL_MS, DEFAULT_GOSSIP_INTERVAL_MS, DEFAULT_IMAGE, DEFAULT_N,
    DEFAULT_PARTITIONS, DEFAULT_R, DEFAULT_STORAGE_SIZE, DEFAULT_TOMBSTONE_GRACE_SECONDS,
    DEFAULT_TOPOLOGY_KEY, DEFAULT_W, Durability, DynamoCluster, DynamoClusterSpec, ImagePullPolicy,
    MAX_PARTITIONS, N_AT_LEAST_ONE_RULE, N_AT_MOST_REPLICAS_RULE,
    PARTITIONS_AT_LEAST_REPLICAS_RULE, PARTITIONS_IMMUTABLE_RULE, PARTITIONS_POWER_OF_TWO_RULE,
    POOLS_SUM_TO_REPLICAS_RULE, PvcPolicy, QUANTITY_PATTERN, R_AT_MOST_N_RULE, ReplicationSpec,
    StorageSpec, W_AT_MOST_N_RULE, ZonesSpec,
};
pub use status::{
    CONDITION_AVAILABLE, CONDITION_DEGRADED, CONDITION_PROGRESSING, ClusterPhase,
    DynamoClusterStatus, MemberState, MemberStatus, PoolStatus, TransferStatus,
};
pub use tls::{ClientAuthMode, DEFAULT_OPERATOR_NAME, TlsSpec};
pub use validate::SpecError;
pub use yaml::to_kubernetes_yaml;
