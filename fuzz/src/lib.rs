//! Checks shared by the fuzz targets in `fuzz_targets/`, and the seed inputs
//! they start from. Every check takes untrusted bytes or messages, runs the
//! decoder a node runs on them, and panics only when a decoder panics or a
//! round trip that must be stable is not.
//!
//! Seeds are written at start-up, from the real encoders, into the
//! directory named by `DYNAMO_FUZZ_SEED_DIR` (`scripts/fuzz` sets it to the
//! target's corpus), so no binary corpus is committed.

use std::path::PathBuf;
use std::sync::LazyLock;

use bytes::Bytes;
use dynamo_node::config::Limits;
use dynamo_node::ring::{Member, Replication, Ring};
use dynamo_node::version::{Clock, Dot, SiblingSet, Version};
use dynamo_node::{codec, context, wire};
use dynamo_proto::v1 as pb;

/// The cluster the fuzzed rings and contexts belong to.
pub const CLUSTER: &str = "fuzz";

/// The context id of [`CLUSTER`] ([`Ring::cluster_id`]).
pub fn cluster_id() -> u64 {
    static ID: LazyLock<u64> = LazyLock::new(|| sample_ring(1).cluster_id());
    *ID
}

/// Writes `seeds` as files `seed-N` into `$DYNAMO_FUZZ_SEED_DIR`, when that
/// is set; files already there are left alone.
///
/// # Panics
/// When the directory cannot be written: a run without its seeds would
/// measure something else.
pub fn write_seeds(seeds: impl IntoIterator<Item = Vec<u8>>) {
    let Some(dir) = std::env::var_os("DYNAMO_FUZZ_SEED_DIR").map(PathBuf::from) else {
        return;
    };
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for (index, seed) in seeds.into_iter().enumerate() {
        let path = dir.join(format!("seed-{index}"));
        if !path.exists() {
            std::fs::write(&path, seed).expect("write a seed");
        }
    }
}

/// A seed for a target whose first input byte is a mode: `mode`, then
/// `body`.
pub fn with_mode(mode: u8, body: &[u8]) -> Vec<u8> {
    [&[mode][..], body].concat()
}

/// The limits a target checks against: small enough for fuzz inputs to
/// reach them when `mode` is odd, the node's defaults when it is even.
pub fn limits_for(mode: u8) -> Limits {
    if mode.is_multiple_of(2) {
        return Limits::default();
    }
    Limits {
        max_key_bytes: 16,
        max_value_bytes: 32,
        max_siblings: 2,
        max_replica_siblings: 3,
        ..Limits::default()
    }
}

/// A few well-formed sibling sets: empty, one value, a tombstone, and
/// concurrent siblings with causal pasts.
pub fn sample_sets() -> Vec<SiblingSet> {
    let version = |node: u64, counter: u64, past: &[(u64, u64)], value: &'static [u8]| Version {
        dot: Dot { node, counter },
        past: Clock::from_entries(past.iter().copied()),
        value: Bytes::from_static(value),
        tombstone: value.is_empty(),
        timestamp_ms: 1_700_000_000_000 + counter,
    };
    vec![
        SiblingSet::new(),
        SiblingSet::from_versions(vec![version(7, 1, &[], b"value")]),
        SiblingSet::from_versions(vec![version(7, 3, &[(7, 2)], b"")]),
        SiblingSet::from_versions(vec![
            version(7, 4, &[(7, 2), (9, 1)], b"left"),
            version(9, 2, &[(7, 2), (9, 1)], b"right"),
            version(11, 300, &[(7, 1 << 40)], &[0xff; 40]),
        ]),
    ]
}

/// The three-member ring of [`CLUSTER`] with 16 partitions at `epoch`.
pub fn sample_ring(epoch: u64) -> Ring {
    let members = (0..3)
        .map(|i| Member {
            id: format!("node-{i}"),
            address: format!("127.0.0.1:{}", 7400 + i),
            zone: format!("zone-{}", i % 2),
            weight: 1 + i % 2,
        })
        .collect();
    let ring = Ring::initial(CLUSTER, members, 16, Replication::default()).expect("valid ring");
    let mut message = ring.to_pb();
    message.epoch = epoch;
    Ring::from_pb(message).expect("valid ring")
}

/// Decodes a stored sibling set as storage does; a set that decodes
/// re-encodes to a set that decodes to the same set, and encodes the same.
/// Returns the set when it decodes.
pub fn check_stored_set(bytes: &[u8]) -> Option<SiblingSet> {
    let set = codec::decode(bytes).ok()?;
    let encoded = codec::encode(&set);
    assert_eq!(
        codec::decode(&encoded).as_ref(),
        Ok(&set),
        "stored set round trip"
    );
    assert_eq!(
        codec::encode(&set),
        encoded,
        "stored set encoding is stable"
    );
    Some(set)
}

/// Converts a sibling set a peer sent for storing, as replica writes, hints
/// and streamed partitions do. An accepted set survives the wire and the
/// disk encodings unchanged. Returns the set when it is accepted.
pub fn check_peer_set(message: Option<pb::SiblingSet>, limits: &Limits) -> Option<SiblingSet> {
    let set = match wire::set_from_peer(message, limits) {
        Ok(set) => set,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return None;
        }
    };
    assert_eq!(
        wire::set_from_pb(Some(wire::set_to_pb(&set))).as_ref(),
        Ok(&set),
        "wire round trip"
    );
    assert_eq!(
        codec::decode(&codec::encode(&set)).as_ref(),
        Ok(&set),
        "an accepted set is stored unchanged"
    );
    Some(set)
}

/// Parses a client's context for `cluster` as a coordinator does; a context
/// that parses re-encodes to one that parses to the same clock.
pub fn check_context(cluster: u64, bytes: &[u8]) -> Option<Clock> {
    match context::decode(cluster, bytes) {
        Ok(clock) => {
            let again = context::encode(cluster, &clock);
            assert_eq!(
                context::decode(cluster, &again).as_ref(),
                Ok(&clock),
                "context round trip"
            );
            Some(clock)
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            None
        }
    }
}
