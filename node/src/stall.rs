//! Write-stall detection. Buffered writes run in place on the async workers
//! because they take microseconds, but fjall makes a writer sleep while its
//! flushes fall behind. After one slow write, writes go to the blocking pool
//! for a while, so a stall delays writes only, not every request that shares
//! the worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A buffered write slower than this counts as stalled. fjall's stalls
/// sleep 10 to 100 ms at a time; a write that was merely preempted on a busy
/// machine stays well below this.
const SLOW_WRITE: Duration = Duration::from_millis(50);
/// How long writes stay on the blocking pool after a stalled one.
const OFFLOAD_FOR: Duration = Duration::from_secs(1);

/// Remembers when buffered writes last stalled.
#[derive(Debug)]
pub struct StallDetector {
    epoch: Instant,
    /// Microseconds since `epoch` until which writes leave the workers.
    offload_until_us: AtomicU64,
}

impl Default for StallDetector {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            offload_until_us: AtomicU64::new(0),
        }
    }
}

impl StallDetector {
    /// True while writes should run on the blocking pool.
    pub fn offloading(&self, now: Instant) -> bool {
        self.micros(now) < self.offload_until_us.load(Ordering::Relaxed)
    }

    /// Records that a buffered write that started at `started` ended at `now`.
    pub fn record(&self, started: Instant, now: Instant) {
        if now.saturating_duration_since(started) > SLOW_WRITE {
            let until = self.micros(now + OFFLOAD_FOR);
            self.offload_until_us.fetch_max(until, Ordering::Relaxed);
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_write_offloads_for_a_while_and_fast_ones_do_not() {
        let detector = StallDetector::default();
        let start = Instant::now();
        detector.record(start, start + Duration::from_micros(50));
        assert!(!detector.offloading(start + Duration::from_millis(1)));

        let stalled_at = start + Duration::from_secs(5);
        detector.record(stalled_at, stalled_at + Duration::from_millis(100));
        let after = stalled_at + Duration::from_millis(100);
        assert!(detector.offloading(after));
        assert!(detector.offloading(after + OFFLOAD_FOR - Duration::from_millis(1)));
        assert!(!detector.offloading(after + OFFLOAD_FOR + Duration::from_millis(1)));
    }

    #[test]
    fn a_fast_write_does_not_shorten_an_offload() {
        let detector = StallDetector::default();
        let start = Instant::now() + Duration::from_secs(1);
        detector.record(start, start + Duration::from_millis(80));
        detector.record(start, start + Duration::from_micros(10));
        assert!(detector.offloading(start + Duration::from_millis(500)));
    }
}
