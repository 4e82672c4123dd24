//! Sloppy quorum and hinted handoff. A write to a replica that the failure
//! detector suspects, that fails, or that misses its latency-based deadline
//! goes to the next fallback node of the preference walk instead, which
//! keeps it as a hint naming the intended replica. A background worker
//! delivers hints once their replica answers, and deletes each only after
//! the replica acknowledged it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use thiserror::Error;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::peers::{PeerError, Peers};
use crate::quorum::Call;
use crate::replica::{Replica, ReplicaError};
use crate::ring::{Member, Ring};
use crate::storage::Durability;
use crate::topology::Topology;
use crate::version::SiblingSet;
use crate::wire;
use crate::worker::Stop;

/// Hints delivered per batch.
const DELIVERY_BATCH: usize = 256;

/// One failed attempt of a replica slot.
#[derive(Debug, Error)]
pub enum AttemptError {
    /// The replica is suspected, so it was tried last or not at all.
    #[error("{member} is suspected")]
    Suspected {
        /// Member id of the replica.
        member: String,
    },
    /// The replica did not answer within its latency-based deadline (it
    /// may still answer later).
    #[error("{member} did not answer within {waited_ms} ms")]
    Late {
        /// Member id of the replica.
        member: String,
        /// How long the slot waited before turning to a fallback.
        waited_ms: u64,
    },
    /// The replica or a fallback did not take the write.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// This node, as a fallback, could not keep the hint.
    #[error("fallback {fallback} (this node) could not keep a hint: {source}")]
    LocalHint {
        /// This node's member id.
        fallback: String,
        /// Why.
        source: ReplicaError,
    },
}

/// Why a replica slot of a write got neither the replica nor a fallback.
#[derive(Debug, Error)]
#[error("{}", describe(.attempts))]
pub struct SlotError {
    /// Every attempt, in order.
    pub attempts: Vec<AttemptError>,
}

fn describe(attempts: &[AttemptError]) -> String {
    let reasons: Vec<String> = attempts.iter().map(ToString::to_string).collect();
    reasons.join(", ")
}

/// Fallback nodes not yet claimed by a replica slot of one write.
#[derive(Clone)]
pub struct Fallbacks(Arc<Mutex<VecDeque<u32>>>);

impl Fallbacks {
    /// The fallbacks of `partition` for a bucket with N = `n`: its
    /// preference walk after the first N.
    pub fn of(ring: &Ring, partition: u32, n: u32) -> Self {
        let walk = ring.walk(partition);
        let n = n as usize;
        Self(Arc::new(Mutex::new(
            walk[n.min(walk.len())..].iter().copied().collect(),
        )))
    }

    /// Takes the first free fallback that `usable` accepts, else (as a last
    /// resort) the first free one, so a slot of the same write can still
    /// have a fallback that this slot would only have skipped.
    fn claim(&self, usable: impl Fn(u32) -> bool) -> Option<u32> {
        let mut free = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = free.iter().position(|&f| usable(f)).unwrap_or(0);
        free.remove(at)
    }
}

/// What one replica slot of a write carries.
#[derive(Clone)]
pub struct SlotWrite {
    /// The key.
    pub key: Bytes,
    /// Its partition.
    pub partition: u32,
    /// The versions, as sent.
    pub message: pb::SiblingSet,
    /// The versions, for a hint this node keeps itself.
    pub set: Arc<SiblingSet>,
    /// How hard replicas push it to disk.
    pub durability: Durability,
}

/// Sloppy quorum and hint delivery of one node.
pub struct Handoff {
    topology: Arc<Topology>,
    replica: Arc<Replica>,
    peers: Arc<Peers>,
    metrics: Arc<Metrics>,
    interval: Duration,
}

impl Handoff {
    /// Handoff keeping hints in `replica` and delivering them every
    /// `interval`.
    pub fn new(
        topology: Arc<Topology>,
        replica: Arc<Replica>,
        peers: Arc<Peers>,
        metrics: Arc<Metrics>,
        interval: Duration,
    ) -> Self {
        Self {
            topology,
            replica,
            peers,
            metrics,
            interval,
        }
    }

