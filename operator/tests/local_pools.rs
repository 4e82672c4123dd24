//! Node pools on the local platform: a cluster of two pools, each in its
//! own zone, two members of weight 1 and one of weight 2, gives the heavy
//! member twice the partitions and twice the requests of a uniform load;
//! its ports survive an operator restart, and the members of a pool
//! removed from the manifest leave and stop.

// Shared with local_buckets.rs, which uses the rest of it.
#[allow(dead_code)]
mod local_cluster;

use std::collections::BTreeMap;

use dynamo_client::Client;
use dynamo_operator::driver::weight;
use dynamo_proto::v1 as pb;

use local_cluster::{LocalOperator, metrics, sample};

const NAME: &str = "pools";
const PARTITIONS: u32 = 64;
/// Keys of the uniform load.
const KEYS: usize = 4000;
/// Concurrent writers of the load.
const WRITERS: usize = 16;

/// A manifest with N = 1, so that a member coordinates exactly the keys of
/// the partitions it owns, and the given pools (name, replicas, weight).
fn manifest(pools: &[(&str, i32, u32)]) -> String {
    let replicas: i32 = pools.iter().map(|(_, replicas, _)| replicas).sum();
    let mut text = format!(
        "apiVersion: dynamokv.io/v1alpha1\nkind: DynamoCluster\nmetadata:\n  name: {NAME}\nspec:\n  replicas: {replicas}\n  partitions: {PARTITIONS}\n  replication:\n    factor: 1\n    readQuorum: 1\n    writeQuorum: 1\n  pools:\n"
    );
    for (name, replicas, weight) in pools {
        text.push_str(&format!(
            "  - name: {name}\n    replicas: {replicas}\n    weight: {weight}\n    zone: zone-{name}\n"
        ));
    }
    text
}

/// Partitions owned by each member id.
fn owned(ring: &pb::Ring) -> BTreeMap<String, usize> {
    let mut owned: BTreeMap<String, usize> =
        ring.members.iter().map(|m| (m.id.clone(), 0)).collect();
    for &owner in &ring.owners {
        if let Some(member) = ring.members.get(owner as usize) {
            *owned.entry(member.id.clone()).or_default() += 1;
        }
    }
    owned
}

/// Puts `KEYS` distinct keys with `WRITERS` writers.
async fn uniform_load(client: &Client) -> anyhow::Result<()> {
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let client = client.clone();
        writers.spawn(async move {
            for i in (writer..KEYS).step_by(WRITERS) {
                client
                    .put(
                        format!("user:{i:08}"),
                        format!("value-{i}").into_bytes(),
                        None,
                    )
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = writers.join_next().await {
        result??;
    }
    Ok(())
}

/// Puts coordinated by each member, read from its `/metrics`.
async fn coordinated_puts(ring: &pb::Ring) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut puts = BTreeMap::new();
    for member in &ring.members {
        let text = metrics(&member.address).await?;
        let count = sample(
            &text,
            "dynamo_request_duration_seconds_count",
            &[r#"operation="put""#, r#"role="coordinator""#],
        );
        puts.insert(member.id.clone(), count);
    }
    Ok(puts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_pools_own_and_serve_in_proportion() -> anyhow::Result<()> {
    let mut operator = LocalOperator::start(NAME, &manifest(&[("small", 2, 1), ("big", 1, 2)]));
    operator.converged(3).await?;
    let response = operator
        .ring_where("three members and no change in flight", |r| {
            r.ring
                .as_ref()
                .is_some_and(|ring| ring.members.len() == 3 && ring.next_owners.is_empty())
        })
        .await?;
    let ring = response.ring.expect("a ring");

    // Members are named by their pool and carry its weight and zone.
    let placed: BTreeMap<&str, (u32, &str)> = ring
        .members
        .iter()
        .map(|m| (m.id.as_str(), (weight(m), m.zone.as_str())))
        .collect();
    assert_eq!(
        placed,
        BTreeMap::from([
            ("pools-big-0", (2, "zone-big")),
            ("pools-small-0", (1, "zone-small")),
            ("pools-small-1", (1, "zone-small"))
        ])
    );

    // Each member owns its weighted share, within one partition.
    let counts = owned(&ring);
    println!("partitions owned: {counts:?}");
    let total_weight: u32 = ring.members.iter().map(weight).sum();
    for member in &ring.members {
        let share = f64::from(PARTITIONS * weight(member)) / f64::from(total_weight);
        let count = counts[&member.id] as f64;
        assert!(
            (count - share).abs() <= 1.0,
            "{} owns {count} partitions, its share is {share}: {counts:?}",
            member.id
        );
    }

    // A uniform load: the heavy member coordinates about twice the puts.
    let client = Client::connect(&operator.first_address()).await?;
    client.refresh_ring().await?;
    let before = coordinated_puts(&ring).await?;
    uniform_load(&client).await?;
    let after = coordinated_puts(&ring).await?;
    let served: BTreeMap<&str, f64> = after
        .iter()
        .map(|(id, count)| (id.as_str(), count - before.get(id).copied().unwrap_or(0.0)))
        .collect();
    let light = (served["pools-small-0"] + served["pools-small-1"]) / 2.0;
    let ratio = served["pools-big-0"] / light;
    println!("coordinated puts: {served:?}; weight 2 / weight 1 = {ratio:.2}");
    assert!(
        served.values().sum::<f64>() >= KEYS as f64,
        "every put is counted: {served:?}"
    );
    assert!(
        (1.5..=2.6).contains(&ratio),
        "the weight-2 member served {ratio:.2} times a weight-1 member: {served:?}"
    );

    // A restarted operator finds every member on the port it had.
    let mark = operator.log_mark();
    operator.restart();
    operator
        .logged_after(mark, "DynamoKV is running with 3 members")
        .await?;
    operator.converged(3).await?;
    let again = operator.any_ring().await?;
    let addresses = |ring: &pb::Ring| -> Vec<(String, String)> {
        ring.members
            .iter()
            .map(|m| (m.id.clone(), m.address.clone()))
            .collect()
    };
    assert_eq!(
        addresses(&again.ring.expect("a ring")),
        addresses(&ring),
        "ports stay across operator restarts"
    );

    // The big pool goes away: a new small member joins, the big one leaves
    // and stops although the spec no longer names its pool.
    operator.edit(&manifest(&[("small", 3, 1)]));
    let response = operator
        .ring_where("the big pool gone", |r| {
            r.ring.as_ref().is_some_and(|ring| {
                let mut ids: Vec<&str> = ring.members.iter().map(|m| m.id.as_str()).collect();
                ids.sort_unstable();
                ring.next_owners.is_empty()
                    && ids == ["pools-small-0", "pools-small-1", "pools-small-2"]
            })
        })
        .await?;
    operator.converged(3).await?;
    let big = operator.member_dir("pools-big-0");
    operator
        .wait_for("pools-big-0 stopped and removed", || !big.exists())
        .await?;
    let ring = response.ring.expect("a ring");
    assert!(ring.members.iter().all(|m| weight(m) == 1));
    println!("after removing the big pool: {:?}", owned(&ring));
    Ok(())
}
