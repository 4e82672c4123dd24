//! Every manifest in the workspace's examples/ folder parses and validates.

use std::{fs, path::PathBuf};

use dynamo_crd::DynamoCluster;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Reads and validates one example, naming the file in any failure.
fn load(name: &str) -> DynamoCluster {
    let path = examples_dir().join(name);
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let cluster = DynamoCluster::from_yaml(&text)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    if let Err(error) = cluster.spec.validate() {
        panic!("{}: {error}", path.display());
    }
    cluster
}

#[test]
fn every_example_parses_and_validates() {
    let mut names: Vec<String> = fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with("dynamocluster") && name.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 3,
        "expected the three cluster examples, found {names:?}"
    );
    for name in &names {
        load(name);
    }
}

#[test]
fn minimal_example_is_demo_with_three_replicas() {
    let cluster = load("dynamocluster.yaml");
    assert_eq!(cluster.metadata.name.as_deref(), Some("demo"));
    assert_eq!(
        cluster.spec,
        dynamo_crd::DynamoClusterSpec::with_replicas(3)
    );
}

#[test]
fn zones_example_is_zone_aware() {
    let cluster = load("dynamocluster-zones.yaml");
    assert_eq!(
        cluster.spec.topology_key(),
        Some("topology.kubernetes.io/zone")
    );
    assert!(cluster.spec.resources.is_some());
}

#[test]
fn n5_example_has_five_copies_and_quorums_of_three() {
    let spec = load("dynamocluster-n5.yaml").spec;
    assert_eq!(spec.replicas, 5);
    assert_eq!(
        (
            spec.replication.factor,
            spec.replication.read_quorum,
            spec.replication.write_quorum
        ),
        (5, 3, 3)
    );
}

#[test]
fn pools_example_has_a_large_pool_of_weight_two() {
    let spec = load("dynamocluster-pools.yaml").spec;
    let pools: Vec<_> = spec
        .pools
        .iter()
        .map(|pool| (pool.name.as_str(), pool.replicas, pool.weight))
        .collect();
    assert_eq!(pools, [("small", 2, 1), ("large", 1, 2)]);
    assert_eq!(spec.replicas, 3);
}
