//! `dynamo-compare`: runs one workload of the dynamo-bench load generator
//! against DynamoKV or etcd and prints its figures as one JSON document.
//! `scripts/compare-etcd` runs it against both, interleaved.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use dynamo_bench::{
    Backend, BenchReport, Distribution, DynamoBackend, EtcdBackend, Plan, Workload,
};
use dynamo_client::{Client, ClientOptions, Durability, ReadOptions, WriteOptions};
use serde::Serialize;

/// The same allocator as `dynamoctl`, so the load generator costs the
/// same per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which store to drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Store {
    /// A DynamoKV cluster, through the Rust client (single-hop routing).
    Dynamo,
    /// An etcd 3.5 cluster: linearizable Range, plain Put.
    Etcd,
}

/// Runs one workload against one store and prints JSON figures: throughput,
/// p50/p99/p99.9/max latency and errors per operation.
#[derive(Debug, Parser)]
#[command(name = "dynamo-compare", version)]
struct Args {
    /// The store to drive.
    #[arg(long, value_enum)]
    backend: Store,
    /// etcd members' client endpoints (host:port), comma-separated;
    /// operations go to each in turn.
    #[arg(long, value_delimiter = ',', required_if_eq("backend", "etcd"))]
    endpoints: Vec<String>,
    /// A DynamoKV node (host:port) to fetch the ring from.
    #[arg(long, default_value = "127.0.0.1:7400")]
    endpoint: String,
    /// Records loaded first and used by the run.
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// Unmeasured seconds before them; 0 skips the warm-up.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Share of reads, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.5)]
    read_proportion: f64,
    /// Key popularity.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,
    /// Open loop: this many operations per second, latency measured from
    /// each operation's intended start.
    #[arg(long)]
    rate: Option<u64>,
    /// Only write every record once, then print how long it took.
    #[arg(long, conflicts_with = "skip_load")]
    load_only: bool,
    /// Do not load the records (an earlier run did). DynamoKV reads each
    /// record once first, unmeasured, to learn its context.
    #[arg(long)]
    skip_load: bool,
    /// DynamoKV only: replicas fsync each write before acknowledging it
    /// (etcd always fsyncs its log).
    #[arg(long)]
    sync: bool,
    /// Seconds each operation may take before it counts as an error.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
}

/// The figures of a run, with the store they came from.
#[derive(Serialize)]
struct Output<'a> {
    backend: Store,
    #[serde(flatten)]
    report: &'a BenchReport,
}

/// What a load-only run prints.
#[derive(Serialize)]
struct Loaded {
    backend: Store,
    records: u64,
    seconds: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        !(args.sync && args.backend == Store::Etcd),
        "--sync is for DynamoKV; etcd always fsyncs its log"
    );
    let timeout = seconds("--timeout", args.timeout)?;
    let plan = Plan {
        workload: Workload {
            records: args.records,
            value_size: args.value_size,
            read_proportion: args.read_proportion,
            distribution: args.distribution,
        },
        duration: seconds("--seconds", args.seconds)?,
        warmup: seconds("--warmup", args.warmup)?,
        concurrency: args.concurrency,
        rate: args.rate,
        skip_load: args.skip_load,
    };
    let json = match args.backend {
        Store::Etcd => {
            let etcd = EtcdBackend::connect(&args.endpoints, timeout).await?;
            drive(Store::Etcd, Arc::new(etcd), &plan, args.load_only).await?
        }
        Store::Dynamo => {
            let options = ClientOptions {
                timeout,
                ..ClientOptions::default()
            };
            let client = Client::connect_with(&args.endpoint, options)
                .await
                .with_context(|| format!("connect to DynamoKV at {}", args.endpoint))?;
            let write = WriteOptions {
                w: None,
                durability: args.sync.then_some(Durability::Sync),
            };
            let dynamo = DynamoBackend::new(client, ReadOptions::default(), write);
            if args.skip_load {
                eprintln!("reading {} records for their contexts", args.records);
                dynamo
                    .learn_contexts(args.records, args.concurrency)
                    .await
                    .context("read the records before the run")?;
            }
            drive(Store::Dynamo, Arc::new(dynamo), &plan, args.load_only).await?
        }
    };
    println!("{json}");
    Ok(())
}

/// Loads, or loads and runs, and renders the figures.
async fn drive<B: Backend>(
    store: Store,
    backend: Arc<B>,
    plan: &Plan,
    load_only: bool,
) -> anyhow::Result<String> {
    if load_only {
        let started = Instant::now();
        dynamo_bench::load(&backend, &plan.workload, plan.concurrency)
            .await
            .context("load the records")?;
        return Ok(serde_json::to_string_pretty(&Loaded {
            backend: store,
            records: plan.workload.records,
            seconds: started.elapsed().as_secs_f64(),
        })?);
    }
    let report = dynamo_bench::run(&backend, plan)
        .await
        .context("load the records")?;
    Ok(serde_json::to_string_pretty(&Output {
        backend: store,
        report: &report,
    })?)
}

/// A duration from a flag's seconds.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag} {value} is not a duration"))
}
