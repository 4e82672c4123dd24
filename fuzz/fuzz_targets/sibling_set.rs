//! The on-disk sibling set (`codec::decode`), read for every key a node
//! serves: bad bytes are a `DecodeError`, and a set that decodes encodes
//! and decodes to itself.

#![no_main]

use dynamo_fuzz::{check_stored_set, sample_sets, write_seeds};
use dynamo_node::{codec, merkle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: write_seeds(sample_sets().iter().map(codec::encode)),
    |data: &[u8]| {
        if let Some(set) = check_stored_set(data) {
            // What anti-entropy and reads do next with a stored set.
            let _ = merkle::set_digest(&set);
            let _ = set.context();
            assert!(set.live().count() <= set.len());
        }
    }
);
