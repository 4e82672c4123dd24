//! What one node reports about itself and the cluster (Admin.Status).

use std::time::Duration;

use dynamo_proto::v1 as pb;

use crate::Member;

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
                })
                .collect(),
            keys: status.keys,
            uptime: Duration::from_secs(status.uptime_seconds),
            version: status.version,
        }
    }
}
