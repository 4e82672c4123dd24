//! Membership state: every member's newest heartbeat, and the local failure
//! detector. The detector is a phi accrual detector (Hayashibara et al., as
//! in Cassandra and Akka) over the intervals at which each member's gossip
//! heartbeat moves, plus request outcomes: calls that fail in a row suspect
//! a member until it is heard from directly. This is a pure state machine;
//! [`crate::gossip`] does the I/O.
//!
//! The detector only steers replica choice for sloppy quorum. It never
//! changes who owns what.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How this node currently judges a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// This node itself.
    Myself,
    /// Its heartbeat moved recently.
    Up,
    /// Suspected: its heartbeat is overdue (phi above the threshold, or
    /// silent for longer than the longest silence allowed), calls to it
    /// failed in a row, or it was never heard of.
    Down,
}

impl Liveness {
    /// The word used in status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Myself => "self",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// The newest heartbeat known of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The member's own counter; it only grows within an incarnation.
    pub counter: u64,
    /// Incarnation id (hex) of the member's data directory.
    pub incarnation: String,
}

/// Settings of the failure detector (see docs/design-notes.md, "Failure
/// detection").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorSettings {
    /// Expected interval between heartbeat moves (the gossip interval),
    /// used until a member has a few intervals of its own.
    pub expected_interval: Duration,
    /// A member is suspected once phi, -log10 of the chance that its next
    /// heartbeat is merely late, passes this (3: a one in a thousand
    /// chance).
    pub phi_threshold: f64,
    /// Smallest standard deviation of the intervals phi assumes, so that
    /// very regular heartbeats do not make it hair-triggered.
    pub min_std_dev: Duration,
    /// How many recent intervals the detector keeps per member.
    pub window: usize,
    /// Longest silence tolerated whatever phi says; longer intervals are
    /// not learnt from.
    pub max_silence: Duration,
    /// Calls that fail in a row (see [`Membership::failed`]) before the
    /// member is suspected.
    pub failures_to_suspect: u32,
}

impl Default for DetectorSettings {
    /// The defaults of the node configuration: 1 s gossip, phi 3, a
    /// 250 ms floor under the deviation, 100 intervals, 5 s at most, 2
    /// failed calls.
    fn default() -> Self {
        Self {
            expected_interval: Duration::from_secs(1),
            phi_threshold: 3.0,
            min_std_dev: Duration::from_millis(250),
            window: 100,
            max_silence: Duration::from_secs(5),
            failures_to_suspect: 2,
        }
    }
}

/// Recent intervals between heartbeat moves of one member, in seconds.
#[derive(Clone, Debug, Default)]
struct Intervals {
    recent: VecDeque<f64>,
    sum: f64,
    sum_of_squares: f64,
}

/// Intervals needed before a member's own mean and deviation are used.
const MIN_INTERVALS: usize = 3;

impl Intervals {
    fn push(&mut self, interval: f64, window: usize) {
        if self.recent.len() >= window.max(1)
            && let Some(old) = self.recent.pop_front()
        {
            self.sum -= old;
            self.sum_of_squares -= old * old;
        }
        self.recent.push_back(interval);
        self.sum += interval;
        self.sum_of_squares += interval * interval;
    }

    /// Mean and standard deviation in seconds, the bootstrap values
    /// (`expected`, half of it) while too few intervals are known.
    fn mean_and_std_dev(&self, expected: f64) -> (f64, f64) {
        let count = self.recent.len();
        if count < MIN_INTERVALS {
            return (expected, expected / 2.0);
        }
        let mean = self.sum / count as f64;
        let variance = (self.sum_of_squares / count as f64 - mean * mean).max(0.0);
        (mean, variance.sqrt())
    }
}

/// Phi of a silence of `elapsed` seconds when intervals are normal with
/// `mean` and `std_dev`: -log10 of the chance that the next heartbeat
/// comes even later. Uses the logistic approximation of the normal
/// distribution's tail (as Akka does), which stays finite far out.
fn phi(elapsed: f64, mean: f64, std_dev: f64) -> f64 {
    let y = (elapsed - mean) / std_dev;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    if elapsed > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    }
}

#[derive(Clone, Debug)]
struct Known {
    heartbeat: Heartbeat,
    /// When the heartbeat counter last moved.
    moved: Instant,
    /// Last sign of life: a heartbeat move or direct contact.
    alive: Instant,
    intervals: Intervals,
    /// Calls that failed since the member was last heard from directly.
    failures: u32,
}

impl Known {
    fn new(heartbeat: Heartbeat, now: Instant) -> Self {
        Self {
            heartbeat,
            moved: now,
            alive: now,
            intervals: Intervals::default(),
            failures: 0,
        }
    }
}

/// Heartbeats of all members and the failure detector.
#[derive(Debug)]
pub struct Membership {
    me: String,
    settings: DetectorSettings,
    known: BTreeMap<String, Known>,
}

