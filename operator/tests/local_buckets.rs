//! Buckets declared in a manifest on the local platform: the operator
//! commits them in the ring, clients use them by name, a quorum edit is
//! committed, and removing a bucket or changing its factor is refused by
//! validation with a message naming the rule while the ring keeps both.

// Shared with local_pools.rs, which uses the rest of it.
#[allow(dead_code)]
mod local_cluster;

use std::time::Duration;

use dynamo_client::Client;
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::peer_client::PeerClient;

use local_cluster::LocalOperator;

const NAME: &str = "buckets";

/// A 3-node manifest whose `buckets:` list is `buckets` (YAML lines).
fn manifest(buckets: &[&str]) -> String {
    sized_manifest(NAME, 3, buckets)
}

/// A manifest of cluster `name` with `replicas` nodes and `buckets`.
fn sized_manifest(name: &str, replicas: usize, buckets: &[&str]) -> String {
    let mut text = format!(
        "apiVersion: dynamokv.io/v1alpha1\nkind: DynamoCluster\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  partitions: 32\n"
    );
    if !buckets.is_empty() {
        text.push_str("  buckets:\n");
        for bucket in buckets {
            text.push_str(&format!("  - {bucket}\n"));
        }
    }
    text
}

const CACHE: &str = "{name: cache, factor: 1, readQuorum: 1, writeQuorum: 1}";
const CARTS: &str = "{name: carts, factor: 3, readQuorum: 2, writeQuorum: 2, durability: sync}";

fn bucket(name: &str, n: u32, r: u32, w: u32, durability: pb::Durability) -> pb::Bucket {
    pb::Bucket {
        name: name.into(),
        n,
        r,
        w,
        durability: durability as i32,
    }
}

