//! Builder tests from inline YAML fixtures.

use dynamo_crd::DynamoCluster;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::k8s::state::{LaunchMember, MemberLaunch};

const ZONED: &str = r#"
apiVersion: dynamokv.io/v1alpha1
kind: DynamoCluster
metadata:
  name: orders
  namespace: shop
spec:
  replicas: 5
  partitions: 64
  replication: {"factor": 5, "readQuorum": 3, "writeQuorum": 3}
  storage: {size: 20Gi, storageClassName: fast}
  zones: {topologyKey: topology.kubernetes.io/zone}
  pvcPolicyOnScaleDown: Delete
  durability: sync
  imagePullPolicy: IfNotPresent
  image: registry.example/dynamo-node:dev
"#;

const STRICT: &str = r#"
apiVersion: dynamokv.io/v1alpha1
kind: DynamoCluster
metadata:
  name: ledger
  namespace: bank
spec:
  replicas: 3
  replication: {"factor": 3, "readQuorum": 1, "writeQuorum": 3}
"#;

/// The one StatefulSet of a cluster without pools.
fn single_set(cluster: &ValidatedCluster) -> StatefulSet {
    let sets = build_statefulsets(cluster);
    assert_eq!(sets.len(), 1, "one StatefulSet without pools");
    sets.into_iter().next().expect("one StatefulSet")
}

fn validated(yaml: &str) -> ValidatedCluster {
    let mut cluster = DynamoCluster::from_yaml(yaml).expect("fixture parses");
    cluster.metadata.uid = Some("uid-7".into());
    let mut validated = ValidatedCluster::new(&cluster).expect("fixture is valid");
    validated.state.pods = 2;
    validated.state.bootstrap_members = (0..2)
        .map(|i| {
            let id = crate::pools::member_name(&validated.name, "", i);
            LaunchMember {
                address: names::member_address(&validated.namespace, &validated.name, &id),
                id,
                zone: String::new(),
            }
        })
        .collect();
    validated.state.launches.insert(0, MemberLaunch::Bootstrap);
    validated.state.launches.insert(1, MemberLaunch::Bootstrap);
    validated.state.launches.insert(
        2,
        MemberLaunch::Join {
            seeds: vec![names::member_address("shop", "orders", "orders-0")],
        },
    );
    validated
}

#[test]
fn the_statefulset_runs_the_operators_pod_count_hardened() {
    let cluster = validated(ZONED);
    let set = single_set(&cluster);
    assert_eq!(
        set.metadata.owner_references.as_ref().map(Vec::len),
        Some(1)
    );
    let spec = &set.spec;
    assert_eq!(spec.replicas, Some(2), "pods, not spec.replicas");
    assert_eq!(spec.service_name.as_deref(), Some("orders-peers"));
    let retention = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .expect("retention");
    assert_eq!(retention.when_scaled.as_deref(), Some("Delete"));
    let claim = &spec.volume_claim_templates.as_ref().expect("claims")[0];
    let claim_spec = claim.spec.as_ref().expect("claim spec");
    assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        claim_spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .map(|r| r["storage"].0.as_str()),
        Some("20Gi")
    );
    let pod = spec.template.spec.as_ref().expect("pod spec");
    let spread = pod.topology_spread_constraints.as_ref().expect("spread");
    assert_eq!(spread[0].topology_key, "topology.kubernetes.io/zone");
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/dynamo-node:dev")
    );
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let security = container.security_context.as_ref().expect("security");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness");
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    assert_eq!(readiness.port, IntOrString::String("http".into()));
    let config = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == names::VOLUME_CONFIG)
        .expect("config mount");
    assert_eq!(config.mount_path, "/etc/dynamo/node.yaml");
    assert_eq!(config.sub_path_expr.as_deref(), Some("$(POD_NAME).yaml"));
}

