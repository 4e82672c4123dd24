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
/// Label: the pool of a declared pool's storage pods and volumes.
pub const LABEL_POOL: &str = "dynamokv.io/pool";
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

/// Name of the StatefulSet of pool `pool` (and prefix of its pods):
/// `<cluster>` for the implicit pool (empty name), else `<cluster>-<pool>`.
pub fn stateful_set(cluster: &str, pool: &str) -> String {
    if pool.is_empty() {
        cluster.to_owned()
    } else {
        format!("{cluster}-{pool}")
    }
}

/// Name of the PodDisruptionBudget.
pub fn disruption_budget(cluster: &str) -> String {
    cluster.to_owned()
}

/// Name of the storage pods' NetworkPolicy.
pub fn network_policy(cluster: &str) -> String {
    format!("{cluster}-nodes")
}

/// Name of the data claim of member `member` (its pod name), the
/// StatefulSet's naming.
pub fn claim(member: &str) -> String {
    format!("{VOLUME_DATA}-{member}")
}

/// Key of member `member`'s configuration file in the ConfigMap.
pub fn config_key(member: &str) -> String {
    format!("{member}.yaml")
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

/// The stable DNS address of member `member` (its pod name) of `cluster`,
/// through the headless Service.
pub fn member_address(namespace: &str, cluster: &str, member: &str) -> String {
    format!(
        "{member}.{}.{namespace}.svc:{GRPC_PORT}",
        peer_service(cluster)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_objects_are_named_after_the_cluster_and_the_pool() {
        assert_eq!(stateful_set("demo", ""), "demo");
        assert_eq!(stateful_set("demo", "large"), "demo-large");
        assert_eq!(claim("demo-large-0"), "data-demo-large-0");
        assert_eq!(config_key("demo-2"), "demo-2.yaml");
        assert_eq!(
            member_address("prod", "demo", "demo-large-1"),
            "demo-large-1.demo-peers.prod.svc:7400"
        );
    }
}
