//! The ring concepts every part of DynamoKV shares, spelled once: which
//! partition a key falls in ([`partition_of`], [`MAX_PARTITIONS`]), how the
//! first ring deals partitions over zones ([`initial_owners`]), which members
//! replicate a partition ([`walk`]), and how hard a write is pushed to disk
//! ([`Durability`]).
//!
//! The crate is pure: no I/O, no protobuf, no storage engine. The node, the
//! client, the operator's planner and the CRD's validation all call it, so
//! they cannot disagree on where a key lives.
//!
//! # Examples
//!
//! ```
//! use dynamo_ring::{initial_owners, partition_of, walk};
//!
//! let zones = ["a", "a", "b"];
//! let owners = initial_owners(&zones, 8);
//! let partition = partition_of(b"cart", 8);
//! let replicas = walk(&owners, &zones, partition, 2);
//! assert_eq!(replicas.len(), 3); // two replicas, then one fallback
//! ```

mod bucket;
mod durability;
mod partition;
mod walk;
mod zones;

pub use bucket::{
    BucketNameError, MAX_BUCKET_N, MAX_BUCKET_NAME, QualifiedKey, QualifiedKeyError,
    bucket_partition, bucket_position, check_bucket_name,
};
pub use durability::{Durability, DurabilityError};
pub use partition::{
    MAX_PARTITIONS, PartitionsError, Position, check_partitions, partition_at, partition_of,
};
pub use walk::walk;
pub use zones::{deal, initial_owners};
