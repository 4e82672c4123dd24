//! The composition root: one node's parts, built from its configuration and
//! wired together. Each mechanism is a struct holding only the shared parts
//! it uses; [`Node`] holds them all and answers the questions the gRPC and
//! HTTP edges ask about the node as a whole.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use dynamo_proto::v1 as pb;
use prost::Message;
use thiserror::Error;
use tracing::info;

use crate::antientropy::AntiEntropy;
use crate::config::{Config, ConfigError};
use crate::coordinator::{Coordinator, CoordinatorSettings};
use crate::gossip::Gossip;
use crate::handoff::Handoff;
use crate::membership::{Liveness, Membership};
use crate::metrics::{Metrics, Snapshot};
use crate::peers::{PeerSettings, Peers, Transport};
use crate::recovery::Recovery;
use crate::replica::Replica;
use crate::ring::{Ring, RingError};
use crate::storage::{Storage, StorageError};
use crate::topology::{AdoptError, Topology};
use crate::transfer::{Progress, TransferSettings, Transfers};

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
    /// The database in the data directory is unreadable or corrupt: the
    /// node refuses to start rather than serve what it cannot read.
    #[error(
        "cannot open the database in {}: {source}; the node does not start on storage it cannot read. \
         To repair: stop the node, move {} aside (keep it for inspection) and start the node with an \
         empty data directory; it then streams every partition it replicates back from the other \
         replicas (at least one of them must be up) and answers no reads for a partition until it is \
         back (docs/security.md, \"Crash safety and repair\")",
        data_dir.display(),
        data_dir.display()
    )]
    UnreadableStorage {
        /// The data directory.
        data_dir: std::path::PathBuf,
        /// What fjall or the node's own meta records reported.
        source: StorageError,
    },
    /// The persisted ring does not decode.
    #[error("the persisted ring is corrupt: {source}")]
    PersistedRing {
        /// The decode failure.
        source: prost::DecodeError,
    },
    /// No seed answered with a ring.
    #[error("no seed answered with a ring: {tried}")]
    Seeds {
        /// What each seed said.
        tried: String,
    },
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

/// One node's parts.
pub struct Node {
    config: Config,
    storage: Arc<Storage>,
    topology: Arc<Topology>,
    metrics: Arc<Metrics>,
    peers: Arc<Peers>,
    replica: Arc<Replica>,
    handoff: Arc<Handoff>,
    coordinator: Arc<Coordinator>,
    transfers: Arc<Transfers>,
    anti_entropy: Arc<AntiEntropy>,
    gossip: Arc<Gossip>,
    recovery: Arc<Recovery>,
    started: Instant,
    stopping: AtomicBool,
}

impl Node {
    /// Opens storage and takes the persisted ring, else the ring `seeded`
    /// from a running node, else builds the initial ring from the
    /// configuration; then builds every part, talking to peers over
    /// `transport` and counting in `metrics`. Nothing runs yet: [`crate::startup`] starts the workers.
    ///
    /// # Errors
    /// [`StartError`] saying what is wrong.
    pub fn open(
        config: Config,
        seeded: Option<pb::Ring>,
        transport: Arc<dyn Transport>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        let storage = Arc::new(
            Storage::open(&config.data_dir, config.background.max_hints)
                .map_err(|source| StartError::UnreadableStorage {
                    data_dir: config.data_dir.clone(),
                    source,
                })?
                .with_max_versions(config.limits.max_replica_siblings),
        );
        let ring = initial_ring(&config, &storage, seeded)?;
        let now = Instant::now();
        let incarnation = format!("{:016x}", storage.incarnation());
        let detector = config.background.failure_detector();
        let membership = Membership::new(&config.id, &incarnation, detector, now);
        let topology = Arc::new(Topology::new(
            &config.id,
            ring,
            membership,
            Arc::clone(&storage),
            config.limits,
        ));
        let peers = Arc::new(Peers::new(
            transport,
            PeerSettings::of(&config),
            Arc::clone(&topology),
            Arc::clone(&metrics),
        ));
        let replica = Arc::new(Replica::new(Arc::clone(&storage), Arc::clone(&topology)));
        let handoff = Arc::new(Handoff::new(
            Arc::clone(&topology),
            Arc::clone(&replica),
            Arc::clone(&peers),
            Arc::clone(&metrics),
            Duration::from_millis(config.background.hint_interval_ms),
        ));
        let coordinator = Arc::new(Coordinator::new(
            Arc::clone(&topology),
            Arc::clone(&replica),
            Arc::clone(&handoff),
            Arc::clone(&peers),
            Arc::clone(&metrics),
            CoordinatorSettings::of(&config),
        ));
        let transfers = Arc::new(Transfers::new(
            Arc::clone(&topology),
            Arc::clone(&replica),
            Arc::clone(&peers),
            Arc::clone(&metrics),
            TransferSettings {
                idle: config.request_timeout() * 4,
                drop_delay: config.request_timeout() * 2,
                bytes_per_second: config.background.transfer_bytes_per_second,
                limits: config.limits,
            },
        ));
        let anti_entropy = Arc::new(AntiEntropy::new(
            Arc::clone(&topology),
            Arc::clone(&replica),
            Arc::clone(&peers),
            Arc::clone(&metrics),
            config.background,
        ));
        let gossip = Arc::new(Gossip::new(
            Arc::clone(&topology),
            Arc::clone(&peers),
            Arc::clone(&metrics),
            Duration::from_millis(config.background.gossip_interval_ms),
        ));
        let recovery = Arc::new(Recovery::new(
            Arc::clone(&topology),
            Arc::clone(&replica),
            Arc::clone(&peers),
            Arc::clone(&transfers),
        ));
        Ok(Arc::new(Self {
            config,
            storage,
            topology,
            metrics,
            peers,
            replica,
            handoff,
            coordinator,
            transfers,
            anti_entropy,
            gossip,
            recovery,
            started: now,
            stopping: AtomicBool::new(false),
        }))
    }

