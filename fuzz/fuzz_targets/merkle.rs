//! Merkle messages between replicas. The first input byte picks one:
//!
//! - 0: a `MerkleLevelRequest` a peer sends; `Tree::level` answers any
//!   level and parents without panicking (the gRPC handler refuses
//!   out-of-range ones before it asks).
//! - 1: two `MerkleLevelResponse`s a peer answers (inner level, then the
//!   leaves under the differing inner nodes), compared the way
//!   anti-entropy does (`merkle::differing`, `merkle::differing_segments`),
//!   whatever their lengths. The second byte is the first message's length.
//! - 2: a `SegmentKeysRequest` or `SegmentKeysResponse`, decoded only.

#![no_main]

use std::sync::LazyLock;

use dynamo_fuzz::{with_mode, write_seeds};
use dynamo_node::merkle::{self, FANOUT, INNER, KeyHash, LEAVES, ROOT, SEGMENTS, Tree};
use dynamo_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// A tree holding a few hundred keys.
static TREE: LazyLock<Tree> = LazyLock::new(|| {
    let mut tree = Tree::default();
    for key in 0u32..300 {
        tree.update(KeyHash::of(&key.to_le_bytes()), None, Some(u64::from(key)));
    }
    tree
});

fuzz_target!(
    init: {
        let request = |level, parents: Vec<u32>| pb::MerkleLevelRequest {
            partition: 3,
            level,
            parents,
            n: 3,
        };
        let inner = pb::MerkleLevelResponse { hashes: vec![1; SEGMENTS / FANOUT] }.encode_to_vec();
        let leaves = pb::MerkleLevelResponse { hashes: vec![2; FANOUT * 2] }.encode_to_vec();
        let mut answers = vec![1, inner.len() as u8];
        answers.extend_from_slice(&inner);
        answers.extend_from_slice(&leaves);
        write_seeds([
            with_mode(0, &request(ROOT, vec![]).encode_to_vec()),
            with_mode(0, &request(LEAVES, vec![0, 5, 31]).encode_to_vec()),
            answers,
            with_mode(2, &pb::SegmentKeysRequest { partition: 1, segments: vec![4, 1000], n: 0 }.encode_to_vec()),
        ]);
    },
    |data: &[u8]| {
        let Some((&mode, body)) = data.split_first() else {
            return;
        };
        let tree = &*TREE;
        match mode % 3 {
            0 => {
                let Ok(request) = pb::MerkleLevelRequest::decode(body) else {
                    return;
                };
                let hashes = tree.level(request.level, &request.parents);
                let expected = match request.level {
                    ROOT => 1,
                    INNER => SEGMENTS / FANOUT,
                    LEAVES => {
                        let valid = request.parents.iter().filter(|&&p| (p as usize) < SEGMENTS / FANOUT);
                        valid.count() * FANOUT
                    }
                    _ => 0,
                };
                assert_eq!(hashes.len(), expected);
            }
            1 => {
                let Some((&split, rest)) = body.split_first() else {
                    return;
                };
                let (first, second) = rest.split_at(usize::from(split).min(rest.len()));
                let (Ok(remote_inner), Ok(remote_leaves)) = (
                    pb::MerkleLevelResponse::decode(first),
                    pb::MerkleLevelResponse::decode(second),
                ) else {
                    return;
                };
                let inner = merkle::differing(&tree.level(INNER, &[]), &remote_inner.hashes);
                assert!(inner.iter().all(|&node| (node as usize) < SEGMENTS / FANOUT));
                let local = tree.level(LEAVES, &inner);
                let segments = merkle::differing_segments(&inner, &local, &remote_leaves.hashes);
                assert!(segments.iter().all(|&segment| (segment as usize) < SEGMENTS));
                assert!(segments.len() <= local.len());
            }
            _ => {
                let _ = pb::SegmentKeysRequest::decode(body);
                let _ = pb::SegmentKeysResponse::decode(body);
            }
        }
    }
);
