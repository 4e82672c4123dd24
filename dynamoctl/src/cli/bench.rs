//! `dynamoctl bench`: a YCSB-like load generator. It loads records, then
//! runs a read/write mix from many concurrent clients, closed-loop or
//! open-loop at a fixed rate (latency taken from each operation's intended
//! send time, so a stall cannot hide), and reports throughput and latency
//! percentiles per operation from HDR histograms.
//!
//! Writes behave like an application's: each put carries the context of the
//! last put or get of its key (from any worker), so it replaces the version
//! it knows instead of piling up siblings. Only writes that race on one key
//! leave siblings; a put refused for too many siblings reads the key and
//! writes again with the merged context, and that read counts towards the
//! write's latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use dynamo_client::{Client, Context, Durability, Error, ReadOptions, WriteOptions};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

use super::CliError;

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    /// Keys loaded before the run and drawn from during it.
    pub records: u64,
    /// Length of the measured run.
    pub duration: Duration,
    /// Run before measuring, not reported.
    pub warmup: Duration,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Share of reads, 0.0 to 1.0.
    pub read_proportion: f64,
    /// Zipfian key choice (theta 0.99) instead of uniform.
    pub zipfian: bool,
    /// Target operations per second for an open-loop run.
    pub rate: Option<u64>,
    /// Read quorum override.
    pub r: Option<u32>,
    /// Write quorum override.
    pub w: Option<u32>,
    /// Skip the load phase (records already written).
    pub skip_load: bool,
    /// Replicas fsync each write before acknowledging it.
    pub sync: bool,
}

impl BenchPlan {
    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            w: self.w,
            durability: self.sync.then_some(Durability::Sync),
        }
    }
}

/// Figures of one operation type.
#[derive(Debug, Serialize)]
pub struct OpReport {
    /// Operations completed.
    pub count: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Completed operations per second.
    pub ops_per_second: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// 99.9th percentile, microseconds.
    pub p999_us: u64,
    /// Largest latency, microseconds.
    pub max_us: u64,
}

/// Figures of a run.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// `closed` or `open` loop.
    pub mode: &'static str,
    /// Target rate of an open-loop run.
    pub target_rate: Option<u64>,
    /// Measured seconds.
    pub seconds: f64,
    /// Reads.
    pub read: OpReport,
    /// Writes.
    pub write: OpReport,
}

/// Latencies of one worker, merged at the end.
struct Recorder {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    read_errors: u64,
    write_errors: u64,
}

impl Recorder {
    fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        Self {
            reads: histogram(),
            writes: histogram(),
            read_errors: 0,
            write_errors: 0,
        }
    }

    fn merge(&mut self, other: &Recorder) {
        self.reads.add(&other.reads).expect("same bounds");
        self.writes.add(&other.writes).expect("same bounds");
        self.read_errors += other.read_errors;
        self.write_errors += other.write_errors;
    }
}

/// YCSB's zipfian generator over `0..items` (Gray et al.), theta 0.99.
struct Zipfian {
    items: f64,
    theta: f64,
    alpha: f64,
    zeta: f64,
    eta: f64,
}

impl Zipfian {
    fn new(items: u64) -> Self {
        let theta = 0.99;
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zeta_n = zeta(items);
        let zeta_2 = zeta(2.min(items));
        let n = items as f64;
        Self {
            items: n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta: zeta_n,
            eta: (1.0 - (2.0 / n).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n),
        }
    }

    fn next(&self, rng: &mut StdRng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zeta;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let value = self.items * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (value as u64).min(self.items as u64 - 1)
    }
}

fn key(index: u64) -> String {
    format!("bench-{index:012}")
}

/// The latest context seen for each record, shared by the workers.
struct Contexts {
    shards: Vec<Mutex<HashMap<u64, Context>>>,
}

impl Contexts {
    const SHARDS: usize = 64;

