//! Hinted handoff on real processes, with background anti-entropy off so
//! that hints are the only way back: writes made while a replica is dead
//! are kept as hints by fallback nodes and delivered when it comes back,
//! and a hint that outlives a collected tombstone must not revive the value
//! the tombstone deleted.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use dynamo_node::config::Background;
use dynamo_proto::v1 as pb;
use dynamo_tests::endpoints::Endpoints;
use dynamo_tests::process::{Options, ProcessCluster};
use dynamo_tests::{get, put, wait};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Mutex;

const NODES: usize = 5;
const KEYS: usize = 1000;
/// Puts in flight at once.
const CONCURRENCY: usize = 16;
/// The node that is down during the writes.
const DOWN: usize = 3;

/// Five-node clusters run one at a time, so the delivery time printed is
/// not shared with another test.
static HEAVY: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hints_bring_a_restarted_replica_every_write_it_missed() -> anyhow::Result<()> {
    let _heavy = HEAVY.lock().await;
    // Generous timeouts: every third replica write must become a hint, even
    // on a loaded machine.
    let options = Options {
        background: Background {
            anti_entropy_interval_ms: 0,
            ..Options::default().background
        },
        request_timeout_ms: 5000,
        peer_timeout_ms: 1000,
        ..Options::default()
    };
    let mut cluster = ProcessCluster::start(NODES, options).await?;
    let endpoints = cluster.endpoints().clone();
    let down_id = cluster.id(DOWN).to_owned();
    let placement = endpoints.placement(0).await?;
    let keys: Vec<String> = (0..KEYS).map(|k| format!("handoff-{k}")).collect();
    let missed: Vec<&String> = keys
        .iter()
        .filter(|key| placement.replicates(&down_id, key.as_bytes()))
        .collect();
    ensure!(
        missed.len() > KEYS / 4,
        "{down_id} replicates only {} of {KEYS} keys",
        missed.len()
    );

    cluster.kill(DOWN)?;
    let live: Vec<usize> = (0..NODES).filter(|&i| i != DOWN).collect();
    let started = Instant::now();
    put_all(&endpoints, &keys, &live).await?;
    eprintln!(
        "{KEYS} puts acknowledged with {down_id} dead in {} ms",
        started.elapsed().as_millis()
    );
    // Writes finish on the last replica slot after the answer; wait until
    // the fallbacks hold a hint for every key the dead node missed.
    let (queued, _) = wait::until(
        &format!("{} hints for {down_id}", missed.len()),
        Duration::from_secs(10),
        || async {
            let queued = endpoints.hints(&live).await?.for_target(&down_id);
            Ok((queued >= missed.len() as u64).then_some(queued))
        },
    )
    .await?;
    eprintln!(
        "{queued} hints queued for {down_id}, which replicates {} of the keys",
        missed.len()
    );

    let restarting = Instant::now();
    cluster.restart(DOWN).await?;
    let ready = restarting.elapsed();
    let (_, delivery) = wait::until(
        &format!("the hints for {down_id} to be delivered"),
        Duration::from_secs(60),
        || async {
            let left = endpoints.hints(&live).await?.for_target(&down_id);
            Ok((left == 0).then_some(()))
        },
    )
    .await?;
    eprintln!(
        "hint delivery: {queued} hints to {down_id} delivered {} ms after it was ready \
         (it took {} ms to start and answer)",
        delivery.as_millis(),
        ready.as_millis()
    );

    let mut absent = Vec::new();
    for key in &missed {
        let copy = endpoints.replica_read(DOWN, key.as_bytes()).await?;
        let expected = format!("value-of-{key}");
        if !copy
            .versions
            .iter()
            .any(|version| !version.tombstone && version.value == expected.as_bytes())
        {
            absent.push(key.as_str());
        }
    }
    assert!(
        absent.is_empty(),
        "{down_id} lacks {} of the {} keys it replicates after its hints were delivered, \
         for example {:?}",
        absent.len(),
        missed.len(),
        &absent[..absent.len().min(10)]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_hint_holds_back_tombstone_collection_and_never_revives_a_deleted_value()
-> anyhow::Result<()> {
    let _heavy = HEAVY.lock().await;
    let defaults = Options::default();
    let options = Options {
        background: Background {
            anti_entropy_interval_ms: 0,
            tombstone_grace_ms: 500,
            ..defaults.background
        },
        ..defaults
    };
    let mut cluster = ProcessCluster::start(NODES, options).await?;
    let endpoints = cluster.endpoints().clone();
    let key = "deleted-for-good";
    let placement = endpoints.placement(0).await?;
    let index = |id: &String| {
        cluster
            .index_of(id)
            .expect("ring members are cluster nodes")
    };
    let replicas: Vec<usize> = placement
        .replicas(key.as_bytes())
        .iter()
        .map(index)
        .collect();
    let fallback = index(&placement.fallbacks(key.as_bytes())[0]);
    let (first, lagging) = (replicas[0], replicas[2]);
    let lagging_id = cluster.id(lagging).to_owned();

    // A put while one replica is dead leaves a hint with the value on the
    // first fallback.
    cluster.kill(lagging)?;
    endpoints.kv(first).put(put(key, "doomed", &[])).await?;
    wait::until(
        "the fallback to hold the hint",
        Duration::from_secs(10),
        || async {
            let queued = endpoints.hints(&[fallback]).await?.for_target(&lagging_id);
            Ok((queued > 0).then_some(()))
        },
    )
    .await?;

    // The replica comes back, but the fallback cannot reach it.
    cluster.network().link(fallback, lagging).cut();
    cluster.restart(lagging).await?;
    wait::until(
        &format!("node {first} to see {lagging_id} up"),
        Duration::from_secs(10),
        || async {
            let status = endpoints.status(first).await?;
            Ok(status
                .members
                .iter()
                .any(|m| m.member.as_ref().is_some_and(|m| m.id == lagging_id) && m.state == "up")
                .then_some(()))
        },
    )
    .await?;

    // A delete that saw the value reaches all three replicas directly.
    let context = endpoints
        .kv(first)
        .get(get(key))
        .await?
        .into_inner()
        .context;
    endpoints
        .kv(first)
        .delete(pb::DeleteRequest {
            key: key.as_bytes().to_vec().into(),
            context,
            ..Default::default()
        })
        .await?;
    wait::until(
        "every replica to hold only the tombstone",
        Duration::from_secs(10),
        || async {
            for &i in &replicas {
                let copy = endpoints.replica_read(i, key.as_bytes()).await?;
                if copy.versions.is_empty() || copy.versions.iter().any(|v| !v.tombstone) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;

    // The grace period has passed, but a hint for the key is still queued on
    // the fallback: collecting the tombstone now would let that hint revive
    // the value, so anti-entropy must keep it.
    let pass = endpoints.anti_entropy(first).await?;
    assert_eq!(
        pass.tombstones_dropped, 0,
        "a tombstone was collected while a hint for {lagging_id} was queued"
    );

    // The stale hint is delivered now and lands under the tombstone; then the
    // tombstone may go.
    cluster.network().heal_all();
    endpoints
        .wait_hints_drained(Duration::from_secs(30))
        .await?;
    let (dropped, _) = wait::until(
        "the tombstone to be collected",
        Duration::from_secs(20),
        || async {
            let pass = endpoints.anti_entropy(first).await?;
            Ok((pass.tombstones_dropped > 0).then_some(pass.tombstones_dropped))
        },
    )
    .await?;
    eprintln!("{dropped} tombstone(s) collected after the hint was delivered");
    for i in 0..NODES {
        endpoints.anti_entropy(i).await?;
    }
    let mut revived = Vec::new();
    for &i in &replicas {
        let copy = endpoints.replica_read(i, key.as_bytes()).await?;
        if copy.versions.iter().any(|v| !v.tombstone) {
            revived.push(cluster.id(i).to_owned());
        }
    }
    assert!(
        revived.is_empty(),
        "the deleted value came back on {revived:?} (hint was queued on {})",
        cluster.id(fallback)
    );
    Ok(())
}

/// Puts every key once, `CONCURRENCY` at a time, through the `live` nodes
/// in turn; each must be acknowledged.
async fn put_all(endpoints: &Endpoints, keys: &[String], live: &[usize]) -> anyhow::Result<()> {
    futures::stream::iter(keys.iter().enumerate())
        .map(|(k, key)| {
            let mut kv = endpoints.kv(live[k % live.len()]);
            async move {
                kv.put(put(key, &format!("value-of-{key}"), &[]))
                    .await
                    .with_context(|| format!("put {key}"))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}
