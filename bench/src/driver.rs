//! The drivers: a load phase that writes every record once, then a mix run
//! from many concurrent workers, closed loop (each worker sends its next
//! operation when the last one is answered) or open loop at a fixed rate
//! (latency taken from each operation's intended send time, so a stall
//! cannot hide behind operations that were never sent).
//!
//! Progress goes to stderr: the phase, then once a second the operations
//! done so far.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::recorder::{BenchReport, Recorder};
use crate::workload::{Generator, Op, Workload};

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The records and the operations on them.
    pub workload: Workload,
    /// Length of the measured run.
    pub duration: Duration,
    /// Run before measuring, not reported; zero skips it.
    pub warmup: Duration,
    /// Concurrent workers (at least one is used).
    pub concurrency: usize,
    /// Open loop: this many operations per second, shared equally by the
    /// workers. `None` runs closed loop.
    pub rate: Option<u64>,
    /// Skip the load phase (the records are already written).
    pub skip_load: bool,
}

/// Why the load phase stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError<E: std::error::Error + 'static> {
    /// A write of a record failed.
    #[error(transparent)]
    Backend {
        /// The backend's error.
        source: E,
    },
    /// A load worker ended without an answer (it panicked).
    #[error("a load worker failed: {message}")]
    Worker {
        /// What the runtime said.
        message: String,
    },
}

/// Loads the records (unless [`Plan::skip_load`]), then runs the warm-up
/// and the measured mix.
///
/// # Errors
///
/// When a write of the load phase fails.
pub async fn run<B: Backend>(
    backend: &Arc<B>,
    plan: &Plan,
) -> Result<BenchReport, LoadError<B::Error>> {
    if !plan.skip_load {
        load(backend, &plan.workload, plan.concurrency).await?;
    }
    Ok(measure(backend, plan).await)
}

/// Writes every record of `workload` once, `concurrency` at a time.
///
/// # Errors
///
/// The first write that fails, after which the other workers stop too.
pub async fn load<B: Backend>(
    backend: &Arc<B>,
    workload: &Workload,
    concurrency: usize,
) -> Result<(), LoadError<B::Error>> {
    eprintln!(
        "loading {} records of {} bytes",
        workload.records, workload.value_size
    );
    let value = workload.value();
    let next = Arc::new(AtomicU64::new(0));
    let records = workload.records;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (backend, next, value) = (Arc::clone(backend), Arc::clone(&next), value.clone());
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= records {
                        return Ok(());
                    }
                    if let Err(source) = backend.put(index, &value).await {
                        // The others stop at their next record.
                        next.store(records, Ordering::Relaxed);
                        return Err(source);
                    }
                }
            })
        })
        .collect();
    let mut failure = None;
    for worker in workers {
        let outcome = match worker.await {
            Ok(Ok(())) => continue,
            Ok(Err(source)) => LoadError::Backend { source },
            Err(error) => LoadError::Worker {
                message: error.to_string(),
            },
        };
        failure.get_or_insert(outcome);
    }
    failure.map_or(Ok(()), Err)
}

/// Runs the warm-up (unreported), then the measured mix, and reports it.
pub async fn measure<B: Backend>(backend: &Arc<B>, plan: &Plan) -> BenchReport {
    let generator = Arc::new(plan.workload.generator());
    if !plan.warmup.is_zero() {
        eprintln!("warming up for {:?}", plan.warmup);
        phase(backend, plan, &generator, plan.warmup).await;
    }
    eprintln!("measuring for {:?}", plan.duration);
    let started = Instant::now();
    let recorder = phase(backend, plan, &generator, plan.duration).await;
    let seconds = started.elapsed().as_secs_f64();
    BenchReport {
        mode: if plan.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        target_rate: plan.rate,
        seconds,
        read: recorder.report(Op::Read, seconds),
        write: recorder.report(Op::Write, seconds),
    }
}

