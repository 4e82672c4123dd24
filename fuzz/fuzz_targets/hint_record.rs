//! A hint store record as read back from disk: the key (`hints::split_key`:
//! target, partition, user key) and the value (a stored sibling set). The
//! input is `key length u16 BE | key | value`.

#![no_main]

use dynamo_fuzz::{check_stored_set, sample_sets, write_seeds};
use dynamo_node::codec;
use dynamo_node::storage::hints::{make_key, split_key};
use libfuzzer_sys::fuzz_target;

/// A record as the fuzz input lays it out.
fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = (key.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

fuzz_target!(
    init: write_seeds(sample_sets().iter().enumerate().map(|(i, set)| {
        record(&make_key("node-1", i as u32 * 5, b"user-key"), &codec::encode(set))
    })),
    |data: &[u8]| {
        let Some(head) = data.get(..2) else {
            return;
        };
        let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
        let rest = &data[2..];
        let (key, value) = rest.split_at(len.min(rest.len()));
        if let Some((target, partition, user_key)) = split_key(key) {
            assert_eq!(make_key(target, partition, user_key), key, "hint key round trip");
        }
        check_stored_set(value);
    }
);
