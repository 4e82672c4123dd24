//! Fault injection on real `dynamo-node` processes: a seeded nemesis kills,
//! pauses and partitions nodes while clients write, then the healed cluster
//! must hold every acknowledged write, identically on every replica, and
//! keep deleted keys deleted.
//!
//! Replay a run with `DYNAMO_FAULT_SEED=N`; lengthen it with
//! `DYNAMO_FAULT_SECONDS=S` or `DYNAMO_FAULT_STEPS=K`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use dynamo_node::config::Background;
use dynamo_node::ring::Replication;
use dynamo_proto::v1 as pb;
use dynamo_tests::history::{Copy, History, check_key, converged, with_at_most_one_faulty_replica};
use dynamo_tests::inspect::Placement;
use dynamo_tests::nemesis::{self, Schedule};
use dynamo_tests::process::{Options, ProcessCluster};
use dynamo_tests::workload::{Client, Keys};
use dynamo_tests::{get, live_values, put, wait};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Nemesis length when `DYNAMO_FAULT_SECONDS` is not set.
const DEFAULT_FAULT_TIME: Duration = Duration::from_secs(25);
/// Nemesis length of the variant with background anti-entropy.
const SHORT_FAULT_TIME: Duration = Duration::from_secs(15);
const NODES: usize = 5;
/// No acknowledged request whose coordinator was healthy, sent while at
/// most one node was faulty, may take longer (docs/design-notes.md,
/// "Latency under faults"): twice the nodes' request deadline
/// (`request_timeout_ms`, 1.5 s in these tests), room for a loaded 2-core
/// machine. Replica calls end on their latency-based deadline (at most
/// `peer_timeout_ms`, 300 ms here), so a healthy coordinator answers well
/// within it.
const LATENCY_BOUND: Duration = Duration::from_secs(3);
const CLIENTS: usize = 4;
const OWN_KEYS: usize = 10;
const SHARED_KEYS: usize = 4;
/// Most anti-entropy rounds (a pass on every node) before checking.
const MAX_ANTI_ENTROPY_ROUNDS: usize = 10;
/// Time after which no further anti-entropy round starts.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Five-node clusters run one at a time: the machine may have two cores.
static HEAVY: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_cluster_serves_quorum_reads_with_a_node_killed() -> anyhow::Result<()> {
    let options = Options {
        replication: Replication { n: 3, r: 2, w: 2 },
        ..Options::default()
    };
    let mut cluster = ProcessCluster::start(3, options).await?;
    let endpoints = cluster.endpoints().clone();
    endpoints.kv(0).put(put("smoke", "one", &[])).await?;
    let read = endpoints.kv(1).get(get("smoke")).await?.into_inner();
    assert_eq!(live_values(&read), ["one"]);

    cluster.kill(2)?;
    let read = endpoints.kv(0).get(get("smoke")).await?.into_inner();
    assert_eq!(live_values(&read), ["one"], "R=2 of the two live replicas");
    endpoints
        .kv(1)
        .put(put("smoke", "two", &read.context))
        .await?;

    cluster.restart(2).await?;
    let read = endpoints.kv(2).get(get("smoke")).await?.into_inner();
    assert_eq!(live_values(&read), ["two"]);

    // The nodes talk through the proxies: isolating one is noticed.
    cluster.network().isolate(2);
    let (_, noticed) = wait::until(
        "node-0 to stop hearing node-2",
        Duration::from_secs(10),
        || {
            let endpoints = endpoints.clone();
            async move {
                let status = endpoints.status(0).await?;
                Ok(status
                    .members
                    .iter()
                    .any(|m| m.member.as_ref().is_some_and(|m| m.id == "node-2") && m.state != "up")
                    .then_some(()))
            }
        },
    )
    .await?;
    eprintln!(
        "node-0 noticed the partition of node-2 after {} ms",
        noticed.as_millis()
    );
    cluster.network().heal_all();
    endpoints.wait_all_up(Duration::from_secs(10)).await?;
    let status = cluster.terminate(0).await?;
    assert!(status.success(), "SIGTERM stops a node cleanly: {status}");
    Ok(())
}

