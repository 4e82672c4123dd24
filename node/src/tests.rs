//! Unit tests of the engine's parts wired together over the in-memory peer
//! transport: coordinator, handoff, replica and the peer client's deadlines
//! and in-flight bound, with no sockets and no processes. Time is tokio's
//! paused clock, so waits are exact and instant.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use tempfile::TempDir;
use tokio::time::Instant;

use crate::config::{Config, PeerCalls};
use crate::coordinator::KvError;
use crate::membership::Liveness;
use crate::metrics::{PeerOp, PeerOutcome};
use crate::node::Node;
use crate::peers::memory::Fault;
use crate::peers::{Forward, Forwarded, MemoryTransport, PeerError};
use crate::replica::ReplicaError;
use crate::ring::{Member, Replication, Ring};
use crate::storage::{Durability, NewWrite};
use crate::version::{Clock, SiblingSet};

/// In-process nodes whose peer calls go through one [`MemoryTransport`].
struct Cluster {
    transport: Arc<MemoryTransport>,
    nodes: Vec<Arc<Node>>,
    _dirs: Vec<TempDir>,
}

impl Cluster {
    /// `size` nodes `node-0`.. with `replication` and 16 partitions.
    fn new(size: usize, replication: Replication) -> Self {
        Self::with(size, replication, |_| {})
    }

    fn with(size: usize, replication: Replication, tweak: impl Fn(&mut Config)) -> Self {
        let transport = Arc::new(MemoryTransport::new());
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                weight: 0,
                id: format!("node-{i}"),
                address: format!("node-{i}.memory:1"),
                zone: String::new(),
            })
            .collect();
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for member in &members {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = Config {
                id: member.id.clone(),
                data_dir: dir.path().to_owned(),
                cluster: "test".into(),
                partitions: 16,
                replication,
                members: members.clone(),
                ..Config::default()
            };
            tweak(&mut config);
            let node = Node::open(config, None, transport.clone(), Arc::default()).expect("open");
            transport.add(&member.id, Arc::clone(node.replica()));
            nodes.push(node);
            dirs.push(dir);
        }
        Self {
            transport,
            nodes,
            _dirs: dirs,
        }
    }

    fn node(&self, i: usize) -> &Arc<Node> {
        &self.nodes[i]
    }

    /// Index of the node named `id`.
    fn index(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| node.id() == id)
            .expect("a member")
    }

    /// A key whose preference list (member indexes in walk order) and
    /// fallbacks satisfy `wanted`.
    fn key_where(&self, wanted: impl Fn(&[u32], &[u32]) -> bool) -> Bytes {
        let ring = self.node(0).ring();
        let n = ring.replication().n as usize;
        (0..10_000)
            .map(|i| Bytes::from(format!("key-{i}")))
            .find(|key| {
                let partition = ring.partition_of(key);
                let walk = ring.walk(partition);
                wanted(&walk[..n.min(walk.len())], &walk[n.min(walk.len())..])
            })
            .expect("some key fits")
    }

    /// The local copy of `key` on node `i`.
    fn copy(&self, i: usize, key: &[u8]) -> SiblingSet {
        let node = self.node(i);
        let ring = node.ring();
        let key = engine_key(&ring, key);
        let partition = ring.engine_partition(&key).expect("a qualified key");
        node.storage().read(partition, &key).expect("read")
    }

    /// Waits (bounded) until `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The engine key of default-bucket `key` in `ring`.
fn engine_key(ring: &Ring, key: &[u8]) -> Vec<u8> {
    ring.engine_key("", key).expect("the default bucket")
}

fn replication(n: u32, r: u32, w: u32) -> Replication {
    Replication { n, r, w }
}

fn put(key: &Bytes, value: &'static str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.clone(),
        value: Bytes::from_static(value.as_bytes()),
        ..pb::PutRequest::default()
    }
}

fn get(key: &Bytes, r: u32) -> pb::GetRequest {
    pb::GetRequest {
        key: key.clone(),
        r,
        ..pb::GetRequest::default()
    }
}

