//! NetworkPolicy builder tests from inline YAML fixtures.

use dynamo_crd::DynamoCluster;

use super::*;

fn validated(network_policy: &str) -> ValidatedCluster {
    let yaml = format!(
        "apiVersion: dynamokv.io/v1alpha1\nkind: DynamoCluster\n\
         metadata: {{name: orders, namespace: shop}}\n\
         spec:\n  replicas: 3\n{network_policy}"
    );
    let mut cluster = DynamoCluster::from_yaml(&yaml).expect("fixture parses");
    cluster.metadata.uid = Some("uid-7".into());
    ValidatedCluster::new(&cluster).expect("fixture is valid")
}

fn operator() -> OperatorPods {
    OperatorPods::parse(
        "dynamo-system",
        "app.kubernetes.io/name=dynamo, app.kubernetes.io/component=operator",
    )
    .expect("labels parse")
}

fn ingress(policy: &NetworkPolicy) -> Vec<NetworkPolicyIngressRule> {
    policy
        .spec
        .as_ref()
        .and_then(|spec| spec.ingress.clone())
        .expect("ingress rules")
}

fn port_names(rule: &NetworkPolicyIngressRule) -> Vec<String> {
    rule.ports
        .iter()
        .flatten()
        .filter_map(|port| match &port.port {
            Some(IntOrString::String(name)) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn no_policy_unless_the_spec_asks_for_one() {
    assert!(build_network_policy(&validated(""), Some(&operator())).is_none());
    let disabled = validated("  networkPolicy: {enabled: false}\n");
    assert!(build_network_policy(&disabled, Some(&operator())).is_none());
}

#[test]
fn members_and_the_operator_reach_every_port_and_namespace_pods_the_grpc_port() {
    let cluster = validated("  networkPolicy: {}\n");
    let policy = build_network_policy(&cluster, Some(&operator())).expect("a policy");
    assert_eq!(policy.metadata.name.as_deref(), Some("orders-nodes"));
    assert_eq!(policy.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(
        policy.metadata.owner_references.as_ref().map(Vec::len),
        Some(1)
    );
    let spec = policy.spec.as_ref().expect("spec");
    assert_eq!(
        spec.pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(cluster.selector_labels())
    );
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_owned()]));

    let rules = ingress(&policy);
    assert_eq!(rules.len(), 3);
    let trusted = rules[0].from.as_ref().expect("trusted sources");
    assert!(rules[0].ports.is_none(), "members use every port");
    assert_eq!(
        trusted[0]
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(cluster.selector_labels())
    );
    assert!(
        trusted[0].namespace_selector.is_none(),
        "members of this namespace only"
    );
    let operator_peer = &trusted[1];
    assert_eq!(
        operator_peer
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .and_then(|labels| labels.get(NAMESPACE_NAME_LABEL).cloned())
            .as_deref(),
        Some("dynamo-system")
    );
    assert_eq!(
        operator_peer
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .and_then(|labels| labels.get("app.kubernetes.io/component"))
            .map(String::as_str),
        Some("operator")
    );

    assert_eq!(port_names(&rules[1]), vec![names::PORT_GRPC.to_owned()]);
    let clients = rules[1].from.as_ref().expect("default clients");
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].pod_selector, Some(LabelSelector::default()));
    assert!(clients[0].namespace_selector.is_none());

    assert_eq!(port_names(&rules[2]), vec![names::PORT_HTTP.to_owned()]);
    assert!(rules[2].from.is_none(), "metrics are open by default");
}

#[test]
fn listed_clients_and_scrapers_replace_the_defaults() {
    let cluster = validated(
        "  networkPolicy:\n    clients:\n    - namespaceSelector: {matchLabels: {team: shop}}\n    \
         - ipBlock: {cidr: 10.0.0.0/8}\n    metrics:\n    - namespaceSelector: {matchLabels: {name: monitoring}}\n",
    );
    let rules = ingress(&build_network_policy(&cluster, None).expect("a policy"));
    let trusted = rules[0].from.as_ref().expect("trusted sources");
    assert_eq!(
        trusted.len(),
        1,
        "no operator rule for an operator outside the cluster"
    );
    let clients = rules[1].from.as_ref().expect("clients");
    assert_eq!(clients.len(), 2);
    assert_eq!(
        clients[1]
            .ip_block
            .as_ref()
            .map(|block| block.cidr.as_str()),
        Some("10.0.0.0/8")
    );
    assert_eq!(rules[2].from.as_ref().map(Vec::len), Some(1));
}

#[test]
fn operator_labels_must_be_key_value_pairs() {
    for bad in ["", "novalue", "=x", "a=b,", "a=b,,c=d"] {
        assert!(
            OperatorPods::parse("ns", bad).is_err(),
            "{bad:?} was accepted"
        );
    }
    let pods = OperatorPods::parse("ns", "a=b,c=").expect("labels parse");
    assert_eq!(pods.labels.get("c").map(String::as_str), Some(""));
}
