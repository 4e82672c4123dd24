//! The state one node shares between its services and background tasks:
//! configuration, ring, storage, peer channels, membership and
//! anti-entropy bookkeeping.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use dynamo_proto::v1 as pb;
use prost::Message;
use thiserror::Error;
use tracing::info;

use crate::config::{Config, ConfigError};
use crate::membership::{Liveness, Membership};
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::ring::{Ring, RingError};
use crate::stall::StallDetector;
use crate::storage::{Durability, Storage, StorageError};

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configured members do not form a ring.
    #[error("the configured ring is invalid: {0}")]
    Ring(#[from] RingError),
    /// The database could not be opened.
    #[error("cannot open the data directory: {0}")]
    Storage(#[from] StorageError),
    /// The persisted ring does not decode.
    #[error("the persisted ring is corrupt: {0}")]
    PersistedRing(String),
    /// No seed answered with a ring.
    #[error("no seed answered with a ring: {0}")]
    Seeds(String),
    /// The listener could not be used.
    #[error("cannot serve: {0}")]
    Listener(std::io::Error),
    /// The HTTP address could not be bound.
    #[error("cannot serve HTTP on {address}: {source}")]
    Http {
        /// The configured `http_listen`.
        address: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
}

/// One node's shared state.
pub struct Node {
    config: Config,
    ring: RwLock<Arc<Ring>>,
    storage: Storage,
    peers: Arc<Peers>,
    membership: Mutex<Membership>,
    anti_entropy_runs: Mutex<BTreeMap<u32, u64>>,
    anti_entropy_pass: tokio::sync::Mutex<()>,
    transfers: crate::transfer::SharedProgress,
    recovering: Mutex<std::collections::BTreeSet<u32>>,
    started: Instant,
    metrics: Metrics,
    stopping: AtomicBool,
    stalls: StallDetector,
}

impl Node {
    /// Opens storage and takes the persisted ring, else the ring `seeded`
    /// from a running node, else builds the initial ring from the
    /// configuration.
    ///
    /// # Errors
    /// [`StartError`] saying what is wrong.
    pub fn open(config: Config, seeded: Option<pb::Ring>) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        let storage = Storage::open(&config.data_dir, config.background.max_hints)?;
        let persisted = match storage.load_ring()? {
            Some(bytes) => Some(bytes),
            None => match seeded {
                Some(ring) => {
                    let bytes = ring.encode_to_vec();
                    storage.save_ring(bytes.clone())?;
                    Some(bytes)
                }
                None => None,
            },
        };
        let ring = match persisted {
            Some(bytes) => {
                let message = pb::Ring::decode(bytes.as_slice())
                    .map_err(|error| StartError::PersistedRing(error.to_string()))?;
                let ring = Ring::from_pb(message)?;
                info!(epoch = ring.epoch(), "using the persisted ring");
                ring
            }
            None => Ring::initial(
                &config.cluster,
                config.initial_members(),
                config.partitions,
                config.replication,
            )?,
        };
        let peers = Arc::new(Peers::new(config.peer_timeout()));
        let now = Instant::now();
        let incarnation = format!("{:016x}", storage.incarnation());
        let detector = config.background.failure_detector();
        let mut membership = Membership::new(&config.id, &incarnation, detector, now);
        membership.track(ring.members().iter().map(|m| m.id.as_str()), now);
        Ok(Arc::new(Self {
            config,
            ring: RwLock::new(Arc::new(ring)),
            storage,
            peers,
            membership: Mutex::new(membership),
            anti_entropy_runs: Mutex::new(BTreeMap::new()),
            anti_entropy_pass: tokio::sync::Mutex::new(()),
            transfers: Default::default(),
            recovering: Mutex::default(),
            started: now,
            metrics: Metrics::new(),
            stopping: AtomicBool::new(false),
            stalls: StallDetector::default(),
        }))
    }

    /// The configuration the node started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ring in use.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new ring in use.
    pub(crate) fn replace_ring(&self, ring: Arc<Ring>) {
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
    }

    /// Local storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Runs a write on local storage. A buffered write only reaches the
    /// operating system and takes microseconds, so it runs in place, unless
    /// storage stalled writers recently; a synced write waits for an fsync
    /// and runs on the blocking pool.
    pub(crate) async fn write_storage<T: Send + 'static>(
        self: &Arc<Self>,
        durability: Durability,
        write: impl FnOnce(&Storage) -> T + Send + 'static,
    ) -> T {
        let started = Instant::now();
        if durability == Durability::Buffer && !self.stalls.offloading(started) {
            let result = write(&self.storage);
            self.stalls.record(started, Instant::now());
            return result;
        }
        let node = Arc::clone(self);
        match tokio::task::spawn_blocking(move || write(&node.storage)).await {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// Channels to peers.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// Membership state and failure detector.
    pub fn membership(&self) -> MutexGuard<'_, Membership> {
        self.membership.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The failure detector's judgement of member `id`.
    pub fn liveness(&self, id: &str) -> Liveness {
        self.membership().liveness(id, Instant::now())
    }

    /// When anti-entropy last finished per partition (ms since the epoch).
    pub fn anti_entropy_runs(&self) -> MutexGuard<'_, BTreeMap<u32, u64>> {
        self.anti_entropy_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Held while an anti-entropy pass runs, so passes never overlap.
    pub fn anti_entropy_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.anti_entropy_pass
    }

    /// Progress of the incoming partition transfers.
    pub fn transfers(&self) -> &crate::transfer::SharedProgress {
        &self.transfers
    }

    /// Partitions being streamed back after an empty-disk start.
    pub fn recovering(&self) -> MutexGuard<'_, std::collections::BTreeSet<u32>> {
        self.recovering.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node's member name.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// When the node started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Marks the node as shutting down: it stops reporting ready.
    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Why the node does not serve requests right now, or `None` when it
    /// does: it is shutting down, or it is streaming partitions back after
    /// an empty-disk start. A node outside the ring is ready: it forwards.
    pub fn not_ready(&self) -> Option<String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Some("shutting down".into());
        }
        let recovering = self.recovering().len();
        if recovering > 0 {
            return Some(format!(
                "recovering: streaming back {recovering} partitions after an empty-disk start"
            ));
        }
        None
    }
}
