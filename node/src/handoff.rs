//! Sloppy quorum and hinted handoff. A write to a replica that is down (by
//! the failure detector) or does not answer goes to the next fallback node of
//! the preference walk instead, which keeps it as a hint naming the intended
//! replica. A background task delivers hints once their replica answers, and
//! deletes each only after the replica acknowledged it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, warn};

use crate::coordinator::{replica_call_span, traced_outcome};
use crate::membership::Liveness;
use crate::node::Node;
use crate::peers::peer_call;
use crate::quorum::Call;
use crate::ring::Ring;
use crate::storage::Durability;
use crate::wire;

/// Hints delivered per batch.
const DELIVERY_BATCH: usize = 256;

/// Fallback nodes not yet claimed by a replica slot of one write.
#[derive(Clone)]
pub struct Fallbacks(Arc<Mutex<VecDeque<u32>>>);

impl Fallbacks {
    /// The fallbacks of `partition`: its preference walk after the first N.
    pub fn of(ring: &Ring, partition: u32) -> Self {
        let walk = ring.walk(partition);
        let n = ring.replication().n as usize;
        Self(Arc::new(Mutex::new(
            walk[n.min(walk.len())..].iter().copied().collect(),
        )))
    }

    fn claim(&self) -> Option<u32> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

impl Node {
    /// Writes `siblings` to replica `target`, or, when it is down or does not
    /// answer, as a hint to the next free fallback.
    pub(crate) fn slot_write(
        self: &Arc<Self>,
        ring: &Arc<Ring>,
        target: u32,
        key: Bytes,
        siblings: pb::SiblingSet,
        durability: Durability,
        fallbacks: Fallbacks,
    ) -> Call<()> {
        let node = Arc::clone(self);
        let span = replica_call_span(ring, target, "write");
        let ring = Arc::clone(ring);
        let slot = async move {
            let target_member = ring.member(target).clone();
            let sync = durability == Durability::Sync;
            let timeout = node.config().peer_timeout();
            let mut reasons = Vec::new();
            if node.liveness(&target_member.id) != Liveness::Down {
                let request = pb::ReplicaWriteRequest {
                    key: key.clone(),
                    siblings: Some(siblings.clone()),
                    sync,
                };
                let outcome = peer_call(
                    node.peers(),
                    &target_member.address,
                    timeout,
                    |mut c| async move { c.replica_write(request).await },
                )
                .await;
                match outcome {
                    Ok(_) => return (target, Ok(())),
                    Err(reason) => reasons.push(reason),
                }
            } else {
                reasons.push("down".to_owned());
            }
            while let Some(fallback) = fallbacks.claim() {
                let member = ring.member(fallback);
                if member.id == node.id() {
                    let set = match wire::set_from_pb(Some(siblings.clone())) {
                        Ok(set) => set,
                        Err(error) => return (target, Err(error.to_string())),
                    };
                    let partition = ring.partition_of(&key);
                    match node.storage().hints().add(
                        &target_member.id,
                        partition,
                        &key,
                        &set,
                        durability,
                    ) {
                        Ok(()) => {
                            node.metrics().hint_stored(&target_member.id);
                            debug!(target = target_member.id, "stored a hint locally");
                            return (target, Ok(()));
                        }
                        Err(error) => reasons.push(format!("fallback {}: {error}", member.id)),
                    }
                    continue;
                }
                if node.liveness(&member.id) == Liveness::Down {
                    continue;
                }
                let request = pb::HintWriteRequest {
                    target: target_member.id.clone(),
                    key: key.clone(),
                    siblings: Some(siblings.clone()),
                    sync,
                };
                let outcome =
                    peer_call(node.peers(), &member.address, timeout, |mut c| async move {
                        c.hint_write(request).await
                    })
                    .await;
                match outcome {
                    Ok(_) => {
                        debug!(
                            target = target_member.id,
                            fallback = member.id,
                            "stored a hint"
                        );
                        return (target, Ok(()));
                    }
                    Err(reason) => reasons.push(format!("fallback {}: {reason}", member.id)),
                }
            }
            (target, Err(reasons.join(", ")))
        };
        Box::pin(
            async move {
                let (target, outcome) = slot.await;
                traced_outcome(&outcome);
                (target, outcome)
            }
            .instrument(span),
        )
    }

    /// Delivers queued hints to every target that answers. Returns how many
    /// keys were delivered.
    pub async fn deliver_hints(&self) -> usize {
        let ring = self.ring();
        let timeout = self.config().peer_timeout();
        let mut delivered = 0;
        for (target, _) in self.storage().hints().counts() {
            let Some(index) = ring.index_of(&target) else {
                continue;
            };
            let address = ring.member(index).address.clone();
            let mut delivered_here = 0;
            'target: loop {
                let batch = match self.storage().hints().pending(&target, DELIVERY_BATCH) {
                    Ok(batch) if !batch.is_empty() => batch,
                    Ok(_) => break,
                    Err(error) => {
                        warn!(%error, target, "cannot read hints");
                        break;
                    }
                };
                let mut progress = false;
                for hint in batch {
                    let request = pb::ReplicaWriteRequest {
                        key: hint.key.clone(),
                        siblings: Some(wire::set_to_pb(&hint.set)),
                        sync: true,
                    };
                    let outcome = peer_call(self.peers(), &address, timeout, |mut c| async move {
                        c.replica_write(request).await
                    })
                    .await;
                    if let Err(reason) = outcome {
                        debug!(target, reason, "hint delivery paused");
                        break 'target;
                    }
                    match self.storage().hints().delivered(&target, &hint) {
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
                self.metrics()
                    .hints_delivered(&target, delivered_here as u64);
                delivered += delivered_here;
            }
        }
        if delivered > 0 {
            info!(delivered, "delivered hints");
        }
        delivered
    }
}

/// Delivers hints every interval until `stop` turns true.
pub async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(node.config().background.hint_interval_ms.max(1));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => { node.deliver_hints().await; }
            _ = stop.changed() => return,
        }
    }
}
