//! Merkle anti-entropy and tombstone collection on in-process clusters with
//! background anti-entropy off, so every pass is one the test asked for.

use std::time::Instant;

use bytes::Bytes;
use dynamo_node::codec;
use dynamo_node::ring::Replication;
use dynamo_node::storage::{Durability, NewWrite};
use dynamo_proto::v1 as pb;
use dynamo_tests::{Cluster, get, live_values, put};

const N3: Replication = Replication { n: 3, r: 2, w: 2 };
const KEYS: usize = 10_000;

fn quiet(config: &mut dynamo_node::Config) {
    config.background.anti_entropy_interval_ms = 0;
    config.background.anti_entropy_keys_per_second = 0;
}

/// Every key's sibling set on node `i`, encoded, keyed by key.
fn snapshot(cluster: &Cluster, i: usize) -> anyhow::Result<Vec<(Bytes, Vec<u8>)>> {
    let node = cluster.node(i).node();
    let ring = node.ring();
    let mut all = Vec::new();
    for partition in 0..ring.partitions() {
        for n in ring.factors() {
            for (key, _) in node.storage().scan_partition(partition, n, |_, _| true)? {
                let set = node.storage().read(partition, &key)?;
                all.push((key, codec::encode(&set)));
            }
        }
    }
    all.sort();
    Ok(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anti_entropy_repairs_one_percent_divergence_with_little_traffic() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(3, N3, quiet).await?;
    let mut client = cluster.kv(0).await?;
    let value = "v".repeat(100);
    for k in 0..KEYS {
        let mut request = put(&format!("key-{k}"), &value, &[]);
        request.w = 3;
        client.put(request).await?;
    }
    let full_copy: usize = snapshot(&cluster, 1)?
        .iter()
        .map(|(key, set)| key.len() + set.len())
        .sum();

    // Diverge node 1 from the others on 1% of the keys: newer versions
    // written only there, half of them deletes.
    let node = cluster.node(1).node();
    let ring = node.ring();
    for k in (0..KEYS).step_by(100) {
        let key = format!("key-{k}");
        let partition = ring.partition_of(key.as_bytes());
        let engine_key = ring.engine_key("", key.as_bytes()).expect("default bucket");
        let current = node.storage().read(partition, &engine_key)?;
        let write = NewWrite {
            value: Bytes::from(format!("diverged-{k}")),
            tombstone: k % 200 == 0,
            context: current.context(),
            timestamp_ms: 1,
        };
        node.storage()
            .write_new_version(partition, &engine_key, write, 64, Durability::Buffer)?;
    }
    assert_ne!(snapshot(&cluster, 0)?, snapshot(&cluster, 1)?);

    let started = Instant::now();
    let first = cluster
        .admin(1)
        .await?
        .anti_entropy(pb::AntiEntropyRequest {})
        .await?
        .into_inner();
    let repair_time = started.elapsed();
    assert_eq!(
        first.keys_repaired,
        2 * (KEYS as u64 / 100),
        "100 keys, with each of 2 peers"
    );
    let moved = first.bytes_sent + first.bytes_received;
    eprintln!(
        "anti-entropy: repaired {} key copies in {:?}; {} bytes exchanged vs {} bytes per full copy ({:.1}%)",
        first.keys_repaired,
        repair_time,
        moved,
        full_copy,
        100.0 * moved as f64 / (2 * full_copy) as f64
    );
    assert!(
        moved * 10 < full_copy as u64,
        "{moved} bytes is not far below a full copy of {full_copy}"
    );
    let reference = snapshot(&cluster, 1)?;
    assert_eq!(snapshot(&cluster, 0)?, reference);
    assert_eq!(snapshot(&cluster, 2)?, reference);
    for k in (0..KEYS).step_by(100) {
        let read = client.get(get(&format!("key-{k}"))).await?.into_inner();
        let expected: Vec<String> = if k % 200 == 0 {
            vec![]
        } else {
            vec![format!("diverged-{k}")]
        };
        assert_eq!(live_values(&read), expected);
    }

    // Identical replicas: a repeat round sends only roots.
    let second = cluster
        .admin(1)
        .await?
        .anti_entropy(pb::AntiEntropyRequest {})
        .await?
        .into_inner();
    assert_eq!(second.differing, 0);
    assert_eq!(second.keys_repaired, 0);
    let root_request = std::mem::size_of::<u32>() as u64 + 2;
    assert!(
        second.bytes_sent <= second.exchanges * root_request,
        "{} bytes sent for {} root comparisons",
        second.bytes_sent,
        second.exchanges
    );
    eprintln!(
        "anti-entropy repeat: {} exchanges, {} bytes sent, {} received",
        second.exchanges, second.bytes_sent, second.bytes_received
    );
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tombstones_are_dropped_only_when_every_replica_holds_them() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(3, N3, |config| {
        quiet(config);
        config.background.tombstone_grace_ms = 0;
        // Hints stay queued so the stopped replica misses the delete.
        config.background.hint_interval_ms = 3_600_000;
    })
    .await?;
    let mut client = cluster.kv(0).await?;
    let written = client.put(put("doomed", "value", &[])).await?.into_inner();

    cluster.stop(2).await?;
    client
        .delete(pb::DeleteRequest {
            key: Bytes::from_static(b"doomed"),
            context: written.context,
            ..Default::default()
        })
        .await?;
    cluster.restart(2).await?;

    // Node 2 still holds the live value: nothing may be collected, and
    // anti-entropy must carry the tombstone to it, not the value back.
    let ring = cluster.node(0).node().ring();
    let primary = ring.preference(ring.partition_of(b"doomed"), ring.replication().n)[0] as usize;
    let pass = cluster
        .admin(primary)
        .await?
        .anti_entropy(pb::AntiEntropyRequest {})
        .await?
        .into_inner();
    assert!(pass.keys_repaired >= 1);
    let read = client.get(get("doomed")).await?.into_inner();
    assert!(live_values(&read).is_empty(), "the deleted value came back");

    // Now every replica holds the tombstone: the next pass collects it.
    let mut dropped = pass.tombstones_dropped;
    for _ in 0..3 {
        if dropped > 0 {
            break;
        }
        dropped += cluster
            .admin(primary)
            .await?
            .anti_entropy(pb::AntiEntropyRequest {})
            .await?
            .into_inner()
            .tombstones_dropped;
    }
    assert_eq!(dropped, 1);
    for i in 0..3 {
        let node = cluster.node(i).node();
        let set = node.storage().read(
            ring.partition_of(b"doomed"),
            &ring.engine_key("", b"doomed").expect("default bucket"),
        )?;
        assert!(set.is_empty(), "node {i} still holds {set:?}");
    }
    for i in 0..3 {
        cluster
            .admin(i)
            .await?
            .anti_entropy(pb::AntiEntropyRequest {})
            .await?;
    }
    let read = client.get(get("doomed")).await?.into_inner();
    assert!(read.siblings.is_empty());
    cluster.shutdown().await
}
