//! `dynamoctl --via-endpoint`, as through `kubectl port-forward`: the ring
//! names addresses the CLI cannot reach, and every request goes to the
//! endpoint.

mod support;

use support::{Behaviour::*, MockCluster, dynamoctl};

/// An in-cluster DNS name no resolver knows (`.invalid` is reserved).
fn pod_name(i: usize, _address: &str) -> String {
    format!("demo-{i}.demo-peers.dynamo.svc.invalid:7400")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamoctl_via_endpoint() {
    let cluster = MockCluster::start_advertising(&[Serve, Serve, Serve], 3, pod_name).await;
    let endpoint = cluster.addresses[2].as_str();

    let direct = dynamoctl(endpoint, &[], &["put", "cart", "apples"]).await;
    assert_eq!(direct.status.code(), Some(4), "{}", text(&direct.stderr));
    let message = text(&direct.stderr);
    assert!(
        message.starts_with("error: ") && message.lines().count() == 1,
        "{message}"
    );
    assert!(message.contains("--via-endpoint"), "{message}");
    assert!(message.contains(endpoint), "{message}");
    assert_eq!(cluster.calls(), [0, 0, 0]);

    let put = dynamoctl(endpoint, &[], &["--via-endpoint", "put", "cart", "apples"]).await;
    assert_eq!(put.status.code(), Some(0), "{}", text(&put.stderr));
    assert!(
        text(&put.stdout).starts_with("OK context="),
        "{}",
        text(&put.stdout)
    );

    let get = dynamoctl(
        endpoint,
        &[("DYNAMO_VIA_ENDPOINT", "true")],
        &["get", "cart"],
    )
    .await;
    assert_eq!(get.status.code(), Some(0), "{}", text(&get.stderr));
    assert_eq!(
        text(&get.stdout).lines().next(),
        Some("apples"),
        "{}",
        text(&get.stdout)
    );
    assert_eq!(cluster.calls(), [0, 0, 2]);
}
