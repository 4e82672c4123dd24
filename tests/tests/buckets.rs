//! Buckets on an in-process cluster: a bucket with N = 1 and one with N = 5
//! on five nodes keep their own preference lists, quorums and replica
//! counts through an outage of two nodes and anti-entropy afterwards.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use dynamo_node::ring::{Replication, Ring};
use dynamo_proto::v1 as pb;
use dynamo_tests::{Cluster, live_values};

const N3: Replication = Replication { n: 3, r: 2, w: 2 };
const SOLO: &str = "solo";
const ALL: &str = "all";
const KEYS: usize = 40;

fn quiet(config: &mut dynamo_node::Config) {
    config.background.anti_entropy_interval_ms = 0;
}

fn bucket(name: &str, n: u32, r: u32, w: u32) -> pb::Bucket {
    pb::Bucket {
        name: name.to_owned(),
        n,
        r,
        w,
        durability: pb::Durability::Default.into(),
    }
}

/// Commits the ring of node 0 with `buckets` and one epoch more on every
/// running node in `nodes`.
async fn declare(
    cluster: &Cluster,
    nodes: &[usize],
    buckets: Vec<pb::Bucket>,
) -> anyhow::Result<()> {
    let mut ring = cluster.node(0).node().ring().to_pb();
    ring.epoch += 1;
    ring.buckets = buckets;
    for &i in nodes {
        cluster
            .admin(i)
            .await?
            .commit_ring(pb::RingChange {
                ring: Some(ring.clone()),
            })
            .await
            .with_context(|| format!("CommitRing on node {i}"))?;
    }
    Ok(())
}

/// How many of the running nodes hold a live copy of `key` of `bucket`.
fn copies(cluster: &Cluster, running: &[usize], bucket: &str, key: &str) -> anyhow::Result<usize> {
    let mut count = 0;
    for &i in running {
        let node = cluster.node(i).node();
        let ring: std::sync::Arc<Ring> = node.ring();
        let engine_key = ring
            .engine_key(bucket, key.as_bytes())
            .context("declared")?;
        let partition = ring.engine_partition(&engine_key)?;
        if node
            .storage()
            .read(partition, &engine_key)?
            .live()
            .next()
            .is_some()
        {
            count += 1;
        }
    }
    Ok(count)
}

fn put(bucket: &str, key: &str, value: &str, w: u32) -> pb::PutRequest {
    pb::PutRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        bucket: bucket.to_owned(),
        w,
        ..pb::PutRequest::default()
    }
}

fn get(bucket: &str, key: &str, r: u32) -> pb::GetRequest {
    pb::GetRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        bucket: bucket.to_owned(),
        r,
        ..pb::GetRequest::default()
    }
}

