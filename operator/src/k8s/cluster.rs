//! Validation of a `DynamoCluster` into a [`ValidatedCluster`]: the input of
//! every builder. It needs no client.

use std::collections::BTreeMap;

use dynamo_crd::{DynamoCluster, DynamoClusterSpec, SpecError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use super::names;
use super::state::ClusterState;

/// Why a cluster is not acted upon. Every message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The spec breaks a rule.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The resource has no name, namespace or uid (it was not read from an
    /// API server).
    #[error("the DynamoCluster has no {missing}: it must come from the API server")]
    Incomplete {
        /// The missing piece of metadata.
        missing: &'static str,
    },
    /// Two pools' names give their members the same index slot.
    #[error("spec.pools: {message}")]
    PoolSlots {
        /// Which pools collide and what to do.
        message: String,
    },
}

impl Refusal {
    /// The condition and Event reason for this refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Spec(SpecError::PartitionsChanged { .. }) => "PartitionsChanged",
            Self::Spec(SpecError::ReplicationExceedsReplicas { .. }) => {
                "ReplicationExceedsReplicas"
            }
            Self::Spec(_) => "InvalidSpec",
            Self::Incomplete { .. } => "IncompleteMetadata",
            Self::PoolSlots { .. } => "PoolSlotsCollide",
        }
    }
}

/// A cluster whose spec passed validation, with the operator's persisted
/// state: everything the builders need.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedCluster {
    /// The DynamoCluster's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Controller owner reference to put on every object.
    pub owner: OwnerReference,
    /// The validated spec.
    pub spec: DynamoClusterSpec,
    /// The operator's state: pods to run and how members launch.
    pub state: ClusterState,
}

impl ValidatedCluster {
    /// Validates `cluster` against its persisted state.
    ///
    /// # Errors
    /// A [`Refusal`] saying what to fix: an invalid spec, or partitions that
    /// differ from those the cluster was created with.
    pub fn new(cluster: &DynamoCluster) -> Result<Self, Refusal> {
        let name = cluster
            .metadata
            .name
            .clone()
            .ok_or(Refusal::Incomplete { missing: "name" })?;
        let namespace = cluster.namespace().ok_or(Refusal::Incomplete {
            missing: "namespace",
        })?;
        let owner = cluster
            .controller_owner_ref(&())
            .ok_or(Refusal::Incomplete { missing: "uid" })?;
        let state = ClusterState::from_status(
            cluster
                .status
                .as_ref()
                .and_then(|status| status.driver.as_ref()),
        );
        let spec = cluster.spec.clone();
        if state.partitions != 0 && state.partitions != spec.partitions {
            return Err(SpecError::PartitionsChanged {
                old: state.partitions,
                new: spec.partitions,
            }
            .into());
        }
        spec.validate()?;
        crate::pools::check_slots(&spec).map_err(|message| Refusal::PoolSlots { message })?;
        Ok(Self {
            name,
            namespace,
            owner,
            spec,
            state,
        })
    }

    /// Labels that select this cluster's storage pods.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        selector_labels(&self.name)
    }

    /// Labels of every object of this cluster.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert(names::LABEL_MANAGED_BY.into(), names::MANAGER.into());
        labels
    }
}

/// Labels that select the storage pods of cluster `name`.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (names::LABEL_NAME.to_owned(), names::APP_NAME.to_owned()),
        (names::LABEL_INSTANCE.to_owned(), name.to_owned()),
        (
            names::LABEL_COMPONENT.to_owned(),
            names::COMPONENT_NODE.to_owned(),
        ),
    ])
}

/// [`selector_labels`] as a label selector string.
pub fn selector_string(name: &str) -> String {
    selector_labels(name)
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The validated cluster `demo` in namespace `ns` whose spec is the YAML
/// block `spec` (indented by two spaces), for unit tests.
#[cfg(test)]
pub(crate) fn fixture(spec: &str) -> ValidatedCluster {
    let yaml = format!(
        "apiVersion: dynamokv.io/v1alpha1\nkind: DynamoCluster\nmetadata: {{name: demo, namespace: ns, uid: u}}\nspec:\n{spec}"
    );
    let cluster = dynamo_crd::DynamoCluster::from_yaml(&yaml).expect("fixture parses");
    ValidatedCluster::new(&cluster).expect("fixture is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_crd::DynamoClusterStatus;

    fn cluster(replicas: i32) -> DynamoCluster {
        let mut cluster = DynamoCluster::new("demo", DynamoClusterSpec::with_replicas(replicas));
        cluster.metadata.namespace = Some("prod".into());
        cluster.metadata.uid = Some("uid-1".into());
        cluster
    }

    #[test]
    fn a_valid_cluster_carries_its_owner_reference() {
        let validated = ValidatedCluster::new(&cluster(3)).expect("valid");
        assert_eq!(validated.owner.kind, "DynamoCluster");
        assert_eq!(validated.owner.uid, "uid-1");
        assert_eq!(validated.owner.controller, Some(true));
        assert_eq!(
            selector_string("demo"),
            "app.kubernetes.io/component=node,app.kubernetes.io/instance=demo,app.kubernetes.io/name=dynamokv"
        );
    }

    #[test]
    fn a_cluster_with_pools_is_run() {
        let mut pooled = cluster(3);
        pooled.spec.pools = vec![
            serde_json::from_value(serde_json::json!({"name": "a", "replicas": 3}))
                .expect("a pool"),
        ];
        let validated = ValidatedCluster::new(&pooled).expect("pools are run");
        assert_eq!(validated.spec.pools.len(), 1);
    }

    #[test]
    fn pools_whose_member_slots_collide_are_refused() {
        let mut pooled = cluster(3);
        // Two names with the same 31-bit slot hash.
        pooled.spec.pools = serde_json::from_value(serde_json::json!([
            {"name": "pool-620098", "replicas": 2},
            {"name": "pool-808216", "replicas": 1},
        ]))
        .expect("pools");
        let refusal = ValidatedCluster::new(&pooled).expect_err("slots collide");
        assert_eq!(refusal.reason(), "PoolSlotsCollide");
        assert!(refusal.to_string().contains("rename one"), "{refusal}");
    }

    #[test]
    fn refusals_name_the_field_to_fix() {
        let refusal = ValidatedCluster::new(&cluster(2)).expect_err("n=3 > 2 replicas");
        assert_eq!(refusal.reason(), "ReplicationExceedsReplicas");
        assert!(
            refusal
                .to_string()
                .contains("set spec.replicas to at least 3")
        );

        let mut changed = cluster(3);
        changed.spec.partitions = 512;
        changed.status = Some(DynamoClusterStatus {
            driver: Some(serde_json::json!({"partitions": 256})),
            ..DynamoClusterStatus::default()
        });
        let refusal = ValidatedCluster::new(&changed).expect_err("partitions changed");
        assert_eq!(refusal.reason(), "PartitionsChanged");
        assert!(refusal.to_string().contains("set it back to 256"));

        let mut unnamed = cluster(3);
        unnamed.metadata.namespace = None;
        assert_eq!(
            ValidatedCluster::new(&unnamed),
            Err(Refusal::Incomplete {
                missing: "namespace"
            })
        );
    }
}
