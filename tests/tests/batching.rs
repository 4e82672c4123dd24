//! The batched peer transport under a crash: 32 writers keep frames in
//! flight on every `Peer.Exchange` stream of three `dynamo-node` processes
//! (N=3 R=2 W=2) when one node is SIGKILLed. Nothing acknowledged may be
//! lost, no request may wait past its deadline, writes go on while the node
//! is down, and once it is back a W=3 write (which only it can complete,
//! there being no fallback in a 3-node ring) shows its stream reconnected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dynamo_client::{Client, ClientOptions, WriteOptions};
use dynamo_tests::process::{Options, ProcessCluster};
use tokio::time::Instant;

/// Concurrent writers.
const WRITERS: usize = 32;
/// Load before the crash and after it.
const BEFORE: Duration = Duration::from_secs(2);
const AFTER: Duration = Duration::from_secs(2);
/// The node killed.
const VICTIM: usize = 2;
/// The client's deadline for a whole request, retries included.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Scheduling slack on top of a deadline on a busy two-core machine.
const SLACK: Duration = Duration::from_millis(500);

/// What one writer saw.
#[derive(Default)]
struct Outcome {
    acknowledged: Vec<(String, String)>,
    failed: usize,
    /// Acknowledged after the crash.
    after_crash: usize,
    slowest: Duration,
}

async fn writer(
    client: Client,
    id: usize,
    stop: Arc<AtomicBool>,
    crashed: Arc<AtomicBool>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let (key, value) = (format!("w{id}-{seq}"), format!("value-{id}-{seq}"));
        seq += 1;
        let started = Instant::now();
        let result = client.put(&key, value.clone(), None).await;
        outcome.slowest = outcome.slowest.max(started.elapsed());
        match result {
            Ok(_) => {
                if crashed.load(Ordering::Relaxed) {
                    outcome.after_crash += 1;
                }
                outcome.acknowledged.push((key, value));
            }
            Err(_) => outcome.failed += 1,
        }
    }
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_killed_mid_frame_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start(3, Options::default()).await?;
    cluster.discard_files_on_panic();
    let options = ClientOptions {
        timeout: CLIENT_TIMEOUT,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&cluster.address(0).to_string(), options).await?;
    let (stop, crashed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                client.clone(),
                id,
                Arc::clone(&stop),
                Arc::clone(&crashed),
            ))
        })
        .collect();
    tokio::time::sleep(BEFORE).await;
    cluster.kill(VICTIM)?;
    crashed.store(true, Ordering::Relaxed);
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for writer in writers {
        outcomes.push(writer.await?);
    }
    let acknowledged: Vec<(String, String)> = outcomes
        .iter()
        .flat_map(|o| o.acknowledged.clone())
        .collect();
    let failed: usize = outcomes.iter().map(|o| o.failed).sum();
    let after_crash: usize = outcomes.iter().map(|o| o.after_crash).sum();
    let slowest = outcomes.iter().map(|o| o.slowest).max().unwrap_or_default();
    eprintln!(
        "{} writes acknowledged ({after_crash} after the crash), {failed} failed, slowest {} ms",
        acknowledged.len(),
        slowest.as_millis()
    );
    assert!(after_crash > 0, "writes go on with one node down");
    assert!(
        slowest <= CLIENT_TIMEOUT + SLACK,
        "a request waited {slowest:?}, past its {CLIENT_TIMEOUT:?} deadline"
    );

    // Every acknowledged write is on the two live nodes (R=2).
    for (key, value) in &acknowledged {
        let read = client.get(key).await?;
        let values: Vec<&[u8]> = read.live().map(|s| s.value.as_ref()).collect();
        assert_eq!(values, vec![value.as_bytes()], "{key} after the crash");
    }

    // Back again: a W=3 write needs the restarted node's own ack.
    cluster.restart(VICTIM).await?;
    let all = WriteOptions {
        w: Some(3),
        ..WriteOptions::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.put_with("after-restart", "v", None, all).await {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                eprintln!("W=3 not yet: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => anyhow::bail!("W=3 never succeeded after the restart: {error}"),
        }
    }
    Ok(())
}
