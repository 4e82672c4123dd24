//! The opaque causal context: a node parses what a client hands back
//! (`context::decode`), and the client library parses the base64 form a
//! user pastes (`Context::from_base64`). Both refuse bad input with an
//! error, and a context that parses round-trips.

#![no_main]

use dynamo_client::Context;
use dynamo_fuzz::{check_context, cluster_id, sample_sets, write_seeds};
use dynamo_node::context;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        let cluster = cluster_id();
        let contexts: Vec<Vec<u8>> = sample_sets()
            .iter()
            .map(|set| context::encode(cluster, &set.context()).to_vec())
            .collect();
        let texts = contexts
            .iter()
            .map(|bytes| Context::from_bytes(bytes.clone().into()).to_base64().into_bytes());
        write_seeds(contexts.clone().into_iter().chain(texts));
    },
    |data: &[u8]| {
        let cluster = cluster_id();
        check_context(cluster, data);
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(parsed) = Context::from_base64(text) {
            let again = Context::from_base64(&parsed.to_base64()).expect("own base64 parses");
            assert_eq!(again, parsed, "base64 round trip");
            check_context(cluster, parsed.as_bytes());
        }
    }
);
