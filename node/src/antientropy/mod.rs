//! Merkle-tree anti-entropy: replicas of a partition compare tree roots,
//! descend only into differing subtrees, and exchange only the keys that
//! differ ([`sync`]). A pass also garbage-collects tombstones that every
//! replica holds once their grace period has passed.

pub mod merkle;
pub mod sync;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::seq::SliceRandom;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::node::Node;

/// What a pass (or one exchange) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Partition replica pairs compared.
    pub exchanges: u64,
    /// Pairs whose roots differed.
    pub differing: u64,
    /// Keys whose versions moved in either direction.
    pub keys_repaired: u64,
    /// Bytes sent to peers.
    pub bytes_sent: u64,
    /// Bytes received from peers.
    pub bytes_received: u64,
    /// Tombstones dropped on all replicas.
    pub tombstones_dropped: u64,
}

impl Stats {
    fn add(&mut self, other: Stats) {
        self.exchanges += other.exchanges;
        self.differing += other.differing;
        self.keys_repaired += other.keys_repaired;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.tombstones_dropped += other.tombstones_dropped;
    }
}

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

impl Node {
    /// Runs one anti-entropy pass over every partition this node replicates,
    /// in random order. Passes never overlap.
    pub async fn anti_entropy_pass(self: &Arc<Self>) -> Stats {
        let _pass = self.anti_entropy_lock().lock().await;
        let ring = self.ring();
        let Some(me) = ring.index_of(self.id()) else {
            return Stats::default();
        };
        let mut partitions: Vec<u32> = (0..ring.partitions())
            .filter(|&p| ring.preference(p).contains(&me) && !self.is_recovering(p))
            .collect();
        partitions.shuffle(&mut rand::rng());
        let mut pacer = Pacer::new(self.config().background.anti_entropy_keys_per_second);
        let mut total = Stats::default();
        for partition in partitions {
            let mut complete = true;
            for &peer in ring.preference(partition) {
                if peer == me {
                    continue;
                }
                match sync::exchange(self, &ring, partition, peer, &mut pacer).await {
                    Ok(stats) => total.add(stats),
                    Err(error) => {
                        complete = false;
                        debug!(
                            partition,
                            peer = ring.member(peer).id,
                            error,
                            "exchange failed"
                        );
                    }
                }
            }
            if complete {
                self.anti_entropy_runs().insert(partition, now_ms());
                if ring.preference(partition).first() == Some(&me) {
                    total.tombstones_dropped +=
                        sync::collect_tombstones(self, &ring, partition).await;
                }
            }
        }
        self.metrics().anti_entropy_pass(&total);
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
}

/// Runs passes every interval until `stop` turns true; an interval of 0
/// turns background passes off.
pub async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let interval_ms = node.config().background.anti_entropy_interval_ms;
    if interval_ms == 0 {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let stats = node.anti_entropy_pass().await;
                if stats.exchanges == 0 && node.ring().members().len() > 1 {
                    warn!("anti-entropy pass compared nothing");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
