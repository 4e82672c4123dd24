//! Gossip and failure detection on an in-process cluster with fast rounds.

use std::time::Duration;

use dynamo_node::ring::Replication;
use dynamo_proto::v1 as pb;
use dynamo_tests::Cluster;

const N3: Replication = Replication { n: 3, r: 2, w: 2 };

fn fast(config: &mut dynamo_node::Config) {
    config.background.gossip_interval_ms = 50;
    config.background.suspect_after_ms = 400;
    config.background.anti_entropy_interval_ms = 0;
}

/// Polls `check` until it returns true or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    dynamo_tests::wait::until(what, limit, || {
        let checked = check();
        async move { Ok(checked.await?.then_some(())) }
    })
    .await?;
    Ok(())
}

async fn state_of(cluster: &Cluster, observer: usize, member: &str) -> anyhow::Result<String> {
    let status = cluster
        .admin(observer)
        .await?
        .status(pb::StatusRequest {})
        .await?
        .into_inner();
    Ok(status
        .members
        .into_iter()
        .find(|m| m.member.as_ref().is_some_and(|m| m.id == member))
        .map(|m| m.state)
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_node_is_suspected_and_recovers_when_it_returns() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(3, N3, fast).await?;
    eventually(Duration::from_secs(5), "node-2 is up on node-0", || async {
        Ok(state_of(&cluster, 0, "node-2").await? == "up")
    })
    .await?;
    cluster.stop(2).await?;
    eventually(
        Duration::from_secs(5),
        "node-2 is down on node-0",
        || async { Ok(state_of(&cluster, 0, "node-2").await? == "down") },
    )
    .await?;
    assert_eq!(state_of(&cluster, 1, "node-1").await?, "self");
    cluster.restart(2).await?;
    eventually(
        Duration::from_secs(5),
        "node-2 is up again on node-0",
        || async { Ok(state_of(&cluster, 0, "node-2").await? == "up") },
    )
    .await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ring_with_a_higher_epoch_spreads_and_is_persisted() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(3, N3, fast).await?;
    let mut newer = cluster.node(0).node().ring().to_pb();
    newer.epoch = 7;
    // Same owners, new epoch: what a committed membership change looks like.
    assert!(cluster.node(0).node().adopt_ring(newer.clone())?);
    assert!(
        !cluster.node(0).node().adopt_ring(newer)?,
        "an equal epoch is not newer"
    );
    for i in 1..3 {
        eventually(
            Duration::from_secs(5),
            "the ring reached every node",
            || async { Ok(cluster.node(i).node().ring().epoch() == 7) },
        )
        .await?;
    }
    cluster.stop(1).await?;
    cluster.restart(1).await?;
    assert_eq!(
        cluster.node(1).node().ring().epoch(),
        7,
        "persisted across restart"
    );
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_back_with_an_empty_disk_streams_its_partitions_before_serving_reads()
-> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(3, N3, fast).await?;
    let mut client = cluster.kv(0).await?;
    for k in 0..300 {
        client
            .put(dynamo_tests::put(
                &format!("key-{k}"),
                &format!("value-{k}"),
                &[],
            ))
            .await?;
    }
    cluster.stop(2).await?;
    cluster.wipe(2)?;
    cluster.restart(2).await?;
    let old = cluster.node(0).node().storage().incarnation();
    assert_ne!(cluster.node(2).node().storage().incarnation(), old);

    // Reads through the recovering node with R=1 never see its empty disk.
    let mut through_recovering = cluster.kv(2).await?;
    for k in 0..300 {
        let mut request = dynamo_tests::get(&format!("key-{k}"));
        request.r = 1;
        let read = through_recovering.get(request).await?.into_inner();
        assert_eq!(
            dynamo_tests::live_values(&read),
            vec![format!("value-{k}")],
            "key-{k} read through the recovering node"
        );
    }
    eventually(Duration::from_secs(20), "node-2 recovered", || async {
        Ok(cluster.node(2).node().recovering().is_empty())
    })
    .await?;
    let node = cluster.node(2).node();
    let ring = node.ring();
    for k in 0..300 {
        let key = format!("key-{k}");
        let set = node.storage().read(
            ring.partition_of(key.as_bytes()),
            &ring.engine_key("", key.as_bytes()).expect("default bucket"),
        )?;
        assert_eq!(set.len(), 1, "{key} was streamed back");
    }
    cluster.shutdown().await
}