    /// Writes to replica `target`, or, when it is suspected or misses its
    /// latency-based deadline, as a hint to the next free fallback; a late
    /// replica call keeps running (until `deadline` at most) and wins if it
    /// answers first. A suspected replica with no fallback left is still
    /// tried last.
    pub fn slot_write(
        self: &Arc<Self>,
        ring: &Arc<Ring>,
        target: u32,
        write: SlotWrite,
        fallbacks: Fallbacks,
        deadline: Instant,
    ) -> Call<(), SlotError> {
        let handoff = Arc::clone(self);
        let ring = Arc::clone(ring);
        Box::pin(async move {
            let outcome = handoff
                .fill_slot(&ring, target, write, fallbacks, deadline)
                .await;
            (target, outcome)
        })
    }

    async fn fill_slot(
        &self,
        ring: &Ring,
        target: u32,
        write: SlotWrite,
        fallbacks: Fallbacks,
        deadline: Instant,
    ) -> Result<(), SlotError> {
        let replica = ring.member(target);
        let mut attempts = Vec::new();
        // Only the failure detector rules the replica out; a replica whose
        // last call failed is tried again (it may be back).
        let suspected = self.peers.detector_suspects(replica);
        // A call to the replica that missed its latency deadline but may
        // still answer.
        let mut late = None;
        if suspected {
            attempts.push(AttemptError::Suspected {
                member: replica.id.clone(),
            });
        } else {
            let patience = self.peers.replica_deadline(replica);
            let mut call = self.send_to(replica, &write, deadline);
            if patience >= self.peers.settings().ceiling {
                // Nothing learned about this replica yet (or it is that
                // slow): its call's own deadline decides.
                match call.await {
                    Ok(()) => return Ok(()),
                    Err(error) => attempts.push(error.into()),
                }
            } else {
                tokio::select! {
                outcome = &mut call => match outcome {
                    Ok(()) => return Ok(()),
                    Err(error) => attempts.push(error.into()),
                },
                () = tokio::time::sleep(patience) => {
                    debug!(replica = replica.id, ?patience, "replica missed its deadline; trying a fallback");
                    attempts.push(AttemptError::Late {
                        member: replica.id.clone(),
                        waited_ms: patience.as_millis() as u64,
                    });
                    late = Some(call);
                }
                }
            }
        }
        let mut hinting = std::pin::pin!(self.hint_to_fallbacks(ring, replica, &write, &fallbacks));
        let hinted = match late.take() {
            None => hinting.await,
            Some(mut call) => {
                tokio::select! {
                    hinted = &mut hinting => match hinted {
                        Ok(()) => {
                            // The replica may still answer: let its call run
                            // to its own deadline so it gets the write
                            // directly too (the hint merges harmlessly).
                            let replica_id = replica.id.clone();
                            tokio::spawn(async move {
                                if let Err(error) = call.await {
                                    debug!(replica = replica_id, %error, "a late replica write failed");
                                }
                            });
                            return Ok(());
                        }
                        Err(errors) => {
                            attempts.extend(errors);
                            match call.await {
                                Ok(()) => return Ok(()),
                                Err(error) => attempts.push(error.into()),
                            }
                            return Err(SlotError { attempts });
                        }
                    },
                    outcome = &mut call => match outcome {
                        Ok(()) => return Ok(()),
                        Err(error) => {
                            attempts.push(error.into());
                            hinting.await
                        }
                    },
                }
            }
        };
        match hinted {
            Ok(()) => return Ok(()),
            Err(errors) => attempts.extend(errors),
        }
        if suspected {
            let last_resort = Instant::now() + self.peers.settings().ceiling;
            match self.send_to(replica, &write, last_resort).await {
                Ok(()) => return Ok(()),
                Err(error) => attempts.push(error.into()),
            }
        }
        Err(SlotError { attempts })
    }

