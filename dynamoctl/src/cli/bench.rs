//! `dynamoctl bench`: the dynamo-bench load generator against the cluster.
//! It loads records, then runs a read/write mix from many concurrent
//! clients, closed-loop or open-loop at a fixed rate (latency taken from
//! each operation's intended send time, so a stall cannot hide), and
//! reports throughput and latency percentiles per operation from HDR
//! histograms.
//!
//! Writes behave like an application's ([`DynamoBackend`]): each put
//! carries the context of the last put or get of its key, so it replaces
//! the version it knows instead of piling up siblings.

use std::sync::Arc;

use dynamo_bench::{BenchReport, DynamoBackend, LoadError, Plan, Workload};
use dynamo_client::{Client, Durability, ReadOptions, WriteOptions};

use super::CliError;
use super::args::{BenchArgs, Workload as Preset};

/// Loads the records, then runs and measures the mix.
///
/// # Errors
///
/// When the load phase fails on a write.
pub async fn run(client: &Client, args: &BenchArgs) -> Result<BenchReport, CliError> {
    let plan = Plan {
        workload: Workload {
            records: args.records,
            value_size: args.value_size,
            read_proportion: args.read_proportion.unwrap_or(match args.workload {
                Preset::A => 0.5,
                Preset::B => 0.95,
                Preset::C => 1.0,
            }),
            distribution: args.distribution,
        },
        duration: args.duration,
        warmup: args.warmup,
        concurrency: args.concurrency,
        rate: args.rate,
        skip_load: args.skip_load,
    };
    let write = WriteOptions {
        w: args.w,
        durability: args.sync.then_some(Durability::Sync),
    };
    let backend = Arc::new(DynamoBackend::new(
        client.clone(),
        ReadOptions { r: args.r },
        write,
    ));
    dynamo_bench::run(&backend, &plan)
        .await
        .map_err(|error| match error {
            LoadError::Backend { source } => CliError::from(source),
            LoadError::Worker { message } => CliError::Usage {
                message: format!("a load worker failed: {message}"),
            },
        })
}
