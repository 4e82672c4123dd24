//! Renders the objects the operator would apply for a DynamoCluster
//! manifest, once its first members are launched: the input of offline
//! schema checks and a way for users to see what the operator makes.

use dynamo_crd::DynamoCluster;
use dynamo_proto::v1 as pb;

use super::builders;
use super::cluster::ValidatedCluster;
use super::names;
use super::network::{self, OperatorPods};
use super::pools;
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
    let members = crate::pools::members(&validated.spec);
    for pool in crate::pools::pools(&validated.spec) {
        let pods = i32::try_from(pool.replicas).unwrap_or(i32::MAX);
        validated.state.set_pods(pool.name, pods);
    }
    validated.state.partitions = validated.spec.partitions;
    validated.state.bootstrap_members = members
        .iter()
        .filter_map(|&index| {
            let id = pools::member_id(&validated, index)?;
            Some(LaunchMember::from(&pb::Member {
                weight: 0,
                address: names::member_address(&validated.namespace, &validated.name, &id),
                id,
                zone: String::new(),
            }))
        })
        .collect();
    validated.state.launches = members
        .iter()
        .map(|&index| (index, MemberLaunch::Bootstrap))
        .collect();
    let mut documents = vec![
        dynamo_crd::to_kubernetes_yaml(&builders::build_peer_service(&validated))?,
        dynamo_crd::to_kubernetes_yaml(&builders::build_client_service(&validated))?,
        dynamo_crd::to_kubernetes_yaml(&builders::build_config_map(&validated))?,
    ];
    for set in builders::build_statefulsets(&validated) {
        documents.push(dynamo_crd::to_kubernetes_yaml(&set)?);
    }
    documents.push(dynamo_crd::to_kubernetes_yaml(&builders::build_pdb(
        &validated,
    ))?);
    if let Some(policy) = network::build_network_policy(&validated, operator) {
        documents.push(dynamo_crd::to_kubernetes_yaml(&policy)?);
    }
    Ok(documents.join("---\n"))
}
