//! Per-node health as the client sees it: recent latencies (which give the
//! hedge delay), failures and lost hedge races (which make a node
//! suspected), and when a suspected node is probed again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::HedgeOptions;

/// Latencies kept per node for its p99.
const WINDOW: usize = 128;

/// Below this many latencies a node's p99 is not trusted and the hedge
/// delay is the ceiling: a cold client (a one-shot `dynamoctl` call,
/// whose first requests also connect) should not hedge its writes.
const MIN_SAMPLES: usize = 8;

/// Penalty points at which a node becomes suspected: one timeout or broken
/// connection (2 points), or two lost races in a row (1 point each).
const SUSPECT_AT: u32 = 2;

/// What one attempt to a node came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The node answered (any answer, an error status included) after this
    /// long.
    Answered(Duration),
    /// No answer: a timeout, a refused or broken connection.
    Failed,
    /// Cancelled because another attempt answered first, while this one
    /// had already taken longer than its hedge delay.
    Lost,
}

/// One node of a request's plan, in the order the attempts start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The node's address.
    pub(crate) address: String,
    /// Suspected when the plan was made.
    pub(crate) suspected: bool,
    /// This attempt is the node's probe: its outcome decides whether the
    /// node is trusted again.
    pub(crate) probe: bool,
}

/// What the client knows of one node.
#[derive(Debug)]
struct NodeHealth {
    /// The most recent answer latencies, oldest first.
    latencies: VecDeque<Duration>,
    /// Timeouts (2) and lost races (1) since the last answer.
    penalty: u32,
    suspected: bool,
    /// Current wait between probes of a suspected node.
    backoff: Duration,
    /// When a suspected node may be probed next.
    probe_at: Instant,
    /// When the probe in flight started; a probe whose request was dropped
    /// counts as over after the longest backoff.
    probing: Option<Instant>,
}

impl NodeHealth {
    fn new(now: Instant) -> Self {
        Self {
            latencies: VecDeque::with_capacity(WINDOW),
            penalty: 0,
            suspected: false,
            backoff: Duration::ZERO,
            probe_at: now,
            probing: None,
        }
    }

    /// The recent p99 latency, when enough answers were seen.
    fn p99(&self) -> Option<Duration> {
        if self.latencies.len() < MIN_SAMPLES {
            return None;
        }
        let mut sorted: Vec<Duration> = self.latencies.iter().copied().collect();
        let rank = (sorted.len() * 99).div_ceil(100) - 1;
        let (_, p99, _) = sorted.select_nth_unstable(rank);
        Some(*p99)
    }
}

/// Health of every node the client talked to, shared by its clones.
#[derive(Debug)]
pub(crate) struct Health {
    options: HedgeOptions,
    nodes: Mutex<HashMap<String, NodeHealth>>,
}

