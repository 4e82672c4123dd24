//! Engine behaviour on a 5-node cluster (N=3, R=2, W=2) of in-process nodes.

use dynamo_node::ring::Replication;
use dynamo_node::version::Clock;
use dynamo_proto::v1 as pb;
use dynamo_tests::{Cluster, get, live_values, put};
use tonic::Code;

const N3: Replication = Replication { n: 3, r: 2, w: 2 };

/// The member indexes that replicate `key`, and one node that does not.
fn replicas(cluster: &Cluster, key: &str) -> (Vec<usize>, usize) {
    let ring = cluster.node(0).node().ring();
    let preference: Vec<usize> = ring
        .preference(ring.partition_of(key.as_bytes()), ring.replication().n)
        .iter()
        .map(|&m| m as usize)
        .collect();
    let outsider = (0..cluster.len())
        .find(|i| !preference.contains(i))
        .expect("5 nodes, 3 replicas");
    (preference, outsider)
}

/// What node `i` stores locally for `key`, read through the Peer service.
async fn local_copy(cluster: &Cluster, i: usize, key: &str) -> anyhow::Result<pb::SiblingSet> {
    let mut peer = cluster.peer(i).await?;
    let ring = cluster.node(0).node().ring();
    let engine_key = ring.engine_key("", key.as_bytes()).expect("default bucket");
    let response = peer
        .replica_read(pb::ReplicaReadRequest {
            key: engine_key.into(),
        })
        .await?;
    Ok(response.into_inner().siblings.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_put_is_readable_from_every_node() -> anyhow::Result<()> {
    let cluster = Cluster::start(5, N3).await?;
    let mut clients = Vec::new();
    for i in 0..cluster.len() {
        clients.push(cluster.kv(i).await?);
    }
    for k in 0..100 {
        let coordinator = k % cluster.len();
        let response = clients[coordinator]
            .put(put(&format!("key-{k}"), &format!("value-{k}"), &[]))
            .await?
            .into_inner();
        assert!(response.acks >= 2, "W=2 means at least 2 acks");
    }
    for k in 0..100 {
        for client in &mut clients {
            let response = client.get(get(&format!("key-{k}"))).await?.into_inner();
            assert_eq!(live_values(&response), vec![format!("value-{k}")]);
        }
    }
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_become_siblings_and_a_put_with_their_context_resolves_them()
-> anyhow::Result<()> {
    let cluster = Cluster::start(5, N3).await?;
    let (preference, _) = replicas(&cluster, "cart");
    let mut coordinator = cluster.kv(preference[0]).await?;
    coordinator.put(put("cart", "empty", &[])).await?;
    let stale = coordinator.get(get("cart")).await?.into_inner().context;
    let mut other = coordinator.clone();
    let (a, b) = tokio::join!(
        coordinator.put(put("cart", "apples", &stale)),
        other.put(put("cart", "pears", &stale)),
    );
    a?;
    b?;
    for &replica in &preference {
        let read = cluster
            .kv(replica)
            .await?
            .get(get("cart"))
            .await?
            .into_inner();
        assert_eq!(live_values(&read), vec!["apples", "pears"]);
    }
    let merged = coordinator.get(get("cart")).await?.into_inner().context;
    coordinator
        .put(put("cart", "apples+pears", &merged))
        .await?;
    let read = cluster
        .kv(preference[1])
        .await?
        .get(get("cart"))
        .await?
        .into_inner();
    assert_eq!(live_values(&read), vec!["apples+pears"]);
    assert_eq!(read.siblings.len(), 1);
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_hides_the_key_and_its_context_revives_it() -> anyhow::Result<()> {
    let cluster = Cluster::start(5, N3).await?;
    let mut client = cluster.kv(2).await?;
    let written = client.put(put("k", "v1", &[])).await?.into_inner().context;
    let deleted = client
        .delete(pb::DeleteRequest {
            key: "k".as_bytes().to_vec().into(),
            context: written,
            ..Default::default()
        })
        .await?
        .into_inner();
    let read = client.get(get("k")).await?.into_inner();
    assert!(live_values(&read).is_empty(), "deleted key is hidden");
    assert!(read.siblings.iter().all(|s| s.tombstone));
    client.put(put("k", "v2", &deleted.context)).await?;
    let read = client.get(get("k")).await?.into_inner();
    assert_eq!(live_values(&read), vec!["v2"]);
    assert_eq!(read.siblings.len(), 1, "the tombstone was replaced");
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_down_are_covered_by_fallbacks_until_too_few_nodes_remain() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(5, N3).await?;
    let (preference, outsider) = replicas(&cluster, "k");
    let other_outsider = (0..cluster.len())
        .find(|i| !preference.contains(i) && *i != outsider)
        .expect("two nodes outside the preference list");
    let mut client = cluster.kv(outsider).await?;
    client.put(put("k", "before", &[])).await?;

    // One replica down: W=2 and R=2 are met by the other two.
    cluster.stop(preference[2]).await?;
    let context = client.get(get("k")).await?.into_inner().context;
    let written = client
        .put(put("k", "one-down", &context))
        .await?
        .into_inner();
    assert!(written.acks >= 2);
    let read = client.get(get("k")).await?.into_inner();
    assert_eq!(live_values(&read), vec!["one-down"]);

    // Two replicas down: W=3 is still met, by a fallback holding a hint.
    cluster.stop(preference[1]).await?;
    let mut w3 = put("k", "two-down", &read.context);
    w3.w = 3;
    let written = client.put(w3.clone()).await?.into_inner();
    assert_eq!(written.acks, 3, "sloppy quorum counts the fallback");

    // Two replicas and a fallback down: only 2 of the 3 nodes W=3 needs
    // remain, so the write is refused.
    cluster.stop(other_outsider).await?;
    w3.value = "refused".as_bytes().to_vec().into();
    w3.context = written.context.clone();
    let refused = client.put(w3).await.expect_err("W=3 with three nodes down");
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(
        refused.message().contains("needed 3 of 3"),
        "{}",
        refused.message()
    );

    for i in [preference[1], preference[2], other_outsider] {
        cluster.restart(i).await?;
    }
    let read = client.get(get("k")).await?.into_inner();
    let values = live_values(&read);
    assert!(
        values.contains(&"two-down".to_owned()) || values.contains(&"refused".to_owned()),
        "the acknowledged write is still there or superseded: {values:?}"
    );
    assert!(!values.contains(&"before".to_owned()) && !values.contains(&"one-down".to_owned()));
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_repair_completes_a_stale_replica() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(5, N3).await?;
    let (preference, outsider) = replicas(&cluster, "k");
    let mut client = cluster.kv(outsider).await?;
    cluster.stop(preference[2]).await?;
    client.put(put("k", "fresh", &[])).await?;
    cluster.restart(preference[2]).await?;
    assert!(
        local_copy(&cluster, preference[2], "k")
            .await?
            .versions
            .is_empty()
    );

    let mut r3 = get("k");
    r3.r = 3;
    let read = client.get(r3).await?.into_inner();
    assert_eq!(live_values(&read), vec!["fresh"]);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let copy = local_copy(&cluster, preference[2], "k").await?;
        if copy.versions.len() == 1 {
            assert_eq!(copy.versions[0].value, "fresh".as_bytes());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "read repair never arrived"
        );
        tokio::task::yield_now().await;
    }
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_with_a_reason_and_writes_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::start(5, N3).await?;
    let mut client = cluster.kv(0).await?;
    client.put(put("k", "kept", &[])).await?;

    let long_key = "x".repeat(4 * 1024 + 1);
    let refused = client
        .put(put(&long_key, "v", &[]))
        .await
        .expect_err("key too long");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("key is 4097 bytes"),
        "{}",
        refused.message()
    );

    let big = "v".repeat(4 * 1024 * 1024 + 1);
    let refused = client
        .put(put("k", &big, &[]))
        .await
        .expect_err("value too large");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("value is"),
        "{}",
        refused.message()
    );

    let refused = client
        .put(put("k", "v", b"\x01garbage"))
        .await
        .expect_err("malformed context");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("context"),
        "{}",
        refused.message()
    );

    let foreign = dynamo_node::context::encode(12345, &Clock::from_entries([(1, 1)]));
    let refused = client
        .put(put("k", "v", &foreign))
        .await
        .expect_err("foreign context");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("another cluster"),
        "{}",
        refused.message()
    );

    let mut bad_w = put("k", "v", &[]);
    bad_w.w = 4;
    let refused = client.put(bad_w).await.expect_err("w > n");
    assert_eq!(refused.code(), Code::InvalidArgument);

    let read = client.get(get("k")).await?.into_inner();
    assert_eq!(live_values(&read), vec!["kept"], "nothing was written");
    cluster.shutdown().await
}
