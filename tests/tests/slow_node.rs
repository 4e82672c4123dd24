//! Staying fast when one node is slow: an open-loop load through
//! `dynamo-client` on three nodes (N=3 R=2 W=2, the node's default timeouts
//! and 1 s gossip) while one node is paused with SIGSTOP, cut off one way,
//! or answers every request 500 ms late. While the fault lasts no request
//! may fail or take over 1 s, and the requests completed must reach 90 % of
//! the offered rate. One-shot `dynamoctl put` and `get` with a replica
//! paused answer in under 1 s.

use std::time::Duration;

use dynamo_client::Client;
use dynamo_node::config::Background;
use dynamo_node::ring::Replication;
use dynamo_tests::process::{Options, ProcessCluster};
use dynamo_tests::proxy::LinkState;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Offered load, requests per second (half puts of new keys, half gets):
/// modest enough for debug-build nodes on a busy 2-core machine (at 200/s
/// and a load average of 10 they fell behind with no fault at all).
const RATE: u32 = 100;
/// Load before the fault, so the client knows every node's latency.
const WARM_UP: Duration = Duration::from_secs(3);
/// How long the fault lasts.
const FAULT: Duration = Duration::from_secs(10);
/// Load after the fault ends.
const COOL_DOWN: Duration = Duration::from_secs(1);
/// No request during the fault may take longer.
const BOUND: Duration = Duration::from_secs(1);
/// Keys written before the load, read by its gets.
const KEYS: u32 = 100;
/// The node made slow; the client connects through node 0.
const SLOW: usize = 2;

/// One cluster at a time: the machine may have two cores.
static HEAVY: Mutex<()> = Mutex::const_new(());

/// What the node made slow does.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGSTOP for the whole window.
    Pause,
    /// Requests to it arrive, its answers are lost (every link into it).
    OneWayCut,
    /// Its answers arrive 500 ms late (every link into it).
    Late,
}

/// The node's own defaults, except anti-entropy (off) and the test's
/// partition count.
fn options() -> Options {
    Options {
        replication: Replication { n: 3, r: 2, w: 2 },
        request_timeout_ms: 3000,
        peer_timeout_ms: 1000,
        background: Background {
            anti_entropy_interval_ms: 0,
            ..Background::default()
        },
        ..Options::default()
    }
}

/// One request of the open-loop load.
#[derive(Clone, Debug)]
struct Sample {
    /// When it was due, from the start of the load.
    due: Duration,
    /// From when it was due until it ended.
    latency: Duration,
    /// The error, if it failed.
    error: Option<String>,
}

/// Sends request `i` every `1 / RATE` s from `start` for `length`, each in
/// its own task so a slow one holds up nothing else; latencies count from
/// when a request was due.
async fn open_loop(client: Client, start: Instant, length: Duration) -> Vec<Sample> {
    let period = Duration::from_secs(1) / RATE;
    let total = (length.as_secs_f64() * f64::from(RATE)) as u32;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + period * i;
        tokio::time::sleep_until(due).await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let result = if i % 2 == 0 {
                client
                    .put(format!("load-{i}"), format!("value-{i}"), None)
                    .await
                    .map(drop)
            } else {
                client.get(format!("key-{}", i % KEYS)).await.map(drop)
            };
            Sample {
                due: due - start,
                latency: due.elapsed(),
                error: result.err().map(|err| err.to_string()),
            }
        }));
    }
    let mut samples = Vec::with_capacity(tasks.len());
    for task in tasks {
        samples.push(task.await.expect("a request task panicked"));
    }
    samples
}

/// Figures of the requests due during the fault.
#[derive(Debug)]
struct Window {
    offered: usize,
    failed: usize,
    max_latency: Duration,
    /// Requests that completed during the window over those offered.
    throughput: f64,
    first_error: Option<String>,
}

fn window(samples: &[Sample]) -> Window {
    let (from, to) = (WARM_UP, WARM_UP + FAULT);
    let due: Vec<&Sample> = samples
        .iter()
        .filter(|s| (from..to).contains(&s.due))
        .collect();
    let completed = samples
        .iter()
        .filter(|s| s.error.is_none() && (from..to).contains(&(s.due + s.latency)))
        .count();
    Window {
        offered: due.len(),
        failed: due.iter().filter(|s| s.error.is_some()).count(),
        max_latency: due.iter().map(|s| s.latency).max().unwrap_or_default(),
        throughput: completed as f64 / due.len().max(1) as f64,
        first_error: due.iter().find_map(|s| s.error.clone()),
    }
}

