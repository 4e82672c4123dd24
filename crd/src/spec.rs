//! The desired state of a cluster: `DynamoClusterSpec` and its parts.
//!
//! Every field carries a doc comment: kube turns it into the description that
//! `kubectl explain dynamocluster.spec` prints. Every field but `replicas` has a
//! default, so a manifest with only `replicas: 3` is complete. The CEL rules that
//! the API server enforces sit next to the fields they check;
//! [`DynamoClusterSpec::validate`](crate::DynamoClusterSpec::validate) checks the
//! same rules without a server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::buckets::{
    BUCKET_FACTOR_AT_MOST_REPLICAS_RULE, BUCKET_NAMES_UNIQUE_RULE, BUCKETS_KEPT_RULE, BucketSpec,
};
use crate::network::NetworkPolicySpec;
use crate::pools::{POOL_NAMES_UNIQUE_RULE, PoolSpec};
use crate::status::DynamoClusterStatus;
use crate::tls::TlsSpec;

/// Image used when `spec.image` is not set: the node image of this release.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/dynamokv/dynamo-node:", env!("CARGO_PKG_VERSION"));
/// Default number of ring partitions (Q).
pub const DEFAULT_PARTITIONS: u32 = 256;
/// Largest number of ring partitions a cluster may have (the ring's limit).
pub use dynamo_ring::{Durability, MAX_PARTITIONS};
/// Default replication factor N.
pub const DEFAULT_N: u32 = 3;
/// Default read quorum R.
pub const DEFAULT_R: u32 = 2;
/// Default write quorum W.
pub const DEFAULT_W: u32 = 2;
/// Default size of each node's volume.
pub const DEFAULT_STORAGE_SIZE: &str = "10Gi";
/// Default node label that names a pod's failure domain.
pub const DEFAULT_TOPOLOGY_KEY: &str = "topology.kubernetes.io/zone";
/// Default gossip period in milliseconds.
pub const DEFAULT_GOSSIP_INTERVAL_MS: u64 = 1000;
/// Default anti-entropy period in milliseconds.
pub const DEFAULT_ANTI_ENTROPY_INTERVAL_MS: u64 = 60_000;
/// Default time a tombstone is kept after every replica has it, in seconds.
pub const DEFAULT_TOMBSTONE_GRACE_SECONDS: u64 = 86_400;

/// CEL rule: `partitions` is a power of two between 1 and [`MAX_PARTITIONS`].
///
/// CEL has no bitwise operators, so the rule is a membership test.
pub const PARTITIONS_POWER_OF_TWO_RULE: &str =
    "self in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]";
/// CEL transition rule: `partitions` never changes after creation.
pub const PARTITIONS_IMMUTABLE_RULE: &str = "self == oldSelf";
/// CEL rule on `replication`: N is at least 1.
pub const N_AT_LEAST_ONE_RULE: &str = "self.factor >= 1";
/// CEL rule on `replication`: R is at most N.
pub const R_AT_MOST_N_RULE: &str = "self.readQuorum <= self.factor";
/// CEL rule on `replication`: W is at most N.
pub const W_AT_MOST_N_RULE: &str = "self.writeQuorum <= self.factor";
/// CEL rule on the spec: N is at most the number of nodes.
pub const N_AT_MOST_REPLICAS_RULE: &str = "self.replication.factor <= self.replicas";
/// CEL rule on the spec: every node can own a partition.
pub const PARTITIONS_AT_LEAST_REPLICAS_RULE: &str = "self.partitions >= self.replicas";

/// CEL rule on the spec: with pools, `replicas` is the sum of the pools'.
pub const POOLS_SUM_TO_REPLICAS_RULE: &str = "!has(self.pools) || size(self.pools) == 0 || self.replicas == self.pools.map(p, p.replicas).sum()";