    fn new() -> Self {
        Self {
            shards: (0..Self::SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, index: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Context>> {
        self.shards[index as usize % Self::SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, index: u64) -> Option<Context> {
        self.shard(index).get(&index).cloned()
    }

    fn set(&self, index: u64, context: Context) {
        self.shard(index).insert(index, context);
    }

    /// Reads the record and keeps its context.
    async fn read(&self, client: &Client, index: u64, r: Option<u32>) -> Result<(), Error> {
        let read = client.get_with(key(index), ReadOptions { r }).await?;
        self.set(index, read.context);
        Ok(())
    }

    /// Writes the record over the version last seen; when the key holds too
    /// many siblings, reads it first and writes with the merged context.
    async fn write(
        &self,
        client: &Client,
        index: u64,
        value: &bytes::Bytes,
        options: WriteOptions,
    ) -> Result<(), Error> {
        let context = self.get(index);
        let written = match client
            .put_with(key(index), value.clone(), context.as_ref(), options)
            .await
        {
            Err(error) if too_many_siblings(&error) => {
                let read = client.get(key(index)).await?;
                client
                    .put_with(key(index), value.clone(), Some(&read.context), options)
                    .await?
            }
            other => other?,
        };
        self.set(index, written);
        Ok(())
    }
}

/// True for a write refused because the key has too many siblings.
fn too_many_siblings(error: &Error) -> bool {
    matches!(error, Error::Status { status, .. } if status.code() == tonic::Code::FailedPrecondition)
}

/// Loads the records, then runs and measures the mix.
///
/// # Errors
/// When the load phase fails on a write.
pub async fn run(client: &Client, plan: &BenchPlan) -> Result<BenchReport, CliError> {
    let value = bytes::Bytes::from(vec![b'v'; plan.value_size]);
    let write_options = plan.write_options();
    let contexts = Arc::new(Contexts::new());
    if !plan.skip_load {
        load(client, plan, &value, &write_options, &contexts).await?;
    }
    let zipf = plan
        .zipfian
        .then(|| Arc::new(Zipfian::new(plan.records.max(1))));
    if !plan.warmup.is_zero() {
        eprintln!("warming up for {:?}", plan.warmup);
        phase(client, plan, &value, zipf.clone(), &contexts, plan.warmup).await;
    }
    eprintln!("measuring for {:?}", plan.duration);
    let started = Instant::now();
    let recorder = phase(client, plan, &value, zipf, &contexts, plan.duration).await;
    let seconds = started.elapsed().as_secs_f64();
    let report = |histogram: &Histogram<u64>, errors: u64| OpReport {
        count: histogram.len(),
        errors,
        ops_per_second: histogram.len() as f64 / seconds,
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        p999_us: histogram.value_at_quantile(0.999),
        max_us: histogram.max(),
    };
    Ok(BenchReport {
        mode: if plan.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        target_rate: plan.rate,
        seconds,
        read: report(&recorder.reads, recorder.read_errors),
        write: report(&recorder.writes, recorder.write_errors),
    })
}

/// Writes every record once, `concurrency` at a time.
async fn load(
    client: &Client,
    plan: &BenchPlan,
    value: &bytes::Bytes,
    options: &WriteOptions,
    contexts: &Arc<Contexts>,
) -> Result<(), CliError> {
    eprintln!(
        "loading {} records of {} bytes",
        plan.records, plan.value_size
    );
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..plan.concurrency.max(1))
        .map(|_| {
            let (client, next, value, options, contexts) = (
                client.clone(),
                Arc::clone(&next),
                value.clone(),
                *options,
                Arc::clone(contexts),
            );
            let records = plan.records;
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= records {
                        return Ok::<(), dynamo_client::Error>(());
                    }
                    contexts.write(&client, index, &value, options).await?;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|error| CliError::Usage {
            message: format!("a load worker failed: {error}"),
        })??;
    }
    Ok(())
}

/// Runs the mix for `length` and returns the merged latencies.
async fn phase(
    client: &Client,
    plan: &BenchPlan,
    value: &bytes::Bytes,
    zipf: Option<Arc<Zipfian>>,
    contexts: &Arc<Contexts>,
    length: Duration,
) -> Recorder {
    let started = Instant::now();
    let end = started + length;
    let done = Arc::new(AtomicU64::new(0));
    let progress = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let elapsed = started.elapsed().as_secs_f64();
                let count = done.load(Ordering::Relaxed);
                eprintln!(
                    "  {elapsed:5.1}s  {count} ops  {:.0} ops/s",
                    count as f64 / elapsed
                );
            }
        })
    };
    let workers = plan.concurrency.max(1);
    // Open loop: each worker owns an equal share of the rate.
    let interval = plan
        .rate
        .map(|rate| Duration::from_secs_f64(workers as f64 / rate.max(1) as f64));
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (client, value, zipf, done, contexts) = (
                client.clone(),
                value.clone(),
                zipf.clone(),
                Arc::clone(&done),
                Arc::clone(contexts),
            );
            let plan = plan.clone();
            tokio::spawn(async move {
                let mut recorder = Recorder::new();
                let mut rng = StdRng::seed_from_u64(worker as u64);
                // Workers of an open loop are spread over one interval, so
                // that together they send evenly rather than in bursts.
                let mut intended = Instant::now()
                    + interval.map_or(Duration::ZERO, |interval| {
                        interval.mul_f64(worker as f64 / workers as f64)
                    });
                while Instant::now() < end {
                    if let Some(interval) = interval {
                        intended += interval;
                        tokio::time::sleep_until(intended).await;
                    } else {
                        intended = Instant::now();
                    }
                    let index = match &zipf {
                        Some(zipf) => zipf.next(&mut rng),
                        None => rng.random_range(0..plan.records.max(1)),
                    };
                    let read = rng.random_bool(plan.read_proportion.clamp(0.0, 1.0));
                    let ok = if read {
                        contexts.read(&client, index, plan.r).await.is_ok()
                    } else {
                        let options = plan.write_options();
                        contexts
                            .write(&client, index, &value, options)
                            .await
                            .is_ok()
                    };
                    let micros = intended.elapsed().as_micros() as u64;
                    match (read, ok) {
                        (true, true) => recorder.reads.saturating_record(micros.max(1)),
                        (false, true) => recorder.writes.saturating_record(micros.max(1)),
                        (true, false) => recorder.read_errors += 1,
                        (false, false) => recorder.write_errors += 1,
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                recorder
            })
        })
        .collect();
    let mut total = Recorder::new();
    for task in tasks {
        if let Ok(recorder) = task.await {
            total.merge(&recorder);
        }
    }
    progress.abort();
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipfian_prefers_low_keys_and_stays_in_range() {
        let zipf = Zipfian::new(1000);
        let mut rng = StdRng::seed_from_u64(7);
        let draws: Vec<u64> = (0..10_000).map(|_| zipf.next(&mut rng)).collect();
        assert!(draws.iter().all(|&d| d < 1000));
        let hot = draws.iter().filter(|&&d| d < 10).count();
        assert!(
            hot > 3_000,
            "the 1% hottest keys got only {hot} of 10,000 draws"
        );
    }
}
