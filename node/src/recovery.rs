//! Recovery after an empty disk: a node that starts with a new database
//! while the cluster's ring says it replicates partitions streams each of
//! them back from another replica, and answers no reads for a partition until
//! it is complete (the gate is in [`crate::replica`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use dynamo_proto::v1 as pb;
use tracing::{info, warn};

use crate::peers::Peers;
use crate::replica::Replica;
use crate::ring::{Member, Ring};
use crate::topology::Topology;
use crate::transfer::Transfers;
use crate::worker::Stop;

/// Empty-disk recovery of one node.
pub struct Recovery {
    topology: Arc<Topology>,
    replica: Arc<Replica>,
    peers: Arc<Peers>,
    transfers: Arc<Transfers>,
}

impl Recovery {
    /// Recovery into `replica`, streaming through `transfers`.
    pub fn new(
        topology: Arc<Topology>,
        replica: Arc<Replica>,
        peers: Arc<Peers>,
        transfers: Arc<Transfers>,
    ) -> Self {
        Self {
            topology,
            replica,
            peers,
            transfers,
        }
    }

    /// On an empty disk, fetches the newest ring from the other members;
    /// when it names this node as a replica, adopts it and marks the
    /// partitions to recover. Returns them.
    pub async fn prepare(&self) -> BTreeSet<u32> {
        if !self.replica.storage().is_fresh() {
            return BTreeSet::new();
        }
        let local = self.topology.ring();
        let mut newest: Option<pb::Ring> = None;
        let mut peers_hold_data = false;
        let views = futures::future::join_all(
            local
                .members()
                .iter()
                .filter(|m| m.id != self.topology.id())
                .map(|m| self.peer_view(m)),
        )
        .await;
        for (ring, keys) in views.into_iter().flatten() {
            peers_hold_data |= keys > 0;
            if newest.as_ref().is_none_or(|best| ring.epoch > best.epoch) {
                newest = Some(ring);
            }
        }
        // Nobody answered, or nobody holds data: the whole cluster starts for
        // the first time and there is nothing to stream back.
        let Some(newest) = newest.filter(|_| peers_hold_data) else {
            return BTreeSet::new();
        };
        if newest.epoch > local.epoch()
            && let Err(error) = self.topology.adopt(newest)
        {
            warn!(%error, "a peer's ring is invalid");
        }
        let ring = self.topology.ring();
        let Some(me) = ring.index_of(self.topology.id()) else {
            return BTreeSet::new();
        };
        let partitions: BTreeSet<u32> = (0..ring.partitions())
            .filter(|&p| !recovered_factors(&ring, me, p).is_empty())
            .collect();
        if !partitions.is_empty() {
            info!(
                partitions = partitions.len(),
                "started with an empty disk; streaming back the partitions this node replicates"
            );
        }
        self.replica.recovering().clone_from(&partitions);
        partitions
    }

    /// Streams back every recovering partition, retrying until done or
    /// until stopped.
    pub async fn run(self: Arc<Self>, stop: Stop) {
        let partitions: Vec<u32> = self.replica.recovering().iter().copied().collect();
        if partitions.is_empty() {
            return;
        }
        let ring = self.topology.ring();
        let Some(me) = ring.index_of(self.topology.id()) else {
            return;
        };
        for partition in partitions {
            for n in recovered_factors(&ring, me, partition) {
                let running = || !stop.is_stopped();
                let done = self
                    .transfers
                    .receive_with_retry(&ring, partition, n, running, |_| {})
                    .await;
                if !done {
                    return;
                }
            }
            self.replica.recovering().remove(&partition);
        }
        info!("recovered every partition after an empty-disk start");
    }

    /// A peer's ring and how many keys it holds.
    async fn peer_view(&self, member: &Member) -> Option<(pb::Ring, u64)> {
        let ring = self.peers.ring(member).await.ok()?.ring?;
        let status = self.peers.status(member).await.ok()?;
        Some((ring, status.keys))
    }
}

/// The N for which `me` replicates `partition` with at least one other
/// replica to stream from: what an empty disk streams back.
fn recovered_factors(ring: &Ring, me: u32, partition: u32) -> Vec<u32> {
    ring.factors()
        .into_iter()
        .filter(|&n| {
            ring.replicates(me, partition, n)
                && ring
                    .preference(partition, n)
                    .iter()
                    .any(|&other| other != me)
        })
        .collect()
}
