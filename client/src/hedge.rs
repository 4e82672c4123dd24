//! Speculative retry: one request raced over the replicas of its key under
//! one deadline. An attempt not answered after its node's hedge delay gets
//! company from the next replica; the first answer wins and the others are
//! cancelled. A failed attempt starts the next one at once.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt as _};
use tokio::time::Instant;

use crate::Error;
use crate::health::{Candidate, Health, Outcome};
use crate::routing::most_telling;

/// An attempt that was started.
struct Started {
    candidate: Candidate,
    at: Instant,
    hedge_delay: Duration,
    finished: bool,
}

/// Sends one request along `plan` (from [`Health::plan`]) until a node
/// answers or `deadline` passes: `attempt(address, timeout)` makes one
/// attempt that must end within `timeout`.
///
/// Each attempt gets at most half of the time left while other candidates
/// remain (all of it for the last one), and none starts with less than
/// [`HedgeOptions::min_attempt`](crate::HedgeOptions::min_attempt) left.
/// With `hedge` false, an attempt starts only when the previous one failed.
///
/// # Errors
///
/// A non-retryable error as soon as a node answers with it; otherwise,
/// when every candidate failed or the deadline passed, the
/// [`most_telling`] failure (a timeout naming the deadline when nothing
/// better is known).
pub(crate) async fn race<T, F, Fut>(
    health: &Health,
    plan: Vec<Candidate>,
    deadline: Instant,
    hedge: bool,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut(&str, Duration) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let min_attempt = health.options().min_attempt;
    let begun = Instant::now();
    let mut started: Vec<Started> = Vec::with_capacity(plan.len());
    let mut pending = FuturesUnordered::new();
    let mut failure: Option<Error> = None;
    // When the next candidate starts; `None` once none may start.
    let mut next_start = Some(begun);
    loop {
        let now = Instant::now();
        if next_start.is_some_and(|at| at <= now) {
            next_start = None;
            let index = started.len();
            let left = deadline.saturating_duration_since(now);
            if let Some(candidate) = plan.get(index)
                && left >= min_attempt
            {
                let next = plan.get(index + 1);
                let timeout = if next.is_some() {
                    (left / 2).max(min_attempt)
                } else {
                    left
                };
                let hedge_delay = health.hedge_delay(candidate, next);
                let call = attempt(&candidate.address, timeout);
                pending.push(async move { (index, call.await) });
                tracing::debug!(
                    address = candidate.address,
                    probe = candidate.probe,
                    ?timeout,
                    "attempt"
                );
                started.push(Started {
                    candidate: candidate.clone(),
                    at: now,
                    hedge_delay,
                    finished: false,
                });
                if hedge && next.is_some() {
                    next_start = Some(now + hedge_delay);
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        let hedge_at = next_start.unwrap_or(deadline);
        tokio::select! {
            Some((index, result)) = pending.next() => {
                let now = Instant::now();
                let this = &mut started[index];
                this.finished = true;
                let latency = now - this.at;
                match result {
                    Ok(response) => {
                        health.record(&this.candidate, Outcome::Answered(latency), now);
                        for loser in started.iter().filter(|s| !s.finished) {
                            if now - loser.at >= loser.hedge_delay {
                                health.record(&loser.candidate, Outcome::Lost, now);
                            }
                        }
                        return Ok(response);
                    }
                    Err(err) => {
                        let outcome = match err {
                            Error::Timeout { .. } | Error::Transport { .. } => Outcome::Failed,
                            _ => Outcome::Answered(latency),
                        };
                        health.record(&this.candidate, outcome, now);
                        if !err.is_retryable() {
                            return Err(err);
                        }
                        tracing::debug!(address = this.candidate.address, error = %err, "attempt failed");
                        failure = Some(most_telling(failure, err));
                        next_start = Some(now);
                    }
                }
            }
            () = tokio::time::sleep_until(hedge_at), if next_start.is_some() => {}
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    let now = Instant::now();
    for unanswered in started.iter().filter(|s| !s.finished) {
        health.record(&unanswered.candidate, Outcome::Failed, now);
    }
    let out_of_time = failure.is_none() || now >= deadline || !pending.is_empty();
    match failure {
        Some(failure) if !out_of_time => Err(failure),
        failure => {
            let address = plan
                .first()
                .map(|candidate| candidate.address.clone())
                .unwrap_or_default();
            let timeout = Error::Timeout {
                address,
                message: format!(
                    "no replica answered within {:?} ({} of {} tried)",
                    deadline.saturating_duration_since(begun),
                    started.len(),
                    plan.len()
                ),
            };
            Err(most_telling(failure, timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::HedgeOptions;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    /// How a fake node answers.
    #[derive(Clone, Copy)]
    enum Fake {
        /// Answers after this long.
        After(Duration),
        /// Never answers (a paused process).
        Stalled,
        /// Answers `Unavailable` at once.
        Unavailable,
    }

    /// Fake nodes by address and a log of `(address, start, timeout)` of
    /// every attempt, with an ending time when it completed.
    #[derive(Clone, Default)]
    struct Cluster {
        nodes: Arc<Mutex<Vec<(String, Fake)>>>,
        log: Arc<Mutex<Vec<Attempted>>>,
    }

    #[derive(Clone, Debug)]
    struct Attempted {
        address: String,
        at: Duration,
        timeout: Duration,
    }

    impl Cluster {
        fn new(nodes: &[(&str, Fake)]) -> Self {
            let cluster = Self::default();
            *cluster.nodes.lock().expect("not poisoned") = nodes
                .iter()
                .map(|(address, fake)| ((*address).to_owned(), *fake))
                .collect();
            cluster
        }

        fn set(&self, address: &str, fake: Fake) {
            let mut nodes = self.nodes.lock().expect("not poisoned");
            for node in nodes.iter_mut().filter(|node| node.0 == address) {
                node.1 = fake;
            }
        }

        fn addresses(&self) -> Vec<String> {
            let nodes = self.nodes.lock().expect("not poisoned");
            nodes.iter().map(|node| node.0.clone()).collect()
        }

        fn attempts(&self) -> Vec<Attempted> {
            std::mem::take(&mut *self.log.lock().expect("not poisoned"))
        }

        /// One request through [`race`], the way the client sends one.
        async fn request(
            &self,
            health: &Health,
            budget: Duration,
            hedge: bool,
        ) -> (Result<String, Error>, Duration) {
            let start = Instant::now();
            let addresses = self.addresses();
            let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
            let plan = health.plan(&addresses, start);
            let result = race(health, plan, start + budget, hedge, |address, timeout| {
                let fake = {
                    let nodes = self.nodes.lock().expect("not poisoned");
                    nodes
                        .iter()
                        .find(|node| node.0 == address)
                        .map(|node| node.1)
                };
                self.log.lock().expect("not poisoned").push(Attempted {
                    address: address.to_owned(),
                    at: start.elapsed(),
                    timeout,
                });
                let address = address.to_owned();
                async move {
                    let answer = async {
                        match fake {
                            Some(Fake::After(delay)) => {
                                tokio::time::sleep(delay).await;
                                Ok(address.clone())
                            }
                            Some(Fake::Unavailable) => Err(Error::Unavailable {
                                address: address.clone(),
                                message: "only 1 of 2 replicas acknowledged".into(),
                            }),
                            Some(Fake::Stalled) | None => std::future::pending().await,
                        }
                    };
                    match tokio::time::timeout(timeout, answer).await {
                        Ok(result) => result,
                        Err(_) => Err(Error::Timeout {
                            address,
                            message: format!("no answer within {timeout:?}"),
                        }),
                    }
                }
            })
            .await;
            (result, start.elapsed())
        }
    }

    /// Warms `health` up with `count` requests so every node has a p99.
    async fn warm(cluster: &Cluster, health: &Health, count: usize) {
        for _ in 0..count {
            let (result, _) = cluster.request(health, ms(5000), true).await;
            result.expect("healthy cluster answers");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedge_fires_after_the_delay_and_the_first_answer_wins() {
        let cluster = Cluster::new(&[
            ("a", Fake::After(ms(5))),
            ("b", Fake::After(ms(5))),
            ("c", Fake::After(ms(5))),
        ]);
        let health = Health::new(HedgeOptions::default());
        // Cold: the ceiling. "a" takes 1 s, so "b" is asked at 250 ms.
        cluster.set("a", Fake::After(ms(1000)));
        let (result, took) = cluster.request(&health, ms(5000), true).await;
        assert_eq!(result.expect("b answers"), "b");
        assert_eq!(took, ms(255));
        let attempts = cluster.attempts();
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        assert_eq!(
            (attempts[1].address.as_str(), attempts[1].at),
            ("b", ms(250))
        );

        // Warm, "a" has a p99 of 5 ms: hedged at the 20 ms floor.
        cluster.set("a", Fake::After(ms(5)));
        warm(&cluster, &health, 10).await;
        cluster.attempts();
        cluster.set("a", Fake::After(ms(1000)));
        let (result, took) = cluster.request(&health, ms(5000), true).await;
        assert_eq!(result.expect("b answers"), "b");
        assert_eq!(took, ms(25));
        let attempts = cluster.attempts();
        assert_eq!(attempts[1].at, ms(20), "{attempts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_hedge_while_the_first_node_answers_in_time() {
        let cluster = Cluster::new(&[("a", Fake::After(ms(15))), ("b", Fake::After(ms(1)))]);
        let health = Health::new(HedgeOptions::default());
        for _ in 0..20 {
            let (result, took) = cluster.request(&health, ms(5000), true).await;
            assert_eq!(result.expect("a answers"), "a");
            assert_eq!(took, ms(15));
        }
        assert!(cluster.attempts().iter().all(|a| a.address == "a"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_suspected_node_gets_a_zero_hedge_delay() {
        let cluster = Cluster::new(&[("a", Fake::Stalled), ("b", Fake::After(ms(5)))]);
        let health = Health::new(HedgeOptions::default());
        // Two lost races: "a" is suspected.
        for _ in 0..2 {
            let (result, _) = cluster.request(&health, ms(5000), true).await;
            assert_eq!(result.expect("b answers"), "b");
        }
        assert!(health.is_suspected("a"));
        cluster.attempts();
        // After the backoff "a" is probed first, and "b" asked at once.
        tokio::time::advance(ms(300)).await;
        let (result, took) = cluster.request(&health, ms(5000), true).await;
        assert_eq!(result.expect("b answers"), "b");
        assert_eq!(took, ms(5), "nobody waited for the suspected node");
        let attempts = cluster.attempts();
        let order: Vec<(&str, Duration)> = attempts
            .iter()
            .map(|a| (a.address.as_str(), a.at))
            .collect();
        assert_eq!(order, [("a", ms(0)), ("b", ms(0))]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_whole_request_deadline_holds_and_retries_have_time_left() {
        let cluster = Cluster::new(&[
            ("a", Fake::Stalled),
            ("b", Fake::Stalled),
            ("c", Fake::Stalled),
        ]);
        let health = Health::new(HedgeOptions::default());
        let (result, took) = cluster.request(&health, ms(1000), false).await;
        let err = result.expect_err("nobody answers");
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert_eq!(took, ms(1000), "the deadline covers every attempt");
        let attempts = cluster.attempts();
        let plan: Vec<(&str, Duration, Duration)> = attempts
            .iter()
            .map(|a| (a.address.as_str(), a.at, a.timeout))
            .collect();
        // Half of what is left while others remain, all of it for the last.
        assert_eq!(
            plan,
            [
                ("a", ms(0), ms(500)),
                ("b", ms(500), ms(250)),
                ("c", ms(750), ms(250))
            ]
        );

        // With hedging, the same deadline, and no attempt starts with less
        // than 50 ms left: after "c" at 195 ms, nothing more starts.
        let health = Health::new(HedgeOptions::default());
        let (result, took) = cluster.request(&health, ms(260), true).await;
        assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
        assert_eq!(took, ms(260));
        let attempts = cluster.attempts();
        let plan: Vec<(&str, Duration, Duration)> = attempts
            .iter()
            .map(|a| (a.address.as_str(), a.at, a.timeout))
            .collect();
        assert_eq!(
            plan,
            [
                ("a", ms(0), ms(130)),
                ("b", ms(130), ms(65)),
                ("c", ms(195), ms(65))
            ]
        );
        let (result, took) = cluster.request(&health, ms(40), true).await;
        assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
        assert!(took <= ms(40), "{took:?}");
        assert!(
            cluster.attempts().is_empty(),
            "40 ms is too little to start"
        );

        // A node's own error is kept over the timeout of the others.
        cluster.set("b", Fake::Unavailable);
        let health = Health::new(HedgeOptions::default());
        let (result, took) = cluster.request(&health, ms(1000), true).await;
        assert!(
            matches!(result, Err(Error::Unavailable { .. })),
            "{result:?}"
        );
        assert_eq!(took, ms(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_node_is_avoided_and_later_probed_back() {
        let cluster = Cluster::new(&[
            ("a", Fake::After(ms(2))),
            ("b", Fake::After(ms(2))),
            ("c", Fake::After(ms(2))),
        ]);
        let health = Health::new(HedgeOptions::default());
        warm(&cluster, &health, 10).await;
        cluster.set("a", Fake::Stalled);
        for _ in 0..2 {
            let (result, took) = cluster.request(&health, ms(5000), true).await;
            assert_eq!(result.expect("b answers"), "b");
            assert_eq!(took, ms(22));
        }
        assert!(health.is_suspected("a"));
        cluster.attempts();
        // While suspected, "a" is not asked at all ...
        for _ in 0..20 {
            let (result, took) = cluster.request(&health, ms(5000), true).await;
            assert_eq!(result.expect("b answers"), "b");
            assert_eq!(took, ms(2));
        }
        assert!(cluster.attempts().iter().all(|a| a.address != "a"));
        // ... until its backoff ends: one probe, and it answers again.
        cluster.set("a", Fake::After(ms(1)));
        tokio::time::advance(ms(250)).await;
        let (result, _) = cluster.request(&health, ms(5000), true).await;
        assert_eq!(result.expect("the probe wins"), "a");
        assert!(!health.is_suspected("a"));
        cluster.attempts();
        let (result, _) = cluster.request(&health, ms(5000), true).await;
        assert_eq!(result.expect("a is first again"), "a");
        assert_eq!(cluster.attempts().len(), 1);
    }
}