fn values(set: &SiblingSet) -> Vec<Bytes> {
    set.live().map(|version| version.value.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_put_reaches_every_replica_and_a_get_reads_it_back() {
    let cluster = Cluster::new(3, replication(3, 2, 2));
    let key = Bytes::from_static(b"k");
    let coordinator = cluster.node(0).coordinator();
    let answer = coordinator.put(put(&key, "v1")).await.expect("put");
    assert!(answer.acks >= 2, "acks {}", answer.acks);
    cluster
        .until("every replica holds the value", |c| {
            (0..3).all(|i| values(&c.copy(i, &key)) == [Bytes::from_static(b"v1")])
        })
        .await;
    let read = coordinator.get(get(&key, 0)).await.expect("get");
    assert_eq!(read.replies, 2);
    assert_eq!(read.siblings.len(), 1);
    assert_eq!(read.siblings[0].value, Bytes::from_static(b"v1"));
}

#[tokio::test(start_paused = true)]
async fn a_put_fails_with_unavailable_when_too_few_replicas_answer() {
    let cluster = Cluster::new(3, replication(3, 2, 2));
    cluster.transport.inject("node-1", Fault::Fail);
    cluster.transport.inject("node-2", Fault::Fail);
    let key = Bytes::from_static(b"k");
    let refused = cluster
        .node(0)
        .coordinator()
        .put(put(&key, "v"))
        .await
        .expect_err("two of three replicas are down");
    match &refused {
        KvError::Unavailable {
            needed, answered, ..
        } => assert_eq!((*needed, *answered), (2, 1)),
        other => panic!("unexpected error {other}"),
    }
    assert!(refused.to_string().contains("needed 2 of 3"), "{refused}");
}

#[tokio::test(start_paused = true)]
async fn a_read_hedges_past_a_hanging_replica() {
    let cluster = Cluster::new(3, replication(3, 2, 2));
    let key = Bytes::from_static(b"k");
    let coordinator = cluster.node(0).coordinator();
    coordinator.put(put(&key, "v")).await.expect("put");
    cluster
        .until("every replica holds the value", |c| {
            (0..3).all(|i| !c.copy(i, &key).is_empty())
        })
        .await;
    cluster.transport.inject("node-1", Fault::Hang);
    for _ in 0..20 {
        let started = Instant::now();
        let read = coordinator.get(get(&key, 0)).await.expect("get");
        assert_eq!(read.replies, 2);
        // The hedge delay is 20 ms; a hanging replica costs at most that.
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(
        cluster.transport.calls("node-1", "replica_read") > 0,
        "the hanging replica was asked at least once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_get_repairs_a_stale_replica() {
    let cluster = Cluster::new(3, replication(3, 2, 2));
    let key = Bytes::from_static(b"k");
    cluster.transport.inject("node-2", Fault::Fail);
    let coordinator = cluster.node(0).coordinator();
    coordinator.put(put(&key, "v")).await.expect("put");
    cluster
        .until("node-1 holds the value", |c| !c.copy(1, &key).is_empty())
        .await;
    assert!(cluster.copy(2, &key).is_empty(), "node-2 missed the write");
    cluster.transport.heal("node-2");
    let writes_before = cluster.transport.calls("node-2", "replica_write");
    let read = coordinator.get(get(&key, 3)).await.expect("get");
    assert_eq!(read.replies, 3);
    cluster
        .until("read repair brought node-2 up to date", |c| {
            values(&c.copy(2, &key)) == [Bytes::from_static(b"v")]
        })
        .await;
    assert_eq!(
        cluster.transport.calls("node-2", "replica_write"),
        writes_before + 1,
        "one repair write"
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_outside_the_preference_list_forwards() {
    let cluster = Cluster::new(3, replication(1, 1, 1));
    let key = cluster.key_where(|preference, _| preference != [0]);
    let owner = cluster
        .node(0)
        .ring()
        .walk(cluster.node(0).ring().partition_of(&key))[0];
    let owner_id = format!("node-{owner}");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    cluster.transport.on_forward(
        &owner_id,
        Arc::new(move |request| match request {
            Forward::Put(put) => {
                log.lock().expect("log").push(put.forwarded);
                Ok(Forwarded::Put(pb::PutResponse {
                    context: Bytes::from_static(b"ctx"),
                    acks: 1,
                }))
            }
            _ => Err(tonic::Status::unimplemented("only puts here")),
        }),
    );
    let answer = cluster
        .node(0)
        .coordinator()
        .put(put(&key, "v"))
        .await
        .expect("forwarded put");
    assert_eq!(answer.context, Bytes::from_static(b"ctx"));
    assert_eq!(*seen.lock().expect("log"), [true], "marked as forwarded");
    assert!(
        cluster.copy(0, &key).is_empty(),
        "the forwarder stores nothing"
    );
    // A refusal from the owner reaches the client unchanged.
    let refused = cluster
        .node(0)
        .coordinator()
        .get(get(&key, 0))
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, KvError::Forwarded(status) if status.code() == tonic::Code::Unimplemented)
    );
}

#[tokio::test(start_paused = true)]
async fn a_write_to_a_down_replica_becomes_a_hint_on_a_fallback_and_is_delivered() {
    let cluster = Cluster::new(4, replication(3, 2, 2));
    let key = cluster
        .key_where(|preference, fallbacks| preference.first() == Some(&0) && fallbacks.len() == 1);
    let ring = cluster.node(0).ring();
    let partition = ring.partition_of(&key);
    let down = ring.member(ring.walk(partition)[1]).id.clone();
    let fallback = cluster.index(&ring.member(ring.walk(partition)[3]).id);
    cluster.transport.inject(&down, Fault::Fail);
    cluster
        .node(0)
        .coordinator()
        .put(put(&key, "v"))
        .await
        .expect("put");
    cluster
        .until("the fallback keeps a hint for the down replica", |c| {
            c.node(fallback).storage().hints().counts() == [(down.clone(), 1)]
        })
        .await;
    assert_eq!(cluster.transport.calls(&down, "replica_write"), 1);
    let fallback_id = cluster.node(fallback).id().to_owned();
    assert_eq!(cluster.transport.calls(&fallback_id, "hint_write"), 1);
    // Still down: delivery waits.
    assert_eq!(cluster.node(fallback).handoff().deliver().await, 0);
    cluster.transport.heal(&down);
    assert_eq!(cluster.node(fallback).handoff().deliver().await, 1);
    let target = cluster.index(&down);
    assert_eq!(
        values(&cluster.copy(target, &key)),
        [Bytes::from_static(b"v")]
    );
    assert!(cluster.node(fallback).storage().hints().counts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hanging_replica_misses_its_latency_deadline_and_the_write_completes_via_a_fallback() {
    let cluster = Cluster::new(4, replication(3, 2, 3));
    let key = cluster
        .key_where(|preference, fallbacks| preference.first() == Some(&0) && fallbacks.len() == 1);
    let ring = cluster.node(0).ring();
    let partition = ring.partition_of(&key);
    let slow = ring.member(ring.walk(partition)[1]).clone();
    let coordinator = cluster.node(0).coordinator();
    // Fast answers teach the peer client the replica's latency.
    for _ in 0..5 {
        coordinator
            .put(put(&key, "warm"))
            .await
            .expect("warm-up put");
    }
    let peers = cluster.node(0).peers();
    let deadline = peers.replica_deadline(&slow);
    assert_eq!(
        deadline,
        Duration::from_millis(PeerCalls::default().deadline_floor_ms),
        "a fast peer gets the floor"
    );
    cluster.transport.inject(&slow.id, Fault::Hang);
    let started = Instant::now();
    let answer = coordinator.put(put(&key, "v")).await.expect("put");
    let elapsed = started.elapsed();
    assert_eq!(answer.acks, 3, "the fallback's hint counts towards W");
    assert!(
        elapsed >= deadline && elapsed < deadline * 2,
        "answered after {elapsed:?}, the deadline being {deadline:?}; the request's is 3 s"
    );
    // The fallback keeps the write for the slow replica, and the late call
    // runs on to its own deadline, peer_timeout_ms.
    let fallback = cluster.index(&ring.member(ring.walk(partition)[3]).id);
    assert_eq!(
        cluster.node(fallback).storage().hints().counts(),
        [(slow.id.clone(), 1)]
    );
    cluster
        .until("the late call timed out", |c| {
            c.node(0)
                .metrics()
                .peer_call_count(PeerOp::ReplicaWrite, PeerOutcome::Timeout)
                == 1
        })
        .await;
    let ceiling = Duration::from_millis(Config::default().peer_timeout_ms);
    assert!(started.elapsed() >= ceiling && started.elapsed() < ceiling * 2);
}

#[tokio::test(start_paused = true)]
async fn calls_beyond_the_in_flight_bound_fail_overloaded_at_once() {
    let cluster = Cluster::with(2, replication(2, 1, 1), |config| {
        config.peer_calls.max_in_flight = 2;
    });
    let peers = Arc::clone(cluster.node(0).peers());
    let stalled = cluster.node(0).ring().member(1).clone();
    cluster.transport.inject(&stalled.id, Fault::Hang);
    let deadline = Instant::now() + Duration::from_secs(2);
    let hanging: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(peers.replica_read(
                &stalled,
                Bytes::from(engine_key(&cluster.node(0).ring(), b"k")),
                deadline,
            ))
        })
        .collect();
    cluster
        .until("both calls are in flight", |c| {
            c.transport.calls(&stalled.id, "replica_read") == 2
        })
        .await;
    let started = Instant::now();
    let third = peers
        .replica_read(
            &stalled,
            Bytes::from(engine_key(&cluster.node(0).ring(), b"k")),
            deadline,
        )
        .await;
    assert!(
        matches!(third, Err(PeerError::Overloaded { limit: 2, .. })),
        "{third:?}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "failed at once");
    assert_eq!(
        cluster.transport.calls(&stalled.id, "replica_read"),
        2,
        "not sent"
    );
    let metrics = cluster.node(0).metrics();
    assert_eq!(
        metrics.peer_call_count(PeerOp::ReplicaRead, PeerOutcome::Overloaded),
        1
    );
    for call in hanging {
        let outcome = call.await.expect("join");
        assert!(
            matches!(outcome, Err(PeerError::Timeout { .. })),
            "{outcome:?}"
        );
    }
    // The slots are free again.
    cluster.transport.heal(&stalled.id);
    peers
        .replica_read(
            &stalled,
            Bytes::from(engine_key(&cluster.node(0).ring(), b"k")),
            Instant::now() + Duration::from_secs(1),
        )
        .await
        .expect("answered");
}

#[tokio::test(start_paused = true)]
async fn the_replica_reads_merges_writes_and_gates_recovering_partitions() {
    let cluster = Cluster::new(1, replication(1, 1, 1));
    let replica = cluster.node(0).replica();
    let key = Bytes::from(engine_key(&cluster.node(0).ring(), b"k"));
    let partition = replica.partition_of(&key).expect("a qualified key");
    assert!(replica.read(partition, &key).expect("read").is_empty());
    let write = |value: &'static str| NewWrite {
        value: Bytes::from_static(value.as_bytes()),
        tombstone: false,
        context: Clock::new(),
        timestamp_ms: 1,
    };
    let (first, dot) = replica
        .write_new_version(partition, key.clone(), write("a"), 8, Durability::Buffer)
        .await
        .expect("write");
    assert_eq!(values(&first), [Bytes::from_static(b"a")]);
    assert_eq!(dot.counter, 1);
    // A concurrent version from elsewhere becomes a sibling; merging it
    // again changes nothing.
    let other = Cluster::new(1, replication(1, 1, 1));
    let (theirs, _) = other
        .node(0)
        .replica()
        .write_new_version(partition, key.clone(), write("b"), 8, Durability::Buffer)
        .await
        .expect("write elsewhere");
    let merged = replica
        .merge(partition, key.clone(), theirs.clone(), Durability::Sync)
        .await
        .expect("merge");
    assert_eq!(merged.len(), 2);
    let again = replica
        .merge(partition, key.clone(), theirs, Durability::Buffer)
        .await
        .expect("merge again");
    assert_eq!(again, merged);
    assert_eq!(replica.read(partition, &key).expect("read"), merged);
    // Too many siblings: refused, nothing written.
    let refused = replica
        .write_new_version(partition, key.clone(), write("c"), 2, Durability::Buffer)
        .await;
    assert!(matches!(refused, Err(ReplicaError::Storage(_))));
    assert_eq!(replica.read(partition, &key).expect("read").len(), 2);
    // While the partition streams back, reads are refused, not empty.
    replica.recovering().insert(partition);
    assert!(matches!(
        replica.read(partition, &key),
        Err(ReplicaError::Recovering { partition: p }) if p == partition
    ));
    replica.recovering().remove(&partition);
    assert_eq!(replica.read(partition, &key).expect("read").len(), 2);
    // Hints are kept only for members of the ring.
    let unknown = replica
        .store_hint(
            "stranger".into(),
            partition,
            key,
            merged,
            Durability::Buffer,
        )
        .await;
    assert!(matches!(
        unknown,
        Err(ReplicaError::UnknownHintTarget { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_success_right_after_failed_calls_ends_their_suspicion_at_once() {
    let cluster = Cluster::new(2, replication(2, 1, 1));
    let node = cluster.node(0);
    let peers = Arc::clone(node.peers());
    let other = node.ring().member(1).clone();
    let read = || {
        peers.replica_read(
            &other,
            Bytes::from(engine_key(&node.ring(), b"k")),
            Instant::now() + Duration::from_secs(1),
        )
    };
    read().await.expect("answered");
    cluster.transport.inject(&other.id, Fault::Fail);
    for _ in 0..2 {
        read().await.expect_err("refused");
    }
    assert_eq!(node.liveness(&other.id), Liveness::Down, "suspected");
    // No time passes: the success falls within the report throttle of the
    // first one and still ends the suspicion.
    cluster.transport.heal(&other.id);
    read().await.expect("answered");
    assert_eq!(node.liveness(&other.id), Liveness::Up);
}
