//! The CRD's CEL rules, evaluated as the API server would (after defaulting)
//! by kube's client-side CEL interpreter. Needs `--features cel`.
#![cfg(feature = "cel")]

use dynamo_crd::{CustomResourceExt, DynamoCluster};
use kube::core::cel::Validator;
use serde_json::{Value, json};

fn schema() -> Value {
    let crd = DynamoCluster::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|validation| validation.open_api_v3_schema.as_ref())
        .expect("the CRD has an openAPIV3Schema");
    serde_json::to_value(schema).expect("schema serializes")
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "dynamokv.io/v1alpha1",
        "kind": "DynamoCluster",
        "metadata": {"name": "demo"},
        "spec": spec,
    })
}

/// The messages of the rules `spec` breaks (on update from `old` if given).
fn broken(spec: Value, old: Option<Value>) -> Vec<String> {
    let old = old.map(object);
    match Validator::new().validate(&schema(), &object(spec), old.as_ref()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

#[test]
fn minimal_and_example_specs_pass_every_rule() {
    assert_eq!(broken(json!({"replicas": 3}), None), Vec::<String>::new());
    assert_eq!(
        broken(
            json!({"replicas": 5, "replication": {"factor": 5, "readQuorum": 3, "writeQuorum": 3}}),
            None
        ),
        Vec::<String>::new()
    );
    for partitions in [1, 2, 256, 65536] {
        assert_eq!(
            broken(
                json!({"replicas": 1, "partitions": partitions, "replication": {"factor": 1, "readQuorum": 1, "writeQuorum": 1}}),
                None
            ),
            Vec::<String>::new(),
            "partitions {partitions}"
        );
    }
}

#[test]
fn quorum_rules() {
    let errors = broken(
        json!({"replicas": 3, "replication": {"factor": 3, "readQuorum": 4}}),
        None,
    );
    assert_eq!(
        errors,
        ["replication.readQuorum must not be greater than replication.factor"]
    );
    let errors = broken(
        json!({"replicas": 3, "replication": {"writeQuorum": 4}}),
        None,
    );
    assert_eq!(
        errors,
        ["replication.writeQuorum must not be greater than replication.factor"]
    );
    let errors = broken(
        json!({"replicas": 3, "replication": {"factor": 0, "readQuorum": 0, "writeQuorum": 0}}),
        None,
    );
    assert!(
        errors.contains(&"replication.factor must be at least 1".to_owned()),
        "{errors:?}"
    );
}

#[test]
fn partitions_must_be_a_power_of_two() {
    for partitions in [0, 3, 100, 1000, 131072] {
        let spec = json!({"replicas": 1, "partitions": partitions, "replication": {"factor": 1, "readQuorum": 1, "writeQuorum": 1}});
        let errors = broken(spec, None);
        assert!(
            errors.contains(
                &"partitions must be a power of two between 1 and 65536, such as 256".to_owned()
            ),
            "partitions {partitions}: {errors:?}"
        );
    }
}

#[test]
fn partitions_cannot_change() {
    let old = json!({"replicas": 3, "partitions": 256});
    assert_eq!(
        broken(json!({"replicas": 5, "partitions": 256}), Some(old.clone())),
        Vec::<String>::new()
    );
    // Leaving the field out keeps its default, which is the same value.
    assert_eq!(
        broken(json!({"replicas": 5}), Some(old.clone())),
        Vec::<String>::new()
    );
    assert_eq!(
        broken(json!({"replicas": 3, "partitions": 512}), Some(old)),
        ["partitions is immutable: it is fixed when the cluster is created"]
    );
}

#[test]
fn rules_across_fields_refuse_too_few_nodes() {
    let errors = broken(json!({"replicas": 2}), None);
    assert_eq!(
        errors,
        ["replication.factor must not be greater than replicas: a key needs factor distinct nodes"]
    );
    let errors = broken(
        json!({"replicas": 8, "partitions": 4, "replication": {"factor": 3}}),
        None,
    );
    assert_eq!(
        errors,
        ["partitions must not be fewer than replicas: every node must be able to own a partition"]
    );
    // Scaling below N is refused the same way (the scale subresource writes
    // spec.replicas and the API server validates the result).
    let errors = broken(
        json!({"replicas": 2, "replication": {"factor": 3}}),
        Some(json!({"replicas": 3, "replication": {"factor": 3}})),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn pool_rules() {
    let pools = json!([
        {"name": "small", "replicas": 3},
        {"name": "big", "replicas": 2, "weight": 2}
    ]);
    assert_eq!(
        broken(json!({"replicas": 5, "pools": pools}), None),
        Vec::<String>::new()
    );
    assert_eq!(
        broken(json!({"replicas": 4, "pools": pools}), None),
        [
            "with pools, replicas must equal the sum of the pools' replicas: scale a pool by editing its replicas"
        ]
    );
    let same_names = json!([
        {"name": "a", "replicas": 2},
        {"name": "a", "replicas": 2}
    ]);
    assert_eq!(
        broken(json!({"replicas": 4, "pools": same_names}), None),
        ["pool names must be unique"]
    );
}

/// A bucket as a manifest declares it.
fn bucket(name: &str, factor: u32, read: u32, write: u32) -> Value {
    json!({"name": name, "factor": factor, "readQuorum": read, "writeQuorum": write})
}

#[test]
fn bucket_rules() {
    let spec = |buckets: Value| json!({"replicas": 3, "buckets": buckets});
    let good = json!([bucket("carts", 3, 2, 2), bucket("cache", 1, 1, 1)]);
    assert_eq!(broken(spec(good), None), Vec::<String>::new());
    assert_eq!(
        broken(spec(json!([bucket("carts", 2, 3, 1)])), None),
        ["a bucket's readQuorum must not be greater than its factor"]
    );
    assert_eq!(
        broken(spec(json!([bucket("carts", 2, 1, 3)])), None),
        ["a bucket's writeQuorum must not be greater than its factor"]
    );
    assert_eq!(
        broken(
            spec(json!([bucket("a", 1, 1, 1), bucket("a", 2, 1, 1)])),
            None
        ),
        ["bucket names must be unique"]
    );
    assert_eq!(
        broken(spec(json!([bucket("big", 4, 1, 1)])), None),
        [
            "a bucket's factor must not be greater than replicas: keep replicas at least the largest bucket factor"
        ]
    );
    // Scaling below a bucket's factor is refused too.
    let errors = broken(
        json!({"replicas": 2, "replication": {"factor": 2}, "buckets": [bucket("carts", 3, 2, 2)]}),
        Some(spec(json!([bucket("carts", 3, 2, 2)]))),
    );
    assert_eq!(
        errors,
        [
            "a bucket's factor must not be greater than replicas: keep replicas at least the largest bucket factor"
        ]
    );
}

#[test]
fn buckets_stay_with_their_factor() {
    const KEPT: &str = "buckets are never removed and a bucket's factor never changes: put back every bucket with its factor";
    let spec = |buckets: Value| json!({"replicas": 3, "buckets": buckets});
    let old = spec(json!([bucket("carts", 3, 2, 2), bucket("cache", 1, 1, 1)]));
    // Quorums change, order changes and new buckets come: allowed.
    let retuned = spec(json!([
        bucket("cache", 1, 1, 1),
        bucket("carts", 3, 1, 3),
        bucket("new", 2, 1, 1)
    ]));
    assert_eq!(broken(retuned, Some(old.clone())), Vec::<String>::new());
    // A first declaration of buckets is no change of old ones.
    assert_eq!(
        broken(old.clone(), Some(json!({"replicas": 3}))),
        Vec::<String>::new()
    );
    assert_eq!(
        broken(spec(json!([bucket("carts", 3, 2, 2)])), Some(old.clone())),
        [KEPT]
    );
    assert_eq!(
        broken(
            spec(json!([bucket("carts", 2, 2, 2), bucket("cache", 1, 1, 1)])),
            Some(old.clone())
        ),
        [KEPT]
    );
    // Dropping the whole list is a removal as well.
    assert_eq!(broken(json!({"replicas": 3}), Some(old)), [KEPT]);
}
