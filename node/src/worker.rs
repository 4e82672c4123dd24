//! Named background workers: each loop of a node (gossip, hint delivery,
//! anti-entropy, recovery, transfers) runs as a task with a name that logs
//! when it starts and stops, and stops when told to.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span, warn};

/// Tells a worker to stop.
#[derive(Clone, Debug)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A signal that never fires (for work run outside a [`Workers`] set).
    pub fn never() -> Self {
        // A closed channel without a `true` never fires `stopped`.
        let (_, receiver) = watch::channel(false);
        Self(receiver)
    }

    /// True once stopping was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once stopping is asked for.
    pub async fn stopped(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            // The set is gone without asking: never stop by this signal.
            std::future::pending::<()>().await;
        }
    }
}

/// A set of named workers that stop together.
pub struct Workers {
    stop: watch::Sender<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Workers {
    fn default() -> Self {
        Self::new()
    }
}

impl Workers {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            running: Vec::new(),
        }
    }

    /// Starts worker `name`, made by `work` from the set's stop signal.
    pub fn spawn<F>(&mut self, name: &'static str, work: impl FnOnce(Stop) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let future = work(Stop(self.stop.subscribe()));
        let handle = tokio::spawn(
            async move {
                debug!("worker started");
                future.await;
                debug!("worker stopped");
            }
            .instrument(info_span!("worker", name)),
        );
        self.running.push((name, handle));
    }

    /// Tells every worker to stop and waits until they have.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for (name, handle) in self.running {
            if let Err(error) = handle.await
                && error.is_panic()
            {
                warn!(worker = name, "a worker panicked");
            }
        }
    }
}
