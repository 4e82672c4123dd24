//! Waiting for a condition with a deadline instead of sleeping.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Pause between two checks of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Checks `condition` every [`POLL_INTERVAL`] until it returns `Ok(Some)`,
/// and returns that value with the time it took. `Ok(None)` means "not yet";
/// an error also means "not yet" and is kept for the message.
///
/// # Errors
/// When `timeout` passes first; the message names `what` and the last
/// error or "condition still false".
pub async fn until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut condition: F,
) -> anyhow::Result<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last = String::from("condition still false");
    loop {
        match tokio::time::timeout_at(deadline, condition()).await {
            Ok(Ok(Some(value))) => return Ok((value, started.elapsed())),
            Ok(Ok(None)) => last = String::from("condition still false"),
            Ok(Err(error)) => last = format!("{error:#}"),
            Err(_) => last = format!("the last check was still running ({last})"),
        }
        if Instant::now() + POLL_INTERVAL >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let (value, _) = until("three calls", Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok((n == 3).then_some(n))
        })
        .await
        .expect("holds on the third call");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_last_error() {
        let error = until::<(), _, _>("never", Duration::from_millis(200), || async {
            anyhow::bail!("node-3 unreachable")
        })
        .await
        .expect_err("never holds");
        let message = error.to_string();
        assert!(message.contains("never") && message.contains("node-3 unreachable"));
    }
}
