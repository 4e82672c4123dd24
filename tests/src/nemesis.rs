//! The nemesis: a seeded random schedule of faults (kill and restart, pause
//! and resume, partitions, one-way link cuts) and the loop that plays it
//! against a [`ProcessCluster`]. The same seed gives the same schedule; the
//! interleaving with client requests still varies from run to run.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::process::{ProcessCluster, member_id};
use crate::proxy::LinkState;

/// Environment variable with the seed to replay.
pub const SEED_VAR: &str = "DYNAMO_FAULT_SEED";
/// Environment variable with the length of the schedule in seconds.
pub const SECONDS_VAR: &str = "DYNAMO_FAULT_SECONDS";
/// Environment variable with the number of steps (wins over seconds).
pub const STEPS_VAR: &str = "DYNAMO_FAULT_STEPS";

/// One fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the node; it restarts on the same data when the step ends.
    Kill {
        /// The node.
        node: usize,
    },
    /// SIGSTOP the node; SIGCONT when the step ends.
    Pause {
        /// The node.
        node: usize,
    },
    /// Cut every link between two groups, both ways.
    Partition {
        /// One group.
        side: Vec<usize>,
        /// The other group.
        other: Vec<usize>,
        /// `Refuse` (fast failures) or `Blackhole` (timeouts).
        state: LinkState,
    },
    /// Cut one directed link only: `from` cannot reach `to`, the other way
    /// still works.
    OneWay {
        /// The sender.
        from: usize,
        /// The receiver.
        to: usize,
        /// `Refuse` or `Blackhole`.
        state: LinkState,
    },
}

impl Fault {
    /// The nodes this fault makes faulty: the killed or paused node, the
    /// smaller side of a partition, the receiver of a one-way cut (its
    /// sender stays a healthy coordinator that must cope).
    pub fn faulty(&self) -> BTreeSet<usize> {
        match self {
            Self::Kill { node } | Self::Pause { node } => BTreeSet::from([*node]),
            Self::Partition { side, .. } => side.iter().copied().collect(),
            Self::OneWay { to, .. } => BTreeSet::from([*to]),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = |nodes: &[usize]| nodes.iter().map(|&i| member_id(i)).collect::<Vec<_>>();
        match self {
            Self::Kill { node } => write!(f, "kill {}", member_id(*node)),
            Self::Pause { node } => write!(f, "pause {}", member_id(*node)),
            Self::Partition { side, other, state } => {
                write!(
                    f,
                    "partition {:?} | {:?} ({state:?})",
                    ids(side),
                    ids(other)
                )
            }
            Self::OneWay { from, to, state } => write!(
                f,
                "cut {} -> {} ({state:?})",
                member_id(*from),
                member_id(*to)
            ),
        }
    }
}

/// Faults that start together, last `hold`, end together, and are followed
/// by `quiet` time without faults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The faults of this step.
    pub faults: Vec<Fault>,
    /// How long they last.
    pub hold: Duration,
    /// Fault-free time after them.
    pub quiet: Duration,
}

/// A reproducible list of steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The seed it was generated from.
    pub seed: u64,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Generates steps for a cluster of `nodes` until they fill `duration`,
    /// or exactly `steps` steps when that is given. Faults are mostly short
    /// (0.3 to 2.5 s) so that writes keep being acknowledged; one step in
    /// ten lasts 3 to 6 s, long enough for failure detection to notice.
    pub fn generate(seed: u64, nodes: usize, duration: Duration, steps: Option<usize>) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut schedule = Self {
            seed,
            steps: Vec::new(),
        };
        loop {
            let enough = match steps {
                Some(steps) => schedule.steps.len() >= steps,
                None => schedule.duration() >= duration,
            };
            if enough {
                return schedule;
            }
            let count = if rng.random_bool(0.3) { 2 } else { 1 };
            let mut busy = Vec::new();
            let faults = (0..count)
                .map(|_| random_fault(&mut rng, nodes, &mut busy))
                .collect();
            let hold = if rng.random_bool(0.1) {
                rng.random_range(3000..=6000)
            } else {
                rng.random_range(300..=2500)
            };
            schedule.steps.push(Step {
                faults,
                hold: Duration::from_millis(hold),
                quiet: Duration::from_millis(rng.random_range(200..=1500)),
            });
        }
    }

    /// The schedule the environment asks for: seed from `DYNAMO_FAULT_SEED`
    /// (else random), length from `DYNAMO_FAULT_STEPS` or
    /// `DYNAMO_FAULT_SECONDS` (else `default_duration`). Prints the seed to
    /// stderr.
    ///
    /// # Panics
    /// When one of the variables is set but not a number.
    pub fn from_env(nodes: usize, default_duration: Duration) -> Self {
        let seed = env_number(SEED_VAR).unwrap_or_else(rand::random);
        let seconds = env_number(SECONDS_VAR);
        let steps = env_number(STEPS_VAR).map(|steps| steps as usize);
        let duration = seconds.map_or(default_duration, Duration::from_secs);
        eprintln!("nemesis seed = {seed} (replay with {SEED_VAR}={seed})");
        Self::generate(seed, nodes, duration, steps)
    }

    /// Time the schedule takes when every fault applies instantly.
    pub fn duration(&self) -> Duration {
        self.steps.iter().map(|step| step.hold + step.quiet).sum()
    }
}

