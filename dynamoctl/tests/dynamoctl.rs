//! `dynamoctl` as a user runs it, against a mock cluster: output formats
//! and exit codes.

mod support;

use std::process::Output;

use support::{Behaviour::*, MockCluster};

async fn dynamoctl(endpoint: &str, args: &[&str]) -> Output {
    support::dynamoctl(endpoint, &[], args).await
}

fn stdout(output: &Output) -> &str {
    std::str::from_utf8(&output.stdout).expect("UTF-8 output")
}

fn stderr(output: &Output) -> &str {
    std::str::from_utf8(&output.stderr).expect("UTF-8 output")
}

#[tokio::test(flavor = "multi_thread")]
async fn put_get_delete_round_trip() {
    let cluster = MockCluster::start(&[Serve, Serve, Serve], 3).await;
    let endpoint = cluster.addresses[0].as_str();

    let missing = dynamoctl(endpoint, &["get", "cart"]).await;
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    assert_eq!(stdout(&missing), "not found\n");

    let put = dynamoctl(endpoint, &["put", "cart", "milk"]).await;
    assert_eq!(put.status.code(), Some(0), "{}", stderr(&put));
    let context = stdout(&put)
        .strip_prefix("OK context=")
        .expect("text put output")
        .trim()
        .to_owned();

    let blind = dynamoctl(endpoint, &["put", "cart", "eggs"]).await;
    assert_eq!(blind.status.code(), Some(0), "{}", stderr(&blind));
    let both = dynamoctl(endpoint, &["get", "cart"]).await;
    assert_eq!(
        stdout(&both),
        "sibling 1: milk\nsibling 2: eggs\ncontext: AAAAAAAAAAI=\n"
    );

    let merged = dynamoctl(
        endpoint,
        &["put", "cart", "milk,eggs", "--context", &context],
    )
    .await;
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));

    let json = dynamoctl(endpoint, &["get", "cart", "--output", "json"]).await;
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON output");
    assert_eq!(
        value,
        serde_json::json!({
            "siblings": [{"value": "milk,eggs", "tombstone": false, "timestamp": 1002}],
            "context": "AAAAAAAAAAM=",
        })
    );

    let delete = dynamoctl(endpoint, &["delete", "cart", "--context", "AAAAAAAAAAM="]).await;
    assert_eq!(stdout(&delete), "OK context=AAAAAAAAAAQ=\n");
    let gone = dynamoctl(endpoint, &["get", "cart"]).await;
    assert_eq!(gone.status.code(), Some(3));
    assert_eq!(stdout(&gone), "not found\ncontext: AAAAAAAAAAQ=\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_values_need_base64() {
    let cluster = MockCluster::start(&[Serve], 1).await;
    let endpoint = cluster.addresses[0].as_str();
    let put = dynamoctl(endpoint, &["put", "blob", "/wA=", "--base64"]).await;
    assert_eq!(put.status.code(), Some(0), "{}", stderr(&put));
    let text = dynamoctl(endpoint, &["get", "blob"]).await;
    assert_eq!(text.status.code(), Some(1));
    assert!(stderr(&text).contains("--base64"), "{}", stderr(&text));
    let base64 = dynamoctl(endpoint, &["get", "blob", "--base64"]).await;
    assert_eq!(stdout(&base64).lines().next(), Some("/wA="));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_unreachable_members() {
    let cluster = MockCluster::start(&[Serve, Down], 2).await;
    let output = dynamoctl(&cluster.addresses[0], &["status", "--output", "json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(rows[0]["state"], "up");
    assert_eq!(rows[0]["partitions"], 1);
    assert_eq!(rows[1]["state"], "unreachable");
    assert_eq!(rows[1]["epoch"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes() {
    let cluster = MockCluster::start(&[Unavailable, Down], 2).await;
    let unavailable = dynamoctl(&cluster.addresses[0], &["get", "k"]).await;
    assert_eq!(unavailable.status.code(), Some(4));
    let text = stderr(&unavailable);
    assert!(
        text.starts_with("error: ") && text.lines().count() == 1,
        "{text}"
    );

    let unreachable = dynamoctl(&cluster.addresses[1], &["ring"]).await;
    assert_eq!(
        unreachable.status.code(),
        Some(4),
        "{}",
        stderr(&unreachable)
    );

    let bad_base64 = dynamoctl(&cluster.addresses[0], &["put", "k", "@@", "--base64"]).await;
    assert_eq!(bad_base64.status.code(), Some(2));
    let bad_context = dynamoctl(&cluster.addresses[0], &["delete", "k", "--context", "!"]).await;
    assert_eq!(bad_context.status.code(), Some(2));
}
