//! What this node knows about the cluster: the ring in use, and the failure
//! detector's view of every member. Membership changes arrive here: a ring
//! with a higher epoch (from gossip, the Admin API or a peer at start-up)
//! replaces the one in use, is persisted, and is announced to whoever
//! watches [`Topology::changes`] (partition transfers do).

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use dynamo_proto::v1 as pb;
use prost::Message;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::membership::{Liveness, Membership};
use crate::ring::{Ring, RingError};
use crate::storage::Storage;

/// The ring holder and the failure detector of one node.
pub struct Topology {
    id: String,
    ring: RwLock<Arc<Ring>>,
    membership: Mutex<Membership>,
    storage: Arc<Storage>,
    changes: watch::Sender<Arc<Ring>>,
}

impl Topology {
    /// Starts with `ring`, tracking its members in `membership`; newer rings
    /// are persisted in `storage`.
    pub fn new(id: &str, ring: Ring, mut membership: Membership, storage: Arc<Storage>) -> Self {
        membership.track(ring.members().iter().map(|m| m.id.as_str()), Instant::now());
        let ring = Arc::new(ring);
        let (changes, _) = watch::channel(Arc::clone(&ring));
        Self {
            id: id.to_owned(),
            ring: RwLock::new(ring),
            membership: Mutex::new(membership),
            storage,
            changes,
        }
    }

    /// This node's member name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The ring in use.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every ring put in use from now on, starting with the current one.
    pub fn changes(&self) -> watch::Receiver<Arc<Ring>> {
        self.changes.subscribe()
    }

    /// Replaces the ring when `candidate` has a higher epoch and belongs to
    /// the same cluster, persists it, tracks its members, and announces it.
    /// Returns true when adopted.
    ///
    /// # Errors
    /// [`RingError`] when the candidate is not a valid ring.
    pub fn adopt(&self, candidate: pb::Ring) -> Result<bool, RingError> {
        let current = self.ring();
        if candidate.epoch <= current.epoch() {
            return Ok(false);
        }
        let encoded = candidate.encode_to_vec();
        let ring = Ring::from_pb(candidate)?;
        if ring.cluster() != current.cluster() {
            warn!(
                cluster = ring.cluster(),
                "ignoring a ring of another cluster"
            );
            return Ok(false);
        }
        if let Err(error) = self.storage.save_ring(encoded) {
            warn!(%error, "could not persist the new ring; using it anyway");
        }
        self.membership()
            .track(ring.members().iter().map(|m| m.id.as_str()), Instant::now());
        info!(
            epoch = ring.epoch(),
            change_in_flight = ring.next_owners().is_some(),
            "adopted a newer ring"
        );
        let ring = Arc::new(ring);
        {
            let mut slot = self.ring.write().unwrap_or_else(|e| e.into_inner());
            // Two adoptions may race; the higher epoch stays.
            if slot.epoch() >= ring.epoch() {
                return Ok(false);
            }
            *slot = Arc::clone(&ring);
        }
        self.changes.send_replace(ring);
        Ok(true)
    }

    /// The failure detector's state.
    pub fn membership(&self) -> MutexGuard<'_, Membership> {
        self.membership.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The failure detector's judgement of member `id` now.
    pub fn liveness(&self, id: &str) -> Liveness {
        self.membership().liveness(id, Instant::now())
    }

    /// A call to member `id` succeeded.
    pub fn heard_from(&self, id: &str) {
        self.membership().heard_from(id, Instant::now());
    }

    /// A call to member `id` did not reach it in time.
    pub fn failed(&self, id: &str) {
        self.membership().failed(id, Instant::now());
    }
}
