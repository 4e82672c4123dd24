//! `Kv` requests as a node checks them before coordinating: the key
//! (`Limits::check_key`) and its preference list, the value
//! (`Limits::check_value`), the durability (`wire::check_durability`) and
//! the client's context (`context::decode` for this cluster, which must
//! round-trip). The first input byte picks the request (bits 1..) and
//! tight or default limits (bit 0).

#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use dynamo_fuzz::{
    check_context, cluster_id, limits_for, sample_ring, sample_sets, with_mode, write_seeds,
};
use dynamo_node::config::Limits;
use dynamo_node::context;
use dynamo_node::ring::Ring;
use dynamo_node::wire;
use dynamo_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

static RING: LazyLock<Ring> = LazyLock::new(|| sample_ring(1));

/// The checks every request's key goes through, and where it routes.
fn route(limits: &Limits, key: &[u8]) -> bool {
    if limits.check_key(key).is_err() {
        return false;
    }
    let preference = RING.preference(RING.partition_of(key), RING.replication().n);
    assert!(!preference.is_empty());
    assert!(
        preference
            .iter()
            .all(|&member| (member as usize) < RING.members().len())
    );
    true
}

/// The checks of a write (a put, or a delete without a value).
fn write(limits: &Limits, key: &[u8], value: Option<&[u8]>, context: &[u8], durability: i32) {
    if value.is_some_and(|value| limits.check_value(value).is_err()) {
        return;
    }
    if !route(limits, key) || wire::check_durability(durability).is_err() {
        return;
    }
    check_context(cluster_id(), context);
}

fuzz_target!(
    init: {
        let context = context::encode(cluster_id(), &sample_sets()[3].context());
        let put = pb::PutRequest {
            key: Bytes::from_static(b"user:1"),
            value: Bytes::from_static(b"value"),
            context: context.clone(),
            w: 2,
            durability: pb::Durability::Sync.into(),
            forwarded: false,
            bucket: "carts".to_owned(),
        };
        let delete = pb::DeleteRequest {
            key: Bytes::from_static(b"user:1"),
            context,
            w: 0,
            durability: 0,
            forwarded: true,
            bucket: String::new(),
        };
        let get = pb::GetRequest {
            key: Bytes::from_static(b"user:1"),
            r: 1,
            forwarded: false,
            bucket: "Bad-Name".to_owned(),
        };
        write_seeds([
            with_mode(0, &get.encode_to_vec()),
            with_mode(2, &put.encode_to_vec()),
            with_mode(5, &delete.encode_to_vec()),
        ]);
    },
    |data: &[u8]| {
        let Some((&mode, body)) = data.split_first() else {
            return;
        };
        let limits = limits_for(mode);
        match (mode >> 1) % 3 {
            0 => {
                if let Ok(request) = pb::GetRequest::decode(body) {
                    route(&limits, &request.key);
                }
            }
            1 => {
                if let Ok(request) = pb::PutRequest::decode(body) {
                    let value = Some(&request.value[..]);
                    write(&limits, &request.key, value, &request.context, request.durability);
                }
            }
            _ => {
                if let Ok(request) = pb::DeleteRequest::decode(body) {
                    write(&limits, &request.key, None, &request.context, request.durability);
                }
            }
        }
    }
);