/// Runs the mix for `length` and returns the merged latencies.
async fn phase<B: Backend>(
    backend: &Arc<B>,
    plan: &Plan,
    generator: &Arc<Generator>,
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
    let value = plan.workload.value();
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (backend, generator, value, done) = (
                Arc::clone(backend),
                Arc::clone(generator),
                value.clone(),
                Arc::clone(&done),
            );
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
                    let request = generator.next(&mut rng);
                    let outcome = match request.op {
                        Op::Read => backend.get(request.record).await,
                        Op::Write => backend.put(request.record, &value).await,
                    };
                    match outcome {
                        Ok(()) => recorder.record(request.op, intended.elapsed()),
                        Err(_) => recorder.record_error(request.op),
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
    use std::collections::HashMap;
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;
    use crate::workload::Distribution;

    /// Why the in-memory backend refuses an operation.
    #[derive(Debug, thiserror::Error)]
    #[error("record {record} is refused")]
    struct Refused {
        record: u64,
    }

    /// A map in memory that takes `latency` per operation (in tokio time),
    /// notes when each operation started, and refuses writes of `refuse`.
    #[derive(Default)]
    struct Memory {
        latency: Duration,
        refuse: Option<u64>,
        records: Mutex<HashMap<u64, Bytes>>,
        starts: Mutex<Vec<Instant>>,
    }

    impl Memory {
        fn with_latency(latency: Duration) -> Arc<Self> {
            Arc::new(Self {
                latency,
                ..Self::default()
            })
        }

        async fn serve(&self) {
            self.starts
                .lock()
                .expect("no test panics holding it")
                .push(Instant::now());
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            }
        }

        fn starts(&self) -> Vec<Instant> {
            let mut starts = self
                .starts
                .lock()
                .expect("no test panics holding it")
                .clone();
            starts.sort();
            starts
        }
    }

    impl Backend for Memory {
        type Error = Refused;

        async fn get(&self, record: u64) -> Result<(), Refused> {
            self.serve().await;
            let _ = self
                .records
                .lock()
                .expect("no test panics holding it")
                .get(&record);
            Ok(())
        }

        async fn put(&self, record: u64, value: &Bytes) -> Result<(), Refused> {
            self.serve().await;
            if self.refuse == Some(record) {
                return Err(Refused { record });
            }
            self.records
                .lock()
                .expect("no test panics holding it")
                .insert(record, value.clone());
            Ok(())
        }
    }

    fn plan(concurrency: usize, rate: Option<u64>, seconds: u64) -> Plan {
        Plan {
            workload: Workload {
                records: 100,
                value_size: 8,
                read_proportion: 0.5,
                distribution: Distribution::Uniform,
            },
            duration: Duration::from_secs(seconds),
            warmup: Duration::ZERO,
            concurrency,
            rate,
            skip_load: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_sends_at_the_rate_evenly_spread() {
        let backend = Memory::with_latency(Duration::ZERO);
        let report = measure(&backend, &plan(4, Some(1_000), 2)).await;
        let total = report.read.count + report.write.count;
        assert!((1_990..=2_010).contains(&total), "{report:?}");
        assert_eq!(report.mode, "open");
        assert_eq!(report.target_rate, Some(1_000));
        assert!(
            report.read.count > 800 && report.write.count > 800,
            "{report:?}"
        );
        // Four workers at 250/s each, offset by a quarter interval: one
        // send every millisecond, never a burst.
        let starts = backend.starts();
        let largest_gap = starts
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .expect("many sends");
        assert!(largest_gap <= Duration::from_millis(1), "{largest_gap:?}");
        for window in starts.chunks(100) {
            let span = *window.last().expect("not empty") - window[0];
            assert!(span >= Duration::from_millis(98), "100 sends in {span:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_latency_counts_from_the_intended_send_time() {
        // 10 ms per operation, one worker asked for 200/s: it can do only
        // 100/s, so each operation starts later than intended and the
        // reported latency grows to about half the run.
        let backend = Memory::with_latency(Duration::from_millis(10));
        let report = measure(&backend, &plan(1, Some(200), 1)).await;
        let total = report.read.count + report.write.count;
        assert!((95..=105).contains(&total), "{report:?}");
        let max = report.read.max_us.max(report.write.max_us);
        assert!(max >= 450_000, "{report:?}");
        // The same backend closed loop: every operation takes 10 ms.
        let closed = measure(&backend, &plan(1, None, 1)).await;
        assert_eq!(closed.mode, "closed");
        for op in [&closed.read, &closed.write] {
            assert!((10_000..=11_100).contains(&op.max_us), "{closed:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_keeps_every_worker_busy() {
        let backend = Memory::with_latency(Duration::from_millis(2));
        let report = measure(&backend, &plan(8, None, 1)).await;
        // 8 workers, 2 ms each: 4,000 operations in a second.
        let total = report.read.count + report.write.count;
        assert!((3_990..=4_010).contains(&total), "{report:?}");
        assert!(
            (3_990.0..=4_010.0)
                .contains(&(report.read.ops_per_second + report.write.ops_per_second))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn load_writes_every_record_once() {
        let backend = Memory::with_latency(Duration::from_millis(1));
        let mut plan = plan(3, None, 1);
        plan.skip_load = false;
        plan.workload.read_proportion = 1.0;
        let report = run(&backend, &plan).await.expect("nothing refused");
        assert_eq!(report.write.count, 0);
        let records = backend.records.lock().expect("no test panics holding it");
        assert_eq!(records.len(), 100);
        assert!(records.values().all(|value| value.len() == 8));
    }

    #[tokio::test(start_paused = true)]
    async fn load_stops_at_a_refused_write() {
        let backend = Arc::new(Memory {
            refuse: Some(10),
            ..Memory::default()
        });
        let error = load(&backend, &plan(2, None, 1).workload, 2)
            .await
            .expect_err("record 10 is refused");
        assert!(
            matches!(
                error,
                LoadError::Backend {
                    source: Refused { record: 10 }
                }
            ),
            "{error}"
        );
        let written = backend
            .records
            .lock()
            .expect("no test panics holding it")
            .len();
        assert!(written < 100, "{written} records written after the failure");
    }
}
