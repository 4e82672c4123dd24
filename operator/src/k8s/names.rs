//! Names shared by every object the operator makes: labels, ports, volumes,
//! paths and object names, so that no string is spelled twice.

/// Field manager of every server-side apply, and the controller's name in
/// Events.
pub const MANAGER: &str = "dynamo-operator";
/// Finalizer that lets the operator clean up volumes on delete.
pub const FINALIZER: &str = "dynamokv.io/cleanup";

/// Label: the application.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// Label: the cluster (the DynamoCluster's name).
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// Label: the part of the application.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Label: who manages the object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_NAME`].
pub const APP_NAME: &str = "dynamokv";
/// Value of [`LABEL_COMPONENT`] on storage pods and their objects.
pub const COMPONENT_NODE: &str = "node";
/// Pod template annotation: hash of the shared node configuration, so an
/// edit of it rolls the pods.
pub const ANNOTATION_CONFIG_HASH: &str = "dynamokv.io/config-hash";

/// Container port name of the gRPC endpoint (Kv, Admin, Peer).
pub const PORT_GRPC: &str = "grpc";
/// Container port of the gRPC endpoint.
pub const GRPC_PORT: u16 = 7400;
/// Container port name of the node's HTTP endpoint (health, metrics, ring page).
pub const PORT_HTTP: &str = "http";
/// Container port of the node's HTTP endpoint.
pub const HTTP_PORT: u16 = 9400;

/// Container name of the storage node.
pub const CONTAINER_NODE: &str = "node";
/// The node binary inside the image.
pub const NODE_BINARY: &str = "/usr/local/bin/dynamo-node";
/// User and group the images run as.
pub const RUN_AS: i64 = 65532;

/// Volume (and claim template) holding a node's data.
pub const VOLUME_DATA: &str = "data";
/// Mount path of [`VOLUME_DATA`].
pub const DATA_MOUNT: &str = "/var/lib/dynamo";
/// The node's data directory inside [`DATA_MOUNT`] (the volume's root may
/// hold `lost+found`).
pub const DATA_DIR: &str = "/var/lib/dynamo/data";
/// Volume of the ConfigMap.
pub const VOLUME_CONFIG: &str = "config";
/// Where a pod sees its node configuration file.
pub const CONFIG_PATH: &str = "/etc/dynamo/node.yaml";
/// Writable scratch volume (the root filesystem is read-only).
pub const VOLUME_TMP: &str = "tmp";
/// Mount path of [`VOLUME_TMP`].
pub const TMP_MOUNT: &str = "/tmp";

/// Environment variable with the pod's name (downward API).
pub const ENV_POD_NAME: &str = "POD_NAME";
/// Environment variable with the pod's namespace (downward API).
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";

/// Name of the headless Service that gives each pod a DNS name.
pub fn peer_service(cluster: &str) -> String {
    format!("{cluster}-peers")
}

/// Name of the Service clients connect to.
pub fn client_service(cluster: &str) -> String {
    cluster.to_owned()
}

/// Name of the ConfigMap with the node configuration.
pub fn config_map(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// Name of the StatefulSet (and prefix of its pods).
pub fn stateful_set(cluster: &str) -> String {
    cluster.to_owned()
}

/// Name of the PodDisruptionBudget.
pub fn disruption_budget(cluster: &str) -> String {
    cluster.to_owned()
}

/// Name of the storage pods' NetworkPolicy.
pub fn network_policy(cluster: &str) -> String {
    format!("{cluster}-nodes")
}

/// Name of member `index`'s pod, which is also its member id.
pub fn pod(cluster: &str, index: usize) -> String {
    format!("{}-{index}", stateful_set(cluster))
}

/// Name of member `index`'s data claim (the StatefulSet's naming).
pub fn claim(cluster: &str, index: usize) -> String {
    format!("{VOLUME_DATA}-{}", pod(cluster, index))
}

/// Key of member `index`'s configuration file in the ConfigMap.
pub fn config_key(cluster: &str, index: usize) -> String {
    format!("{}.yaml", pod(cluster, index))
}

/// The member index of a pod name of `cluster`, if it is one.
pub fn index_of_pod(cluster: &str, pod: &str) -> Option<usize> {
    let prefix = format!("{}-", stateful_set(cluster));
    let digits = pod.strip_prefix(&prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where a TLS cluster's Secret is mounted in the storage pods.
pub const TLS_MOUNT: &str = "/etc/dynamo/tls";

/// Name of the TLS Secret's volume.
pub const VOLUME_TLS: &str = "tls";

/// The name a TLS cluster's node certificate carries: it matches every
/// member's address, and the nodes take its holders for members.
pub fn node_certificate_name(namespace: &str, cluster: &str) -> String {
    format!("*.{}.{namespace}.svc", peer_service(cluster))
}

/// The stable DNS address of member `index`, through the headless Service.
pub fn member_address(namespace: &str, cluster: &str, index: usize) -> String {
    format!(
        "{}.{}.{namespace}.svc:{GRPC_PORT}",
        pod(cluster, index),
        peer_service(cluster)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_round_trip_to_indexes() {
        assert_eq!(index_of_pod("demo", &pod("demo", 12)), Some(12));
        assert_eq!(index_of_pod("demo", "demo-peers-0"), None);
        assert_eq!(index_of_pod("demo", "demo-"), None);
        assert_eq!(index_of_pod("demo", "other-1"), None);
        assert_eq!(claim("demo", 2), "data-demo-2");
        assert_eq!(
            member_address("prod", "demo", 1),
            "demo-1.demo-peers.prod.svc:7400"
        );
    }
}
