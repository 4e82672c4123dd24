//! The generated CustomResourceDefinition: names, subresources, printer
//! columns, CEL rules, defaults and descriptions.

use dynamo_crd::{
    BUCKET_FACTOR_AT_MOST_REPLICAS_RULE, BUCKET_NAMES_UNIQUE_RULE, BUCKETS_KEPT_RULE,
    CustomResourceExt, DynamoCluster, N_AT_LEAST_ONE_RULE, N_AT_MOST_REPLICAS_RULE,
    PARTITIONS_AT_LEAST_REPLICAS_RULE, PARTITIONS_IMMUTABLE_RULE, PARTITIONS_POWER_OF_TWO_RULE,
    POOL_NAMES_UNIQUE_RULE, POOLS_SUM_TO_REPLICAS_RULE, R_AT_MOST_N_RULE, W_AT_MOST_N_RULE,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use serde_json::{Value, json};

fn crd() -> CustomResourceDefinition {
    DynamoCluster::crd()
}

fn version(crd: &CustomResourceDefinition) -> &CustomResourceDefinitionVersion {
    assert_eq!(crd.spec.versions.len(), 1, "one served version");
    &crd.spec.versions[0]
}

/// The openAPIV3Schema as JSON, to walk it by key.
fn schema() -> Value {
    let crd = crd();
    let schema = version(&crd)
        .schema
        .as_ref()
        .and_then(|validation| validation.open_api_v3_schema.as_ref())
        .expect("the CRD has an openAPIV3Schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// The schema of `spec` or `status`.
fn part(name: &str) -> Value {
    schema()["properties"][name].clone()
}

/// The (rule, message) pairs of a schema node's `x-kubernetes-validations`.
fn rules(node: &Value) -> Vec<(String, String)> {
    node["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|rule| {
                    let text = |key: &str| rule[key].as_str().unwrap_or_default().to_owned();
                    (text("rule"), text("message"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every CEL rule anywhere in the schema, with its location.
fn all_rules(node: &Value, path: &str, found: &mut Vec<(String, String)>) {
    for (rule, _) in rules(node) {
        found.push((path.to_owned(), rule));
    }
    match node {
        Value::Object(map) => {
            for (key, child) in map {
                all_rules(child, &format!("{path}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                all_rules(child, &format!("{path}/{index}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn names_group_and_scope() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("dynamoclusters.dynamokv.io")
    );
    assert_eq!(crd.spec.group, "dynamokv.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "DynamoCluster");
    assert_eq!(crd.spec.names.plural, "dynamoclusters");
    assert_eq!(crd.spec.names.short_names, Some(vec!["dyc".to_owned()]));
    let version = version(&crd);
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
}

#[test]
fn status_and_scale_subresources() {
    let crd = crd();
    let subresources = version(&crd)
        .subresources
        .as_ref()
        .expect("the CRD has subresources");
    assert!(subresources.status.is_some(), "status subresource");
    let scale = subresources.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );

    // The paths point at fields of the right type.
    assert_eq!(part("spec")["properties"]["replicas"]["type"], "integer");
    assert_eq!(part("status")["properties"]["replicas"]["type"], "integer");
    assert_eq!(part("status")["properties"]["selector"]["type"], "string");
}

#[test]
fn printer_columns() {
    let crd = crd();
    let columns = version(&crd)
        .additional_printer_columns
        .as_ref()
        .expect("the CRD has printer columns");
    let shown: Vec<(&str, &str, &str)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.json_path.as_str(), c.type_.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("Replicas", ".spec.replicas", "integer"),
            ("Ready", ".status.readyReplicas", "integer"),
            ("Phase", ".status.phase", "string"),
            ("N", ".spec.replication.factor", "integer"),
            ("R", ".spec.replication.readQuorum", "integer"),
            ("W", ".spec.replication.writeQuorum", "integer"),
            ("Epoch", ".status.epoch", "integer"),
            ("Age", ".metadata.creationTimestamp", "date"),
        ]
    );
}

#[test]
fn cel_rules_sit_on_their_fields_with_messages() {
    let spec = part("spec");
    let partitions = rules(&spec["properties"]["partitions"]);
    let replication = rules(&spec["properties"]["replication"]);

    let has = |rules: &[(String, String)], rule: &str, words: &str| {
        let found = rules.iter().find(|(r, _)| r == rule);
        let (_, message) = found.unwrap_or_else(|| panic!("rule {rule:?} missing in {rules:?}"));
        assert!(
            message.contains(words),
            "message {message:?} should say {words:?}"
        );
    };
    has(&partitions, PARTITIONS_POWER_OF_TWO_RULE, "power of two");
    has(&partitions, PARTITIONS_IMMUTABLE_RULE, "immutable");
    has(&replication, N_AT_LEAST_ONE_RULE, "at least 1");
    has(&replication, R_AT_MOST_N_RULE, "replication.readQuorum");
    has(&replication, W_AT_MOST_N_RULE, "replication.writeQuorum");

    // The immutability rule is a transition rule on the field itself.
    assert_eq!(PARTITIONS_IMMUTABLE_RULE, "self == oldSelf");

    // Rules across fields sit on the spec, so `kubectl apply` and
    // `kubectl scale` are refused at once.
    let across = rules(&spec);
    has(&across, N_AT_MOST_REPLICAS_RULE, "replication.factor");
    has(&across, PARTITIONS_AT_LEAST_REPLICAS_RULE, "partitions");
    has(&across, POOLS_SUM_TO_REPLICAS_RULE, "sum of the pools");
    has(
        &rules(&spec["properties"]["pools"]),
        POOL_NAMES_UNIQUE_RULE,
        "unique",
    );

    // Buckets: quorums on each bucket, unique names on the list, the
    // factor against replicas and the transition rule on the spec (a rule
    // on the list would not run when the list is dropped altogether).
    let buckets = &spec["properties"]["buckets"];
    let bucket = rules(&buckets["items"]);
    has(&bucket, N_AT_LEAST_ONE_RULE, "factor must be at least 1");
    has(&bucket, R_AT_MOST_N_RULE, "readQuorum");
    has(&bucket, W_AT_MOST_N_RULE, "writeQuorum");
    has(&rules(buckets), BUCKET_NAMES_UNIQUE_RULE, "unique");
    has(&across, BUCKET_FACTOR_AT_MOST_REPLICAS_RULE, "replicas");
    has(&across, BUCKETS_KEPT_RULE, "never removed");
    assert!(BUCKETS_KEPT_RULE.contains("oldSelf"));
    // The list and its names are bounded, so the API server can estimate
    // the cost of the rules that walk them.
    assert_eq!(buckets["maxItems"], json!(64));
    assert_eq!(
        buckets["items"]["properties"]["name"]["maxLength"],
        json!(63)
    );

    // These are all the rules.
    let mut found = Vec::new();
    all_rules(&schema(), "", &mut found);
    assert_eq!(found.len(), 15, "{found:#?}");
}

/// Every `format` in the schema, with where it is.
fn formats(node: &Value, path: &str, found: &mut Vec<(String, String)>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(format)) = map.get("format") {
                found.push((path.to_owned(), format.clone()));
            }
            for (key, child) in map {
                formats(child, &format!("{path}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                formats(child, &format!("{path}/{index}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn every_format_is_one_the_api_server_knows() {
    // The API server warns "unrecognized format" on install for anything
    // else (schemars writes uint32 and uint64 for unsigned fields).
    const KNOWN: [&str; 6] = [
        "int32",
        "int64",
        "float",
        "double",
        "date-time",
        "int-or-string",
    ];
    let mut found = Vec::new();
    formats(&schema(), "", &mut found);
    assert!(!found.is_empty());
    let unknown: Vec<_> = found
        .iter()
        .filter(|(_, format)| !KNOWN.contains(&format.as_str()))
        .collect();
    assert!(unknown.is_empty(), "{unknown:#?}");
    assert_eq!(
        part("spec")["properties"]["partitions"]["format"],
        json!("int32")
    );
    assert_eq!(
        part("status")["properties"]["epoch"]["format"],
        json!("int64")
    );
    assert_eq!(part("status")["properties"]["epoch"]["minimum"], json!(0.0));
}

#[test]
fn power_of_two_rule_lists_exactly_the_powers_of_two() {
    let list = PARTITIONS_POWER_OF_TWO_RULE
        .strip_prefix("self in [")
        .and_then(|rest| rest.strip_suffix(']'))
        .expect("a membership rule");
    let values: Vec<u32> = list
        .split(',')
        .map(|v| v.trim().parse().expect("an integer"))
        .collect();
    let expected: Vec<u32> = (0..=16).map(|shift| 1 << shift).collect();
    assert_eq!(values, expected);
    assert_eq!(
        part("spec")["properties"]["partitions"]["maximum"],
        json!(65536.0)
    );
}

#[test]
fn only_replicas_is_required_and_the_rest_has_defaults() {
    let spec = part("spec");
    assert_eq!(spec["required"], json!(["replicas"]));
    let properties = &spec["properties"];
    let defaults = [
        ("partitions", json!(256)),
        (
            "replication",
            json!({"factor": 3, "readQuorum": 2, "writeQuorum": 2}),
        ),
        ("storage", json!({"size": "10Gi"})),
        ("gossipIntervalMs", json!(1000)),
        ("antiEntropyIntervalMs", json!(60000)),
        ("tombstoneGraceSeconds", json!(86400)),
        ("durability", json!("buffer")),
        ("pvcPolicyOnScaleDown", json!("Retain")),
        (
            "image",
            json!(format!(
                "ghcr.io/dynamokv/dynamo-node:{}",
                env!("CARGO_PKG_VERSION")
            )),
        ),
    ];
    for (field, default) in defaults {
        assert_eq!(properties[field]["default"], default, "default of {field}");
    }
    assert_eq!(
        properties["zones"]["properties"]["topologyKey"]["default"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(properties["durability"]["enum"], json!(["buffer", "sync"]));
    assert_eq!(
        properties["pvcPolicyOnScaleDown"]["enum"],
        json!(["Retain", "Delete"])
    );
    assert_eq!(properties["replicas"]["minimum"], json!(1.0));
}

/// Every property of `node` (and of nested objects this crate defines) has a
/// description; Kubernetes types (resources, affinity, ...) bring their own.
fn assert_described(node: &Value, path: &str, missing: &mut Vec<String>) {
    let Some(properties) = node["properties"].as_object() else {
        return;
    };
    for (name, child) in properties {
        let child_path = format!("{path}.{name}");
        let description = child["description"].as_str().unwrap_or_default();
        if description.trim().is_empty() {
            missing.push(child_path.clone());
        }
        if ["resources", "affinity", "tolerations", "conditions"].contains(&name.as_str()) {
            continue;
        }
        assert_described(child, &child_path, missing);
        assert_described(&child["items"], &child_path, missing);
    }
}

#[test]
fn every_field_has_a_description() {
    let mut missing = Vec::new();
    assert_described(&part("spec"), "spec", &mut missing);
    assert_described(&part("status"), "status", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );

    // Descriptions are the fields' own doc comments, not their types'.
    let spec = part("spec");
    // Doc comments keep their line breaks: compare the words.
    let words = |node: &Value| {
        node["description"]
            .as_str()
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let description = |field: &str| words(&spec["properties"][field]);
    assert!(description("imagePullPolicy").is_some_and(|d| d.contains("Kubernetes picks")));
    assert!(description("partitions").is_some_and(|d| d.contains("power of two")));
    assert!(
        words(&part("status")["properties"]["phase"])
            .is_some_and(|d| d.contains("Pending, Creating, Running"))
    );
}

#[test]
fn status_lists_merge_by_key_and_driver_state_is_kept() {
    let status = part("status");
    let properties = &status["properties"];
    assert_eq!(properties["conditions"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        properties["conditions"]["x-kubernetes-list-map-keys"],
        json!(["type"])
    );
    assert_eq!(properties["members"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        properties["members"]["x-kubernetes-list-map-keys"],
        json!(["name"])
    );
    assert_eq!(properties["pools"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        properties["pools"]["x-kubernetes-list-map-keys"],
        json!(["name"])
    );
    assert_eq!(
        properties["pools"]["items"]["properties"]["partitions"]["format"],
        "int32"
    );
    assert_eq!(
        properties["members"]["items"]["properties"]["state"]["enum"],
        json!(["Joining", "Normal", "Leaving", "Left"])
    );
    assert_eq!(
        properties["phase"]["enum"],
        json!([
            "Pending", "Creating", "Running", "Scaling", "Degraded", "Failed"
        ])
    );
    assert_eq!(properties["driver"]["type"], "object");
    assert_eq!(
        properties["driver"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
}

#[test]
fn crd_prints_as_yaml_and_reads_back() {
    let text = serde_yaml::to_string(&crd()).expect("the CRD serializes");
    assert!(
        text.starts_with("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n")
    );
    let back: CustomResourceDefinition = serde_yaml::from_str(&text).expect("the YAML reads back");
    assert_eq!(back, crd());
}
