//! Restart policy of the local platform, as a kubelet restarts the pod of a
//! StatefulSet: a member process that exits without being asked to is
//! started again after a backoff that doubles with each crash in a row, and
//! the count starts over once the process has run for a while.

use std::time::{Duration, Instant};

/// Wait before the first restart.
const INITIAL: Duration = Duration::from_secs(1);
/// Longest wait between restarts.
const MAX: Duration = Duration::from_secs(30);
/// A process that ran this long without exiting was healthy: the next
/// crash waits only the initial backoff again.
const STABLE: Duration = Duration::from_secs(60);

/// Crash-restart bookkeeping of one member.
#[derive(Clone, Debug)]
pub(crate) struct Restarts {
    /// Crashes in a row (reset once a run lasted [`STABLE`]).
    crashes: u32,
    /// When the current process started.
    started: Instant,
    /// When the exited process is due to start again.
    due: Option<Instant>,
}

impl Restarts {
    /// A member whose process just started.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            crashes: 0,
            started: now,
            due: None,
        }
    }

    /// Whether an exit was already noticed and a restart is scheduled.
    pub(crate) fn scheduled(&self) -> bool {
        self.due.is_some()
    }

    /// Notes that the process exited; returns how long until it restarts.
    pub(crate) fn exited(&mut self, now: Instant) -> Duration {
        if now.saturating_duration_since(self.started) >= STABLE {
            self.crashes = 0;
        }
        let delay = INITIAL.saturating_mul(1 << self.crashes.min(16)).min(MAX);
        self.crashes = self.crashes.saturating_add(1);
        self.due = Some(now + delay);
        delay
    }

    /// Whether a scheduled restart is due.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.due.is_some_and(|due| due <= now)
    }

    /// Notes that the process was started again.
    pub(crate) fn restarted(&mut self, now: Instant) {
        self.started = now;
        self.due = None;
    }

    /// Crashes in a row so far.
    pub(crate) fn crashes(&self) -> u32 {
        self.crashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_maximum_and_resets_after_a_stable_run() {
        let mut now = Instant::now();
        let mut restarts = Restarts::new(now);
        assert!(!restarts.scheduled());
        let mut delays = Vec::new();
        for _ in 0..7 {
            now += Duration::from_secs(2);
            let delay = restarts.exited(now);
            assert!(restarts.scheduled());
            assert!(!restarts.is_due(now + delay - Duration::from_millis(1)));
            assert!(restarts.is_due(now + delay));
            now += delay;
            restarts.restarted(now);
            assert!(!restarts.scheduled());
            delays.push(delay.as_secs());
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(restarts.crashes(), 7);
        now += STABLE;
        assert_eq!(restarts.exited(now), INITIAL, "a stable run resets it");
    }
}
