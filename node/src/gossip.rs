//! Gossip: every interval this node exchanges heartbeats and its ring with
//! one random peer. A ring with a higher epoch replaces the local one
//! everywhere and is persisted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_proto::v1 as pb;
use prost::Message;
use rand::seq::IndexedRandom;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::membership::Heartbeat;
use crate::node::Node;
use crate::ring::{Ring, RingError};

impl Node {
    /// This node's side of a gossip exchange.
    pub fn gossip_message(&self) -> pb::GossipMessage {
        let heartbeats = self
            .membership()
            .heartbeats()
            .into_iter()
            .map(|(id, heartbeat)| pb::Heartbeat {
                id,
                counter: heartbeat.counter,
                incarnation: heartbeat.incarnation,
            })
            .collect();
        pb::GossipMessage {
            from: self.id().to_owned(),
            heartbeats,
            ring: Some(self.ring().to_pb()),
        }
    }

    /// Takes in a peer's side of a gossip exchange.
    pub fn receive_gossip(self: &Arc<Self>, message: pb::GossipMessage) {
        let heard = message.heartbeats.into_iter().map(|beat| {
            (
                beat.id,
                Heartbeat {
                    counter: beat.counter,
                    incarnation: beat.incarnation,
                },
            )
        });
        self.membership().merge(heard, Instant::now());
        if let Some(ring) = message.ring
            && let Err(error) = self.adopt_ring(ring)
        {
            warn!(from = message.from, %error, "ignoring an invalid ring from gossip");
        }
    }

    /// Replaces the ring when `candidate` has a higher epoch, persists it and
    /// starts the transfers or clean-up it implies. Returns true when adopted.
    ///
    /// # Errors
    /// [`RingError`] when the candidate is not a valid ring.
    pub fn adopt_ring(self: &Arc<Self>, candidate: pb::Ring) -> Result<bool, RingError> {
        if candidate.epoch <= self.ring().epoch() {
            return Ok(false);
        }
        let encoded = candidate.encode_to_vec();
        let ring = Ring::from_pb(candidate)?;
        if ring.cluster() != self.ring().cluster() {
            warn!(
                cluster = ring.cluster(),
                "ignoring a ring of another cluster"
            );
            return Ok(false);
        }
        if let Err(error) = self.storage().save_ring(encoded) {
            warn!(%error, "could not persist the new ring; using it anyway");
        }
        let ids: Vec<&str> = ring.members().iter().map(|m| m.id.as_str()).collect();
        self.membership().track(ids, Instant::now());
        info!(
            epoch = ring.epoch(),
            change_in_flight = ring.next_owners().is_some(),
            "adopted a newer ring"
        );
        let ring = Arc::new(ring);
        self.replace_ring(Arc::clone(&ring));
        self.on_new_ring(ring);
        Ok(true)
    }
}

/// Runs gossip rounds until `stop` turns true.
pub async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_millis(node.config().background.gossip_interval_ms.max(1));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => round(&node).await,
            _ = stop.changed() => return,
        }
    }
}

/// One round: tick the own heartbeat and exchange state with a random peer.
async fn round(node: &Arc<Node>) {
    node.membership().tick(Instant::now());
    let ring = node.ring();
    let peers: Vec<_> = ring
        .members()
        .iter()
        .filter(|member| member.id != node.id())
        .collect();
    let Some(peer) = peers.choose(&mut rand::rng()) else {
        return;
    };
    let mut client = match node.peers().peer(&peer.address) {
        Ok(client) => client,
        Err(error) => {
            warn!(%error, "cannot gossip");
            return;
        }
    };
    let timeout = node.config().peer_timeout();
    let mut request = tonic::Request::new(node.gossip_message());
    request.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.gossip(request)).await {
        Ok(Ok(response)) => {
            node.membership().heard_from(&peer.id, Instant::now());
            node.receive_gossip(response.into_inner());
            node.metrics().gossip_round(true);
        }
        Ok(Err(status)) => {
            node.metrics().gossip_round(false);
            debug!(peer = peer.id, %status, "gossip failed");
        }
        Err(_) => {
            node.metrics().gossip_round(false);
            debug!(peer = peer.id, "gossip timed out");
        }
    }
}
