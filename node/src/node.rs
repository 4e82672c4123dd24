//! The state one node shares between its services: configuration, ring,
//! storage and peer channels.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use thiserror::Error;

use crate::config::{Config, ConfigError};
use crate::peers::Peers;
use crate::ring::{Ring, RingError};
use crate::storage::{Storage, StorageError};

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
}

/// One node's shared state.
pub struct Node {
    config: Config,
    ring: RwLock<Arc<Ring>>,
    storage: Storage,
    peers: Arc<Peers>,
    started: Instant,
}

impl Node {
    /// Opens storage and builds the initial ring from the configuration.
    ///
    /// # Errors
    /// [`StartError`] saying what is wrong.
    pub fn open(config: Config) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        let ring = Ring::initial(
            &config.cluster,
            config.initial_members(),
            config.partitions,
            config.replication,
        )?;
        let storage = Storage::open(&config.data_dir)?;
        let peers = Arc::new(Peers::new(config.peer_timeout()));
        Ok(Arc::new(Self {
            config,
            ring: RwLock::new(Arc::new(ring)),
            storage,
            peers,
            started: Instant::now(),
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

    /// Local storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Channels to peers.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// This node's member name.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// When the node started.
    pub fn started(&self) -> Instant {
        self.started
    }
}
