//! Quorum bookkeeping: wait for enough replies from replica calls that run in
//! parallel, within a deadline, and hand back the calls still running.
//!
//! A quorum may hold reserve calls that have not started: one starts for
//! every call that fails, and all of them start when the first calls have
//! not produced the quorum by the hedge time (a speculative retry). A read
//! thus asks only as many replicas as it needs while they answer promptly.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

/// A replica call in flight: resolves to the member index and its outcome.
pub type Call<T, E> = Pin<Box<dyn Future<Output = (u32, Result<T, E>)> + Send>>;

/// Replica calls, some answered and some still running.
pub struct Quorum<T, E> {
    pending: FuturesUnordered<Call<T, E>>,
    /// Calls not started yet, next one last.
    reserve: Vec<Call<T, E>>,
    /// When every reserve call starts, if the quorum is not met by then.
    hedge_at: Option<Instant>,
    /// Successful replies by member index.
    pub replies: Vec<(u32, T)>,
    /// Failures by member index, with their errors.
    pub failures: Vec<(u32, E)>,
}

impl<T: Send + 'static, E: Send + 'static> Quorum<T, E> {
    /// Starts tracking `calls`, with `ready` already answered (the local
    /// replica).
    pub fn new(ready: Vec<(u32, T)>, calls: Vec<Call<T, E>>) -> Self {
        Self {
            pending: calls.into_iter().collect(),
            reserve: Vec::new(),
            hedge_at: None,
            replies: ready,
            failures: Vec::new(),
        }
    }

    /// Adds calls to start only when a started call fails, or all at once
    /// when the quorum is still short `hedge_after` from now. `reserve` is in
    /// the order to start them.
    pub fn with_reserve(mut self, mut reserve: Vec<Call<T, E>>, hedge_after: Duration) -> Self {
        reserve.reverse();
        self.hedge_at = (!reserve.is_empty()).then(|| Instant::now() + hedge_after);
        self.reserve = reserve;
        self
    }

    /// Forgets the reserve calls that have not started.
    pub fn drop_reserve(&mut self) {
        self.reserve.clear();
        self.hedge_at = None;
    }

    fn start_reserve(&mut self, count: usize) {
        for _ in 0..count {
            match self.reserve.pop() {
                Some(call) => self.pending.push(call),
                None => break,
            }
        }
        if self.reserve.is_empty() {
            self.hedge_at = None;
        }
    }

    /// Waits until `need` replies arrived, every call finished, or `deadline`
    /// passed. Returns true when `need` replies arrived.
    /// Reserve calls start as described on [`Quorum::with_reserve`].
    pub async fn wait(&mut self, need: usize, deadline: Instant) -> bool {
        while self.replies.len() < need {
            if self.pending.is_empty() {
                if self.reserve.is_empty() {
                    break;
                }
                self.start_reserve(1);
            }
            let wake = self.hedge_at.map_or(deadline, |hedge| hedge.min(deadline));
            match tokio::time::timeout_at(wake, self.pending.next()).await {
                Ok(Some((member, Ok(reply)))) => self.replies.push((member, reply)),
                Ok(Some((member, Err(error)))) => {
                    self.failures.push((member, error));
                    self.start_reserve(1);
                }
                Ok(None) => {}
                Err(_) if wake < deadline => self.start_reserve(usize::MAX),
                Err(_) => break,
            }
        }
        self.replies.len() >= need
    }

    /// Number of calls that have not answered yet, started or not.
    pub fn outstanding(&self) -> usize {
        self.pending.len() + self.reserve.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of a test call.
    #[derive(Debug, PartialEq)]
    struct Refused;

    fn call(member: u32, delay_ms: u64, ok: bool) -> Call<u32, Refused> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            (member, if ok { Ok(member) } else { Err(Refused) })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn returns_as_soon_as_the_quorum_is_met() {
        let mut quorum = Quorum::new(vec![(0, 0)], vec![call(1, 10, true), call(2, 5_000, true)]);
        let deadline = Instant::now() + Duration::from_secs(1);
        assert!(quorum.wait(2, deadline).await);
        assert_eq!(quorum.outstanding(), 1);
        assert!(Instant::now() < deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_call_starts_a_reserve_call_at_once() {
        let started = Instant::now();
        let mut quorum = Quorum::new(vec![(0, 0)], vec![call(1, 10, false)]).with_reserve(
            vec![call(2, 10, true), call(3, 10, true)],
            Duration::from_secs(5),
        );
        assert!(quorum.wait(2, started + Duration::from_secs(10)).await);
        assert_eq!(quorum.replies, [(0, 0), (2, 2)]);
        assert_eq!(quorum.outstanding(), 1, "member 3 was never needed");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_starts_every_reserve_call_at_the_hedge_time() {
        let started = Instant::now();
        let mut quorum = Quorum::new(vec![(0, 0)], vec![call(1, 60_000, true)]).with_reserve(
            vec![call(2, 10, true), call(3, 20, true)],
            Duration::from_millis(100),
        );
        assert!(quorum.wait(3, started + Duration::from_secs(10)).await);
        assert_eq!(quorum.replies, [(0, 0), (2, 2), (3, 3)]);
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(120) && elapsed < Duration::from_secs(1),
            "answered after {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_reserve_calls_never_start() {
        let mut quorum = Quorum::new(vec![(0, 0)], vec![call(1, 10, true)])
            .with_reserve(vec![call(2, 10, true)], Duration::from_millis(1));
        quorum.drop_reserve();
        assert!(
            !quorum
                .wait(3, Instant::now() + Duration::from_secs(1))
                .await
        );
        assert_eq!(quorum.replies, [(0, 0), (1, 1)]);
        assert_eq!(quorum.outstanding(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn fails_when_too_few_answer_in_time() {
        let mut quorum = Quorum::new(Vec::new(), vec![call(1, 10, false), call(2, 5_000, true)]);
        let deadline = Instant::now() + Duration::from_secs(1);
        assert!(!quorum.wait(2, deadline).await);
        assert_eq!(quorum.failures.len(), 1);
        assert_eq!(quorum.replies.len(), 0);
    }
}