#[test]
fn only_the_shared_settings_roll_the_pods() {
    let cluster = validated(ZONED);
    let hash = |c: &ValidatedCluster| {
        single_set(c)
            .spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .expect("annotations")[names::ANNOTATION_CONFIG_HASH]
            .clone()
    };
    let mut launched = cluster.clone();
    launched
        .state
        .launches
        .insert(3, MemberLaunch::Join { seeds: Vec::new() });
    launched.state.pods = 4;
    assert_eq!(hash(&cluster), hash(&launched));
    let mut tuned = cluster.clone();
    tuned.spec.gossip_interval_ms = 250;
    assert_ne!(hash(&cluster), hash(&tuned));
}

#[test]
fn the_budget_keeps_w_replicas_of_every_key() {
    let budget = build_pdb(&validated(ZONED));
    let spec = budget.spec.expect("spec");
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(2)), "N-W = 5-3");
    assert_eq!(
        disruption_allowance(&validated(STRICT).spec.replication),
        (1, true)
    );
    assert_eq!(
        disruption_allowance(&dynamo_crd::ReplicationSpec::default()),
        (1, false)
    );
}

#[test]
fn services_publish_grpc_and_http_and_peers_before_ready() {
    let cluster = validated(ZONED);
    let peers = build_peer_service(&cluster).spec.expect("spec");
    assert_eq!(peers.cluster_ip.as_deref(), Some("None"));
    assert_eq!(peers.publish_not_ready_addresses, Some(true));
    let client = build_client_service(&cluster);
    assert_eq!(client.metadata.name.as_deref(), Some("orders"));
    let ports: Vec<_> = client
        .spec
        .and_then(|s| s.ports)
        .expect("ports")
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port))
        .collect();
    assert_eq!(
        ports,
        [("grpc".to_owned(), 7400), ("http".to_owned(), 9400)]
    );
}

/// Every file of the ConfigMap is a configuration `dynamo-node` accepts
/// (it refuses unknown keys), with the pod's flags applied.
/// Loads `text`, a file of the ConfigMap, as `dynamo-node` would for pod
/// `id` of orders in shop.
fn load_node_file(
    dir: &std::path::Path,
    key: &str,
    text: &str,
    id: &str,
) -> dynamo_node::config::Config {
    use clap::Parser;
    let path = dir.join(key);
    std::fs::write(&path, text).expect("write");
    let flags = dynamo_node::config::Flags::parse_from([
        "dynamo-node",
        "--config",
        path.to_str().expect("utf-8"),
        "--id",
        id,
        "--advertise",
        &names::member_address("shop", "orders", "orders-0"),
    ]);
    flags
        .load()
        .unwrap_or_else(|e| panic!("{key}: {e}\n{text}"))
}

#[test]
fn every_config_file_is_one_the_node_accepts() {
    let cluster = validated(ZONED);
    let map = build_config_map(&cluster);
    let data = map.data.expect("data");
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "node.yaml",
            "orders-0.yaml",
            "orders-1.yaml",
            "orders-2.yaml"
        ]
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for (key, text) in &data {
        let id = key.trim_end_matches(".yaml");
        let id = if id == "node" { "orders-0" } else { id };
        let config = load_node_file(dir.path(), key, text, id);
        assert_eq!(config.partitions, 64, "{key}");
        assert_eq!(config.replication.n, 5, "{key}");
        assert_eq!(config.listen.port(), names::GRPC_PORT);
        assert_eq!(config.http_listen.map(|a| a.port()), Some(names::HTTP_PORT));
        assert_eq!(config.data_dir.to_str(), Some(names::DATA_DIR));
        match key.as_str() {
            "orders-0.yaml" | "orders-1.yaml" => assert_eq!(config.members.len(), 2),
            "orders-2.yaml" => {
                assert!(config.members.is_empty());
                assert_eq!(config.seeds, ["orders-0.orders-peers.shop.svc:7400"]);
            }
            _ => assert!(config.members.is_empty() && config.seeds.is_empty()),
        }
    }
}