impl Health {
    /// No node known yet; every node starts healthy.
    pub(crate) fn new(options: HedgeOptions) -> Self {
        Self {
            options,
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// The options behind delays and backoffs.
    pub(crate) fn options(&self) -> &HedgeOptions {
        &self.options
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeHealth>> {
        // Every update leaves a node's entry consistent, so a panic
        // elsewhere cannot leave it half-written.
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The order in which to try `addresses` (given in routing order):
    /// healthy nodes first in the given order, then suspected ones. When a
    /// suspected node is due for a probe and none is in flight, it goes
    /// first instead, marked as the probe (its hedge delay is zero, so the
    /// request does not wait for it).
    pub(crate) fn plan(&self, addresses: &[&str], now: Instant) -> Vec<Candidate> {
        let mut nodes = self.nodes();
        let mut healthy = Vec::with_capacity(addresses.len());
        let mut suspected = Vec::new();
        let mut probe = None;
        for address in addresses {
            let node = nodes.get_mut(*address);
            let Some(node) = node.filter(|node| node.suspected) else {
                healthy.push(Candidate {
                    address: (*address).to_owned(),
                    suspected: false,
                    probe: false,
                });
                continue;
            };
            let candidate = Candidate {
                address: (*address).to_owned(),
                suspected: true,
                probe: false,
            };
            let probing = node
                .probing
                .is_some_and(|since| now < since + self.options.max_probe_backoff);
            if probe.is_none() && !probing && node.probe_at <= now {
                node.probing = Some(now);
                probe = Some(Candidate {
                    probe: true,
                    ..candidate
                });
            } else {
                suspected.push(candidate);
            }
        }
        probe.into_iter().chain(healthy).chain(suspected).collect()
    }

    /// How long to wait for an answer of `candidate` before hedging to the
    /// next node: zero for a suspected node followed by a healthy one,
    /// otherwise its recent p99 within the floor and the ceiling (the
    /// ceiling while too few answers were seen).
    pub(crate) fn hedge_delay(&self, candidate: &Candidate, next: Option<&Candidate>) -> Duration {
        if candidate.suspected && next.is_some_and(|next| !next.suspected) {
            return Duration::ZERO;
        }
        let p99 = self
            .nodes()
            .get(&candidate.address)
            .and_then(NodeHealth::p99);
        p99.unwrap_or(self.options.ceiling).clamp(
            self.options.floor,
            self.options.ceiling.max(self.options.floor),
        )
    }

    /// Takes in what an attempt to `candidate` came to.
    pub(crate) fn record(&self, candidate: &Candidate, outcome: Outcome, now: Instant) {
        let mut nodes = self.nodes();
        let node = nodes
            .entry(candidate.address.clone())
            .or_insert_with(|| NodeHealth::new(now));
        if candidate.probe {
            node.probing = None;
        }
        match outcome {
            Outcome::Answered(latency) => {
                if node.latencies.len() == WINDOW {
                    node.latencies.pop_front();
                }
                node.latencies.push_back(latency);
                if node.suspected {
                    tracing::debug!(address = candidate.address, "node answers again; trusted");
                }
                node.penalty = 0;
                node.suspected = false;
                node.backoff = Duration::ZERO;
            }
            Outcome::Failed | Outcome::Lost => {
                node.penalty += if outcome == Outcome::Failed { 2 } else { 1 };
                if node.suspected {
                    // A probe that lost a race says nothing new: the node
                    // keeps its backoff. A failure doubles it.
                    if outcome == Outcome::Failed {
                        node.backoff = (node.backoff * 2).min(self.options.max_probe_backoff);
                    }
                    if candidate.probe || outcome == Outcome::Failed {
                        node.probe_at = now + node.backoff;
                    }
                } else if node.penalty >= SUSPECT_AT {
                    tracing::debug!(
                        address = candidate.address,
                        ?outcome,
                        "node suspected; tried last until a probe answers"
                    );
                    node.suspected = true;
                    node.backoff = self.options.probe_backoff;
                    node.probe_at = now + node.backoff;
                }
            }
        }
    }

    /// Whether `address` is suspected now.
    #[cfg(test)]
    pub(crate) fn is_suspected(&self, address: &str) -> bool {
        self.nodes().get(address).is_some_and(|node| node.suspected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn candidate(health: &Health, address: &str, now: Instant) -> Candidate {
        health
            .plan(&[address], now)
            .pop()
            .expect("one address gives one candidate")
    }

    #[test]
    fn the_hedge_delay_follows_the_p99_within_floor_and_ceiling() {
        let health = Health::new(HedgeOptions::default());
        let now = Instant::now();
        let a = candidate(&health, "a", now);
        assert_eq!(health.hedge_delay(&a, None), ms(250), "cold: the ceiling");
        for latency in 1..=100 {
            health.record(&a, Outcome::Answered(ms(latency)), now);
        }
        assert_eq!(health.hedge_delay(&a, None), ms(99));
        for _ in 0..WINDOW {
            health.record(&a, Outcome::Answered(ms(1)), now);
        }
        assert_eq!(health.hedge_delay(&a, None), ms(20), "the floor");
        for _ in 0..WINDOW {
            health.record(&a, Outcome::Answered(ms(900)), now);
        }
        assert_eq!(health.hedge_delay(&a, None), ms(250), "the ceiling");
    }

    #[test]
    fn a_failure_or_two_lost_races_suspect_a_node_and_an_answer_clears_it() {
        let health = Health::new(HedgeOptions::default());
        let now = Instant::now();
        let a = candidate(&health, "a", now);
        health.record(&a, Outcome::Lost, now);
        assert!(!health.is_suspected("a"), "one lost race is jitter");
        health.record(&a, Outcome::Answered(ms(1)), now);
        health.record(&a, Outcome::Lost, now);
        assert!(!health.is_suspected("a"), "an answer resets the count");
        health.record(&a, Outcome::Lost, now);
        assert!(health.is_suspected("a"));
        health.record(&a, Outcome::Answered(ms(1)), now);
        assert!(!health.is_suspected("a"));
        health.record(&a, Outcome::Failed, now);
        assert!(health.is_suspected("a"), "a timeout is enough");
    }

    #[test]
    fn suspected_nodes_go_last_then_one_probe_goes_first_after_the_backoff() {
        let health = Health::new(HedgeOptions::default());
        let start = Instant::now();
        let b = candidate(&health, "b", start);
        health.record(&b, Outcome::Failed, start);
        let order = |plan: &[Candidate]| -> Vec<String> {
            plan.iter().map(|c| c.address.clone()).collect::<Vec<_>>()
        };
        let plan = health.plan(&["b", "a", "c"], start);
        assert_eq!(order(&plan), ["a", "c", "b"]);
        assert!(plan[2].suspected && !plan[2].probe);
        assert_eq!(health.hedge_delay(&plan[0], Some(&plan[1])), ms(250));

        let due = start + ms(250);
        let plan = health.plan(&["a", "b", "c"], due);
        assert_eq!(order(&plan), ["b", "a", "c"], "the probe goes first");
        assert!(plan[0].probe);
        assert_eq!(
            health.hedge_delay(&plan[0], Some(&plan[1])),
            Duration::ZERO,
            "nobody waits for a probe"
        );
        let again = health.plan(&["a", "b", "c"], due);
        assert_eq!(order(&again), ["a", "c", "b"], "one probe at a time");

        // The probe times out: the backoff doubles.
        health.record(&plan[0], Outcome::Failed, due);
        assert!(!health.plan(&["b"], due + ms(499))[0].probe);
        let plan = health.plan(&["a", "b"], due + ms(500));
        assert!(plan[0].probe);
        health.record(&plan[0], Outcome::Answered(ms(2)), due + ms(500));
        assert!(!health.is_suspected("b"));
        assert_eq!(order(&health.plan(&["b", "a"], due)), ["b", "a"]);
    }

    #[test]
    fn the_probe_backoff_stops_growing_at_its_maximum() {
        let options = HedgeOptions {
            probe_backoff: ms(100),
            max_probe_backoff: ms(300),
            ..HedgeOptions::default()
        };
        let health = Health::new(options);
        let mut now = Instant::now();
        let a = candidate(&health, "a", now);
        health.record(&a, Outcome::Failed, now);
        for _ in 0..5 {
            now += ms(300);
            let probe = health.plan(&["a"], now).remove(0);
            assert!(probe.probe, "due after at most the maximum backoff");
            health.record(&probe, Outcome::Failed, now);
        }
    }
}
