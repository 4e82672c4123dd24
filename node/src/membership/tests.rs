//! Tests of the failure detector: unit cases, a simulation of gossip among
//! three nodes (how fast a paused node is suspected and trusted again),
//! and properties over arbitrary heartbeat timings.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::*;

fn beat(counter: u64) -> Heartbeat {
    Heartbeat {
        counter,
        incarnation: "1".into(),
    }
}

fn settings(max_silence: Duration) -> DetectorSettings {
    DetectorSettings {
        max_silence,
        ..DetectorSettings::default()
    }
}

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

#[test]
fn members_go_down_when_heartbeats_stop_and_up_when_they_move() {
    let start = Instant::now();
    let mut membership = Membership::new("a", "1", settings(secs(5.0)), start);
    assert_eq!(membership.liveness("a", start), Liveness::Myself);
    assert_eq!(
        membership.liveness("b", start),
        Liveness::Down,
        "never heard of"
    );
    membership.merge([("b".to_owned(), beat(10))], start);
    assert_eq!(membership.liveness("b", start), Liveness::Up);
    let later = start + secs(6.0);
    membership.merge([("b".to_owned(), beat(10))], later);
    assert_eq!(
        membership.liveness("b", later),
        Liveness::Down,
        "an old heartbeat is no news"
    );
    membership.merge([("b".to_owned(), beat(11))], later);
    assert_eq!(membership.liveness("b", later), Liveness::Up);
}

#[test]
fn a_slow_start_restarts_the_grace_of_members_never_heard_of() {
    let start = Instant::now();
    let mut membership = Membership::new("a", "1", settings(secs(1.0)), start);
    membership.track(["b", "c"], start);
    membership.merge([("c".to_owned(), beat(5))], start);
    let later = start + secs(3.0);
    assert_eq!(membership.liveness("b", later), Liveness::Down);
    membership.grace(later);
    assert_eq!(
        membership.liveness("b", later),
        Liveness::Up,
        "never heard of: grace"
    );
    assert_eq!(
        membership.liveness("c", later),
        Liveness::Down,
        "heard of, then silent"
    );
}

#[test]
fn own_heartbeat_only_grows_and_is_not_overwritten() {
    let now = Instant::now();
    let mut membership = Membership::new("a", "1", DetectorSettings::default(), now);
    let before = membership.heartbeats()[0].1.counter;
    membership.tick(now);
    membership.merge([("a".to_owned(), beat(0))], now);
    assert_eq!(membership.heartbeats()[0].1.counter, before + 1);
}

#[test]
fn phi_grows_with_silence_and_suspects_past_the_threshold() {
    let start = Instant::now();
    let mut membership = Membership::new("a", "1", DetectorSettings::default(), start);
    // Heartbeats every second, give or take 100 ms.
    let mut now = start;
    for counter in 1..=50 {
        now += secs(if counter % 2 == 0 { 0.9 } else { 1.1 });
        membership.merge([("b".to_owned(), beat(counter))], now);
    }
    let at = |silence: f64| now + secs(silence);
    let phis: Vec<f64> = [0.5, 1.0, 1.5, 2.0, 2.5]
        .iter()
        .map(|silence| membership.phi("b", at(*silence)).expect("b is known"))
        .collect();
    assert!(phis.windows(2).all(|pair| pair[0] < pair[1]), "{phis:?}");
    // Deviation 100 ms, floored at 250 ms: phi 3 at about 1.76 s.
    assert_eq!(membership.liveness("b", at(1.7)), Liveness::Up);
    assert_eq!(membership.liveness("b", at(1.85)), Liveness::Down);
    membership.merge([("b".to_owned(), beat(51))], at(1.9));
    assert_eq!(membership.liveness("b", at(1.9)), Liveness::Up);
    assert_eq!(membership.phi("a", now), None, "no phi of oneself");
}

#[test]
fn failed_calls_suspect_until_heard_from_directly() {
    let now = Instant::now();
    let mut membership = Membership::new("a", "1", DetectorSettings::default(), now);
    membership.merge([("b".to_owned(), beat(1))], now);
    membership.failed("b", now);
    assert_eq!(membership.liveness("b", now), Liveness::Up, "one failure");
    membership.heard_from("b", now);
    membership.failed("b", now);
    assert_eq!(
        membership.liveness("b", now),
        Liveness::Up,
        "direct contact reset the count"
    );
    membership.failed("b", now);
    assert_eq!(membership.liveness("b", now), Liveness::Down);
    membership.merge([("b".to_owned(), beat(2))], now);
    assert_eq!(
        membership.liveness("b", now),
        Liveness::Down,
        "a relayed heartbeat does not show that this node reaches b"
    );
    membership.heard_from("b", now);
    assert_eq!(membership.liveness("b", now), Liveness::Up);
    membership.failed("a", now);
    assert_eq!(membership.liveness("a", now), Liveness::Myself);
}

/// Three nodes gossiping every second (give or take 50 ms) with one random
/// peer each, push and pull, as `gossip::run` does.
struct Simulation {
    nodes: Vec<Membership>,
    start: Instant,
}

const IDS: [&str; 3] = ["n0", "n1", "n2"];

