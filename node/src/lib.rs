//! DynamoKV storage node: the Dynamo paper's mechanisms, one module each.
//!
//! - [`ring`]: Q equal partitions of the MD5 space and preference lists.
//! - [`version`]: dotted version vectors and sibling sets.
//! - [`context`]: the opaque causal context clients carry.
//! - [`storage`]: the fjall database.
//! - [`coordinator`]: N/R/W quorums, forwarding and read repair.
//! - [`membership`] and [`gossip`]: heartbeats and the failure detector.
//! - [`handoff`]: sloppy quorum and hinted handoff.
//! - [`antientropy`]: Merkle trees, replica sync, tombstone collection.
//! - [`transfer`]: partition streaming for explicit join and leave, and
//!   [`recovery`] after an empty disk.
//! - [`server`]: the gRPC services; [`http`]: health, readiness, the
//!   Prometheus [`metrics`] and the ring page.

pub mod antientropy;
pub mod codec;
pub mod config;
pub mod context;
pub mod coordinator;
pub mod encoding;
pub mod gossip;
pub mod handoff;
pub mod http;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod quorum;
pub mod recovery;
pub mod ring;
pub mod server;
pub mod stall;
pub mod storage;
pub mod transfer;
pub mod version;
pub mod wire;

pub use config::Config;
pub use node::Node;
pub use server::{RunningNode, start};