fn buckets_of(response: &pb::GetRingResponse) -> Vec<pb::Bucket> {
    response
        .ring
        .as_ref()
        .map(|ring| ring.buckets.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_buckets_reach_the_ring_and_stay() -> anyhow::Result<()> {
    let operator = LocalOperator::start(NAME, &manifest(&[CACHE, CARTS]));
    operator.converged(3).await?;
    let declared = [
        bucket("cache", 1, 1, 1, pb::Durability::Default),
        bucket("carts", 3, 2, 2, pb::Durability::Sync),
    ];
    let response = operator
        .ring_where("both buckets", |r| buckets_of(r) == declared)
        .await?;
    println!("ring buckets: {:?}", buckets_of(&response));

    // Clients write and read each bucket by name.
    let client = Client::connect(&operator.first_address()).await?;
    client.refresh_ring().await?;
    for name in ["cache", "carts"] {
        let bucket = client.bucket(name);
        bucket
            .put("alice", format!("in {name}").into_bytes(), None)
            .await?;
        let read = bucket.get("alice").await?;
        let values: Vec<&[u8]> = read.live().map(|s| s.value.as_ref()).collect();
        assert_eq!(values, [format!("in {name}").as_bytes()], "bucket {name}");
    }
    // The same key in the default bucket is another key.
    assert!(!client.get("alice").await?.is_found());

    // Quorums may change: the edit is committed.
    let retuned = "{name: carts, factor: 3, readQuorum: 1, writeQuorum: 3, durability: sync}";
    operator.edit(&manifest(&[CACHE, retuned]));
    let retuned_ring = [
        bucket("cache", 1, 1, 1, pb::Durability::Default),
        bucket("carts", 3, 1, 3, pb::Durability::Sync),
    ];
    operator
        .ring_where("the new carts quorums", |r| buckets_of(r) == retuned_ring)
        .await?;

    // Removing a bucket is refused when the manifest is read.
    operator.edit(&manifest(&[retuned]));
    operator
        .logged("spec.buckets no longer declares bucket \"cache\", but a bucket is never removed")
        .await?;
    // So is changing a factor.
    let lowered = "{name: carts, factor: 2, readQuorum: 1, writeQuorum: 2}";
    operator.edit(&manifest(&[CACHE, lowered]));
    operator
        .logged("spec.buckets[1].factor of bucket \"carts\" cannot change after it is declared: it is 3")
        .await?;
    // The refused edits changed nothing: the cluster runs the last valid
    // manifest, and a valid edit is still followed.
    assert_eq!(buckets_of(&operator.any_ring().await?), retuned_ring);
    operator.edit(&manifest(&[CACHE, CARTS]));
    operator
        .ring_where("the first carts quorums again", |r| {
            buckets_of(r) == declared
        })
        .await?;
    Ok(())
}

/// Keys written to each bucket by the join test.
const KEYS: usize = 20;
/// How long copies may take to settle at exactly N after a change.
const SETTLE: Duration = Duration::from_secs(90);

/// How many members of `ring` hold a copy of each of `keys` in bucket
/// `bucket` of replication factor `n`.
async fn copies(
    ring: &pb::Ring,
    bucket: &str,
    n: u32,
    keys: &[String],
) -> anyhow::Result<Vec<usize>> {
    let mut peers = Vec::new();
    for member in &ring.members {
        peers.push(PeerClient::connect(format!("http://{}", member.address)).await?);
    }
    let mut counts = Vec::with_capacity(keys.len());
    for key in keys {
        let engine = dynamo_ring::QualifiedKey {
            n: u8::try_from(n)?,
            bucket,
            key: key.as_bytes(),
        }
        .encode();
        let mut count = 0;
        for peer in &mut peers {
            let read = peer
                .replica_read(pb::ReplicaReadRequest {
                    key: engine.clone().into(),
                })
                .await?
                .into_inner();
            if read.siblings.is_some_and(|set| !set.versions.is_empty()) {
                count += 1;
            }
        }
        counts.push(count);
    }
    Ok(counts)
}

/// Waits until every key of every bucket in `buckets` (name, N) has
/// exactly N copies among the members of the ring, and returns how long
/// that took.
async fn settle_at_n(
    operator: &LocalOperator,
    buckets: &[(&str, u32)],
    keys: &[String],
) -> anyhow::Result<Duration> {
    let (_, took) = local_cluster::until("every key at exactly its N copies", SETTLE, || async {
        let ring = operator.any_ring().await?.ring.unwrap_or_default();
        let mut off = Vec::new();
        for &(bucket, n) in buckets {
            let counts = copies(&ring, bucket, n, keys).await?;
            if counts.iter().any(|&c| c != n as usize) {
                off.push(format!("{bucket:?} (N = {n}): {counts:?}"));
            }
        }
        anyhow::ensure!(off.is_empty(), "copies not at N: {}", off.join("; "));
        Ok(Some(()))
    })
    .await?;
    Ok(took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_keeps_every_bucket_at_exactly_its_n_copies() -> anyhow::Result<()> {
    const JOINED: &str = "joined";
    let operator = LocalOperator::start(JOINED, &sized_manifest(JOINED, 3, &[CACHE, CARTS]));
    operator.converged(3).await?;
    operator
        .ring_where("both buckets", |r| buckets_of(r).len() == 2)
        .await?;
    let client = Client::connect(&operator.first_address()).await?;
    client.refresh_ring().await?;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        client.put(key, b"default".to_vec(), None).await?;
        for name in ["cache", "carts"] {
            client
                .bucket(name)
                .put(key, name.as_bytes().to_vec(), None)
                .await?;
        }
    }
    let buckets = [("", 3), ("cache", 1), ("carts", 3)];
    let took = settle_at_n(&operator, &buckets, &keys).await?;
    println!("3 members: every key at exactly its bucket's N after {took:?}");

    operator.edit(&sized_manifest(JOINED, 4, &[CACHE, CARTS]));
    operator.converged(4).await?;
    let took = settle_at_n(&operator, &buckets, &keys).await?;
    println!("after the join to 4 members: every key at exactly its bucket's N after {took:?}");
    for key in &keys {
        let read = client.bucket("cache").get(key).await?;
        let values: Vec<&[u8]> = read.live().map(|s| s.value.as_ref()).collect();
        assert_eq!(
            values,
            [b"cache".as_slice()],
            "{key} in cache after the join"
        );
    }
    Ok(())
}
