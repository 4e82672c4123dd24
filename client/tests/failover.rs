//! Single-hop routing against a mock cluster: which replicas a request
//! visits, and which failures make it move on.

mod support;

use dynamo_client::{Client, Error};
use support::{Behaviour::*, MockCluster};

#[tokio::test]
async fn requests_rotate_over_the_preference_list() {
    let cluster = MockCluster::start(&[Serve, Serve, Serve, Serve], 3).await;
    let client = Client::connect(&cluster.addresses[0])
        .await
        .expect("connect");
    for _ in 0..6 {
        client.get("k").await.expect("get");
    }
    // The fallback (node 3) is never needed.
    assert_eq!(cluster.calls(), [2, 2, 2, 0]);
}

#[tokio::test]
async fn unavailable_and_unreachable_replicas_are_skipped() {
    let cluster = MockCluster::start(&[Down, Unavailable, Serve], 2).await;
    let client = Client::connect(&cluster.addresses[2])
        .await
        .expect("connect");
    let context = client
        .put("k", "v", None)
        .await
        .expect("the fallback answers");
    assert!(!context.is_empty());
    assert_eq!(cluster.calls(), [0, 1, 1]);
    let read = client.get("k").await.expect("get");
    assert_eq!(
        read.last_writer_wins().map(|s| &s.value[..]),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn the_last_error_is_returned_when_every_replica_fails() {
    let cluster = MockCluster::start(&[Unavailable, Unavailable, Unavailable], 2).await;
    let client = Client::connect(&cluster.addresses[0])
        .await
        .expect("connect");
    let err = client
        .delete("k", None)
        .await
        .expect_err("nobody can serve");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("only 0 of 1 replicas answered"),
        "{err}"
    );
    assert_eq!(cluster.calls(), [1, 1, 1]);
}

#[tokio::test]
async fn invalid_arguments_are_not_retried() {
    let cluster = MockCluster::start(&[Reject, Reject, Reject], 3).await;
    let client = Client::connect(&cluster.addresses[0])
        .await
        .expect("connect");
    let err = client.get("k").await.expect_err("rejected");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert_eq!(cluster.calls().iter().sum::<usize>(), 1);
}

#[tokio::test]
async fn ring_and_refresh() {
    let cluster = MockCluster::start(&[Serve, Down], 2).await;
    let client = Client::connect(format!("http://{}", cluster.addresses[0]).as_str())
        .await
        .expect("connect with a scheme");
    assert_eq!(client.ring().members().len(), 2);
    let ring = client.refresh_ring().await.expect("the endpoint answers");
    assert_eq!(ring.epoch(), 1);
    let err = Client::connect(&cluster.addresses[1])
        .await
        .expect_err("down");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

#[tokio::test]
async fn a_node_answer_is_reported_over_an_unreachable_node() {
    let cluster = MockCluster::start(&[Unavailable, Down], 2).await;
    let client = Client::connect(&cluster.addresses[0])
        .await
        .expect("connect");
    let err = client
        .put("k", "v", None)
        .await
        .expect_err("nobody can serve");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
}
