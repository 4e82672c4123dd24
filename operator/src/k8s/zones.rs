//! Where each storage pod runs: the zone of the Node it is bound to, read
//! from the Node's topology label. When the operator may not read Nodes, the
//! pod's own label stands in (Kubernetes copies `topology.kubernetes.io/zone`
//! from the Node onto a pod when it binds it, since 1.33).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Client, ResourceExt};
use tracing::warn;

/// Set once the operator warned that it cannot read Nodes.
static WARNED_FORBIDDEN: AtomicBool = AtomicBool::new(false);

/// Why the zones could not be read.
#[derive(Debug, thiserror::Error)]
#[error("read Node {node}: {source}")]
pub struct ZoneError {
    /// The Node.
    pub node: String,
    /// The client's error.
    #[source]
    pub source: kube::Error,
}

/// The zone of `pod` under the topology label `key`, given the labels of
/// the Node it is bound to (`None` when that Node could not be read).
///
/// `Some("")` when the cluster ignores zones (`key` is `None`) or the label
/// is missing; `None` while the pod is not bound to a Node, because its
/// zone is not decided yet.
pub fn zone_of(
    pod: &Pod,
    key: Option<&str>,
    node_labels: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let Some(key) = key else {
        return Some(String::new());
    };
    pod.spec.as_ref()?.node_name.as_ref()?;
    let labels = node_labels.unwrap_or_else(|| pod.labels());
    Some(labels.get(key).cloned().unwrap_or_default())
}

/// The zone of every pod (see [`zone_of`]), reading each Node they are
/// bound to once. A Node that is gone, or that the operator may not read
/// (a namespaced install without the chart's Node rule), falls back to the
/// pod's label.
///
/// # Errors
/// When reading a Node fails for another reason.
pub async fn pod_zones(
    client: &Client,
    pods: &[Pod],
    key: Option<&str>,
) -> Result<Vec<Option<String>>, ZoneError> {
    let mut nodes: BTreeMap<String, Option<BTreeMap<String, String>>> = BTreeMap::new();
    if key.is_some() {
        let api: Api<Node> = Api::all(client.clone());
        for pod in pods {
            let Some(name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            if nodes.contains_key(&name) {
                continue;
            }
            let labels = match api.get_opt(&name).await {
                Ok(node) => node.map(|node| node.labels().clone()),
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    if !WARNED_FORBIDDEN.swap(true, Ordering::Relaxed) {
                        warn!(
                            "cannot read Nodes ({}); zones come from the pods' {} label instead: grant get on nodes to read any topology key",
                            status.message,
                            dynamo_crd::DEFAULT_TOPOLOGY_KEY
                        );
                    }
                    None
                }
                Err(source) => return Err(ZoneError { node: name, source }),
            };
            nodes.insert(name, labels);
        }
    }
    Ok(pods
        .iter()
        .map(|pod| {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.as_ref());
            let labels = node
                .and_then(|name| nodes.get(name))
                .and_then(Option::as_ref);
            zone_of(pod, key, labels)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: Option<&str>, zone_label: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "demo-0",
                "labels": zone_label.map(|z| serde_json::json!({dynamo_crd::DEFAULT_TOPOLOGY_KEY: z})),
            },
            "spec": {"containers": [], "nodeName": node},
        }))
        .expect("a pod")
    }

    #[test]
    fn a_bound_pod_takes_its_nodes_zone() {
        let key = Some("example.com/rack");
        let labels = BTreeMap::from([("example.com/rack".to_owned(), "r7".to_owned())]);
        assert_eq!(
            zone_of(&pod(Some("n1"), Some("zone-a")), key, Some(&labels)).as_deref(),
            Some("r7")
        );
        // A Node without the label: known to have no zone.
        assert_eq!(
            zone_of(&pod(Some("n1"), None), key, Some(&BTreeMap::new())).as_deref(),
            Some("")
        );
    }

    #[test]
    fn an_unbound_pod_has_no_zone_yet_and_zones_can_be_ignored() {
        let key = Some(dynamo_crd::DEFAULT_TOPOLOGY_KEY);
        assert_eq!(zone_of(&pod(None, Some("zone-a")), key, None), None);
        assert_eq!(
            zone_of(&pod(Some("n1"), Some("zone-a")), None, None).as_deref(),
            Some("")
        );
    }

    #[test]
    fn an_unreadable_node_falls_back_to_the_pods_label() {
        let key = Some(dynamo_crd::DEFAULT_TOPOLOGY_KEY);
        assert_eq!(
            zone_of(&pod(Some("n1"), Some("zone-b")), key, None).as_deref(),
            Some("zone-b")
        );
    }
}
