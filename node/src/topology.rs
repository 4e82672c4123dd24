//! What this node knows about the cluster: the ring in use, and the failure
//! detector's view of every member. Membership changes arrive here: a ring
//! with a higher epoch (from gossip, the Admin API or a peer at start-up)
//! replaces the one in use, is persisted, and is announced to whoever
//! watches [`Topology::changes`] (partition transfers do). A ring from the
//! network is refused when it belongs to another cluster, has another
//! partition count, jumps more than `limits.max_epoch_step` epochs ahead, or
//! breaks the size limits on members and names.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use dynamo_proto::v1 as pb;
use prost::Message;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Limit, LimitError, Limits};
use crate::membership::{Liveness, Membership};
use crate::ring::{Ring, RingError};
use crate::storage::Storage;

/// Why a ring was not put in use.
#[derive(Debug, Error)]
pub enum AdoptError {
    /// The message is not a valid ring.
    #[error(transparent)]
    Invalid(#[from] RingError),
    /// The ring breaks a size limit on members or names.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The ring drops a bucket or changes a bucket's N.
    #[error(transparent)]
    Bucket(#[from] crate::ring::BucketChange),
    /// The ring belongs to another cluster.
    #[error(
        "the ring belongs to cluster {theirs:?}, but this node is a member of cluster {ours:?}"
    )]
    OtherCluster {
        /// This node's cluster.
        ours: String,
        /// The ring's cluster.
        theirs: String,
    },
    /// The ring has another partition count; Q never changes.
    #[error("the ring has {theirs} partitions, but this cluster has {ours} and never changes it")]
    Partitions {
        /// Q of the ring in use.
        ours: u32,
        /// Q of the candidate.
        theirs: usize,
    },
    /// The ring's epoch is too far ahead of the ring in use.
    #[error(
        "ring epoch {candidate} is more than {max_step} epochs ahead of this node's epoch {current} (limits.max_epoch_step)"
    )]
    EpochJump {
        /// The candidate's epoch.
        candidate: u64,
        /// The epoch in use.
        current: u64,
        /// `limits.max_epoch_step`.
        max_step: u64,
    },
}

impl AdoptError {
    /// The limit this refusal counts against, if any (an invalid ring is
    /// malformed input).
    pub fn limit(&self) -> Limit {
        match self {
            Self::Invalid(_) => Limit::Malformed,
            Self::Limit(error) => error.limit(),
            Self::OtherCluster { .. } | Self::Partitions { .. } | Self::Bucket(_) => Limit::Cluster,
            Self::EpochJump { .. } => Limit::EpochStep,
        }
    }
}

/// The ring holder and the failure detector of one node.
pub struct Topology {
    id: String,
    ring: RwLock<Arc<Ring>>,
    membership: Mutex<Membership>,
    storage: Arc<Storage>,
    changes: watch::Sender<Arc<Ring>>,
    limits: Limits,
}

