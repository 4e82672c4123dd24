//! A gossip message from a peer, taken in by `Gossip::receive` on a node
//! with a fresh three-member ring at epoch 1 for every input: limits on
//! heartbeats and names, then `Topology::adopt` for its ring. It is taken
//! or refused with a `GossipError`; the node's own message is always taken.
//! Adopted rings are persisted to one scratch database (on /dev/shm when
//! there is one), which no input reads back.

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use dynamo_fuzz::{sample_ring, write_seeds};
use dynamo_node::Config;
use dynamo_node::config::Limits;
use dynamo_node::gossip::Gossip;
use dynamo_node::membership::{DetectorSettings, Membership};
use dynamo_node::metrics::Metrics;
use dynamo_node::peers::{MemoryTransport, PeerSettings, Peers};
use dynamo_node::storage::Storage;
use dynamo_node::topology::Topology;
use dynamo_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

static STORAGE: LazyLock<Arc<Storage>> = LazyLock::new(|| {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join("dynamokv-fuzz-gossip");
    let _ = std::fs::remove_dir_all(&dir);
    Arc::new(Storage::open(&dir, 16).expect("open the scratch database"))
});

static METRICS: LazyLock<Arc<Metrics>> = LazyLock::new(|| Arc::new(Metrics::new()));

/// Node 0's gossip over a fresh topology at epoch 1.
fn gossip() -> (Gossip, Arc<Topology>) {
    let membership = Membership::new("node-0", "1", DetectorSettings::default(), Instant::now());
    let limits = Limits {
        max_epoch_step: 1000,
        ..Limits::default()
    };
    let topology = Arc::new(Topology::new(
        "node-0",
        sample_ring(1),
        membership,
        Arc::clone(&STORAGE),
        limits,
    ));
    let peers = Arc::new(Peers::new(
        Arc::new(MemoryTransport::new()),
        PeerSettings::of(&Config::default()),
        Arc::clone(&topology),
        Arc::clone(&METRICS),
    ));
    let gossip = Gossip::new(
        Arc::clone(&topology),
        peers,
        Arc::clone(&METRICS),
        Duration::from_secs(1),
    );
    (gossip, topology)
}

fuzz_target!(
    init: {
        let (gossip, _) = gossip();
        let own = gossip.message();
        let mut newer = own.clone();
        if let Some(ring) = newer.ring.as_mut() {
            ring.epoch = 2;
        }
        newer.from = "node-1".into();
        newer.heartbeats.push(pb::Heartbeat {
            id: "node-1".into(),
            counter: 9,
            incarnation: "2".into(),
        });
        write_seeds([own.encode_to_vec(), newer.encode_to_vec()]);
    },
    |data: &[u8]| {
        let Ok(message) = pb::GossipMessage::decode(data) else {
            return;
        };
        let (gossip, topology) = gossip();
        match gossip.receive(message) {
            Ok(()) => {
                let ring = topology.ring();
                assert!(ring.epoch() >= 1);
                assert_eq!(ring.cluster(), dynamo_fuzz::CLUSTER);
                assert_eq!(ring.partitions(), 16);
            }
            Err(error) => {
                assert!(!error.to_string().is_empty());
                assert_eq!(topology.ring().epoch(), 1, "a refused message changes nothing");
            }
        }
        gossip
            .receive(gossip.message())
            .expect("a node takes its own gossip");
    }
);
