//! Group commit: many writers that each need their write fsynced share one
//! fsync. A writer takes a ticket after its write is in the journal; the first
//! writer that finds no fsync running becomes the leader and fsyncs for every
//! ticket handed out so far, while the others wait for that fsync to cover
//! their ticket.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Shares fsyncs between concurrent writers.
#[derive(Debug, Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    synced_changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Tickets handed out so far; ticket `t` covers every write made before it.
    issued: u64,
    /// Every ticket up to this one is durable.
    synced: u64,
    /// A leader is fsyncing right now.
    syncing: bool,
    /// Fsyncs run so far.
    fsyncs: u64,
}

impl GroupCommit {
    /// Makes every write that returned before this call durable, running
    /// `fsync` at most once for any number of concurrent callers.
    ///
    /// # Errors
    /// The error of the fsync that should have covered this call. A later
    /// caller retries the fsync rather than inheriting an old failure.
    pub fn sync<E>(&self, fsync: impl Fn() -> Result<(), E>) -> Result<(), E> {
        let mut state = self.lock();
        state.issued += 1;
        let ticket = state.issued;
        loop {
            if state.synced >= ticket {
                return Ok(());
            }
            if state.syncing {
                state = self
                    .synced_changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            // Lead: one fsync covers every ticket issued until now.
            state.syncing = true;
            let covered = state.issued;
            drop(state);
            let outcome = fsync();
            state = self.lock();
            state.syncing = false;
            state.fsyncs += 1;
            if outcome.is_ok() {
                state.synced = state.synced.max(covered);
            }
            self.synced_changed.notify_all();
            outcome?;
        }
    }

    /// Number of fsyncs run so far.
    pub fn fsyncs(&self) -> u64 {
        self.lock().fsyncs
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every unlock, so a poisoned lock only
        // means a caller panicked in between.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;

    #[test]
    fn a_lone_writer_fsyncs_once_per_call() {
        let commit = GroupCommit::default();
        let calls = AtomicU64::new(0);
        for _ in 0..3 {
            commit
                .sync(|| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), ()>(())
                })
                .expect("fsync succeeds");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(commit.fsyncs(), 3);
    }

    #[test]
    fn writers_waiting_behind_a_running_fsync_share_the_next_one() {
        let commit = Arc::new(GroupCommit::default());
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        // The leader blocks inside its fsync until released.
        let leader = {
            let commit = Arc::clone(&commit);
            let release_rx = Arc::clone(&release_rx);
            std::thread::spawn(move || {
                commit.sync(|| {
                    entered_tx.send(()).expect("test is listening");
                    release_rx
                        .lock()
                        .expect("one user")
                        .recv()
                        .expect("released");
                    Ok::<(), ()>(())
                })
            })
        };
        entered_rx.recv().expect("leader entered its fsync");
        let followers: Vec<_> = (0..8)
            .map(|_| {
                let commit = Arc::clone(&commit);
                std::thread::spawn(move || commit.sync(|| Ok::<(), ()>(())))
            })
            .collect();
        // Wait until all eight have taken their tickets behind the leader.
        while commit.lock().issued < 9 {
            std::thread::yield_now();
        }
        release_tx.send(()).expect("leader waits");
        leader.join().expect("leader").expect("fsync ok");
        for follower in followers {
            follower.join().expect("follower").expect("fsync ok");
        }
        assert_eq!(commit.fsyncs(), 2, "one fsync for the leader, one shared");
    }

    #[test]
    fn a_failed_fsync_fails_its_callers_and_the_next_call_retries() {
        let commit = GroupCommit::default();
        assert_eq!(commit.sync(|| Err("disk full")), Err("disk full"));
        assert_eq!(commit.sync(|| Ok::<(), &str>(())), Ok(()));
        assert_eq!(commit.fsyncs(), 2);
    }
}
