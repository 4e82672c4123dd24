//! Gossip: every interval this node exchanges heartbeats and its ring with
//! one random peer. A ring with a higher epoch replaces the local one
//! everywhere ([`Topology::adopt`]).
//!
//! A message is refused whole when it carries more than `limits.max_members`
//! heartbeats, a name longer than [`crate::config::MAX_NAME_BYTES`], or a
//! ring [`Topology::adopt`] refuses. Heartbeats of ids that are not members
//! of the ring are dropped, so they are neither kept nor gossiped on.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_proto::v1 as pb;
use rand::seq::IndexedRandom;
use thiserror::Error;
use tracing::{debug, warn};

use crate::config::{Limit, LimitError};
use crate::membership::Heartbeat;
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::topology::{AdoptError, Topology};
use crate::worker::Stop;

/// Why a gossip message was refused; nothing of it was taken in.
#[derive(Debug, Error)]
pub enum GossipError {
    /// The message breaks a size limit.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// Its ring was refused.
    #[error("the gossiped ring was refused: {0}")]
    Ring(#[from] AdoptError),
}

impl GossipError {
    /// The limit this refusal counts against.
    pub fn limit(&self) -> Limit {
        match self {
            Self::Limit(error) => error.limit(),
            Self::Ring(error) => error.limit(),
        }
    }
}

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

    /// This node's side of a gossip exchange: the heartbeats of the ring's
    /// members and the ring.
    pub fn message(&self) -> pb::GossipMessage {
        let ring = self.topology.ring();
        let members: HashSet<&str> = ring.members().iter().map(|m| m.id.as_str()).collect();
        let heartbeats = self
            .topology
            .membership()
            .heartbeats()
            .into_iter()
            .filter(|(id, _)| members.contains(id.as_str()))
            .map(|(id, heartbeat)| pb::Heartbeat {
                id,
                counter: heartbeat.counter,
                incarnation: heartbeat.incarnation,
            })
            .collect();
        pb::GossipMessage {
            from: self.topology.id().to_owned(),
            heartbeats,
            ring: Some(ring.to_pb()),
        }
    }

    /// Takes in a peer's side of a gossip exchange: its ring first, then the
    /// heartbeats of members of the ring in use.
    ///
    /// # Errors
    /// [`GossipError`] when the message breaks a limit or its ring is
    /// refused; nothing is taken in then.
    pub fn receive(&self, message: pb::GossipMessage) -> Result<(), GossipError> {
        let limits = self.topology.limits();
        if message.heartbeats.len() > limits.max_members {
            return Err(LimitError::TooManyHeartbeats {
                count: message.heartbeats.len(),
                limit: limits.max_members,
            }
            .into());
        }
        limits.check_name("member id", &message.from)?;
        for beat in &message.heartbeats {
            limits.check_name("member id", &beat.id)?;
            limits.check_name("incarnation", &beat.incarnation)?;
        }
        if let Some(ring) = message.ring {
            self.topology.adopt(ring)?;
        }
        let ring = self.topology.ring();
        let members: HashSet<&str> = ring.members().iter().map(|m| m.id.as_str()).collect();
        let heard = message
            .heartbeats
            .into_iter()
            .filter(|beat| members.contains(beat.id.as_str()))
            .map(|beat| {
                (
                    beat.id,
                    Heartbeat {
                        counter: beat.counter,
                        incarnation: beat.incarnation,
                    },
                )
            });
        self.topology.membership().merge(heard, Instant::now());
        Ok(())
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
                if let Err(error) = self.receive(response) {
                    self.metrics.limit_refused(error.limit());
                    warn!(peer = peer.id, %error, "ignoring a gossip answer");
                }
                self.metrics.gossip_round(true);
            }
            Err(error) => {
                self.metrics.gossip_round(false);
                debug!(peer = peer.id, %error, "gossip failed");
            }
        }
    }
}