/// Desired state of a DynamoCluster: the number of nodes, the ring's
/// partitions, the N/R/W quorums, storage and scheduling of the nodes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn repeats `type_ = \"integer\"`"
)]
#[kube(
    group = "dynamokv.io",
    version = "v1alpha1",
    kind = "DynamoCluster",
    plural = "dynamoclusters",
    shortname = "dyc",
    namespaced,
    status = "DynamoClusterStatus",
    derive = "PartialEq",
    doc = "A DynamoKV cluster: a ring of storage nodes that the DynamoKV operator runs as a StatefulSet and changes one member at a time.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired number of nodes"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Nodes that are ready"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase of the cluster"
    ),
    printcolumn(
        name = "N",
        type_ = "integer",
        json_path = ".spec.replication.factor",
        description = "Replicas of each key"
    ),
    printcolumn(
        name = "R",
        type_ = "integer",
        json_path = ".spec.replication.readQuorum",
        description = "Read quorum"
    ),
    printcolumn(
        name = "W",
        type_ = "integer",
        json_path = ".spec.replication.writeQuorum",
        description = "Write quorum"
    ),
    printcolumn(
        name = "Epoch",
        type_ = "integer",
        json_path = ".status.epoch",
        description = "Epoch of the committed ring"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new(N_AT_MOST_REPLICAS_RULE)
        .message("replication.factor must not be greater than replicas: a key needs factor distinct nodes")
        .field_path(".replication.factor"),
    validation = Rule::new(PARTITIONS_AT_LEAST_REPLICAS_RULE)
        .message("partitions must not be fewer than replicas: every node must be able to own a partition")
        .field_path(".replicas"),
    validation = Rule::new(POOLS_SUM_TO_REPLICAS_RULE)
        .message("with pools, replicas must equal the sum of the pools' replicas: scale a pool by editing its replicas")
        .field_path(".replicas"),
    validation = Rule::new(BUCKET_FACTOR_AT_MOST_REPLICAS_RULE)
        .message("a bucket's factor must not be greater than replicas: keep replicas at least the largest bucket factor")
        .field_path(".buckets"),
    validation = Rule::new(BUCKETS_KEPT_RULE)
        .message("buckets are never removed and a bucket's factor never changes: put back every bucket with its factor")
        .field_path(".buckets")
)]
#[schemars(transform = crate::formats::kubernetes_integer_formats)]
#[serde(rename_all = "camelCase")]
pub struct DynamoClusterSpec {
    /// Number of storage nodes (pods). Must be at least 1, and at least
    /// `replication.factor` for every key to get N distinct replicas. The operator
    /// adds or removes one node at a time and moves its partitions first.
    #[schemars(range(min = 1))]
    pub replicas: i32,

