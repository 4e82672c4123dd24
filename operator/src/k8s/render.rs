//! Renders the objects the operator would apply for a DynamoCluster
//! manifest, once its first members are launched: the input of offline
//! schema checks and a way for users to see what the operator makes.

use dynamo_crd::DynamoCluster;
use dynamo_proto::v1 as pb;

use super::builders;
use super::cluster::ValidatedCluster;
use super::names;
use super::network::{self, OperatorPods};
use super::state::{LaunchMember, MemberLaunch};

/// Why a manifest could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The manifest is not a DynamoCluster.
    #[error(transparent)]
    Manifest(#[from] dynamo_crd::ManifestError),
    /// The cluster would be refused.
    #[error(transparent)]
    Refused(#[from] super::cluster::Refusal),
    /// An object could not be written as YAML.
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// The objects for the DynamoCluster in `manifest`, placed in `namespace`
/// when the manifest names none, as a multi-document YAML stream; the
/// NetworkPolicy (when the spec asks for one) admits `operator`.
///
/// # Errors
/// A [`RenderError`] when the manifest is invalid.
pub fn render(
    manifest: &str,
    namespace: &str,
    operator: Option<&OperatorPods>,
) -> Result<String, RenderError> {
    let mut cluster = DynamoCluster::from_yaml(manifest)?;
    if cluster.metadata.namespace.is_none() {
        cluster.metadata.namespace = Some(namespace.to_owned());
    }
    // The API server would set the uid; the owner reference needs one.
    cluster.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    let mut validated = ValidatedCluster::new(&cluster)?;
    let replicas = usize::try_from(validated.spec.replicas).unwrap_or(0);
    validated.state.pods = validated.spec.replicas;
    validated.state.partitions = validated.spec.partitions;
    validated.state.bootstrap_members = (0..replicas)
        .map(|index| {
            LaunchMember::from(&pb::Member {
                weight: 0,
                id: names::pod(&validated.name, index),
                address: names::member_address(&validated.namespace, &validated.name, index),
                zone: String::new(),
            })
        })
        .collect();
    validated.state.launches = (0..replicas)
        .map(|i| (i, MemberLaunch::Bootstrap))
        .collect();
    let mut documents = vec![
        dynamo_crd::to_kubernetes_yaml(&builders::build_peer_service(&validated))?,
        dynamo_crd::to_kubernetes_yaml(&builders::build_client_service(&validated))?,
        dynamo_crd::to_kubernetes_yaml(&builders::build_config_map(&validated))?,
        dynamo_crd::to_kubernetes_yaml(&builders::build_statefulset(&validated))?,
        dynamo_crd::to_kubernetes_yaml(&builders::build_pdb(&validated))?,
    ];
    if let Some(policy) = network::build_network_policy(&validated, operator) {
        documents.push(dynamo_crd::to_kubernetes_yaml(&policy)?);
    }
    Ok(documents.join("---\n"))
}
