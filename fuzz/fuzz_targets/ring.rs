//! The ring a node persists and reads back at start-up (`pb::Ring` decoded,
//! then `Ring::from_pb`): a bad ring is a `RingError`, a good one
//! round-trips through its message, and every lookup on it stays in range.

#![no_main]

use dynamo_fuzz::{sample_ring, write_seeds};
use dynamo_node::ring::Ring;
use dynamo_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(
    init: {
        let ring = sample_ring(3).to_pb();
        let changing = pb::Ring {
            next_owners: ring.owners.iter().map(|owner| (owner + 1) % 3).collect(),
            ..ring.clone()
        };
        let with_buckets = pb::Ring {
            buckets: vec![pb::Bucket {
                name: "carts".to_owned(),
                n: 1,
                r: 1,
                w: 1,
                durability: pb::Durability::Sync.into(),
            }],
            ..ring.clone()
        };
        write_seeds([
            ring.encode_to_vec(),
            changing.encode_to_vec(),
            with_buckets.encode_to_vec(),
        ]);
    },
    |data: &[u8]| {
        let Ok(message) = pb::Ring::decode(data) else {
            return;
        };
        let ring = match Ring::from_pb(message) {
            Ok(ring) => ring,
            Err(error) => {
                assert!(!error.to_string().is_empty());
                return;
            }
        };
        assert_eq!(Ring::from_pb(ring.to_pb()).as_ref(), Ok(&ring), "ring round trip");
        let members = ring.members().len() as u32;
        for partition in 0..ring.partitions() {
            for n in ring.factors() {
                for &member in ring.preference(partition, n) {
                    assert!(member < members);
                    let _ = ring.member(member);
                }
                for member in ring.write_set(partition, n) {
                    assert!(member < members);
                }
                let _ = ring.next_preference(partition, n);
            }
        }
        for bucket in ring.buckets() {
            let key = ring.engine_key(&bucket.name, b"key").expect("declared");
            assert_eq!(
                ring.engine_partition(&key),
                Ok(dynamo_ring::bucket_partition(&bucket.name, b"key", ring.partitions()))
            );
        }
        for member in 0..members {
            let _ = ring.gaining(member);
            let _ = ring.owned_by(member);
        }
        assert!(ring.partition_of(b"key") < ring.partitions());
        let _ = ring.preferences_pb();
    }
);