async fn stays_fast(fault: Fault) -> anyhow::Result<()> {
    let _heavy = HEAVY.lock().await;
    let mut cluster = ProcessCluster::start(3, options()).await?;
    cluster.discard_files_on_panic();
    let client = Client::connect(&cluster.address(0).to_string()).await?;
    for i in 0..KEYS {
        client
            .put(format!("key-{i}"), format!("value-{i}"), None)
            .await?;
    }
    let start = Instant::now();
    let load = tokio::spawn(open_loop(client, start, WARM_UP + FAULT + COOL_DOWN));
    tokio::time::sleep_until(start + WARM_UP).await;
    let into_slow = |cluster: &ProcessCluster, state: LinkState| {
        for from in (0..cluster.len()).filter(|&from| from != SLOW) {
            cluster.network().link(from, SLOW).set(state);
        }
    };
    match fault {
        Fault::Pause => cluster.pause(SLOW)?,
        Fault::OneWayCut => into_slow(&cluster, LinkState::DropReplies),
        Fault::Late => into_slow(
            &cluster,
            LinkState::DelayReplies(Duration::from_millis(500)),
        ),
    }
    tokio::time::sleep_until(start + WARM_UP + FAULT).await;
    cluster.heal_all().await?;
    let samples = load.await?;
    let window = window(&samples);
    eprintln!("{fault:?}: second: completed/failed/max ms of the requests due in it");
    for second in 0..(WARM_UP + FAULT + COOL_DOWN).as_secs() {
        let due: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.due.as_secs() == second)
            .collect();
        let failed = due.iter().filter(|s| s.error.is_some()).count();
        let max = due.iter().map(|s| s.latency).max().unwrap_or_default();
        eprintln!(
            "  {second:>2}: {}/{failed}/{}",
            due.len() - failed,
            max.as_millis()
        );
    }
    eprintln!(
        "{fault:?}: {} requests offered in {} s, {} failed, max latency {} ms, \
         throughput {:.1} % of offered; first error: {:?}",
        window.offered,
        FAULT.as_secs(),
        window.failed,
        window.max_latency.as_millis(),
        window.throughput * 100.0,
        window.first_error
    );
    assert_eq!(
        window.failed, 0,
        "{fault:?}: requests failed: {:?}",
        window.first_error
    );
    assert!(
        window.max_latency <= BOUND,
        "{fault:?}: a request took {} ms",
        window.max_latency.as_millis()
    );
    assert!(
        window.throughput >= 0.9,
        "{fault:?}: throughput {:.1} % of the offered rate",
        window.throughput * 100.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_node_costs_no_failures_and_no_second_long_waits() -> anyhow::Result<()> {
    stays_fast(Fault::Pause).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_one_way_costs_no_failures_and_no_second_long_waits() -> anyhow::Result<()> {
    stays_fast(Fault::OneWayCut).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_answering_late_costs_no_failures_and_no_second_long_waits() -> anyhow::Result<()> {
    stays_fast(Fault::Late).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_shot_dynamoctl_answers_in_under_a_second_with_a_replica_paused() -> anyhow::Result<()>
{
    let _heavy = HEAVY.lock().await;
    let mut cluster = ProcessCluster::start(3, options()).await?;
    cluster.discard_files_on_panic();
    let endpoint = cluster.address(0).to_string();
    cluster.pause(SLOW)?;
    // Ten keys: with three replicas each, some are routed to the paused
    // node first.
    for i in 0..10 {
        let key = format!("one-shot-{i}");
        for args in [vec!["put", key.as_str(), "v"], vec!["get", key.as_str()]] {
            let began = Instant::now();
            let printed = dynamo_tests::dynamoctl_json(&endpoint, &args).await?;
            let took = began.elapsed();
            eprintln!("dynamoctl {}: {} ms", args.join(" "), took.as_millis());
            assert!(
                took < BOUND,
                "dynamoctl {} took {} ms: {printed}",
                args.join(" "),
                took.as_millis()
            );
        }
    }
    cluster.resume(SLOW)?;
    Ok(())
}