    /// The configuration the node started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This node's member name.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The ring in use.
    pub fn ring(&self) -> Arc<Ring> {
        self.topology.ring()
    }

    /// Puts `candidate` in use when its epoch is higher (see
    /// [`Topology::adopt`]).
    ///
    /// # Errors
    /// [`AdoptError`] when the candidate is refused.
    pub fn adopt_ring(&self, candidate: pb::Ring) -> Result<bool, AdoptError> {
        self.topology.adopt(candidate)
    }

    /// Local storage.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// The ring holder and failure detector.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// Membership state and failure detector.
    pub fn membership(&self) -> MutexGuard<'_, Membership> {
        self.topology.membership()
    }

    /// The failure detector's judgement of member `id`.
    pub fn liveness(&self, id: &str) -> Liveness {
        self.topology.liveness(id)
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The peer client.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// This node's replicas.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Sloppy quorum and hint delivery.
    pub fn handoff(&self) -> &Arc<Handoff> {
        &self.handoff
    }

    /// The coordinator of client requests.
    pub fn coordinator(&self) -> &Arc<Coordinator> {
        &self.coordinator
    }

    /// Partition streaming.
    pub fn transfers(&self) -> &Arc<Transfers> {
        &self.transfers
    }

    /// Progress of the incoming partition transfers.
    pub fn transfer_progress(&self) -> Progress {
        self.transfers.progress().clone()
    }

    /// Anti-entropy.
    pub fn anti_entropy(&self) -> &Arc<AntiEntropy> {
        &self.anti_entropy
    }

    /// Gossip.
    pub fn gossip(&self) -> &Arc<Gossip> {
        &self.gossip
    }

    /// Empty-disk recovery.
    pub fn recovery(&self) -> &Arc<Recovery> {
        &self.recovery
    }

    /// Partitions being streamed back after an empty-disk start.
    pub fn recovering(&self) -> MutexGuard<'_, BTreeSet<u32>> {
        self.replica.recovering()
    }

    /// When the node started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Marks the node as shutting down: it stops reporting ready.
    pub fn set_stopping(&self) {
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

    /// Reads the state gauges off the node and encodes every metric in the
    /// Prometheus text format.
    ///
    /// # Errors
    /// Only if formatting fails, which writing to a `String` does not.
    pub fn render_metrics(&self) -> Result<String, std::fmt::Error> {
        let ring = self.ring();
        let mut members = [0u32; 3];
        {
            let membership = self.membership();
            let now = Instant::now();
            for member in ring.members() {
                let slot = match membership.liveness(&member.id, now) {
                    Liveness::Myself => 0,
                    Liveness::Up => 1,
                    Liveness::Down => 2,
                };
                members[slot] += 1;
            }
        }
        let transfer = if ring.next_owners().is_some() {
            let progress = self.transfer_progress();
            (progress.total, progress.done.len() as u32)
        } else {
            (0, 0)
        };
        let recovering = self.recovering().len() as u32;
        let snapshot = Snapshot {
            ring_epoch: ring.epoch(),
            partitions_owned: ring.index_of(self.id()).map_or(0, |me| ring.owned_by(me)),
            hints_queued: self.storage.hints().counts(),
            members,
            transfer,
            recovering,
            sizes: self.storage.sizes(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        };
        self.metrics.render(&snapshot)
    }
}

/// The persisted ring, else the ring `seeded` from a running node (then
/// persisted), else the initial ring of the configuration.
fn initial_ring(
    config: &Config,
    storage: &Storage,
    seeded: Option<pb::Ring>,
) -> Result<Ring, StartError> {
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
    match persisted {
        Some(bytes) => {
            let message = pb::Ring::decode(bytes.as_slice())
                .map_err(|source| StartError::PersistedRing { source })?;
            let ring = Ring::from_pb(message)?;
            info!(epoch = ring.epoch(), "using the persisted ring");
            Ok(ring)
        }
        None => Ok(Ring::initial(
            &config.cluster,
            config.initial_members(),
            config.partitions,
            config.replication,
        )?),
    }
}
