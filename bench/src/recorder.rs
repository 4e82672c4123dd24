//! Latencies and errors of a run, one HDR histogram per operation type,
//! and the figures reported from them.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::Op;

/// The longest latency a histogram tells apart: one minute. Longer ones
/// count as one minute.
const HIGHEST_MICROS: u64 = 60_000_000;

/// Latencies (microseconds) and error counts of reads and writes. Each
/// worker keeps its own; they are merged at the end of a run.
#[derive(Clone, Debug)]
pub struct Recorder {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    read_errors: u64,
    write_errors: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder: 1 us to 60 s at three significant digits.
    pub fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("valid bounds");
        Self {
            reads: histogram(),
            writes: histogram(),
            read_errors: 0,
            write_errors: 0,
        }
    }

    /// Records a completed operation. Latencies below 1 us count as 1 us.
    pub fn record(&mut self, op: Op, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram_mut(op).saturating_record(micros.max(1));
    }

    /// Records a failed operation; its latency is not kept.
    pub fn record_error(&mut self, op: Op) {
        match op {
            Op::Read => self.read_errors += 1,
            Op::Write => self.write_errors += 1,
        }
    }

    /// Adds another worker's figures to these.
    pub fn merge(&mut self, other: &Recorder) {
        self.reads.add(&other.reads).expect("same bounds");
        self.writes.add(&other.writes).expect("same bounds");
        self.read_errors += other.read_errors;
        self.write_errors += other.write_errors;
    }

    /// The figures of one operation type over a run of `seconds`.
    pub fn report(&self, op: Op, seconds: f64) -> OpReport {
        let histogram = self.histogram(op);
        OpReport {
            count: histogram.len(),
            errors: match op {
                Op::Read => self.read_errors,
                Op::Write => self.write_errors,
            },
            ops_per_second: if seconds > 0.0 {
                histogram.len() as f64 / seconds
            } else {
                0.0
            },
            p50_us: histogram.value_at_quantile(0.5),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }

    fn histogram(&self, op: Op) -> &Histogram<u64> {
        match op {
            Op::Read => &self.reads,
            Op::Write => &self.writes,
        }
    }

    fn histogram_mut(&mut self, op: Op) -> &mut Histogram<u64> {
        match op {
            Op::Read => &mut self.reads,
            Op::Write => &mut self.writes,
        }
    }
}

/// Figures of one operation type.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// True when `value` is within 0.2% of `expected` (HDR keeps three
    /// significant digits).
    fn close(value: u64, expected: u64) -> bool {
        value.abs_diff(expected) * 500 <= expected
    }

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut recorder = Recorder::new();
        for micros in 1..=10_000 {
            recorder.record(Op::Read, Duration::from_micros(micros));
        }
        let report = recorder.report(Op::Read, 2.0);
        assert_eq!(report.count, 10_000);
        assert_eq!(report.errors, 0);
        assert!((report.ops_per_second - 5_000.0).abs() < 1e-9, "{report:?}");
        assert!(close(report.p50_us, 5_000), "{report:?}");
        assert!(close(report.p99_us, 9_900), "{report:?}");
        assert!(close(report.p999_us, 9_990), "{report:?}");
        assert!(close(report.max_us, 10_000), "{report:?}");
        assert_eq!(recorder.report(Op::Write, 2.0).count, 0);
    }

    #[test]
    fn a_slow_tail_shows_at_p999_but_not_at_p99() {
        let mut recorder = Recorder::new();
        for _ in 0..995 {
            recorder.record(Op::Write, Duration::from_millis(1));
        }
        for _ in 0..5 {
            recorder.record(Op::Write, Duration::from_millis(200));
        }
        let report = recorder.report(Op::Write, 1.0);
        assert!(close(report.p50_us, 1_000), "{report:?}");
        assert!(close(report.p99_us, 1_000), "{report:?}");
        assert!(close(report.p999_us, 200_000), "{report:?}");
    }

    #[test]
    fn merging_adds_counts_and_errors_per_operation() {
        let mut first = Recorder::new();
        first.record(Op::Read, Duration::from_micros(100));
        first.record_error(Op::Write);
        let mut second = Recorder::new();
        second.record(Op::Read, Duration::from_micros(300));
        second.record(Op::Write, Duration::from_nanos(10));
        second.record_error(Op::Read);
        first.merge(&second);
        let (read, write) = (first.report(Op::Read, 1.0), first.report(Op::Write, 1.0));
        assert_eq!((read.count, read.errors), (2, 1));
        assert_eq!((write.count, write.errors), (1, 1));
        assert!(close(read.max_us, 300), "{read:?}");
        assert_eq!(write.max_us, 1, "below 1 us counts as 1 us");
    }

    #[test]
    fn latencies_beyond_a_minute_count_as_a_minute() {
        let mut recorder = Recorder::new();
        recorder.record(Op::Read, Duration::from_secs(3_600));
        let report = recorder.report(Op::Read, 1.0);
        assert_eq!(report.count, 1);
        assert!(close(report.max_us, HIGHEST_MICROS), "{report:?}");
    }
}
