//! Partition streaming throughput on loopback, the way a join moves data.
//!
//! Node A runs alone and is loaded with `DYNAMO_BENCH_TRANSFER_MB` MiB of
//! values (default 1024) of `DYNAMO_BENCH_TRANSFER_VALUE_BYTES` bytes each
//! (default 1024) straight through storage. Node B then starts from A's ring,
//! and both get a proposed ring in which B owns every partition next, so B
//! streams the whole data set from A. The time from the proposal until B
//! reports every partition done gives the figure; loading is not timed.
//!
//! Run with `cargo bench -p dynamo-node --bench transfer`. It prints figures
//! and asserts nothing about time.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use dynamo_node::config::Background;
use dynamo_node::ring::{Member, Replication};
use dynamo_node::storage::{Durability, NewWrite};
use dynamo_node::version::Clock;
use dynamo_node::{Config, Node, RunningNode};
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use rand::RngCore;
use tempfile::TempDir;
use tokio::net::TcpListener;

/// Partitions of the ring, Q.
const PARTITIONS: u32 = 64;
/// One copy of each key: the joiner streams every partition from node A.
const N1: Replication = Replication { n: 1, r: 1, w: 1 };
/// Threads that load node A.
const LOADERS: u64 = 2;
/// How often node B's transfer status is polled.
const POLL: Duration = Duration::from_millis(50);
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// A transfer that receives nothing for this long is reported as stuck.
const STALL: Duration = Duration::from_secs(120);
/// Linux reports process CPU times in /proc in units of USER_HZ, 100 per second.
const USER_HZ: f64 = 100.0;

/// The size of the data set, from the environment.
#[derive(Clone, Copy, Debug)]
struct Settings {
    /// Value bytes to load in total.
    total_bytes: u64,
    /// Bytes of each value.
    value_bytes: u64,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let mib: u64 = env_or("DYNAMO_BENCH_TRANSFER_MB", 1024)?;
        let value_bytes: u64 = env_or("DYNAMO_BENCH_TRANSFER_VALUE_BYTES", 1024)?;
        anyhow::ensure!(mib > 0 && value_bytes > 0, "sizes must be positive");
        Ok(Self {
            total_bytes: mib << 20,
            value_bytes,
        })
    }

    fn keys(&self) -> u64 {
        self.total_bytes.div_ceil(self.value_bytes)
    }
}

fn env_or(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("{name}={text:?} is not a number")),
        Err(_) => Ok(default),
    }
}

/// One in-process node and the directory it keeps its data in.
struct BenchNode {
    running: RunningNode,
    member: Member,
    _dir: TempDir,
}

impl BenchNode {
    /// Starts node `id`; `members(own)` gives its configured member list.
    async fn start(
        id: &str,
        members: impl FnOnce(&Member) -> Vec<Member>,
        seeds: Vec<String>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("create a data directory")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let member = Member {
            weight: 0,
            id: id.into(),
            address: listen.to_string(),
            zone: String::new(),
        };
        let config = Config {
            id: id.into(),
            listen,
            data_dir: dir.path().to_owned(),
            cluster: "bench".into(),
            partitions: PARTITIONS,
            replication: N1,
            members: members(&member),
            seeds,
            background: Background {
                anti_entropy_interval_ms: 0,
                ..Background::default()
            },
            ..Config::default()
        };
        let running = dynamo_node::start(config, listener)
            .await
            .with_context(|| format!("start node {id}"))?;
        Ok(Self {
            running,
            member,
            _dir: dir,
        })
    }

    fn node(&self) -> &Arc<Node> {
        self.running.node()
    }

    async fn admin(&self) -> anyhow::Result<AdminClient<tonic::transport::Channel>> {
        let url = format!("http://{}", self.member.address);
        Ok(AdminClient::connect(url).await?)
    }
}

/// Writes `settings.keys()` random values into `node`, split over threads.
fn load(node: &Node, settings: Settings) -> anyhow::Result<()> {
    let keys = settings.keys();
    std::thread::scope(|scope| {
        let loaders: Vec<_> = (0..LOADERS)
            .map(|loader| {
                let range = (keys * loader / LOADERS)..(keys * (loader + 1) / LOADERS);
                scope.spawn(move || load_range(node, range, settings.value_bytes))
            })
            .collect();
        loaders
            .into_iter()
            .try_for_each(|loader| loader.join().expect("a loader thread panicked"))
    })
}