impl Simulation {
    fn new(start: Instant) -> Self {
        let nodes = IDS
            .iter()
            .map(|id| {
                let mut membership = Membership::new(id, "1", DetectorSettings::default(), start);
                membership.track(IDS, start);
                membership
            })
            .collect();
        Self { nodes, start }
    }

    /// Runs rounds until `until` seconds; `paused(t)` says whether node 2
    /// is paused at time `t`. After each round, `observe(t, nodes)`.
    fn run(
        &mut self,
        seed: u64,
        until: f64,
        paused: impl Fn(f64) -> bool,
        mut observe: impl FnMut(f64, &[Membership]),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let phases: Vec<f64> = IDS.iter().map(|_| rng.random::<f64>()).collect();
        let mut rounds: Vec<(f64, usize)> = (0..until.ceil() as usize)
            .flat_map(|second| {
                phases
                    .iter()
                    .enumerate()
                    .map(move |(node, phase)| (second as f64 + phase, node))
            })
            .map(|(time, node)| (time + rng.random_range(-0.05..0.05), node))
            .filter(|(time, _)| *time >= 0.0 && *time < until)
            .collect();
        rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (time, from) in rounds {
            let now = self.start + secs(time);
            if from == 2 && paused(time) {
                observe(time, &self.nodes);
                continue;
            }
            self.nodes[from].tick(now);
            let to = (from + rng.random_range(1..IDS.len())) % IDS.len();
            if to == 2 && paused(time) {
                // The call times out: no news either way.
                observe(time, &self.nodes);
                continue;
            }
            let sent = self.nodes[from].heartbeats();
            self.nodes[to].heard_from(IDS[from], now);
            self.nodes[to].merge(sent, now);
            let reply = self.nodes[to].heartbeats();
            self.nodes[from].heard_from(IDS[to], now);
            self.nodes[from].merge(reply, now);
            observe(time, &self.nodes);
        }
    }
}

/// Samples liveness of node 2 as seen by nodes 0 and 1 every 10 ms.
fn suspicions(nodes: &[Membership], start: Instant, from: f64, to: f64) -> Vec<(f64, bool)> {
    let mut samples = Vec::new();
    let mut time = from;
    while time < to {
        let now = start + secs(time);
        let down = nodes[..2]
            .iter()
            .any(|node| node.liveness(IDS[2], now) == Liveness::Down);
        samples.push((time, down));
        time += 0.01;
    }
    samples
}

#[test]
fn three_node_gossip_suspects_a_paused_node_within_about_two_seconds_and_trusts_it_after() {
    for seed in 0..20 {
        let start = Instant::now();
        let mut simulation = Simulation::new(start);
        let (pause, resume) = (300.0, 310.0);
        let mut falsely_down = 0;
        let mut last = 0.0;
        let mut detected: Option<f64> = None;
        let mut trusted: Option<f64> = None;
        simulation.run(
            seed,
            330.0,
            |time| (pause..resume).contains(&time),
            |time, nodes| {
                for (at, down) in suspicions(nodes, start, last, time) {
                    let paused = (pause..resume).contains(&at);
                    let settled = (5.0..pause).contains(&at) || trusted.is_some();
                    if down && settled {
                        falsely_down += 1;
                    }
                    if paused && down && detected.is_none() {
                        detected = Some(at - pause);
                    }
                    if at >= resume && !down && trusted.is_none() {
                        trusted = Some(at - resume);
                    }
                }
                last = time;
            },
        );
        let detected = detected.expect("the paused node is suspected");
        assert!(
            (0.3..=2.5).contains(&detected),
            "seed {seed}: suspected {detected:.2} s into the pause"
        );
        let trusted = trusted.expect("the resumed node is trusted again");
        assert!(
            trusted <= 1.5,
            "seed {seed}: trusted {trusted:.2} s after it resumed"
        );
        // 10 ms samples over ~320 s: false suspicions (jitter) stay under 1 s.
        assert!(
            falsely_down <= 100,
            "seed {seed}: {falsely_down} samples (10 ms) of false suspicion"
        );
    }
}

proptest! {
    /// Whatever the timing of heartbeats: a member is Up right after its
    /// heartbeat moves, Down once it was silent for the longest silence,
    /// and a growing silence never turns Down back into Up.
    #[test]
    fn silence_only_ever_adds_suspicion(
        gaps in proptest::collection::vec(0.01f64..4.0, 1..150),
        probes in proptest::collection::vec(0.0f64..6.0, 1..20),
    ) {
        let start = Instant::now();
        let mut membership = Membership::new("a", "1", DetectorSettings::default(), start);
        let mut now = start;
        for (counter, gap) in (1u64..).zip(&gaps) {
            now += secs(*gap);
            membership.merge([("b".to_owned(), beat(counter))], now);
            prop_assert_eq!(membership.liveness("b", now), Liveness::Up);
        }
        let mut probes = probes;
        probes.sort_by(f64::total_cmp);
        let mut was_down = false;
        for silence in probes {
            let liveness = membership.liveness("b", now + secs(silence));
            prop_assert!(!(was_down && liveness == Liveness::Up), "back up at {}", silence);
            was_down |= liveness == Liveness::Down;
            if silence >= 5.0 {
                prop_assert_eq!(liveness, Liveness::Down);
            }
        }
    }
}
