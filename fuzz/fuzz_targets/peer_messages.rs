//! `Peer` messages as a replica converts them before storing anything: the
//! key (`Limits::check_key`), the durability (`wire::check_durability`,
//! then `wire::durability_from_pb`) and the versions
//! (`wire::set_from_peer`), for unary replica writes and hints and for
//! every item of an `Exchange` frame; and the sibling sets a coordinator
//! reads back (`wire::set_from_pb`). The first input byte picks the
//! message (bits 1..) and tight or default limits (bit 0).

#![no_main]

use bytes::Bytes;
use dynamo_fuzz::{check_peer_set, limits_for, sample_sets, with_mode, write_seeds};
use dynamo_node::config::Limits;
use dynamo_node::wire;
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::frame_item::Call;
use dynamo_proto::v1::item_reply::Outcome;
use dynamo_ring::Durability;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// The replica side of a write or hint: key, durability, versions.
fn replica_write(limits: &Limits, key: &Bytes, siblings: Option<pb::SiblingSet>, durability: i32) {
    if limits.check_key(key).is_err() {
        return;
    }
    let Ok(asked) = wire::check_durability(durability) else {
        return;
    };
    let _: Durability = wire::durability_from_pb(asked, Durability::Buffer);
    check_peer_set(siblings, limits);
}

/// A sibling set a replica answered, as the coordinator takes it.
fn replica_answer(siblings: Option<pb::SiblingSet>) {
    if let Ok(set) = wire::set_from_pb(siblings) {
        let again = wire::set_from_pb(Some(wire::set_to_pb(&set)));
        assert_eq!(again.as_ref(), Ok(&set), "wire round trip");
    }
}

fuzz_target!(
    init: {
        let sets = sample_sets();
        let write = |set| pb::ReplicaWriteRequest {
            key: Bytes::from_static(b"key"),
            siblings: Some(wire::set_to_pb(set)),
            durability: pb::Durability::Sync.into(),
        };
        let items = sets
            .iter()
            .enumerate()
            .map(|(i, set)| pb::FrameItem {
                id: i as u64,
                timeout_ms: 100,
                call: Some(match i % 3 {
                    0 => Call::Write(write(set)),
                    1 => Call::Read(pb::ReplicaReadRequest { key: Bytes::from_static(b"k") }),
                    _ => Call::Hint(pb::HintWriteRequest {
                        target: "node-2".into(),
                        key: Bytes::from_static(b"k"),
                        siblings: Some(wire::set_to_pb(set)),
                        durability: 0,
                    }),
                }),
            })
            .collect();
        let frame = pb::Frame { items };
        let read = pb::ReplicaReadResponse { siblings: Some(wire::set_to_pb(&sets[3])) };
        write_seeds([
            with_mode(0, &frame.encode_to_vec()),
            with_mode(3, &write(&sets[3]).encode_to_vec()),
            with_mode(4, &read.encode_to_vec()),
        ]);
    },
    |data: &[u8]| {
        let Some((&mode, body)) = data.split_first() else {
            return;
        };
        let limits = limits_for(mode);
        match (mode >> 1) % 5 {
            0 => {
                let Ok(frame) = pb::Frame::decode(body) else {
                    return;
                };
                for item in frame.items {
                    match item.call {
                        Some(Call::Write(request)) => {
                            replica_write(&limits, &request.key, request.siblings, request.durability);
                        }
                        Some(Call::Hint(request)) => {
                            replica_write(&limits, &request.key, request.siblings, request.durability);
                        }
                        Some(Call::Read(request)) => {
                            let _ = limits.check_key(&request.key);
                        }
                        None => {}
                    }
                }
            }
            1 => {
                if let Ok(request) = pb::ReplicaWriteRequest::decode(body) {
                    replica_write(&limits, &request.key, request.siblings, request.durability);
                }
            }
            2 => {
                if let Ok(response) = pb::ReplicaReadResponse::decode(body) {
                    replica_answer(response.siblings);
                }
            }
            3 => {
                if let Ok(request) = pb::HintWriteRequest::decode(body) {
                    let _ = limits.check_name("member id", &request.target);
                    replica_write(&limits, &request.key, request.siblings, request.durability);
                }
            }
            _ => {
                let Ok(reply) = pb::FrameReply::decode(body) else {
                    return;
                };
                for item in reply.items {
                    if let Some(Outcome::Read(response)) = item.outcome {
                        replica_answer(response.siblings);
                    }
                }
            }
        }
    }
);