fn load_range(node: &Node, range: std::ops::Range<u64>, value_bytes: u64) -> anyhow::Result<()> {
    let ring = node.ring();
    let max_siblings = node.config().limits.max_siblings;
    let mut rng = rand::rng();
    let mut value = vec![0u8; usize::try_from(value_bytes)?];
    for i in range {
        let key = format!("key-{i:010}");
        rng.fill_bytes(&mut value);
        let write = NewWrite {
            value: Bytes::copy_from_slice(&value),
            tombstone: false,
            context: Clock::new(),
            timestamp_ms: now_ms(),
        };
        node.storage()
            .write_new_version(
                ring.partition_of(key.as_bytes()),
                key.as_bytes(),
                write,
                max_siblings,
                Durability::Buffer,
            )
            .with_context(|| format!("write {key}"))?;
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The ring of a join: A and `joiner` are members, A owns every partition
/// now and `joiner` owns every partition next.
fn join_ring(current: pb::Ring, joiner: &Member) -> pb::Ring {
    let mut ring = current;
    ring.epoch += 1;
    ring.members.push(pb::Member {
        weight: 0,
        id: joiner.id.clone(),
        address: joiner.address.clone(),
        zone: joiner.zone.clone(),
    });
    let joiner_index = (ring.members.len() - 1) as u32;
    ring.next_owners = vec![joiner_index; ring.owners.len()];
    ring
}

async fn propose(node: &BenchNode, ring: &pb::Ring) -> anyhow::Result<()> {
    node.admin()
        .await?
        .propose_ring(pb::RingChange {
            ring: Some(ring.clone()),
        })
        .await
        .with_context(|| format!("propose the ring to {}", node.member.id))?;
    Ok(())
}

/// Polls `node` until every partition of the change at `epoch` arrived.
async fn wait_for_transfer(
    node: &BenchNode,
    epoch: u64,
    started: Instant,
) -> anyhow::Result<pb::TransferStatusResponse> {
    let mut admin = node.admin().await?;
    let mut printed = Instant::now();
    let mut last_bytes = 0;
    let mut last_change = Instant::now();
    loop {
        let status = admin
            .transfer_status(pb::TransferStatusRequest {})
            .await?
            .into_inner();
        if status.epoch == epoch && status.partitions_done == status.partitions_total {
            return Ok(status);
        }
        if status.bytes_received != last_bytes {
            last_bytes = status.bytes_received;
            last_change = Instant::now();
        }
        anyhow::ensure!(
            last_change.elapsed() < STALL,
            "no bytes received for {STALL:?}; last error: {:?}",
            status.error
        );
        if printed.elapsed() >= PROGRESS_EVERY {
            printed = Instant::now();
            print_progress(&status, started.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn print_progress(status: &pb::TransferStatusResponse, elapsed: Duration) {
    let error = if status.error.is_empty() {
        String::new()
    } else {
        format!(" (retrying: {})", status.error)
    };
    println!(
        "  {:>6.1} s: {}/{} partitions, {:.0} MiB{error}",
        elapsed.as_secs_f64(),
        status.partitions_done,
        status.partitions_total,
        status.bytes_received as f64 / f64::from(1 << 20),
    );
}

/// CPU seconds (user + system) this process has used, from /proc.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / USER_HZ)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn report(
    settings: Settings,
    status: &pb::TransferStatusResponse,
    elapsed: Duration,
    cpu: Option<f64>,
) {
    let seconds = elapsed.as_secs_f64();
    let bytes = status.bytes_received as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("transfer of {} partitions done", status.partitions_total);
    println!(
        "  keys        {} x {} B values",
        status.keys_received, settings.value_bytes
    );
    println!(
        "  bytes       {} received (keys + encoded sibling sets; {} of values)",
        status.bytes_received,
        status.keys_received * settings.value_bytes
    );
    println!("  time        {seconds:.2} s from the proposal to the last partition");
    println!(
        "  throughput  {:.1} MB/s ({:.1} MiB/s, {:.0} keys/s)",
        bytes / 1e6 / seconds,
        bytes / f64::from(1 << 20) / seconds,
        status.keys_received as f64 / seconds,
    );
    match cpu {
        Some(cpu) => println!(
            "  cpu         {cpu:.1} s for both nodes in one process ({:.0}% of {cores} cores)",
            cpu / seconds / cores as f64 * 100.0
        ),
        None => println!("  cpu         unknown (no /proc/self/stat)"),
    }
    println!("  load avg    {} after the run", load_average());
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    println!(
        "partition transfer: {} MiB as {} keys of {} B, Q = {PARTITIONS}, loopback",
        settings.total_bytes >> 20,
        settings.keys(),
        settings.value_bytes
    );
    println!("  load avg    {} before the run", load_average());

    let a = BenchNode::start("a", |own| vec![own.clone()], Vec::new()).await?;
    let loading = Instant::now();
    let node = Arc::clone(a.node());
    tokio::task::spawn_blocking(move || load(&node, settings)).await??;
    println!(
        "  loaded      node a in {:.1} s (not timed below)",
        loading.elapsed().as_secs_f64()
    );

    let seeds = vec![a.member.address.clone()];
    let a_member = a.member.clone();
    let b = BenchNode::start("b", |own| vec![a_member, own.clone()], seeds).await?;
    let ring = join_ring(a.node().ring().to_pb(), &b.member);

    let cpu_before = cpu_seconds();
    let started = Instant::now();
    propose(&a, &ring).await?;
    propose(&b, &ring).await?;
    let status = wait_for_transfer(&b, ring.epoch, started).await?;
    let elapsed = started.elapsed();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    report(settings, &status, elapsed, cpu);

    b.running.stop().await?;
    a.running.stop().await?;
    Ok(())
}
