//! A node process under about three times the load it admits: it sheds the
//! rest with `RESOURCE_EXHAUSTED` and the retry hint, its memory stays
//! bounded, and the requests it admits keep their latency
//! (docs/security.md, "Load shedding").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dynamo_node::config::Limits;
use dynamo_node::ring::Replication;
use dynamo_node::shed::RETRY_AFTER_MS;
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::kv_client::KvClient;
use dynamo_tests::process::{Options, ProcessCluster};
use dynamo_tests::put;
use tonic::Code;
use tonic::transport::Channel;

/// Requests the node serves at once.
const LIMIT: usize = 8;

/// What a set of callers saw.
#[derive(Default)]
struct Outcome {
    admitted: Vec<Duration>,
    shed: u64,
    other: Vec<String>,
}

impl Outcome {
    fn p99(&mut self) -> Duration {
        self.admitted.sort();
        let index = (self.admitted.len() * 99 / 100).min(self.admitted.len().saturating_sub(1));
        self.admitted.get(index).copied().unwrap_or_default()
    }
}

/// `callers` callers spread over `channels`, each putting small values
/// with `sync` durability (an fsync each, so the node, not the load
/// generator, is the bottleneck) back to back for `length`; a shed caller
/// waits the retry hint before its next request, as a well-behaved client
/// does.
async fn load(channels: &[Channel], callers: usize, length: Duration) -> anyhow::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let value = "v".repeat(64);
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let mut client = KvClient::new(channels[caller % channels.len()].clone());
            let (stop, value) = (Arc::clone(&stop), value.clone());
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let key = format!("load-{caller}-{round}");
                    round += 1;
                    let request = pb::PutRequest {
                        durability: pb::Durability::Sync as i32,
                        ..put(&key, &value, &[])
                    };
                    match client.put(request).await {
                        Ok(_) => outcome.admitted.push(started.elapsed()),
                        Err(status) if status.code() == Code::ResourceExhausted => {
                            outcome.shed += 1;
                            tokio::time::sleep(Duration::from_millis(RETRY_AFTER_MS)).await;
                        }
                        Err(status) => outcome.other.push(status.to_string()),
                    }
                }
                outcome
            })
        })
        .collect();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Outcome::default();
    for task in tasks {
        let outcome = task.await?;
        all.admitted.extend(outcome.admitted);
        all.shed += outcome.shed;
        all.other.extend(outcome.other);
    }
    Ok(all)
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_times_the_admitted_load_is_shed_and_admitted_latency_kept() -> anyhow::Result<()> {
    let options = Options {
        replication: Replication { n: 1, r: 1, w: 1 },
        request_timeout_ms: 5000,
        limits: Limits {
            max_concurrent_requests: LIMIT,
            max_concurrent_requests_per_connection: LIMIT,
            ..Limits::default()
        },
        ..Options::default()
    };
    let cluster = ProcessCluster::start(1, options).await?;
    let pid = cluster
        .pid(0)
        .ok_or_else(|| anyhow::anyhow!("node 0 runs"))?;
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(
            Channel::from_shared(format!("http://{}", cluster.address(0)))?
                .connect()
                .await?,
        );
    }
    // Warm up, then measure the node at its capacity: as many callers as it
    // admits.
    load(&channels, LIMIT, Duration::from_secs(1)).await?;
    let rss_before = rss(pid)?;
    let mut capacity = load(&channels, LIMIT, Duration::from_secs(4)).await?;
    anyhow::ensure!(
        capacity.other.is_empty(),
        "at capacity: {:?}",
        capacity.other
    );
    let capacity_p99 = capacity.p99();
    // Three times as many callers.
    let mut overload = load(&channels, 3 * LIMIT, Duration::from_secs(8)).await?;
    let rss_after = rss(pid)?;
    let overload_p99 = overload.p99();
    println!(
        "at capacity ({LIMIT} callers): {} puts in 4 s, {} shed, p99 {capacity_p99:?}; \
         at 3x ({} callers): {} puts in 8 s, {} shed, admitted p99 {overload_p99:?}; \
         node RSS {} MiB before, {} MiB after",
        capacity.admitted.len(),
        capacity.shed,
        3 * LIMIT,
        overload.admitted.len(),
        overload.shed,
        rss_before >> 20,
        rss_after >> 20,
    );
    anyhow::ensure!(
        overload.other.is_empty(),
        "under overload: {:?}",
        &overload.other[..overload.other.len().min(5)]
    );
    anyhow::ensure!(
        overload.shed > 0,
        "nothing was shed at 3x the admitted load"
    );
    anyhow::ensure!(!overload.admitted.is_empty(), "nothing was admitted");
    // Memory: what the admitted requests hold, not what is offered.
    anyhow::ensure!(
        rss_after <= rss_before + (64 << 20),
        "RSS grew from {} to {} MiB",
        rss_before >> 20,
        rss_after >> 20
    );
    // Latency: the admitted p99 under overload stays within 3x the p99 at
    // capacity plus 50 ms (the load generator shares the node's two cores).
    let bound = capacity_p99 * 3 + Duration::from_millis(50);
    anyhow::ensure!(
        overload_p99 <= bound,
        "admitted p99 {overload_p99:?} under overload, above {bound:?}"
    );
    Ok(())
}
