//! A chunk of a streamed partition (`pb::PartitionChunk`), each entry
//! checked and converted by `transfer::entry_from_peer` before it is
//! stored; an accepted entry's set survives the wire and disk encodings.
//! The first input byte picks tight limits (odd) or the defaults (even).

#![no_main]

use dynamo_fuzz::{check_peer_set, limits_for, sample_sets, with_mode, write_seeds};
use dynamo_node::transfer::entry_from_peer;
use dynamo_node::wire;
use dynamo_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(
    init: {
        let entries = sample_sets()
            .iter()
            .enumerate()
            .map(|(i, set)| pb::PartitionEntry {
                key: format!("key-{i}").into_bytes().into(),
                siblings: Some(wire::set_to_pb(set)),
            })
            .collect();
        let chunk = pb::PartitionChunk { entries }.encode_to_vec();
        write_seeds([with_mode(0, &chunk), with_mode(1, &chunk)]);
    },
    |data: &[u8]| {
        let Some((&mode, body)) = data.split_first() else {
            return;
        };
        let limits = limits_for(mode);
        let Ok(chunk) = pb::PartitionChunk::decode(body) else {
            return;
        };
        for entry in chunk.entries {
            let siblings = entry.siblings.clone();
            match entry_from_peer(entry, &limits) {
                Ok((key, set)) => {
                    assert!(limits.check_key(&key).is_ok());
                    assert_eq!(check_peer_set(siblings, &limits), Some(set));
                }
                Err(error) => assert!(!error.to_string().is_empty()),
            }
        }
    }
);