    /// Container image of the storage node.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// Pull policy for `image` (Always, IfNotPresent or Never). Kubernetes
    /// picks one from the image tag when this is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Number of equal ring partitions (Q). A power of two from 1 to 65536,
    /// and not less than `replicas`. Fixed when the cluster is created: it
    /// cannot be changed afterwards.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 65536))]
    #[x_kube(
        validation = Rule::new(PARTITIONS_POWER_OF_TWO_RULE)
            .message("partitions must be a power of two between 1 and 65536, such as 256"),
        validation = Rule::new(PARTITIONS_IMMUTABLE_RULE)
            .message("partitions is immutable: it is fixed when the cluster is created")
    )]
    pub partitions: u32,

    /// Replication factor and quorums: each key is stored on N nodes, a read
    /// waits for R of them and a write for W.
    #[serde(default)]
    pub replication: ReplicationSpec,

    /// Persistent volume of each node.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Zone awareness. When set, the operator spreads nodes across the values
    /// of the node label `topologyKey` and each key's N replicas are placed in
    /// as many different zones as possible. When not set, zones are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<ZonesSpec>,

    /// CPU and memory requests and limits of the storage node container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels a storage pod's node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the storage pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity rules of the storage pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Period of gossip between nodes, in milliseconds: each period every node
    /// exchanges heartbeats and the ring epoch with one random peer.
    #[serde(default = "default_gossip_interval_ms")]
    #[schemars(range(min = 1))]
    pub gossip_interval_ms: u64,

    /// Period of the background anti-entropy pass, in milliseconds: each pass
    /// compares the Merkle trees of a partition's replicas and repairs what differs.
    #[serde(default = "default_anti_entropy_interval_ms")]
    #[schemars(range(min = 1))]
    pub anti_entropy_interval_ms: u64,

    /// How long a tombstone (a deleted key) is kept after every replica holds
    /// it, in seconds, before it is removed for good.
    #[serde(default = "default_tombstone_grace_seconds")]
    pub tombstone_grace_seconds: u64,

    /// When a write is acknowledged: `buffer` once the node's journal has
    /// handed it to the operating system, `sync` once it is fsynced to disk.
    #[serde(default)]
    pub durability: Durability,

    /// What happens to a removed node's PersistentVolumeClaim when the
    /// cluster scales down: `Retain` keeps it, `Delete` deletes it once the
    /// node has left the ring.
    #[serde(default)]
    pub pvc_policy_on_scale_down: PvcPolicy,

    /// Network isolation of the storage pods: a NetworkPolicy that admits
    /// the cluster's own pods, the operator and the sources listed. No
    /// policy when not set; removing the field deletes one made before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// Node pools, each with its own replicas, capacity weight, resources,
    /// storage and scheduling. Without pools the cluster is one pool made of
    /// the top-level fields. With pools, `replicas` must equal the sum of the
    /// pools' replicas. At most 16 pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(
        validation = Rule::new(POOL_NAMES_UNIQUE_RULE)
            .message("pool names must be unique")
    )]
    pub pools: Vec<PoolSpec>,

    /// Named buckets, each with its own replication factor, quorums and
    /// durability; clients pick one by name. The default bucket uses
    /// `replication`. A bucket is never removed and its factor never
    /// changes; its quorums and durability may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(
        validation = Rule::new(BUCKET_NAMES_UNIQUE_RULE)
            .message("bucket names must be unique")
    )]
    pub buckets: Vec<BucketSpec>,

    /// Mutual TLS for all gRPC traffic, from a Secret with the nodes'
    /// certificate. Plaintext when not set (the nodes warn at start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// Replication factor N and the read and write quorums R and W.
///
/// The fields are spelled out (`factor`, `readQuorum`, `writeQuorum`)
/// because a bare `n` is the boolean `false` to YAML 1.1 readers such as
/// kubectl and Helm. Unknown fields are refused when deserializing (the
/// names `n`, `r` and `w` of earlier releases among them), so an old
/// manifest fails loudly instead of running with the defaults.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new(N_AT_LEAST_ONE_RULE)
        .message("replication.factor must be at least 1")
        .field_path(".factor"),
    validation = Rule::new(R_AT_MOST_N_RULE)
        .message("replication.readQuorum must not be greater than replication.factor")
        .field_path(".readQuorum"),
    validation = Rule::new(W_AT_MOST_N_RULE)
        .message("replication.writeQuorum must not be greater than replication.factor")
        .field_path(".writeQuorum")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicationSpec {
    /// Replication factor N: the number of nodes that store each key. At
    /// most `replicas`.
    #[serde(default = "default_n")]
    pub factor: u32,
    /// Read quorum R: the number of replicas a read waits for, from 1 to
    /// `factor`.
    #[serde(default = "default_r")]
    #[schemars(range(min = 1))]
    pub read_quorum: u32,
    /// Write quorum W: the number of replicas a write waits for, from 1 to
    /// `factor`.
    #[serde(default = "default_w")]
    #[schemars(range(min = 1))]
    pub write_quorum: u32,
}

impl Default for ReplicationSpec {
    fn default() -> Self {
        Self {
            factor: DEFAULT_N,
            read_quorum: DEFAULT_R,
            write_quorum: DEFAULT_W,
        }
    }
}