/// A fault for a cluster of `nodes`; kills and pauses avoid `busy` nodes
/// and add theirs to it.
fn random_fault(rng: &mut StdRng, nodes: usize, busy: &mut Vec<usize>) -> Fault {
    let state = if rng.random_bool(0.5) {
        LinkState::Refuse
    } else {
        LinkState::Blackhole
    };
    let free: Vec<usize> = (0..nodes).filter(|node| !busy.contains(node)).collect();
    let roll = rng.random_range(0..100);
    if roll < 55 && !free.is_empty() {
        let node = free[rng.random_range(0..free.len())];
        busy.push(node);
        return if roll < 30 {
            Fault::Kill { node }
        } else {
            Fault::Pause { node }
        };
    }
    let mut order: Vec<usize> = (0..nodes).collect();
    order.shuffle(rng);
    if roll < 85 || nodes < 2 {
        let size = rng.random_range(1..=(nodes / 2).max(1));
        let other = order.split_off(size);
        Fault::Partition {
            side: order,
            other,
            state,
        }
    } else {
        Fault::OneWay {
            from: order[0],
            to: order[1],
            state,
        }
    }
}

/// The number in environment variable `name`, if set.
pub fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

/// One step as it was played: from just before its faults were applied
/// until it was healed, and the nodes its faults made faulty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Played {
    /// Before the first fault was applied.
    pub from: Instant,
    /// After the step was healed.
    pub to: Instant,
    /// The nodes its faults made faulty.
    pub faulty: BTreeSet<usize>,
}

/// What a run of the nemesis did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Steps played.
    pub steps: usize,
    /// Nodes killed and restarted.
    pub kills: usize,
    /// Nodes paused and resumed.
    pub pauses: usize,
    /// Two-way partitions.
    pub partitions: usize,
    /// One-way link cuts.
    pub one_way: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Every step as played.
    pub played: Vec<Played>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} steps in {:.1} s: {} kills, {} pauses, {} partitions, {} one-way cuts",
            self.steps,
            self.elapsed.as_secs_f64(),
            self.kills,
            self.pauses,
            self.partitions,
            self.one_way
        )
    }
}

/// Plays `schedule` against `cluster`, logging each step to stderr. Every
/// step ends healed: killed nodes restarted (and ready), paused nodes
/// resumed, links open.
///
/// # Errors
/// When a node cannot be signalled or restarted.
pub async fn run(schedule: &Schedule, cluster: &mut ProcessCluster) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report::default();
    for (number, step) in schedule.steps.iter().enumerate() {
        let from = Instant::now();
        for fault in &step.faults {
            eprintln!(
                "nemesis t={:5.1}s step {number}: {fault} for {} ms",
                started.elapsed().as_secs_f64(),
                step.hold.as_millis()
            );
            match fault {
                Fault::Kill { node } => {
                    cluster.kill(*node)?;
                    report.kills += 1;
                }
                Fault::Pause { node } => {
                    cluster.pause(*node)?;
                    report.pauses += 1;
                }
                Fault::Partition { side, other, state } => {
                    cluster.network().split(side, other, *state);
                    report.partitions += 1;
                }
                Fault::OneWay { from, to, state } => {
                    cluster.network().link(*from, *to).set(*state);
                    report.one_way += 1;
                }
            }
        }
        // The length of the fault is part of the schedule, not a wait for
        // a condition.
        tokio::time::sleep(step.hold).await;
        cluster.heal_all().await?;
        report.played.push(Played {
            from,
            to: Instant::now(),
            faulty: step.faults.iter().flat_map(Fault::faulty).collect(),
        });
        report.steps += 1;
        tokio::time::sleep(step.quiet).await;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_schedule() {
        let a = Schedule::generate(7, 5, Duration::from_secs(60), None);
        let b = Schedule::generate(7, 5, Duration::from_secs(60), None);
        let c = Schedule::generate(8, 5, Duration::from_secs(60), None);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.duration() >= Duration::from_secs(60));
    }

    #[test]
    fn steps_win_over_duration_and_faults_name_real_nodes() {
        let schedule = Schedule::generate(1, 5, Duration::from_secs(1), Some(200));
        assert_eq!(schedule.steps.len(), 200);
        for step in &schedule.steps {
            let mut signalled = Vec::new();
            for fault in &step.faults {
                match fault {
                    Fault::Kill { node } | Fault::Pause { node } => {
                        assert!(*node < 5);
                        assert!(!signalled.contains(node), "one signal per node: {step:?}");
                        signalled.push(*node);
                    }
                    Fault::Partition { side, other, .. } => {
                        assert!(!side.is_empty() && side.len() <= 2, "{fault}");
                        assert_eq!(side.len() + other.len(), 5);
                    }
                    Fault::OneWay { from, to, .. } => assert_ne!(from, to),
                }
            }
        }
    }
}
