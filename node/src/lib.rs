//! DynamoKV storage node: the Dynamo paper's mechanisms, one module each.
//!
//! - [`ring`]: Q equal partitions of the MD5 space and preference lists.
//! - [`version`]: dotted version vectors and sibling sets.
//! - [`context`]: the opaque causal context clients carry.
//! - [`storage`]: the fjall database.
//! - [`topology`]: the ring in use, membership changes, and the
//!   [`membership`] failure detector's view of each member.
//! - [`replica`]: this node's copy of a key: read, merge, write, hints, and
//!   the recovery gate.
//! - [`peers`]: the one typed client for every node-to-node call.
//! - [`coordinator`]: N/R/W quorums, forwarding and read repair.
//! - [`handoff`]: sloppy quorum and hinted handoff.
//! - [`gossip`]: heartbeats and ring exchange.
//! - [`merkle`]: the Merkle tree of a partition replica.
//! - [`antientropy`]: replica sync over Merkle trees, tombstone collection.
//! - [`transfer`]: partition streaming for explicit join and leave, and
//!   [`recovery`] after an empty disk.
//! - [`node`]: the composition root; [`startup`]: start-up, the background
//!   [`worker`]s and shutdown.
//! - [`server`]: the gRPC services, behind the [`shed`] load shedder; [`http`]: health, readiness, the
//!   Prometheus [`metrics`] and the ring page.
//!
//! # Layering
//! Each module imports only modules in the layers below its own (or beside
//! it in the same layer when listed as such); there are no import loops.
//!
//! 1. Pure cores, no I/O: `encoding`, `codec`, `version`, `context`,
//!    `ring`, `quorum`, `stall`, `membership`, `config`, `worker`, `merkle`.
//! 2. `storage` (uses `codec`, `version`, `merkle`); `metrics` (uses
//!    `storage` sizes; holds what an anti-entropy pass counts).
//! 3. `wire` (protobuf conversions); `topology` (ring
//!    holder over `storage` and `membership`).
//! 4. `replica` (over `storage`, `topology`, `stall`); `peers` (the client,
//!    over `topology`, `metrics`, `wire`), whose in-memory transport
//!    `peers::memory` sits above `replica`.
//! 5. Mechanisms over `replica` and `peers`: `handoff`, `transfer`,
//!    `gossip`, `antientropy` (and `antientropy::sync`); then `recovery`
//!    (uses `transfer`).
//! 6. `coordinator` (uses `handoff`).
//! 7. `node`: builds every part and wires them together.
//! 8. The edges: `shed` (uses `metrics`), `server` (gRPC, uses `shed`) and
//!    `http`.
//! 9. `startup`: opens the node, serves it, starts the workers.
//!
//! `tests/layering.rs` fails on an import loop between top-level modules.

pub mod antientropy;
pub mod codec;
pub mod config;
pub mod context;
pub mod coordinator;
pub mod durability;
pub mod encoding;
pub mod exchange;
pub mod gossip;
pub mod handoff;
pub mod http;
pub mod membership;
pub mod merkle;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod quorum;
pub mod recovery;
pub mod replica;
pub mod ring;
pub mod server;
pub mod shed;
pub mod stall;
pub mod startup;
pub mod storage;
pub mod tls;
pub mod tls_settings;
pub mod topology;
pub mod transfer;
pub mod version;
pub mod wire;
pub mod worker;

#[cfg(test)]
mod tests;

pub use config::Config;
pub use node::Node;
pub use startup::{RunningNode, start};
