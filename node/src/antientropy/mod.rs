//! Merkle-tree anti-entropy: replicas of a partition compare tree roots,
//! descend only into differing subtrees, and exchange only the keys that
//! differ ([`sync`]). A pass also garbage-collects tombstones that every
//! replica holds once their grace period has passed.

pub mod sync;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::seq::SliceRandom;
use tracing::{debug, info, warn};

use crate::config::Background;
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::replica::Replica;
use crate::topology::Topology;
use crate::worker::Stop;

pub use crate::metrics::AntiEntropyStats as Stats;

/// Spaces out key repairs so anti-entropy never starves foreground work.
pub struct Pacer {
    per_key: Duration,
    next: tokio::time::Instant,
}

impl Pacer {
    /// A pacer allowing `keys_per_second` (0 = unlimited).
    pub fn new(keys_per_second: u64) -> Self {
        let per_key = if keys_per_second == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(1) / keys_per_second.min(u64::from(u32::MAX)) as u32
        };
        Self {
            per_key,
            next: tokio::time::Instant::now(),
        }
    }

    /// Waits for the next key's turn.
    pub async fn wait(&mut self) {
        if self.per_key.is_zero() {
            return;
        }
        let now = tokio::time::Instant::now();
        self.next = self.next.max(now) + self.per_key;
        tokio::time::sleep_until(self.next - self.per_key).await;
    }
}

/// The anti-entropy mechanism of one node.
pub struct AntiEntropy {
    topology: Arc<Topology>,
    replica: Arc<Replica>,
    peers: Arc<Peers>,
    metrics: Arc<Metrics>,
    settings: Background,
    /// When anti-entropy last finished per partition (ms since the epoch).
    runs: Mutex<BTreeMap<u32, u64>>,
    /// Held while a pass runs, so passes never overlap.
    pass: tokio::sync::Mutex<()>,
}

impl AntiEntropy {
    /// Anti-entropy over the replicas in `replica`, paced and timed by the
    /// `background` settings.
    pub fn new(
        topology: Arc<Topology>,
        replica: Arc<Replica>,
        peers: Arc<Peers>,
        metrics: Arc<Metrics>,
        settings: Background,
    ) -> Self {
        Self {
            topology,
            replica,
            peers,
            metrics,
            settings,
            runs: Mutex::new(BTreeMap::new()),
            pass: tokio::sync::Mutex::new(()),
        }
    }

    /// When anti-entropy last finished per partition (ms since the epoch).
    pub fn runs(&self) -> MutexGuard<'_, BTreeMap<u32, u64>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one anti-entropy pass over every partition this node replicates,
    /// in random order. Passes never overlap.
    pub async fn pass(&self) -> Stats {
        let _pass = self.pass.lock().await;
        let ring = self.topology.ring();
        let Some(me) = ring.index_of(self.topology.id()) else {
            return Stats::default();
        };
        // One tree per (partition, N): this node compares the trees of the
        // N it replicates a partition for, with that N's other replicas.
        let factors = ring.factors();
        let mut shards: Vec<(u32, u32)> = (0..ring.partitions())
            .filter(|&p| !self.replica.is_recovering(p))
            .flat_map(|p| factors.iter().map(move |&n| (p, n)))
            .filter(|&(p, n)| ring.replicates(me, p, n))
            .collect();
        shards.shuffle(&mut rand::rng());
        let mut pacer = Pacer::new(self.settings.anti_entropy_keys_per_second);
        let mut total = Stats::default();
        for (partition, n) in shards {
            let mut complete = true;
            for &peer in ring.preference(partition, n) {
                if peer == me {
                    continue;
                }
                let exchange = sync::Exchange {
                    replica: &self.replica,
                    peers: &self.peers,
                    peer: ring.member(peer),
                };
                match exchange.run(partition, n, &mut pacer).await {
                    Ok(stats) => total.add(stats),
                    Err(error) => {
                        complete = false;
                        debug!(
                            partition,
                            n,
                            peer = ring.member(peer).id,
                            %error,
                            "exchange failed"
                        );
                    }
                }
            }
            if complete {
                self.runs().insert(partition, now_ms());
                if ring.preference(partition, n).first() == Some(&me) {
                    let cutoff = now_ms().saturating_sub(self.settings.tombstone_grace_ms);
                    total.tombstones_dropped += sync::collect_tombstones(
                        &self.replica,
                        &self.peers,
                        &ring,
                        self.topology.id(),
                        partition,
                        n,
                        cutoff,
                    )
                    .await;
                }
            }
        }
        self.metrics.anti_entropy_pass(&total);
        if total.keys_repaired > 0 || total.tombstones_dropped > 0 {
            info!(
                keys = total.keys_repaired,
                tombstones = total.tombstones_dropped,
                sent = total.bytes_sent,
                received = total.bytes_received,
                "anti-entropy pass repaired replicas"
            );
        }
        total
    }

    /// Runs passes every interval until stopped; an interval of 0 turns
    /// background passes off.
    pub async fn run(self: Arc<Self>, mut stop: Stop) {
        let interval_ms = self.settings.anti_entropy_interval_ms;
        if interval_ms == 0 {
            return;
        }
        let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let stats = self.pass().await;
                    if stats.exchanges == 0 && self.topology.ring().members().len() > 1 {
                        warn!("anti-entropy pass compared nothing");
                    }
                }
                () = stop.stopped() => return,
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