#[test]
fn a_panicking_test_leaves_no_node_process_behind() {
    let (sender, pids) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let mut cluster = ProcessCluster::start(2, Options::default())
                .await
                .expect("start");
            cluster.discard_files_on_panic();
            cluster.pause(1).expect("pause");
            for i in 0..cluster.len() {
                sender.send(cluster.pid(i).expect("running")).expect("send");
            }
            panic!("a test fails while its cluster runs");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let pids: Vec<u32> = pids.try_iter().collect();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} outlived its cluster"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kills_pauses_and_partitions() -> anyhow::Result<()> {
    let _heavy = HEAVY.lock().await;
    run_faults(Options::default(), DEFAULT_FAULT_TIME).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleted_keys_stay_deleted_with_background_anti_entropy_and_tombstone_collection()
-> anyhow::Result<()> {
    let _heavy = HEAVY.lock().await;
    let defaults = Options::default();
    let options = Options {
        background: Background {
            anti_entropy_interval_ms: 1000,
            tombstone_grace_ms: 1000,
            ..defaults.background
        },
        ..defaults
    };
    run_faults(options, SHORT_FAULT_TIME).await
}

/// Starts the nodes, plays the nemesis against them while clients write,
/// heals, converges and checks every key. Every error names the seed.
async fn run_faults(options: Options, default_time: Duration) -> anyhow::Result<()> {
    let schedule = Schedule::from_env(NODES, default_time);
    let seed = schedule.seed;
    play(options, schedule)
        .await
        .with_context(|| format!("nemesis seed {seed} (replay with DYNAMO_FAULT_SEED={seed})"))
}

async fn play(options: Options, schedule: Schedule) -> anyhow::Result<()> {
    let seed = schedule.seed;
    let mut cluster = ProcessCluster::start(NODES, options).await?;
    let endpoints = cluster.endpoints().clone();

    // Clients run as long as the nemesis, with a bound in case it stalls.
    let stop = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + schedule.duration() * 2 + Duration::from_secs(60);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = Client {
                id,
                keys: Keys::new(id, OWN_KEYS, SHARED_KEYS),
                endpoints: endpoints.clone(),
                seed: seed.wrapping_add(1 + id as u64),
            };
            tokio::spawn(client.run(Arc::clone(&stop), until))
        })
        .collect();
    let report = nemesis::run(&schedule, &mut cluster).await;
    stop.store(true, Ordering::Relaxed);
    let mut history = History::default();
    for client in clients {
        history.extend(client.await.context("a client task panicked")?);
    }
    let report = report?;
    eprintln!("nemesis: {report}");
    let bounded: Vec<_> =
        with_at_most_one_faulty_replica(&history.acknowledged, &report.played).collect();
    let slowest = bounded.iter().max_by_key(|request| request.latency());
    eprintln!(
        "latency: {} of {} acknowledged requests had at most one faulty node and a healthy \
         coordinator; slowest {:?}",
        bounded.len(),
        history.acknowledged.len(),
        slowest.map(|request| (request.what, request.node, request.latency()))
    );
    if let Some(slowest) = slowest {
        assert!(
            slowest.latency() <= LATENCY_BOUND,
            "seed {seed}: an acknowledged {} through node {} took {} ms with at most one node \
             faulty (bound {} ms)",
            slowest.what,
            slowest.node,
            slowest.latency().as_millis(),
            LATENCY_BOUND.as_millis()
        );
    }

    cluster.heal_all().await?;
    let up = endpoints.wait_all_up(Duration::from_secs(30)).await?;
    let drained = endpoints
        .wait_hints_drained(Duration::from_secs(60))
        .await?;
    eprintln!(
        "healed: all members up after {} ms, hints drained after {} more ms",
        up.as_millis(),
        drained.as_millis()
    );
    let all: Vec<usize> = (0..NODES).collect();
    let full = endpoints.hints(&all).await?.full;
    assert!(full.is_empty(), "seed {seed}: hint stores full on {full:?}");
    let placement = endpoints.placement(0).await?;
    let keys = all_keys();
    let copies = converge(&cluster, &placement, &keys).await?;

    let mut violations = Vec::new();
    let (mut deleted, mut survivors, mut with_siblings) = (0, 0, 0);
    for (key, copies) in &copies {
        let verdict = check_key(key, history.writes_of(key), copies);
        if !verdict.violations.is_empty() {
            violations.extend(verdict.violations);
            let writes: Vec<String> = history.writes_of(key).map(|w| w.to_string()).collect();
            violations.push(format!(
                "{key}: its last writes: {}",
                writes[writes.len().saturating_sub(6)..].join("; ")
            ));
        }
        deleted += usize::from(verdict.deleted);
        survivors += verdict.survivors;
        with_siblings += usize::from(verdict.siblings > 1);
    }
    let counts = history.counts();
    eprintln!(
        "history: puts {}/{} acknowledged, deletes {}/{} acknowledged, {} reads ({} stale), \
         errors {:?}",
        counts.puts_acked,
        counts.puts,
        counts.deletes_acked,
        counts.deletes,
        history.reads,
        history.stale_reads,
        history.errors
    );
    for (code, message) in &history.examples {
        eprintln!("  first {code}: {message}");
    }
    eprintln!(
        "final state of {} keys: {deleted} deleted, {with_siblings} with siblings, \
         {survivors} values that survived a delete that had not seen them",
        keys.len()
    );
    assert!(
        violations.is_empty(),
        "seed {seed}: {} violations (replay with DYNAMO_FAULT_SEED={seed}):\n{}",
        violations.len(),
        violations.join("\n")
    );
    assert!(
        counts.puts_acked >= 20,
        "seed {seed}: only {} puts were acknowledged; the test checked too little",
        counts.puts_acked
    );
    Ok(())
}