    /// Offers the write as a hint for `replica` to each free fallback in
    /// turn, those the failure detector suspects last, until one keeps it.
    async fn hint_to_fallbacks(
        &self,
        ring: &Ring,
        replica: &Member,
        write: &SlotWrite,
        fallbacks: &Fallbacks,
    ) -> Result<(), Vec<AttemptError>> {
        let mut attempts = Vec::new();
        // Fallbacks the failure detector suspects come last: one may be
        // up (suspected for failures it has not been heard from since),
        // and a write that has no other fallback left tries it.
        let usable = |f: u32| {
            let member = ring.member(f);
            member.id == self.topology.id() || !self.peers.detector_suspects(member)
        };
        while let Some(fallback) = fallbacks.claim(usable) {
            let member = ring.member(fallback);
            if member.id == self.topology.id() {
                let kept = self
                    .replica
                    .store_hint(
                        replica.id.clone(),
                        write.partition,
                        write.key.clone(),
                        SiblingSet::clone(&write.set),
                        write.durability,
                    )
                    .await;
                match kept {
                    Ok(()) => {
                        self.metrics.hint_stored(&replica.id);
                        debug!(target = replica.id, "stored a hint locally");
                        return Ok(());
                    }
                    Err(source) => attempts.push(AttemptError::LocalHint {
                        fallback: member.id.clone(),
                        source,
                    }),
                }
                continue;
            }
            let hint = self.peers.hint_write(
                member,
                &replica.id,
                write.key.clone(),
                write.message.clone(),
                write.durability,
                Instant::now() + self.peers.settings().ceiling,
            );
            match hint.await {
                Ok(()) => {
                    debug!(target = replica.id, fallback = member.id, "stored a hint");
                    return Ok(());
                }
                Err(error) => attempts.push(error.into()),
            }
        }
        Err(attempts)
    }

    fn send_to(
        &self,
        member: &Member,
        write: &SlotWrite,
        deadline: Instant,
    ) -> crate::peers::PeerFuture<()> {
        self.peers.replica_write(
            member,
            write.key.clone(),
            write.message.clone(),
            write.durability,
            deadline,
        )
    }

    /// Delivers queued hints to every target that answers. Returns how many
    /// keys were delivered.
    pub async fn deliver(&self) -> usize {
        let ring = self.topology.ring();
        let hints = self.replica.storage().hints();
        let mut delivered = 0;
        for (target, _) in hints.counts() {
            let Some(index) = ring.index_of(&target) else {
                continue;
            };
            let member = ring.member(index);
            let mut delivered_here = 0;
            'target: loop {
                let batch = match hints.pending(&target, DELIVERY_BATCH) {
                    Ok(batch) if !batch.is_empty() => batch,
                    Ok(_) => break,
                    Err(error) => {
                        warn!(%error, target, "cannot read hints");
                        break;
                    }
                };
                let mut progress = false;
                for hint in batch {
                    let sent = self
                        .peers
                        .replica_write(
                            member,
                            hint.key.clone(),
                            wire::set_to_pb(&hint.set),
                            Durability::Sync,
                            Instant::now() + self.peers.settings().ceiling,
                        )
                        .await;
                    if let Err(error) = sent {
                        debug!(target, %error, "hint delivery paused");
                        break 'target;
                    }
                    match hints.delivered(&target, &hint) {
                        Ok(true) => {
                            delivered_here += 1;
                            progress = true;
                        }
                        Ok(false) => {}
                        Err(error) => {
                            warn!(%error, target, "cannot delete a delivered hint");
                            break 'target;
                        }
                    }
                }
                if !progress {
                    break;
                }
            }
            if delivered_here > 0 {
                self.metrics.hints_delivered(&target, delivered_here as u64);
                delivered += delivered_here;
            }
        }
        if delivered > 0 {
            info!(delivered, "delivered hints");
        }
        delivered
    }

    /// Delivers hints every interval until stopped.
    pub async fn run(self: Arc<Self>, mut stop: Stop) {
        let mut ticker = tokio::time::interval(self.interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => { self.deliver().await; }
                () = stop.stopped() => return,
            }
        }
    }
}
