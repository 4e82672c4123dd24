//! What one node reports about itself and the cluster (Admin.Status).

use std::time::Duration;

use dynamo_proto::v1 as pb;

use crate::Member;

/// Response metadata of `Admin.Status` in which a node names the URL of its
/// `/metrics`; the node sets it (`dynamo_node::server::METRICS_URL_HEADER`)
/// only when its HTTP server is on.
pub const METRICS_URL_HEADER: &str = "dynamo-metrics-url";

/// One node's identity and its view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's member name.
    pub id: String,
    /// The node's incarnation id (hex), created with its data directory.
    pub incarnation: String,
    /// Epoch of the ring the node uses.
    pub epoch: u64,
    /// Every member of the ring as the node sees it.
    pub members: Vec<MemberStatus>,
    /// Approximate number of keys stored on the node.
    pub keys: u64,
    /// Time since the node started.
    pub uptime: Duration,
    /// Software version of the node.
    pub version: String,
    /// Hinted keys queued on the node, per target member.
    pub hints: Vec<(String, u64)>,
    /// True when the node's hint store is full.
    pub hints_full: bool,
    /// When anti-entropy last finished, per partition, in ms since the epoch.
    pub anti_entropy: Vec<(u32, u64)>,
    /// Incoming transfers of the membership change in flight, if any.
    pub transfer: Option<Transfer>,
    /// Where the node serves Prometheus `/metrics`; `None` when its HTTP
    /// server is off.
    pub metrics_url: Option<String>,
}

/// A node's incoming partition transfers during a membership change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Transfer {
    /// Epoch of the proposed ring.
    pub epoch: u64,
    /// Partitions the node must receive.
    pub partitions_total: u32,
    /// Partitions received completely.
    pub partitions_done: u32,
    /// Bytes received so far.
    pub bytes_received: u64,
    /// Estimated bytes still to receive.
    pub bytes_left: u64,
}

/// How a node sees one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member; `None` if the node left it out.
    pub member: Option<Member>,
    /// `up`, `suspect`, `down` or `self`, from the node's failure detector.
    pub state: String,
    /// Number of partitions the member owns.
    pub partitions: u32,
    /// Milliseconds since the node last heard of the member's heartbeat.
    pub last_heard_ms: u64,
}

impl From<pb::StatusResponse> for NodeStatus {
    fn from(status: pb::StatusResponse) -> Self {
        Self {
            id: status.id,
            incarnation: status.incarnation,
            epoch: status.epoch,
            members: status
                .members
                .into_iter()
                .map(|member| MemberStatus {
                    member: member.member.map(Member::from),
                    state: member.state,
                    partitions: member.partitions,
                    last_heard_ms: member.last_heard_ms,
                })
                .collect(),
            keys: status.keys,
            uptime: Duration::from_secs(status.uptime_seconds),
            version: status.version,
            hints: status
                .hints
                .into_iter()
                .map(|queue| (queue.target, queue.keys))
                .collect(),
            hints_full: status.hints_full,
            anti_entropy: status
                .anti_entropy
                .into_iter()
                .map(|run| (run.partition, run.finished_ms))
                .collect(),
            transfer: status.transfer.map(|transfer| Transfer {
                epoch: transfer.epoch,
                partitions_total: transfer.partitions_total,
                partitions_done: transfer.partitions_done,
                bytes_received: transfer.bytes_received,
                bytes_left: transfer.bytes_left,
            }),
            metrics_url: None,
        }
    }
}