/// Every key any client may have written.
fn all_keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..CLIENTS)
        .flat_map(|id| Keys::new(id, OWN_KEYS, 0).own)
        .collect();
    keys.extend(Keys::new(0, 0, SHARED_KEYS).shared);
    keys
}

/// Runs anti-entropy rounds on every node until every key's replicas hold
/// the same versions, or the rounds run out; returns the last copies read.
/// Background work (hints, anti-entropy, tombstone collection) may still be
/// moving versions, hence rounds rather than one pass.
async fn converge(
    cluster: &ProcessCluster,
    placement: &Placement,
    keys: &[String],
) -> anyhow::Result<BTreeMap<String, Vec<Copy>>> {
    let endpoints = cluster.endpoints();
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let mut round = 0;
    loop {
        round += 1;
        let mut total = pb::AntiEntropyResponse::default();
        for i in 0..endpoints.len() {
            let pass = endpoints.anti_entropy(i).await?;
            total.exchanges += pass.exchanges;
            total.differing += pass.differing;
            total.keys_repaired += pass.keys_repaired;
            total.bytes_sent += pass.bytes_sent;
            total.bytes_received += pass.bytes_received;
            total.tombstones_dropped += pass.tombstones_dropped;
        }
        let mut all = BTreeMap::new();
        for key in keys {
            all.insert(key.clone(), copies(cluster, placement, key).await?);
        }
        let differ = all.values().filter(|copies| !converged(copies)).count();
        eprintln!(
            "anti-entropy round {round}: {} exchanges, {} differing, {} keys repaired, \
             {} bytes sent, {} received, {} tombstones dropped; {differ} keys still differ",
            total.exchanges,
            total.differing,
            total.keys_repaired,
            total.bytes_sent,
            total.bytes_received,
            total.tombstones_dropped
        );
        if differ == 0 || round >= MAX_ANTI_ENTROPY_ROUNDS || Instant::now() >= deadline {
            return Ok(all);
        }
    }
}

/// Each replica's local copy of `key`.
async fn copies(
    cluster: &ProcessCluster,
    placement: &Placement,
    key: &str,
) -> anyhow::Result<Vec<Copy>> {
    let mut copies = Vec::new();
    for id in placement.replicas(key.as_bytes()) {
        let i = cluster
            .index_of(&id)
            .with_context(|| format!("ring names unknown member {id}"))?;
        let set = cluster.endpoints().replica_read(i, key.as_bytes()).await?;
        copies.push(Copy {
            node: id,
            versions: set.versions,
        });
    }
    Ok(copies)
}
