//! Rust client of DynamoKV, a Dynamo-style replicated key-value store.
//!
//! [`Client`] learns the partition ring from one node and then sends each
//! request straight to a replica of its key, failing over along the key's
//! preference list ([`Routing::Direct`]); when only that node can be
//! reached, [`Routing::ViaEndpoint`] sends every request through it. Reads return every concurrent version ([`GetResult`])
//! with an opaque causal [`Context`]; pass that context to the next write so
//! it replaces what was read. [`GetResult::last_writer_wins`] and
//! [`GetResult::resolve_with`] turn siblings back into one value.
//!
//! # Examples
//!
//! ```no_run
//! # async fn example() -> Result<(), dynamo_client::Error> {
//! use bytes::Bytes;
//! use dynamo_client::Client;
//!
//! let client = Client::connect("127.0.0.1:7400").await?;
//! let read = client.get("greeting").await?;
//! let merged = read
//!     .resolve_with(|values| values.iter().max().cloned().unwrap_or_default())
//!     .unwrap_or_else(|| Bytes::from_static(b"hello"));
//! client.put("greeting", merged, Some(&read.context)).await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod context;
mod error;
mod health;
mod hedge;
mod options;
mod ring;
mod routing;
mod rpc;
mod siblings;
mod status;
mod tls;

pub use client::{Bucket, Client};
pub use context::Context;
pub use dynamo_ring::{Durability, MAX_PARTITIONS, partition_of};
pub use error::Error;
pub use options::{
    ClientOptions, HedgeOptions, ReadOptions, Routing, WriteOptions, durability_to_proto,
};
pub use ring::{BucketInfo, InvalidRing, Member, Ring};
pub use rpc::{Rpc, admin as admin_client};
pub use siblings::{GetResult, Sibling};
pub use status::{METRICS_URL_HEADER, MemberStatus, NodeStatus, Transfer};
pub use tls::TlsOptions;

/// Result of client operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
