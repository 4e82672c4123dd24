//! Observability of running nodes: `/metrics` scraped and parsed with a
//! Prometheus text parser after a known workload, `/healthz` and `/readyz`
//! through an empty-disk recovery.

use std::net::SocketAddr;
use std::time::Duration;

use dynamo_node::config::Config;
use dynamo_node::ring::Replication;
use dynamo_proto::v1 as pb;
use dynamo_tests::http::{self, Scrape};
use dynamo_tests::{Cluster, dynamoctl_json, get, put, wait};

const N3: Replication = Replication { n: 3, r: 2, w: 2 };

/// How long counters may take to settle after the workload (replication
/// tails, read repair, hint delivery).
const SETTLE: Duration = Duration::from_secs(20);

const LATENCY: &str = "dynamo_request_duration_seconds";
const QUORUM: &str = "dynamo_quorum_outcomes_total";

/// Every node serves HTTP on a port of its own; background anti-entropy is
/// off so its counters move only when a test asks for a pass.
fn with_http(config: &mut Config) {
    config.http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.background.anti_entropy_interval_ms = 0;
    config.background.hint_interval_ms = 100;
    config.background.gossip_interval_ms = 100;
}

fn http_address(cluster: &Cluster, i: usize) -> SocketAddr {
    cluster.http_address(i).expect("the node serves HTTP")
}

