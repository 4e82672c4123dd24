//! Quorum bookkeeping: wait for enough replies from replica calls that run in
//! parallel, within a deadline, and hand back the calls still running.

use std::future::Future;
use std::pin::Pin;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

/// A replica call in flight: resolves to the member index and its outcome.
pub type Call<T> = Pin<Box<dyn Future<Output = (u32, Result<T, String>)> + Send>>;

/// Replica calls, some answered and some still running.
pub struct Quorum<T> {
    pending: FuturesUnordered<Call<T>>,
    /// Successful replies by member index.
    pub replies: Vec<(u32, T)>,
    /// Failures by member index, with a reason.
    pub failures: Vec<(u32, String)>,
}

impl<T: Send + 'static> Quorum<T> {
    /// Starts tracking `calls`, with `ready` already answered (the local
    /// replica).
    pub fn new(ready: Vec<(u32, T)>, calls: Vec<Call<T>>) -> Self {
        Self {
            pending: calls.into_iter().collect(),
            replies: ready,
            failures: Vec::new(),
        }
    }

    /// Waits until `need` replies arrived, every call finished, or `deadline`
    /// passed. Returns true when `need` replies arrived.
    pub async fn wait(&mut self, need: usize, deadline: Instant) -> bool {
        while self.replies.len() < need {
            let next = tokio::time::timeout_at(deadline, self.pending.next()).await;
            match next {
                Ok(Some((member, Ok(reply)))) => self.replies.push((member, reply)),
                Ok(Some((member, Err(reason)))) => self.failures.push((member, reason)),
                Ok(None) | Err(_) => break,
            }
        }
        self.replies.len() >= need
    }

    /// Number of calls that have not answered yet.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call(member: u32, delay_ms: u64, ok: bool) -> Call<u32> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            (
                member,
                if ok {
                    Ok(member)
                } else {
                    Err("refused".into())
                },
            )
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
    async fn fails_when_too_few_answer_in_time() {
        let mut quorum = Quorum::new(Vec::new(), vec![call(1, 10, false), call(2, 5_000, true)]);
        let deadline = Instant::now() + Duration::from_secs(1);
        assert!(!quorum.wait(2, deadline).await);
        assert_eq!(quorum.failures.len(), 1);
        assert_eq!(quorum.replies.len(), 0);
    }
}
