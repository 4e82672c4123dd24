//! Gossip: every interval this node exchanges heartbeats and its ring with
//! one random peer. A ring with a higher epoch replaces the local one
//! everywhere ([`Topology::adopt`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_proto::v1 as pb;
use rand::seq::IndexedRandom;
use tracing::{debug, warn};

use crate::membership::Heartbeat;
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::topology::Topology;
use crate::worker::Stop;

/// The gossip mechanism of one node.
pub struct Gossip {
    topology: Arc<Topology>,
    peers: Arc<Peers>,
    metrics: Arc<Metrics>,
    interval: Duration,
}

impl Gossip {
    /// Gossip every `interval`.
    pub fn new(
        topology: Arc<Topology>,
        peers: Arc<Peers>,
        metrics: Arc<Metrics>,
        interval: Duration,
    ) -> Self {
        Self {
            topology,
            peers,
            metrics,
            interval,
        }
    }

    /// This node's side of a gossip exchange.
    pub fn message(&self) -> pb::GossipMessage {
        let heartbeats = self
            .topology
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
            from: self.topology.id().to_owned(),
            heartbeats,
            ring: Some(self.topology.ring().to_pb()),
        }
    }

    /// Takes in a peer's side of a gossip exchange.
    pub fn receive(&self, message: pb::GossipMessage) {
        let heard = message.heartbeats.into_iter().map(|beat| {
            (
                beat.id,
                Heartbeat {
                    counter: beat.counter,
                    incarnation: beat.incarnation,
                },
            )
        });
        self.topology.membership().merge(heard, Instant::now());
        if let Some(ring) = message.ring
            && let Err(error) = self.topology.adopt(ring)
        {
            warn!(from = message.from, %error, "ignoring an invalid ring from gossip");
        }
    }

    /// Runs gossip rounds until stopped.
    pub async fn run(self: Arc<Self>, mut stop: Stop) {
        let mut ticker = tokio::time::interval(self.interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.round().await,
                () = stop.stopped() => return,
            }
        }
    }

    /// One round: tick the own heartbeat and exchange state with a random
    /// peer.
    async fn round(&self) {
        self.topology.membership().tick(Instant::now());
        let ring = self.topology.ring();
        let others: Vec<_> = ring
            .members()
            .iter()
            .filter(|member| member.id != self.topology.id())
            .collect();
        let Some(peer) = others.choose(&mut rand::rng()) else {
            return;
        };
        // The peer client reports the outcome to the failure detector.
        match self.peers.gossip(peer, self.message()).await {
            Ok(response) => {
                self.receive(response);
                self.metrics.gossip_round(true);
            }
            Err(error) => {
                self.metrics.gossip_round(false);
                debug!(peer = peer.id, %error, "gossip failed");
            }
        }
    }
}