impl Topology {
    /// Starts with `ring`, tracking its members in `membership`; newer rings
    /// are persisted in `storage`, and rings from the network are held to
    /// `limits`.
    pub fn new(
        id: &str,
        ring: Ring,
        mut membership: Membership,
        storage: Arc<Storage>,
        limits: Limits,
    ) -> Self {
        membership.track(ring.members().iter().map(|m| m.id.as_str()), Instant::now());
        let ring = Arc::new(ring);
        let (changes, _) = watch::channel(Arc::clone(&ring));
        Self {
            id: id.to_owned(),
            ring: RwLock::new(ring),
            membership: Mutex::new(membership),
            storage,
            changes,
            limits,
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

    /// Replaces the ring when `candidate` has a higher epoch, persists it,
    /// tracks its members, and announces it. Returns true when adopted,
    /// false when the candidate is not newer.
    ///
    /// # Errors
    /// [`AdoptError`] when the candidate is not a valid ring, belongs to
    /// another cluster or partition count, jumps more than
    /// `limits.max_epoch_step` epochs ahead, or breaks a size limit.
    pub fn adopt(&self, candidate: pb::Ring) -> Result<bool, AdoptError> {
        let current = self.ring();
        if candidate.cluster != current.cluster() {
            return Err(AdoptError::OtherCluster {
                ours: current.cluster().to_owned(),
                theirs: candidate.cluster,
            });
        }
        if candidate.epoch <= current.epoch() {
            return Ok(false);
        }
        let max_step = self.limits.max_epoch_step;
        if candidate.epoch - current.epoch() > max_step {
            return Err(AdoptError::EpochJump {
                candidate: candidate.epoch,
                current: current.epoch(),
                max_step,
            });
        }
        if candidate.owners.len() != current.partitions() as usize {
            return Err(AdoptError::Partitions {
                ours: current.partitions(),
                theirs: candidate.owners.len(),
            });
        }
        check_shape(&candidate, &self.limits)?;
        let encoded = candidate.encode_to_vec();
        let ring = Ring::from_pb(candidate)?;
        if let Err(error) = current.check_successor(&ring) {
            warn!(%error, epoch = ring.epoch(), "refused a ring that changes a bucket");
            return Err(error.into());
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

    /// The limits rings and gossip from the network are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A call to member `id` did not reach it in time.
    pub fn failed(&self, id: &str) {
        self.membership().failed(id, Instant::now());
    }
}

/// Checks the sizes in a ring message before it is built: members, and the
/// length of every name.
fn check_shape(ring: &pb::Ring, limits: &Limits) -> Result<(), LimitError> {
    if ring.members.len() > limits.max_members {
        return Err(LimitError::TooManyMembers {
            count: ring.members.len(),
            limit: limits.max_members,
        });
    }
    for member in &ring.members {
        limits.check_name("member id", &member.id)?;
        limits.check_name("address", &member.address)?;
        limits.check_name("zone", &member.zone)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::DetectorSettings;
    use crate::ring::{Member, Replication};

    fn topology(dir: &std::path::Path) -> Topology {
        let members = (0..3)
            .map(|i| Member {
                weight: 0,
                id: format!("node-{i}"),
                address: format!("127.0.0.1:{}", 7400 + i),
                zone: String::new(),
            })
            .collect();
        let ring = Ring::initial("c", members, 16, Replication::default()).expect("ring");
        let now = Instant::now();
        let membership = Membership::new("node-0", "1", DetectorSettings::default(), now);
        let storage = Arc::new(Storage::open(dir, 10).expect("storage"));
        let limits = Limits {
            max_epoch_step: 10,
            max_members: 4,
            ..Limits::default()
        };
        Topology::new("node-0", ring, membership, storage, limits)
    }

    #[test]
    fn rings_from_the_network_are_held_to_the_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let topology = topology(dir.path());
        let current = topology.ring().to_pb();
        let at = |epoch: u64| pb::Ring {
            epoch,
            ..current.clone()
        };
        assert!(matches!(
            topology.adopt(at(u64::MAX)),
            Err(AdoptError::EpochJump { max_step: 10, .. })
        ));
        assert!(matches!(
            topology.adopt(pb::Ring {
                cluster: "d".into(),
                ..at(2)
            }),
            Err(AdoptError::OtherCluster { .. })
        ));
        assert!(matches!(
            topology.adopt(pb::Ring {
                owners: vec![0; 8],
                ..at(2)
            }),
            Err(AdoptError::Partitions {
                ours: 16,
                theirs: 8
            })
        ));
        let mut crowd = at(2);
        crowd.members.extend((3..5).map(|i| pb::Member {
            id: format!("node-{i}"),
            ..pb::Member::default()
        }));
        let refused = topology.adopt(crowd).expect_err("five members");
        assert_eq!(refused.limit(), Limit::Members);
        let mut long = at(2);
        long.members[1].zone = "z".repeat(crate::config::MAX_NAME_BYTES + 1);
        assert!(matches!(
            topology.adopt(long),
            Err(AdoptError::Limit(LimitError::NameTooLong {
                field: "zone",
                ..
            }))
        ));
        assert_eq!(topology.ring().epoch(), 1, "nothing adopted");
        assert!(topology.adopt(at(11)).expect("ten epochs ahead"));
        assert!(!topology.adopt(at(5)).expect("older is ignored"));
        assert_eq!(topology.ring().epoch(), 11);
    }
}
