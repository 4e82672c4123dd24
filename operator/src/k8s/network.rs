//! The storage pods' NetworkPolicy (`spec.networkPolicy`): built without
//! I/O, like the other objects in [`builders`](super::builders).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::builders;
use super::cluster::ValidatedCluster;
use super::names;

/// Label every namespace carries with its own name (set by the API server).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where the operator's own pods run, so the policy can admit them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPods {
    /// The operator's namespace.
    pub namespace: String,
    /// Labels that select the operator's pods.
    pub labels: BTreeMap<String, String>,
}

/// Why an operator pod selector could not be read.
#[derive(Debug, thiserror::Error)]
#[error("operator pod labels must be `key=value` pairs separated by commas, got {0:?}")]
pub struct SelectorError(String);

impl OperatorPods {
    /// The operator's pods in `namespace` with `labels` (`k=v,k=v`).
    ///
    /// # Errors
    /// A [`SelectorError`] when `labels` is empty or not `key=value` pairs.
    pub fn parse(namespace: &str, labels: &str) -> Result<Self, SelectorError> {
        let refuse = || SelectorError(labels.to_owned());
        let labels = labels
            .split(',')
            .map(|pair| {
                let (key, value) = pair.split_once('=').ok_or_else(refuse)?;
                let (key, value) = (key.trim(), value.trim());
                if key.is_empty() {
                    return Err(refuse());
                }
                Ok((key.to_owned(), value.to_owned()))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        Ok(Self {
            namespace: namespace.to_owned(),
            labels,
        })
    }

    fn peer(&self) -> NetworkPolicyPeer {
        NetworkPolicyPeer {
            namespace_selector: Some(match_labels(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_owned(),
                self.namespace.clone(),
            )]))),
            pod_selector: Some(match_labels(self.labels.clone())),
            ..NetworkPolicyPeer::default()
        }
    }
}

fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

fn port(name: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }
}

fn rule(
    from: Vec<NetworkPolicyPeer>,
    ports: Option<Vec<NetworkPolicyPort>>,
) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        // No `from` admits every source.
        from: (!from.is_empty()).then_some(from),
        ports,
    }
}

/// Whether `cluster`'s spec asks for a NetworkPolicy: `spec.networkPolicy`
/// is set and enabled.
pub fn wants_network_policy(cluster: &ValidatedCluster) -> bool {
    enabled_spec(cluster).is_some()
}

fn enabled_spec(cluster: &ValidatedCluster) -> Option<&dynamo_crd::NetworkPolicySpec> {
    cluster
        .spec
        .network_policy
        .as_ref()
        .filter(|spec| spec.enabled)
}

/// The NetworkPolicy of `cluster`'s storage pods, or `None` when the spec
/// asks for none. It admits the cluster's own pods and the operator's
/// (`operator`, when the operator runs in the cluster) on every port,
/// `spec.networkPolicy.clients` (default: pods of the cluster's namespace) on
/// the gRPC port and `spec.networkPolicy.metrics` (default: anyone) on the
/// HTTP port; nothing else.
pub fn build_network_policy(
    cluster: &ValidatedCluster,
    operator: Option<&OperatorPods>,
) -> Option<NetworkPolicy> {
    let spec = enabled_spec(cluster)?;
    let members = NetworkPolicyPeer {
        pod_selector: Some(match_labels(cluster.selector_labels())),
        ..NetworkPolicyPeer::default()
    };
    let mut trusted = vec![members];
    trusted.extend(operator.map(OperatorPods::peer));
    let clients = if spec.clients.is_empty() {
        vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector::default()),
            ..NetworkPolicyPeer::default()
        }]
    } else {
        spec.clients.clone()
    };
    Some(NetworkPolicy {
        metadata: builders::metadata(cluster, names::network_policy(&cluster.name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(match_labels(cluster.selector_labels())),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                rule(trusted, None),
                rule(clients, Some(vec![port(names::PORT_GRPC)])),
                rule(spec.metrics.clone(), Some(vec![port(names::PORT_HTTP)])),
            ]),
            ..NetworkPolicySpec::default()
        }),
    })
}

#[cfg(test)]
mod tests;