const TLS: &str = r#"
apiVersion: dynamokv.io/v1alpha1
kind: DynamoCluster
metadata:
  name: orders
  namespace: shop
spec:
  replicas: 3
  tls: {secretName: orders-tls, clientAuth: Optional}
"#;

#[test]
fn a_tls_cluster_mounts_its_secret_and_every_node_file_names_it() {
    let cluster = validated(TLS);
    let set = single_set(&cluster);
    let pod = set.spec.template.spec.as_ref().expect("pod spec");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == names::VOLUME_TLS)
        .and_then(|v| v.secret.as_ref())
        .expect("the Secret volume");
    assert_eq!(volume.secret_name.as_deref(), Some("orders-tls"));
    assert_eq!(volume.default_mode, Some(0o440));
    let mount = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == names::VOLUME_TLS)
        .expect("the Secret mount");
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        (names::TLS_MOUNT, Some(true))
    );
    let plain = single_set(&validated(STRICT));
    let plain_pod = plain.spec.template.spec.as_ref().expect("pod spec");
    assert!(
        plain_pod
            .volumes
            .iter()
            .flatten()
            .all(|v| v.name != names::VOLUME_TLS),
        "no Secret without spec.tls"
    );
    let data = build_config_map(&cluster).data.expect("data");
    let dir = tempfile::tempdir().expect("tempdir");
    for (key, text) in &data {
        let config = load_node_file(dir.path(), key, text, "orders-0");
        let tls = config
            .tls
            .unwrap_or_else(|| panic!("{key}: no tls\n{text}"));
        assert_eq!(tls.ca, std::path::Path::new("/etc/dynamo/tls/ca.crt"));
        assert_eq!(tls.node_names, ["*.orders-peers.shop.svc"], "{key}");
        assert_eq!(tls.operator_names, ["dynamo-operator"], "{key}");
        assert_eq!(
            tls.client_auth,
            dynamo_node::tls_settings::ClientAuth::Optional
        );
    }
}

const POOLED: &str = r#"
apiVersion: dynamokv.io/v1alpha1
kind: DynamoCluster
metadata:
  name: orders
  namespace: shop
spec:
  replicas: 3
  storage: {size: 5Gi}
  resources: {requests: {cpu: 500m}}
  tolerations: [{key: dedicated, operator: Exists}]
  pools:
  - {name: small, replicas: 2}
  - name: large
    replicas: 1
    weight: 2
    zone: b
    storage: {size: 50Gi, storageClassName: ssd}
    resources: {requests: {cpu: "2"}}
    nodeSelector: {disk: ssd}
"#;

/// The pooled fixture with `pods` pods launched in each pool.
fn pooled(pods: &[(&str, i32)]) -> ValidatedCluster {
    let mut cluster = DynamoCluster::from_yaml(POOLED).expect("fixture parses");
    cluster.metadata.uid = Some("uid-7".into());
    let mut validated = ValidatedCluster::new(&cluster).expect("fixture is valid");
    for &(pool, count) in pods {
        validated.state.set_pods(pool, count);
        let slot = crate::pools::slot(pool);
        for ordinal in 0..usize::try_from(count).expect("a count") {
            let index = crate::pools::index(slot, ordinal);
            validated
                .state
                .launches
                .insert(index, MemberLaunch::Bootstrap);
        }
    }
    validated
}

fn labels(selector: &LabelSelector) -> BTreeMap<String, String> {
    selector.match_labels.clone().unwrap_or_default()
}