/// Runs anti-entropy on every node in `nodes`, `rounds` times.
async fn anti_entropy(cluster: &Cluster, nodes: &[usize], rounds: usize) -> anyhow::Result<()> {
    for _ in 0..rounds {
        for &i in nodes {
            cluster
                .admin(i)
                .await?
                .anti_entropy(pb::AntiEntropyRequest {})
                .await
                .with_context(|| format!("AntiEntropy on node {i}"))?;
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_keep_their_own_n_through_an_outage_and_anti_entropy() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(5, N3, quiet).await?;
    let everyone = [0, 1, 2, 3, 4];
    cluster.wait_until_all_up(Duration::from_secs(20)).await?;
    declare(
        &cluster,
        &everyone,
        vec![bucket(SOLO, 1, 1, 1), bucket(ALL, 5, 2, 2)],
    )
    .await?;

    // The ring shows both buckets and their preference lists.
    let response = cluster
        .admin(1)
        .await?
        .get_ring(pb::GetRingRequest {})
        .await?
        .into_inner();
    let names: Vec<(String, u32)> = response
        .ring
        .context("a ring")?
        .buckets
        .into_iter()
        .map(|bucket| (bucket.name, bucket.n))
        .collect();
    assert_eq!(names, [("all".to_owned(), 5), ("solo".to_owned(), 1)]);
    let ring = cluster.node(0).node().ring();
    for p in 0..ring.partitions() {
        assert_eq!(ring.preference(p, 1).len(), 1);
        assert_eq!(ring.preference(p, 5).len(), 5);
        assert_eq!(ring.preference(p, 3), &ring.preference(p, 5)[..3]);
    }

    // A bucket nobody declared, and a ring that changes a bucket's N.
    let mut kv = cluster.kv(0).await?;
    let refused = kv
        .get(get("nowhere", "k", 0))
        .await
        .expect_err("undeclared");
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    assert!(
        refused.message().contains("bucket nowhere is not declared"),
        "{}",
        refused.message()
    );
    let refused = kv.put(put(SOLO, "k", "v", 2)).await.expect_err("w above n");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let changed = declare(
        &cluster,
        &[0],
        vec![bucket(SOLO, 2, 1, 1), bucket(ALL, 5, 2, 2)],
    )
    .await;
    let message = format!("{:#}", changed.expect_err("n never changes"));
    assert!(message.contains("changes the n of bucket"), "{message}");

    for i in 0..KEYS {
        for name in [SOLO, ALL] {
            kv.put(put(name, &format!("key-{i}"), "v1", 0)).await?;
        }
    }
    anti_entropy(&cluster, &everyone, 1).await?;
    for i in 0..KEYS {
        let key = format!("key-{i}");
        assert_eq!(copies(&cluster, &everyone, SOLO, &key)?, 1, "{key}");
        assert_eq!(copies(&cluster, &everyone, ALL, &key)?, 5, "{key}");
    }

    // Two nodes down: the N = 5 bucket still reads and writes at R = W = 2;
    // an N = 1 key answers only when its one replica is up.
    let down = [3, 4];
    let down_ids: Vec<String> = down
        .iter()
        .map(|&i| cluster.node(i).node().id().to_owned())
        .collect();
    for &i in &down {
        cluster.stop(i).await?;
    }
    let mut waits = Vec::new();
    let (mut unavailable, mut answered) = (0, 0);
    for i in 0..KEYS {
        let key = format!("key-{i}");
        let started = Instant::now();
        kv.put(put(ALL, &key, "v2", 2))
            .await
            .with_context(|| format!("put {key}"))?;
        let read = kv
            .get(get(ALL, &key, 2))
            .await
            .with_context(|| format!("get {key}"))?;
        waits.push(started.elapsed());
        // A blind write adds a sibling next to v1.
        assert!(
            live_values(&read.into_inner()).contains(&"v2".to_owned()),
            "{key}"
        );
        let solo = ring
            .member(
                ring.preference(
                    ring.engine_partition(&ring.engine_key(SOLO, key.as_bytes()).context("solo")?)?,
                    1,
                )[0],
            )
            .id
            .clone();
        let answer = kv.get(get(SOLO, &key, 0)).await;
        if down_ids.contains(&solo) {
            let status = answer.expect_err("its only replica is down");
            assert_eq!(status.code(), tonic::Code::Unavailable, "{key}: {status:?}");
            unavailable += 1;
        } else {
            assert_eq!(live_values(&answer?.into_inner()), ["v1"], "{key}");
            answered += 1;
        }
    }
    assert!(
        unavailable > 0 && answered > 0,
        "{unavailable} / {answered}"
    );
    println!("n=1 bucket with two nodes down: {unavailable} keys UNAVAILABLE, {answered} answered");
    waits.sort();
    println!(
        "n=5 bucket, two of five nodes down, put+get at W=R=2: p50 {:?} p99 {:?} max {:?}",
        percentile(&waits, 0.5),
        percentile(&waits, 0.99),
        waits[waits.len() - 1]
    );

    // Back up: anti-entropy brings every bucket to exactly its N copies.
    for &i in &down {
        cluster.restart(i).await?;
    }
    cluster.wait_until_all_up(Duration::from_secs(30)).await?;
    anti_entropy(&cluster, &everyone, 2).await?;
    let mut counts = (0, 0);
    for i in 0..KEYS {
        let key = format!("key-{i}");
        assert_eq!(copies(&cluster, &everyone, SOLO, &key)?, 1, "{key}");
        assert_eq!(copies(&cluster, &everyone, ALL, &key)?, 5, "{key}");
        counts.0 += 1;
        counts.1 += 5;
    }
    println!(
        "after the outage and anti-entropy: {KEYS} n=1 keys with {} copies, {KEYS} n=5 keys with {} copies",
        counts.0, counts.1
    );
    cluster.shutdown().await
}
