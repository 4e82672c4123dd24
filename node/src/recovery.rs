//! Recovery after an empty disk: a node that starts with a new database
//! while the cluster's ring says it replicates partitions streams each of
//! them back from another replica, and answers no reads for a partition until
//! it is complete (an empty answer would count towards R as "no such key").

use dynamo_proto::v1 as pb;
use std::collections::BTreeSet;
use std::sync::Arc;
use tracing::{info, warn};

use crate::node::Node;
use crate::ring::Ring;
use crate::transfer::receive_with_retry;

impl Node {
    /// True while `partition` is being streamed back after an empty-disk
    /// start.
    pub fn is_recovering(&self, partition: u32) -> bool {
        self.recovering().contains(&partition)
    }
}

/// On an empty disk, fetches the newest ring from the other members; when it
/// names this node as a replica, adopts it and marks the partitions to
/// recover. Returns them.
pub async fn prepare(node: &Arc<Node>) -> BTreeSet<u32> {
    if !node.storage().is_fresh() {
        return BTreeSet::new();
    }
    let local = node.ring();
    let mut newest: Option<pb::Ring> = None;
    let mut peers_hold_data = false;
    let views = futures::future::join_all(
        local
            .members()
            .iter()
            .filter(|m| m.id != node.id())
            .map(|m| peer_view(node, &m.address)),
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
        && let Err(error) = node.adopt_ring(newest)
    {
        warn!(%error, "a peer's ring is invalid");
    }
    let ring = node.ring();
    let Some(me) = ring.index_of(node.id()) else {
        return BTreeSet::new();
    };
    let partitions: BTreeSet<u32> = (0..ring.partitions())
        .filter(|&p| ring.replicates(me, p) && ring.preference(p).iter().any(|&other| other != me))
        .collect();
    if !partitions.is_empty() {
        info!(
            partitions = partitions.len(),
            "started with an empty disk; streaming back the partitions this node replicates"
        );
    }
    node.recovering().clone_from(&partitions);
    partitions
}

/// Streams back every recovering partition, retrying until done or until
/// `stop` turns true.
pub async fn run(node: Arc<Node>, stop: tokio::sync::watch::Receiver<bool>) {
    let partitions: Vec<u32> = node.recovering().iter().copied().collect();
    if partitions.is_empty() {
        return;
    }
    let ring: Arc<Ring> = node.ring();
    for partition in partitions {
        let running = || !*stop.borrow();
        if !receive_with_retry(&node, &ring, partition, running, |_| {}).await {
            return;
        }
        node.recovering().remove(&partition);
    }
    info!("recovered every partition after an empty-disk start");
}

/// A peer's ring and how many keys it holds.
async fn peer_view(node: &Node, address: &str) -> Option<(pb::Ring, u64)> {
    let timeout = node.config().peer_timeout();
    let mut client =
        dynamo_proto::v1::admin_client::AdminClient::new(node.peers().channel(address).ok()?);
    let ring = tokio::time::timeout(timeout, client.get_ring(pb::GetRingRequest {}))
        .await
        .ok()?
        .ok()?
        .into_inner()
        .ring?;
    let status = tokio::time::timeout(timeout, client.status(pb::StatusRequest {}))
        .await
        .ok()?
        .ok()?
        .into_inner();
    Some((ring, status.keys))
}