/// Persistent volume of each storage node.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each node's volume, as a Kubernetes quantity such as `10Gi`.
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub size: String,
    /// StorageClass of the volumes. The cluster's default StorageClass is
    /// used when this is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: DEFAULT_STORAGE_SIZE.to_owned(),
            storage_class_name: None,
        }
    }
}

/// Zone awareness settings.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ZonesSpec {
    /// Node label whose value is a node's zone.
    #[serde(default = "default_topology_key")]
    #[schemars(length(min = 1))]
    pub topology_key: String,
}

impl Default for ZonesSpec {
    fn default() -> Self {
        Self {
            topology_key: DEFAULT_TOPOLOGY_KEY.to_owned(),
        }
    }
}

/// Pull policy of the storage node image.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
// No schema description of its own: kube would put it in place of the
// `imagePullPolicy` field's description (the field is an `Option`).
#[schemars(description = "")]
pub enum ImagePullPolicy {
    /// Pull the image every time a pod starts.
    Always,
    /// Pull the image only when the node does not have it.
    IfNotPresent,
    /// Never pull; the image must be on the node.
    Never,
}

impl ImagePullPolicy {
    /// The name Kubernetes uses for this policy in a container spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// What to do with a removed node's PersistentVolumeClaim.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PvcPolicy {
    /// Keep the claim (and its data) after the node has left.
    #[default]
    Retain,
    /// Delete the claim once the node has left the ring.
    Delete,
}

/// Pattern of a Kubernetes resource quantity (the one the API server's
/// OpenAPI documents for `resource.Quantity`).
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

impl DynamoClusterSpec {
    /// A spec with `replicas` nodes and every other field at its default,
    /// the same spec a manifest with only `replicas` gives.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamo_crd::DynamoClusterSpec;
    ///
    /// let spec = DynamoClusterSpec::with_replicas(3);
    /// assert_eq!(spec.partitions, 256);
    /// assert_eq!((spec.replication.factor, spec.replication.read_quorum, spec.replication.write_quorum), (3, 2, 2));
    /// assert!(spec.validate().is_ok());
    /// ```
    pub fn with_replicas(replicas: i32) -> Self {
        Self {
            replicas,
            image: default_image(),
            image_pull_policy: None,
            partitions: DEFAULT_PARTITIONS,
            replication: ReplicationSpec::default(),
            storage: StorageSpec::default(),
            zones: None,
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
            gossip_interval_ms: DEFAULT_GOSSIP_INTERVAL_MS,
            anti_entropy_interval_ms: DEFAULT_ANTI_ENTROPY_INTERVAL_MS,
            tombstone_grace_seconds: DEFAULT_TOMBSTONE_GRACE_SECONDS,
            durability: Durability::default(),
            pvc_policy_on_scale_down: PvcPolicy::default(),
            network_policy: None,
            pools: Vec::new(),
            buckets: Vec::new(),
            tls: None,
        }
    }

    /// The node label that names zones, or `None` when the cluster is not
    /// zone-aware.
    pub fn topology_key(&self) -> Option<&str> {
        self.zones.as_ref().map(|zones| zones.topology_key.as_str())
    }
}

fn default_image() -> String {
    DEFAULT_IMAGE.to_owned()
}

fn default_partitions() -> u32 {
    DEFAULT_PARTITIONS
}

fn default_n() -> u32 {
    DEFAULT_N
}

fn default_r() -> u32 {
    DEFAULT_R
}

fn default_w() -> u32 {
    DEFAULT_W
}

fn default_storage_size() -> String {
    DEFAULT_STORAGE_SIZE.to_owned()
}

fn default_topology_key() -> String {
    DEFAULT_TOPOLOGY_KEY.to_owned()
}

fn default_gossip_interval_ms() -> u64 {
    DEFAULT_GOSSIP_INTERVAL_MS
}

fn default_anti_entropy_interval_ms() -> u64 {
    DEFAULT_ANTI_ENTROPY_INTERVAL_MS
}

fn default_tombstone_grace_seconds() -> u64 {
    DEFAULT_TOMBSTONE_GRACE_SECONDS
}