#[test]
fn every_pool_has_its_statefulset_selecting_its_own_pods() {
    let cluster = pooled(&[("small", 2), ("large", 1)]);
    let sets = build_statefulsets(&cluster);
    let names: Vec<_> = sets
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), s.spec.replicas))
        .collect();
    assert_eq!(
        names,
        [
            ("orders-small".into(), Some(2)),
            ("orders-large".into(), Some(1))
        ]
    );
    for (set, pool) in sets.iter().zip(["small", "large"]) {
        let selector = labels(&set.spec.selector);
        assert_eq!(
            selector.get(names::LABEL_POOL).map(String::as_str),
            Some(pool)
        );
        let template = set
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
        let template = template.expect("template labels");
        assert!(
            selector.iter().all(|(k, v)| template.get(k) == Some(v)),
            "{pool}"
        );
        assert_eq!(
            set.metadata.owner_references.as_ref().map(Vec::len),
            Some(1)
        );
        assert_eq!(set.spec.service_name.as_deref(), Some("orders-peers"));
        let claim = &set.spec.volume_claim_templates.as_ref().expect("claims")[0];
        let claim_labels = claim.metadata.labels.clone().expect("claim labels");
        assert_eq!(
            claim_labels.get(names::LABEL_POOL).map(String::as_str),
            Some(pool)
        );
    }
    // The Services and the budget cover every pool's pods.
    let peers = build_peer_service(&cluster).spec.expect("spec").selector;
    assert_eq!(peers, Some(cluster.selector_labels()));
    let budget = build_pdb(&cluster)
        .spec
        .expect("spec")
        .selector
        .expect("selector");
    assert_eq!(labels(&budget), cluster.selector_labels());
}

#[test]
fn a_pool_brings_its_own_resources_storage_and_scheduling_or_the_top_level_ones() {
    let cluster = pooled(&[("small", 2), ("large", 1)]);
    let sets = build_statefulsets(&cluster);
    let cpu = |set: &StatefulSet| {
        let pod = set.spec.template.spec.as_ref().expect("pod");
        let requests = pod.containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.requests.clone());
        requests.expect("requests")["cpu"].0.clone()
    };
    let size = |set: &StatefulSet| {
        let claim = &set.spec.volume_claim_templates.as_ref().expect("claims")[0];
        let spec = claim.spec.as_ref().expect("claim spec");
        let requests = spec.resources.as_ref().and_then(|r| r.requests.clone());
        (
            requests.expect("requests")["storage"].0.clone(),
            spec.storage_class_name.clone(),
        )
    };
    let pod = |set: &StatefulSet| set.spec.template.spec.clone().expect("pod");
    let (small, large) = (&sets[0], &sets[1]);
    assert_eq!((cpu(small), cpu(large)), ("500m".into(), "2".into()));
    assert_eq!(size(small), ("5Gi".into(), None));
    assert_eq!(size(large), ("50Gi".into(), Some("ssd".into())));
    assert_eq!(pod(small).node_selector, None);
    assert_eq!(
        pod(large).node_selector,
        Some(BTreeMap::from([("disk".into(), "ssd".into())]))
    );
    assert_eq!(
        pod(large).tolerations,
        pod(small).tolerations,
        "tolerations fall back"
    );
    assert!(pod(small).tolerations.is_some());
}

#[test]
fn the_implicit_pool_keeps_the_selector_and_labels_of_a_cluster_before_pools() {
    let set = single_set(&validated(ZONED));
    assert_eq!(set.metadata.name.as_deref(), Some("orders"));
    let selector = labels(&set.spec.selector);
    assert_eq!(
        selector.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            names::LABEL_COMPONENT,
            names::LABEL_INSTANCE,
            names::LABEL_NAME
        ]
    );
    let template = set
        .spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .expect("labels");
    assert!(!template.contains_key(names::LABEL_POOL));
}

#[test]
fn pool_members_get_their_own_config_files() {
    let cluster = pooled(&[("small", 2), ("large", 1)]);
    let data = build_config_map(&cluster).data.expect("data");
    let keys: Vec<_> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "node.yaml",
            "orders-large-0.yaml",
            "orders-small-0.yaml",
            "orders-small-1.yaml"
        ]
    );
}