/// Waits until `condition` holds on node `i`'s scrape, and returns that scrape.
async fn scrape_until(
    address: SocketAddr,
    what: &str,
    condition: impl Fn(&Scrape) -> bool,
) -> anyhow::Result<Scrape> {
    let (scrape, _) = wait::until(what, SETTLE, || async {
        let scrape = Scrape::fetch(address).await?;
        anyhow::ensure!(condition(&scrape), "not yet: {scrape:?}");
        Ok(Some(scrape))
    })
    .await?;
    Ok(scrape)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_a_known_workload() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(3, N3, with_http).await?;
    let mut client = cluster.kv(0).await?;
    // With three nodes and N=3 every node replicates every key, so node 0
    // coordinates everything sent to it.
    const PUTS: usize = 20;
    for k in 0..PUTS {
        client.put(put(&format!("key-{k}"), "value", &[])).await?;
    }
    // Two blind writes of one key: two siblings.
    client.put(put("twins", "left", &[])).await?;
    client.put(put("twins", "right", &[])).await?;
    const DELETES: usize = 5;
    for k in 0..DELETES {
        let found = client.get(get(&format!("key-{k}"))).await?.into_inner();
        client
            .delete(pb::DeleteRequest {
                key: format!("key-{k}").into_bytes().into(),
                context: found.context,
                ..Default::default()
            })
            .await?;
    }
    // Gets of: DELETES keys above (1 version each), 10 live keys (1 each),
    // the twins (2), a missing key (0), the deleted keys again (1 tombstone
    // each).
    for k in DELETES..DELETES + 10 {
        client.get(get(&format!("key-{k}"))).await?;
    }
    let twins = client.get(get("twins")).await?.into_inner();
    assert_eq!(twins.siblings.len(), 2, "blind writes leave siblings");
    let missing = client.get(get("never-written")).await?.into_inner();
    assert!(missing.siblings.is_empty());
    for k in 0..DELETES {
        client.get(get(&format!("key-{k}"))).await?;
    }
    let puts = PUTS + 2;
    let gets = DELETES + 10 + 1 + 1 + DELETES;
    let replica_writes = puts + DELETES;

    let coordinator = Scrape::fetch(http_address(&cluster, 0)).await?;
    let role =
        |operation: &'static str, role: &'static str| [("operation", operation), ("role", role)];
    assert_eq!(
        coordinator.count(LATENCY, &role("put", "coordinator")),
        Some(puts as f64)
    );
    assert_eq!(
        coordinator.count(LATENCY, &role("get", "coordinator")),
        Some(gets as f64)
    );
    assert_eq!(
        coordinator.count(LATENCY, &role("delete", "coordinator")),
        Some(DELETES as f64)
    );
    assert_eq!(
        coordinator.count(LATENCY, &role("get", "forwarder")),
        Some(0.0)
    );
    let buckets = coordinator
        .buckets(LATENCY, &role("put", "coordinator"))
        .expect("put latency histogram");
    let bounds: Vec<f64> = buckets.iter().map(|&(le, _)| le).collect();
    for bound in [0.0001, 0.00015, 0.001, 0.01, 0.1, 1.0] {
        assert!(bounds.contains(&bound), "no bucket at {bound}s: {bounds:?}");
    }
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, puts as f64)));
    for (operation, expected) in [("put", puts), ("get", gets), ("delete", DELETES)] {
        assert_eq!(
            coordinator.value(QUORUM, &[("operation", operation), ("outcome", "ok")]),
            Some(expected as f64),
            "{operation} ok"
        );
        for outcome in ["unavailable", "timeout"] {
            assert_eq!(
                coordinator.value(QUORUM, &[("operation", operation), ("outcome", outcome)]),
                Some(0.0),
                "{operation} {outcome}"
            );
        }
    }
    let siblings = coordinator
        .buckets("dynamo_get_siblings", &[])
        .expect("siblings histogram");
    let at = |le: f64| {
        siblings
            .iter()
            .find(|&&(bound, _)| bound == le)
            .map(|&(_, count)| count)
    };
    assert_eq!(at(0.0), Some(1.0), "one get found nothing");
    assert_eq!(
        at(1.0),
        Some((gets - 1) as f64),
        "one get found two versions"
    );
    assert_eq!(at(2.0), Some(gets as f64));
    assert_eq!(
        coordinator.value("dynamo_get_siblings_sum", &[]),
        Some((DELETES + 10 + 2 + DELETES) as f64)
    );
    assert_eq!(coordinator.value("dynamo_ring_epoch", &[]), Some(1.0));
    assert!(coordinator.value("dynamo_storage_keys", &[("keyspace", "data")]) > Some(0.0));
    assert!(coordinator.value("dynamo_storage_journal_bytes", &[]) > Some(0.0));
    assert_eq!(coordinator.total("dynamo_hints_queued", &[]), 0.0);

    // Replicas: a get asks the replicas R needs (one besides the
    // coordinator) and hedges to the other when that one is slow; every
    // write reaches both (read repair may add writes, never remove them).
    let (reads, _) = wait::until("replica calls", SETTLE, || async {
        let mut reads = 0.0;
        for i in 1..3 {
            let replica = Scrape::fetch(http_address(&cluster, i)).await?;
            let writes = replica.count(LATENCY, &role("write", "replica"));
            anyhow::ensure!(
                writes >= Some(replica_writes as f64),
                "node {i} served {writes:?} replica writes"
            );
            assert!(writes <= Some((replica_writes + gets) as f64));
            assert_eq!(
                replica.count(LATENCY, &role("put", "coordinator")),
                Some(0.0),
                "node {i} coordinated nothing"
            );
            reads += replica
                .count(LATENCY, &role("read", "replica"))
                .unwrap_or(0.0);
        }
        Ok((reads >= gets as f64).then_some(reads))
    })
    .await?;
    assert!(
        reads <= 2.0 * gets as f64,
        "{reads} replica reads for {gets} gets"
    );

    // Gossip rounds and the failure detector's view.
    scrape_until(http_address(&cluster, 0), "gossip", |s| {
        s.value("dynamo_gossip_rounds_total", &[("state", "ok")]) >= Some(1.0)
            && s.value("dynamo_members", &[("state", "up")]) == Some(2.0)
            && s.value("dynamo_suspected_members", &[]) == Some(0.0)
    })
    .await?;

    // An anti-entropy pass is counted as the Admin call reports it.
    let before = Scrape::fetch(http_address(&cluster, 1)).await?;
    let pass = cluster
        .admin(1)
        .await?
        .anti_entropy(pb::AntiEntropyRequest {})
        .await?
        .into_inner();
    let after = Scrape::fetch(http_address(&cluster, 1)).await?;
    let delta = |metric: &str, labels: &[(&str, &str)]| {
        after.value(metric, labels).unwrap_or(0.0) - before.value(metric, labels).unwrap_or(0.0)
    };
    assert_eq!(delta("dynamo_anti_entropy_rounds_total", &[]), 1.0);
    assert!(pass.exchanges > 0);
    assert_eq!(
        delta("dynamo_anti_entropy_exchanges_total", &[]),
        pass.exchanges as f64
    );
    assert_eq!(
        delta("dynamo_anti_entropy_keys_repaired_total", &[]),
        pass.keys_repaired as f64
    );
    assert_eq!(
        delta("dynamo_anti_entropy_bytes_total", &[("direction", "sent")]),
        pass.bytes_sent as f64
    );
    assert_eq!(
        delta(
            "dynamo_anti_entropy_bytes_total",
            &[("direction", "received")]
        ),
        pass.bytes_received as f64
    );
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hints_are_counted_per_target_when_stored_and_delivered() -> anyhow::Result<()> {
    // Only node-3's slots may turn to the one fallback of a 4-node ring. A
    // healthy replica whose call fails would take that fallback first and
    // leave node-3's slot without one, so nothing here may fail a healthy
    // replica on a loaded machine: no latency deadline below the call's own,
    // no suspicion from heartbeats, none left from calls that failed while
    // the cluster started (waited out below), and calls that may take
    // seconds (the other tests of this binary run at the same time on two
    // cores). The stopped node refuses connections, so its calls still fail
    // at once.
    let mut cluster = Cluster::start_with(4, N3, |config| {
        with_http(config);
        config.request_timeout_ms = 20_000;
        config.peer_timeout_ms = 10_000;
        config.peer_calls.deadline_floor_ms = config.peer_timeout_ms;
        config.background.phi_threshold = 1e6;
        config.background.suspect_after_ms = 60_000;
    })
    .await?;
    cluster.wait_until_all_up(SETTLE).await?;
    let ring = cluster.node(0).node().ring();
    let down = ring.index_of("node-3").expect("member");
    cluster.stop(3).await?;
    let mut client = cluster.kv(0).await?;
    let mut hinted = 0;
    for k in 0..40 {
        let key = format!("key-{k}");
        client.put(put(&key, "value", &[])).await?;
        if ring
            .preference(ring.partition_of(key.as_bytes()), ring.replication().n)
            .contains(&down)
        {
            hinted += 1;
        }
    }
    assert!(hinted > 0, "some keys are replicated by node-3");
    let target = [("target", "node-3")];
    let scrapes = |cluster: &Cluster| {
        let addresses: Vec<SocketAddr> = (0..3).map(|i| http_address(cluster, i)).collect();
        async move {
            let mut scrapes = Vec::new();
            for address in addresses {
                scrapes.push(Scrape::fetch(address).await?);
            }
            anyhow::Ok(scrapes)
        }
    };
    let sum = |scrapes: &[Scrape], metric: &str| -> f64 {
        scrapes.iter().map(|s| s.total(metric, &target)).sum()
    };
    let (queued, _) = wait::until("hints for node-3", SETTLE, || async {
        let scrapes = scrapes(&cluster).await?;
        let stored: Vec<f64> = scrapes
            .iter()
            .map(|s| s.total("dynamo_hints_stored_total", &target))
            .collect();
        if stored.iter().sum::<f64>() == f64::from(hinted) {
            Ok(Some(scrapes))
        } else {
            anyhow::bail!(
                "{hinted} keys have node-3 as a replica; hints stored by node: {stored:?}"
            )
        }
    })
    .await?;
    assert_eq!(sum(&queued, "dynamo_hints_queued"), f64::from(hinted));
    assert_eq!(sum(&queued, "dynamo_hints_delivered_total"), 0.0);

    cluster.restart(3).await?;
    let (delivered, _) = wait::until("hints delivered to node-3", SETTLE, || async {
        let scrapes = scrapes(&cluster).await?;
        Ok((sum(&scrapes, "dynamo_hints_delivered_total") == f64::from(hinted)).then_some(scrapes))
    })
    .await?;
    assert_eq!(sum(&delivered, "dynamo_hints_queued"), 0.0);
    assert_eq!(
        sum(&delivered, "dynamo_hints_stored_total"),
        f64::from(hinted)
    );
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_is_unavailable_while_an_empty_disk_recovers() -> anyhow::Result<()> {
    // Streaming is slowed down so that the recovery can be watched.
    let mut cluster = Cluster::start_with(3, N3, |config| {
        with_http(config);
        config.background.transfer_bytes_per_second = 100_000;
    })
    .await?;
    for i in 0..3 {
        let address = http_address(&cluster, i);
        let health = http::get(address, "/healthz").await?;
        assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
        let ready = http::get(address, "/readyz").await?;
        assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    }
    let mut client = cluster.kv(0).await?;
    let value = "v".repeat(2000);
    for k in 0..150 {
        client.put(put(&format!("key-{k}"), &value, &[])).await?;
    }
    cluster.stop(2).await?;
    cluster.wipe(2)?;
    cluster.restart(2).await?;
    let address = http_address(&cluster, 2);
    let ready = http::get(address, "/readyz").await?;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.starts_with("recovering: streaming back "),
        "{}",
        ready.body
    );
    assert_eq!(http::get(address, "/healthz").await?.status, 200);
    let ring = http::get(address, "/api/ring").await?;
    assert_eq!(ring.status, 200, "{}", ring.body);
    let view: serde_json::Value = serde_json::from_str(&ring.body)?;
    assert!(view["recovering"].as_u64() > Some(0), "{view}");
    assert_eq!(view["owners"].as_array().map(Vec::len), Some(64));
    let scrape = Scrape::fetch(address).await?;
    assert!(scrape.value("dynamo_recovering_partitions", &[]) > Some(0.0));
    wait::until("recovery to finish", Duration::from_secs(60), || async {
        Ok((http::get(address, "/readyz").await?.status == 200).then_some(()))
    })
    .await?;
    let scrape = Scrape::fetch(address).await?;
    assert_eq!(scrape.value("dynamo_recovering_partitions", &[]), Some(0.0));
    assert!(scrape.value("dynamo_stream_keys_received_total", &[]) >= Some(150.0));
    assert!(
        scrape.value("dynamo_stream_bytes_received_total", &[]) >= Some(150.0 * 2000.0),
        "every value was streamed back"
    );
    assert_eq!(
        scrape.value("dynamo_stream_partitions_completed_total", &[]),
        Some(64.0)
    );
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamoctl_status_json_says_where_each_node_serves_metrics() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(3, N3, |config| {
        if config.id != "node-2" {
            with_http(config);
        }
    })
    .await?;
    let endpoint = cluster.address(0).to_string();
    let rows: Vec<serde_json::Value> =
        serde_json::from_value(dynamoctl_json(&endpoint, &["status"]).await?)?;
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let member = row["member"].as_str().unwrap_or_default();
        if member == "node-2" {
            assert!(row["metrics"].is_null(), "node-2 has no HTTP server: {row}");
            continue;
        }
        let i: usize = member.trim_start_matches("node-").parse()?;
        let expected = format!("http://{}/metrics", http_address(&cluster, i));
        assert_eq!(row["metrics"], expected.as_str(), "{row}");
        // The URL works: it is a Prometheus scrape of that very node.
        let scrape = Scrape::fetch(http_address(&cluster, i)).await?;
        assert_eq!(
            scrape.value("dynamo_partitions_owned", &[]),
            row["partitions"].as_f64()
        );
    }
    cluster.shutdown().await
}
