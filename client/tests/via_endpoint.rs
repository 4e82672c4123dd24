//! Routing through the endpoint, as through `kubectl port-forward`: the ring
//! names addresses the client cannot reach, the endpoint answers, and every
//! request goes to the endpoint.

mod support;

use dynamo_client::{Client, ClientOptions, Error, Routing};
use support::{Behaviour::*, MockCluster};

/// An in-cluster DNS name no resolver knows (`.invalid` is reserved).
fn pod_name(i: usize, _address: &str) -> String {
    format!("demo-{i}.demo-peers.dynamo.svc.invalid:7400")
}

fn via_endpoint() -> ClientOptions {
    ClientOptions {
        routing: Routing::ViaEndpoint,
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn every_request_goes_to_the_endpoint() {
    let cluster = MockCluster::start_advertising(&[Serve, Serve, Serve], 3, pod_name).await;
    let endpoint = &cluster.addresses[1];
    let client = Client::connect_with(endpoint, via_endpoint())
        .await
        .expect("the endpoint serves the ring");
    assert_eq!(
        client.ring().members()[0].address,
        "demo-0.demo-peers.dynamo.svc.invalid:7400"
    );
    let context = client.put("cart", "apples", None).await.expect("put");
    let read = client.get("cart").await.expect("get");
    assert_eq!(
        read.last_writer_wins().map(|s| &s.value[..]),
        Some(&b"apples"[..])
    );
    client.delete("cart", Some(&context)).await.expect("delete");
    assert_eq!(cluster.calls(), [0, 3, 0]);
}

#[tokio::test]
async fn direct_routing_says_when_only_the_endpoint_answers() {
    let cluster = MockCluster::start_advertising(&[Serve, Serve], 2, pod_name).await;
    let endpoint = &cluster.addresses[0];
    let client = Client::connect(endpoint).await.expect("connect");
    let err = client
        .put("cart", "apples", None)
        .await
        .expect_err("no ring address resolves");
    let Error::ReplicasUnreachable {
        endpoint: reported,
        source,
    } = &err
    else {
        panic!("expected ReplicasUnreachable, got {err:?}");
    };
    assert_eq!(reported, endpoint);
    assert!(matches!(**source, Error::Transport { .. }), "{source:?}");
    assert!(err.to_string().contains("Routing::ViaEndpoint"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(cluster.calls(), [0, 0]);
}

#[tokio::test]
async fn a_replica_that_answers_is_reported_instead() {
    // Member 0 is reachable at its ring address but has too few replicas;
    // member 1 is not reachable; the endpoint is member 1's real address.
    let cluster = MockCluster::start_advertising(&[Unavailable, Serve], 2, |i, address| {
        if i == 0 {
            address.to_owned()
        } else {
            pod_name(i, address)
        }
    })
    .await;
    let client = Client::connect(&cluster.addresses[1])
        .await
        .expect("connect");
    let err = client.get("cart").await.expect_err("nobody can serve");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert_eq!(cluster.calls(), [1, 0]);
}