impl Membership {
    /// Starts with only this node known. The own counter starts at the
    /// current wall-clock milliseconds, so a restarted node's heartbeats are
    /// newer than those it sent before.
    pub fn new(me: &str, incarnation: &str, settings: DetectorSettings, now: Instant) -> Self {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_millis() as u64);
        let mut known = BTreeMap::new();
        known.insert(
            me.to_owned(),
            Known::new(
                Heartbeat {
                    counter: start,
                    incarnation: incarnation.to_owned(),
                },
                now,
            ),
        );
        Self {
            me: me.to_owned(),
            settings,
            known,
        }
    }

    /// Starts tracking members not known yet, as if just heard of, so a
    /// fresh node does not suspect everyone before the first gossip round.
    pub fn track<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>, now: Instant) {
        for id in ids {
            self.known.entry(id.to_owned()).or_insert_with(|| {
                Known::new(
                    Heartbeat {
                        counter: 0,
                        incarnation: String::new(),
                    },
                    now,
                )
            });
        }
    }

    /// Restarts the grace period of members never heard of, so a node that
    /// spent a while starting does not suspect everyone at once.
    pub fn grace(&mut self, now: Instant) {
        for known in self.known.values_mut() {
            if known.heartbeat.counter == 0 {
                known.moved = now;
                known.alive = now;
            }
        }
    }

    /// Advances this node's own heartbeat.
    pub fn tick(&mut self, now: Instant) {
        if let Some(own) = self.known.get_mut(&self.me) {
            own.heartbeat.counter += 1;
            own.moved = now;
            own.alive = now;
        }
    }

    /// Takes in heartbeats heard from a peer; newer counters win. Each move
    /// of a member's counter is an arrival for its detector.
    pub fn merge(&mut self, heard: impl IntoIterator<Item = (String, Heartbeat)>, now: Instant) {
        let settings = self.settings;
        for (id, heartbeat) in heard {
            if id == self.me {
                continue;
            }
            match self.known.get_mut(&id) {
                Some(known) if known.heartbeat.counter >= heartbeat.counter => {}
                Some(known) => {
                    let first = known.heartbeat.counter == 0;
                    let interval = now.saturating_duration_since(known.moved);
                    // The first heartbeat ends a grace period, not an
                    // interval; a silence past the limit was a failure and
                    // would teach that failures are normal.
                    if !first && interval < settings.max_silence {
                        known
                            .intervals
                            .push(interval.as_secs_f64(), settings.window);
                    }
                    known.heartbeat = heartbeat;
                    known.moved = now;
                    known.alive = known.alive.max(now);
                }
                None => {
                    self.known.insert(id, Known::new(heartbeat, now));
                }
            }
        }
    }

    /// Marks a member as heard from directly (a gossip exchange or a call
    /// that succeeded): a sign of life that also ends a suspicion from
    /// failed calls. It does not count as a heartbeat interval.
    pub fn heard_from(&mut self, id: &str, now: Instant) {
        if let Some(known) = self.known.get_mut(id) {
            known.alive = known.alive.max(now);
            known.failures = 0;
        }
    }

    /// Records that a call to `id` failed (timed out, was refused or
    /// broke). After [`DetectorSettings::failures_to_suspect`] failures
    /// with no direct contact in between, the member is suspected until it
    /// is [`heard_from`](Self::heard_from) again: heartbeats relayed by
    /// others do not end that suspicion, so a member this node cannot reach
    /// stays suspected here even while others hear from it.
    pub fn failed(&mut self, id: &str, now: Instant) {
        if id == self.me {
            return;
        }
        let known = self.known.entry(id.to_owned()).or_insert_with(|| {
            Known::new(
                Heartbeat {
                    counter: 0,
                    incarnation: String::new(),
                },
                now,
            )
        });
        known.failures = known.failures.saturating_add(1);
    }

    /// Every heartbeat known, for a gossip message.
    pub fn heartbeats(&self) -> Vec<(String, Heartbeat)> {
        self.known
            .iter()
            .map(|(id, known)| (id.clone(), known.heartbeat.clone()))
            .collect()
    }

    /// The suspicion level of `id` now: phi of its silence since its last
    /// sign of life; `None` for this node and members never heard of.
    pub fn phi(&self, id: &str, now: Instant) -> Option<f64> {
        if id == self.me {
            return None;
        }
        let known = self.known.get(id)?;
        let expected = self.settings.expected_interval.as_secs_f64().max(1e-3);
        let (mean, std_dev) = known.intervals.mean_and_std_dev(expected);
        let std_dev = std_dev.max(self.settings.min_std_dev.as_secs_f64().max(1e-3));
        let elapsed = now.saturating_duration_since(known.alive).as_secs_f64();
        Some(phi(elapsed, mean, std_dev))
    }

    /// The failure detector's judgement of `id`.
    pub fn liveness(&self, id: &str, now: Instant) -> Liveness {
        if id == self.me {
            return Liveness::Myself;
        }
        let Some(known) = self.known.get(id) else {
            return Liveness::Down;
        };
        let silence = now.saturating_duration_since(known.alive);
        let overdue = silence >= self.settings.max_silence
            || self
                .phi(id, now)
                .is_some_and(|phi| phi > self.settings.phi_threshold);
        let failing = known.failures >= self.settings.failures_to_suspect.max(1);
        if overdue || failing {
            Liveness::Down
        } else {
            Liveness::Up
        }
    }

    /// How long ago `id` was last heard of (its heartbeat moved or it was
    /// heard from directly), if it was ever heard of.
    pub fn last_heard(&self, id: &str, now: Instant) -> Option<Duration> {
        self.known
            .get(id)
            .map(|known| now.saturating_duration_since(known.alive))
    }
}

#[cfg(test)]
mod tests;
