//! Crash safety on real `dynamo-node` processes (docs/security.md, "Crash
//! safety and repair"): writers put with `sync` and with `buffer`
//! durability while one node is SIGKILLed at seeded random points and
//! restarted, again and again. Every write acknowledged with `sync` by all
//! three replicas (W=3) must be on the killed node's own disk after its
//! restart, read from it alone; every acknowledged write, buffered ones too,
//! must be readable at quorum.
//!
//! Replay a run with `DYNAMO_CRASH_SEED=N`; lengthen it with
//! `DYNAMO_CRASH_CYCLES=K` (default 20).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dynamo_proto::v1 as pb;
use dynamo_tests::endpoints::Endpoints;
use dynamo_tests::nemesis::env_number;
use dynamo_tests::process::{Options, ProcessCluster};
use dynamo_tests::{get, live_values, put};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The node that is killed.
const VICTIM: usize = 2;

/// Writes acknowledged in one cycle: (key, value, durability was sync).
type Acked = Vec<(String, String, bool)>;

/// Puts fresh keys through nodes 0 and 1 until stopped: even rounds with
/// `sync` durability and W=3, odd rounds buffered with W=2.
async fn write(endpoints: Endpoints, cycle: u64, stop: Arc<AtomicBool>) -> Acked {
    let mut acked = Vec::new();
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let sync = round.is_multiple_of(2);
        let key = format!("c{cycle}-{round}");
        let value = format!("v{cycle}-{round}");
        let request = pb::PutRequest {
            w: if sync { 3 } else { 2 },
            durability: if sync {
                pb::Durability::Sync
            } else {
                pb::Durability::Buffer
            } as i32,
            ..put(&key, &value, &[])
        };
        if endpoints
            .kv((round % 2) as usize)
            .put(request)
            .await
            .is_ok()
        {
            acked.push((key, value, sync));
        }
        round += 1;
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_repeated_sigkills() -> anyhow::Result<()> {
    let seed = env_number("DYNAMO_CRASH_SEED").unwrap_or_else(rand::random);
    let cycles = env_number("DYNAMO_CRASH_CYCLES").unwrap_or(20);
    println!("crash test: seed {seed} (DYNAMO_CRASH_SEED), {cycles} kill cycles");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cluster = ProcessCluster::start(3, Options::default()).await?;
    let mut all: Acked = Vec::new();
    let started = std::time::Instant::now();
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write(cluster.endpoints().clone(), cycle, Arc::clone(&stop)));
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..=400))).await;
        cluster.kill(VICTIM)?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=100))).await;
        stop.store(true, Ordering::Relaxed);
        let acked = writer.await?;
        cluster.restart(VICTIM).await?;
        // The killed node's own disk holds every write it fsynced.
        let mut replica = cluster.endpoints().peer(VICTIM);
        for (key, value, _) in acked.iter().filter(|(_, _, sync)| *sync) {
            let read = replica
                .replica_read(pb::ReplicaReadRequest {
                    key: dynamo_tests::engine_key(Options::default().replication.n, key.as_bytes()),
                })
                .await?
                .into_inner();
            let values: Vec<_> = read
                .siblings
                .iter()
                .flat_map(|set| &set.versions)
                .filter(|version| !version.tombstone)
                .map(|version| String::from_utf8_lossy(&version.value).into_owned())
                .collect();
            assert_eq!(
                values,
                std::slice::from_ref(value),
                "seed {seed}, cycle {cycle}: {key} was acknowledged with sync by all replicas"
            );
        }
        all.extend(acked);
    }
    // Every acknowledged write, buffered ones too, is readable at quorum.
    let endpoints = cluster.endpoints().clone();
    for (i, (key, value, _)) in all.iter().enumerate() {
        let read = endpoints.kv(i % 3).get(get(key)).await?.into_inner();
        assert_eq!(
            live_values(&read),
            std::slice::from_ref(value),
            "seed {seed}: {key} was acknowledged"
        );
    }
    let synced = all.iter().filter(|(_, _, sync)| *sync).count();
    println!(
        "crash test: {cycles} kills in {:?}; {synced} sync and {} buffered writes acknowledged, all readable",
        started.elapsed(),
        all.len() - synced
    );
    anyhow::ensure!(synced > 0, "no sync write was acknowledged");
    Ok(())
}
