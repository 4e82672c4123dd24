//! A per-peer estimate of tail latency that follows recent calls.
//!
//! The estimate is an asymmetric moving average: a sample above it pulls it
//! up by [`UP`] of the gap, a sample below pulls it down by [`DOWN`] of the
//! gap. With `DOWN = UP * (1 - q) / q` the estimate settles where the pull
//! from above balances the pull from below: the q-expectile of the latency
//! distribution, a tail statistic close to its q-quantile, with q = 0.99
//! here. It reacts to a slow call at once (one slow sample moves it a
//! quarter of the way) and forgets a slow period gradually (a few hundred
//! fast samples halve the gap), so a deadline made from it follows a
//! peer's latency in both directions. It costs one atomic per sample.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The quantile-like level the estimate settles at.
pub const LEVEL: f64 = 0.99;
/// Share of the gap a sample above the estimate closes.
pub const UP: f64 = 0.25;
/// Share of the gap a sample below the estimate closes.
pub const DOWN: f64 = UP * (1.0 - LEVEL) / LEVEL;

/// The decaying tail-latency estimate of one peer, in microseconds.
#[derive(Debug, Default)]
pub struct TailLatency {
    /// `f64` bits of the estimate; 0 means no sample yet.
    bits: AtomicU64,
}

impl TailLatency {
    /// Takes in one call's latency.
    pub fn record(&self, elapsed: Duration) {
        let sample = elapsed.as_secs_f64() * 1e6;
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let estimate = f64::from_bits(bits);
                let next = if bits == 0 {
                    sample
                } else if sample > estimate {
                    estimate + UP * (sample - estimate)
                } else {
                    estimate - DOWN * (estimate - sample)
                };
                // Never store the "no sample" marker.
                Some(next.max(f64::MIN_POSITIVE).to_bits())
            });
    }

    /// The estimate, or `None` before the first sample.
    pub fn estimate(&self) -> Option<Duration> {
        let bits = self.bits.load(Ordering::Relaxed);
        (bits != 0).then(|| Duration::from_secs_f64(f64::from_bits(bits) / 1e6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_near_the_tail_of_a_steady_distribution() {
        let latency = TailLatency::default();
        assert_eq!(latency.estimate(), None);
        // 98% at 1 ms, 2% at 10 ms: the tail estimate sits well above the
        // median and below the slow calls.
        for round in 0..20_000u32 {
            let ms = if round % 50 < 49 { 1 } else { 10 };
            latency.record(Duration::from_millis(ms));
        }
        let estimate = latency.estimate().expect("sampled");
        assert!(
            estimate > Duration::from_micros(1_500) && estimate < Duration::from_millis(10),
            "{estimate:?}"
        );
    }

    #[test]
    fn rises_at_once_and_decays_gradually() {
        let latency = TailLatency::default();
        for _ in 0..1000 {
            latency.record(Duration::from_millis(1));
        }
        latency.record(Duration::from_millis(401));
        let risen = latency.estimate().expect("sampled");
        assert!(risen >= Duration::from_millis(100), "{risen:?}");
        for _ in 0..100 {
            latency.record(Duration::from_millis(1));
        }
        let later = latency.estimate().expect("sampled");
        assert!(
            later < risen && later > Duration::from_millis(50),
            "{later:?}"
        );
        for _ in 0..5_000 {
            latency.record(Duration::from_millis(1));
        }
        let recovered = latency.estimate().expect("sampled");
        assert!(recovered < Duration::from_millis(2), "{recovered:?}");
    }
}
