//! How the local platform names, places and weighs members, without
//! starting processes.

use std::sync::Arc;
use std::time::Duration;

use super::*;

fn spec(yaml: &str) -> DynamoClusterSpec {
    serde_yaml::from_str(yaml).expect("a spec")
}

fn platform(root: &Path, spec: &DynamoClusterSpec) -> LocalPlatform {
    let admin = Arc::new(GrpcAdmin::new(Duration::from_secs(1), None));
    LocalPlatform::new(
        "demo",
        spec,
        7400,
        root,
        Path::new("dynamo-node"),
        Vec::new(),
        admin,
    )
    .expect("a platform")
}

#[test]
fn a_cluster_without_pools_keeps_its_names_and_ports() {
    let root = tempfile::tempdir().expect("a directory");
    let platform = platform(root.path(), &DynamoClusterSpec::with_replicas(3));
    for index in [2, 0, 1] {
        let member = platform.member(index);
        assert_eq!(member.id, format!("demo-{index}"));
        assert_eq!(member.address, format!("127.0.0.1:{}", 7400 + index));
        assert_eq!(crate::driver::weight(&member), 1);
        assert_eq!(platform.index_of(&member.id), Some(index));
    }
    assert_eq!(platform.dir(1), root.path().join("demo-1"));
}

#[test]
fn pool_members_carry_their_pool_and_keep_it_after_the_pool_goes() {
    let root = tempfile::tempdir().expect("a directory");
    let pooled = spec(
        "replicas: 3\npools:\n- {name: small, replicas: 2}\n- {name: big, replicas: 1, weight: 2, zone: b}\n",
    );
    let platform = platform(root.path(), &pooled);
    let big = pools::index(pools::slot("big"), 0);
    let member = platform.member(big);
    assert_eq!(member.id, "demo-big-0");
    assert_eq!((member.weight, member.zone.as_str()), (2, "b"));
    let mut ports: Vec<String> = pools::members(&pooled)
        .into_iter()
        .map(|index| platform.member(index).address)
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        ["127.0.0.1:7400", "127.0.0.1:7401", "127.0.0.1:7402"],
        "pool members take the free ports from the base"
    );

    // The spec drops the pool: the member keeps its name and port, and its
    // zone is not changed while it leaves.
    platform.set_spec(&spec("replicas: 2\npools:\n- {name: small, replicas: 2}\n"));
    let leaving = platform.member(big);
    assert_eq!((leaving.id.as_str(), leaving.weight), ("demo-big-0", 0));
    assert_eq!(leaving.address, member.address);
    assert_eq!(platform.zone(big), None);
}

#[test]
fn existing_members_are_found_by_their_directories() {
    let root = tempfile::tempdir().expect("a directory");
    for dir in ["demo-0", "demo-gone-3", "demo-tls", "other-1"] {
        std::fs::create_dir(root.path().join(dir)).expect("a directory");
    }
    std::fs::write(root.path().join("demo-driver.json"), "{}").expect("a file");
    let platform = platform(root.path(), &DynamoClusterSpec::with_replicas(1));
    let gone = pools::index(pools::slot("gone"), 3);
    let mut expected = vec![0, gone];
    expected.sort_unstable();
    assert_eq!(platform.existing_members(), expected);
    // A member of a pool the spec does not declare keeps its name.
    assert_eq!(platform.member(gone).id, "demo-gone-3");
}
