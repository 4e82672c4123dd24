//! Reading manifests: defaults, validation messages and strict parsing.

use dynamo_crd::{
    DEFAULT_IMAGE, DynamoCluster, DynamoClusterSpec, DynamoClusterStatus, ManifestError,
    MemberState, MemberStatus, SpecError,
};

/// A manifest named `demo` with the given lines under `spec:`.
fn manifest(spec: &str) -> String {
    let mut text = String::from(
        "apiVersion: dynamokv.io/v1alpha1\nkind: DynamoCluster\nmetadata:\n  name: demo\nspec:\n",
    );
    for line in spec.lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn parse(spec: &str) -> DynamoCluster {
    DynamoCluster::from_yaml(&manifest(spec)).expect("the manifest parses")
}

fn invalid(spec: &str) -> SpecError {
    parse(spec)
        .spec
        .validate()
        .expect_err("the spec should be rejected")
}

#[test]
fn replicas_alone_is_a_complete_manifest() {
    let cluster = parse("replicas: 3");
    assert_eq!(cluster.metadata.name.as_deref(), Some("demo"));
    assert_eq!(cluster.spec, DynamoClusterSpec::with_replicas(3));
    let spec = &cluster.spec;
    assert_eq!(spec.image, DEFAULT_IMAGE);
    assert_eq!(spec.partitions, 256);
    assert_eq!(
        (
            spec.replication.factor,
            spec.replication.read_quorum,
            spec.replication.write_quorum
        ),
        (3, 2, 2)
    );
    assert_eq!(spec.storage.size, "10Gi");
    assert_eq!(spec.storage.storage_class_name, None);
    assert_eq!(spec.topology_key(), None);
    assert_eq!(spec.gossip_interval_ms, 1000);
    assert_eq!(spec.anti_entropy_interval_ms, 60_000);
    assert_eq!(spec.tombstone_grace_seconds, 86_400);
    assert_eq!(spec.durability.as_str(), "buffer");
    assert_eq!(spec.pvc_policy_on_scale_down, dynamo_crd::PvcPolicy::Retain);
    assert_eq!(spec.validate(), Ok(()));
    assert_eq!(cluster.status, None);
}

#[test]
fn partial_sections_keep_their_other_defaults() {
    let cluster = parse(
        "replicas: 5\nreplication:\n  factor: 5\nzones: {}\nstorage:\n  storageClassName: fast",
    );
    let spec = &cluster.spec;
    assert_eq!(
        (
            spec.replication.factor,
            spec.replication.read_quorum,
            spec.replication.write_quorum
        ),
        (5, 2, 2)
    );
    assert_eq!(spec.topology_key(), Some("topology.kubernetes.io/zone"));
    assert_eq!(spec.storage.size, "10Gi");
    assert_eq!(spec.storage.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(spec.validate(), Ok(()));
}

#[test]
fn read_quorum_above_n_is_rejected_with_a_fix() {
    let error = invalid("replicas: 3\nreplication:\n  factor: 3\n  readQuorum: 4");
    assert_eq!(error, SpecError::ReadQuorumOutOfRange { r: 4, n: 3 });
    let message = error.to_string();
    assert!(
        message.contains("spec.replication.readQuorum is 4"),
        "{message}"
    );
    assert!(
        message.contains("set spec.replication.readQuorum between 1 and 3"),
        "{message}"
    );
}

#[test]
fn write_quorum_above_n_is_rejected_with_a_fix() {
    let error = invalid("replicas: 3\nreplication:\n  writeQuorum: 5");
    assert_eq!(error, SpecError::WriteQuorumOutOfRange { w: 5, n: 3 });
    assert!(
        error
            .to_string()
            .contains("set spec.replication.writeQuorum between 1 and 3"),
        "{error}"
    );
}

#[test]
fn partitions_that_are_not_a_power_of_two_are_rejected() {
    let error = invalid("replicas: 3\npartitions: 100");
    assert_eq!(
        error,
        SpecError::PartitionsNotPowerOfTwo { partitions: 100 }
    );
    let message = error.to_string();
    assert!(message.contains("spec.partitions is 100"), "{message}");
    assert!(message.contains("power of two"), "{message}");
    assert!(message.contains("256"), "{message}");
}

#[test]
fn n_above_replicas_is_rejected_with_a_fix() {
    let error = invalid("replicas: 2");
    assert_eq!(
        error,
        SpecError::ReplicationExceedsReplicas { n: 3, replicas: 2 }
    );
    let message = error.to_string();
    assert!(message.contains("only 2 nodes"), "{message}");
    assert!(
        message.contains("set spec.replicas to at least 3 or lower spec.replication.factor"),
        "{message}"
    );
}

#[test]
fn buckets_are_declared_with_their_own_replication() {
    let cluster = parse(
        "replicas: 3\nbuckets:\n- {name: carts, factor: 3, readQuorum: 2, writeQuorum: 2}\n- {name: cache, factor: 1, readQuorum: 1, writeQuorum: 1, durability: sync}",
    );
    let buckets = &cluster.spec.buckets;
    assert_eq!(buckets.len(), 2);
    assert_eq!(
        (buckets[0].name.as_str(), buckets[0].durability),
        ("carts", None)
    );
    assert_eq!(buckets[1].durability, Some(dynamo_crd::Durability::Sync));
    assert_eq!(cluster.spec.validate(), Ok(()));
    // Without buckets the field stays out of the serialized spec.
    let text = serde_yaml::to_string(&parse("replicas: 3").spec).expect("serializes");
    assert!(!text.contains("buckets"), "{text}");
}

#[test]
fn bucket_errors_name_the_field() {
    let error = invalid(
        "replicas: 3\nbuckets:\n- {name: carts, factor: 3, readQuorum: 2, writeQuorum: 2}\n- {name: big, factor: 4, readQuorum: 1, writeQuorum: 1}",
    );
    assert!(
        error.to_string().contains("spec.buckets[1].factor is 4"),
        "{error}"
    );
    let error =
        invalid("replicas: 3\nbuckets:\n- {name: carts, factor: 2, readQuorum: 3, writeQuorum: 1}");
    assert!(
        error
            .to_string()
            .contains("spec.buckets[0].readQuorum is 3"),
        "{error}"
    );
    let error =
        invalid("replicas: 3\nbuckets:\n- {name: Carts, factor: 1, readQuorum: 1, writeQuorum: 1}");
    assert!(
        error.to_string().contains("spec.buckets[0].name"),
        "{error}"
    );
    // The short names of the ring are refused, as in `replication`.
    let text = manifest("replicas: 3\nbuckets:\n- {name: carts, n: 1, r: 1, w: 1}");
    assert!(DynamoCluster::from_yaml(&text).is_err());
}

#[test]
fn buckets_are_never_removed_and_keep_their_factor() {
    let old = parse(
        "replicas: 3\nbuckets:\n- {name: carts, factor: 3, readQuorum: 2, writeQuorum: 2}\n- {name: cache, factor: 1, readQuorum: 1, writeQuorum: 1}",
    )
    .spec;
    let retuned = parse(
        "replicas: 3\nbuckets:\n- {name: cache, factor: 1, readQuorum: 1, writeQuorum: 1, durability: sync}\n- {name: carts, factor: 3, readQuorum: 1, writeQuorum: 3}\n- {name: new, factor: 2, readQuorum: 1, writeQuorum: 1}",
    )
    .spec;
    assert_eq!(retuned.validate_update(&old), Ok(()));

    let dropped = parse("replicas: 3").spec;
    let error = dropped
        .validate_update(&old)
        .expect_err("a bucket was removed");
    assert_eq!(
        error,
        SpecError::BucketRemoved {
            name: "carts".into(),
            n: 3
        }
    );
    assert!(error.to_string().contains("never removed"), "{error}");

    let lowered = parse(
        "replicas: 3\nbuckets:\n- {name: carts, factor: 2, readQuorum: 2, writeQuorum: 2}\n- {name: cache, factor: 1, readQuorum: 1, writeQuorum: 1}",
    )
    .spec;
    let error = lowered.validate_update(&old).expect_err("a factor changed");
    assert!(
        error
            .to_string()
            .contains("spec.buckets[0].factor of bucket \"carts\" cannot change"),
        "{error}"
    );

    // Scaling below a bucket's factor is refused.
    let mut shrunk = old.clone();
    shrunk.replicas = 2;
    shrunk.replication.factor = 2;
    assert_eq!(
        shrunk.validate_update(&old),
        Err(SpecError::BucketFactorExceedsReplicas {
            index: 0,
            n: 3,
            replicas: 2
        })
    );
}

#[test]
fn zero_replicas_is_rejected() {
    let error = invalid("replicas: 0");
    assert_eq!(error, SpecError::TooFewReplicas { replicas: 0 });
    assert!(error.to_string().contains("at least 1 node"), "{error}");
}

#[test]
fn changing_partitions_is_rejected() {
    let old = parse("replicas: 3").spec;
    let new = parse("replicas: 4\npartitions: 1024").spec;
    let error = new.validate_update(&old).expect_err("partitions changed");
    assert_eq!(
        error,
        SpecError::PartitionsChanged {
            old: 256,
            new: 1024
        }
    );
    assert!(error.to_string().contains("set it back to 256"), "{error}");
    assert_eq!(parse("replicas: 4").spec.validate_update(&old), Ok(()));
}

#[test]
fn unknown_fields_are_named() {
    let error = DynamoCluster::from_yaml(&manifest("replicas: 3\nreplica: 3")).expect_err("typo");
    assert!(
        matches!(&error, ManifestError::UnknownField { path } if path == "spec.replica"),
        "{error}"
    );
    assert!(error.to_string().contains("`spec.replica`"), "{error}");

    let error = DynamoCluster::from_yaml(&manifest("replicas: 3\nreplication:\n  quorum: 2"))
        .expect_err("typo");
    assert!(
        matches!(&error, ManifestError::UnknownField { path } if path == "spec.replication.quorum"),
        "{error}"
    );

    let error = DynamoCluster::from_yaml(&manifest(
        "replicas: 3\ntolerations:\n  - key: a\n    effect: NoSchedule\n  - key: b\n    efect: NoSchedule",
    ))
    .expect_err("typo in a list item");
    assert!(
        matches!(&error, ManifestError::UnknownField { path } if path == "spec.tolerations.1.efect"),
        "{error}"
    );
}

#[test]
fn unquoted_factor_is_a_number() {
    // `factor` means the same in YAML 1.1 and 1.2: no quotes needed.
    let spec: DynamoClusterSpec = serde_yaml::from_str(
        "replicas: 3\nreplication:\n  factor: 3\n  readQuorum: 2\n  writeQuorum: 1\n",
    )
    .expect("the spec parses");
    assert_eq!(
        (
            spec.replication.factor,
            spec.replication.read_quorum,
            spec.replication.write_quorum
        ),
        (3, 2, 1)
    );
    assert_eq!(
        parse("replicas: 3\nreplication:\n  factor: 3")
            .spec
            .replication
            .factor,
        3
    );
}

#[test]
fn old_replication_names_are_refused() {
    // serde alone: the spec refuses unknown replication fields rather than
    // running with the defaults.
    let error = serde_yaml::from_str::<DynamoClusterSpec>("replicas: 5\nreplication:\n  n: 5\n")
        .expect_err("an old name");
    let message = error.to_string();
    assert!(message.contains("unknown field `n`"), "{message}");
    assert!(message.contains("`factor`"), "{message}");

    // The manifest reader names the field that replaced it.
    for (old, now) in [
        ("n", "spec.replication.factor"),
        ("r", "spec.replication.readQuorum"),
        ("w", "spec.replication.writeQuorum"),
    ] {
        let error = DynamoCluster::from_yaml(&manifest(&format!(
            "replicas: 5\nreplication:\n  \"{old}\": 2"
        )))
        .expect_err("an old name");
        assert!(
            matches!(&error, ManifestError::RenamedField { path, now: found }
                if *path == format!("spec.replication.{old}") && *found == now),
            "{error}"
        );
        assert!(
            error.to_string().contains(&format!("calls `{now}`")),
            "{error}"
        );
    }
}

#[test]
fn free_form_maps_and_metadata_take_any_key() {
    let text = manifest("replicas: 3\nnodeSelector:\n  disk: ssd\n  example.com/pool: storage")
        .replace(
            "  name: demo\n",
            "  name: demo\n  labels:\n    team: storage\n",
        );
    let cluster = DynamoCluster::from_yaml(&text).expect("the manifest parses");
    assert_eq!(
        cluster.spec.node_selector.get("disk").map(String::as_str),
        Some("ssd")
    );
    assert_eq!(cluster.spec.node_selector.len(), 2);
}

#[test]
fn wrong_types_and_missing_replicas_are_schema_errors() {
    let error = DynamoCluster::from_yaml(&manifest("replicas: three")).expect_err("wrong type");
    assert!(matches!(error, ManifestError::Schema { .. }), "{error}");
    assert!(error.to_string().contains("replicas"), "{error}");

    let error = DynamoCluster::from_yaml(&manifest("partitions: 256")).expect_err("no replicas");
    assert!(matches!(error, ManifestError::Schema { .. }), "{error}");
    assert!(error.to_string().contains("replicas"), "{error}");

    let error = DynamoCluster::from_yaml(&manifest("replicas: 3\ndurability: fsync"))
        .expect_err("unknown durability");
    assert!(error.to_string().contains("fsync"), "{error}");
}

#[test]
fn document_level_errors() {
    let no_name = manifest("replicas: 3").replace("  name: demo\n", "  namespace: default\n");
    assert!(matches!(
        DynamoCluster::from_yaml(&no_name),
        Err(ManifestError::MissingName)
    ));

    let old_version = manifest("replicas: 3").replace("v1alpha1", "v1");
    let error = DynamoCluster::from_yaml(&old_version).expect_err("wrong version");
    assert!(
        error
            .to_string()
            .contains("set `apiVersion: dynamokv.io/v1alpha1`"),
        "{error}"
    );

    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
    assert!(matches!(
        DynamoCluster::from_yaml(other),
        Err(ManifestError::NoCluster)
    ));
    assert!(matches!(
        DynamoCluster::from_yaml(""),
        Err(ManifestError::NoCluster)
    ));

    let two = format!(
        "{}---\n{}",
        manifest("replicas: 3"),
        manifest("replicas: 4")
    );
    assert!(matches!(
        DynamoCluster::from_yaml(&two),
        Err(ManifestError::SeveralClusters { count: 2 })
    ));

    assert!(matches!(
        DynamoCluster::from_yaml("spec: [unclosed"),
        Err(ManifestError::Yaml { .. })
    ));
}

#[test]
fn other_documents_in_the_file_are_skipped() {
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: storage\n---\n{}",
        manifest("replicas: 4")
    );
    let cluster = DynamoCluster::from_yaml(&text).expect("the manifest parses");
    assert_eq!(cluster.spec.replicas, 4);
}

#[test]
fn a_cluster_with_status_round_trips() {
    let mut cluster = parse("replicas: 3\nzones:\n  topologyKey: example.com/rack");
    cluster.status = Some(DynamoClusterStatus {
        replicas: 3,
        ready_replicas: 3,
        selector: Some("app.kubernetes.io/instance=demo".into()),
        epoch: 7,
        members: vec![MemberStatus {
            name: "demo-0".into(),
            state: MemberState::Normal,
            partitions: 86,
            zone: Some("rack-a".into()),
        }],
        driver: Some(serde_json::json!({"step": "idle"})),
        ..DynamoClusterStatus::default()
    });
    let text = serde_yaml::to_string(&cluster).expect("serializes");
    assert_eq!(
        DynamoCluster::from_yaml(&text).expect("reads back"),
        cluster
    );
}
