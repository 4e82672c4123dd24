//! Hostile input from the network on a 3-node in-process cluster (N=3) over
//! real gRPC: every request below breaks one of the node's limits
//! (docs/security.md) and must be refused with a clear status, counted in
//! `dynamo_limit_refusals_total`, while a normal workload on every node
//! keeps succeeding at the same time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use dynamo_node::ring::Replication;
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_proto::v1::kv_client::KvClient;
use dynamo_proto::v1::peer_client::PeerClient;
use dynamo_tests::{Cluster, get, put};
use futures::StreamExt;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

const N3: Replication = Replication { n: 3, r: 2, w: 2 };

/// The size of key that made lsm-tree panic before peer keys were checked.
const PANIC_KEY_BYTES: usize = 65_532;

/// Held shared by every test, and alone by the one that measures this
/// process's threads and memory, so no other cluster starts meanwhile.
static MEASURING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Background work stays out of the way of the counts.
fn quiet(config: &mut dynamo_node::Config) {
    config.background.anti_entropy_interval_ms = 0;
}

/// A channel to node `i` that sends and receives messages of any size, so
/// that only the node's own limits decide.
async fn channel(cluster: &Cluster, i: usize) -> anyhow::Result<Channel> {
    Ok(
        Channel::from_shared(format!("http://{}", cluster.address(i)))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .connect()
            .await?,
    )
}

async fn peer(cluster: &Cluster, i: usize) -> anyhow::Result<PeerClient<Channel>> {
    Ok(PeerClient::new(channel(cluster, i).await?).max_decoding_message_size(usize::MAX))
}

/// How many refusals node `i` counted for `limit`, read from its metrics.
fn refusals(cluster: &Cluster, i: usize, limit: &str) -> u64 {
    let text = cluster.node(i).node().render_metrics().expect("metrics");
    let series = format!("dynamo_limit_refusals_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Puts and gets of fresh keys through every node, running until stopped.
struct Workload {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    task: JoinHandle<Vec<String>>,
}

impl Workload {
    async fn start(cluster: &Cluster) -> anyhow::Result<Self> {
        Self::start_on(cluster, &[0, 1, 2]).await
    }

    /// The workload through `nodes` only (three entries, repeats allowed).
    async fn start_on(cluster: &Cluster, nodes: &[usize; 3]) -> anyhow::Result<Self> {
        let mut clients = Vec::new();
        for &i in nodes {
            clients.push(cluster.kv(i).await?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
            async move {
                let mut failures = Vec::new();
                let mut round = 0usize;
                while !stop.load(Ordering::Relaxed) && round < 100_000 {
                    let client: &mut KvClient<Channel> = &mut clients[round % 3];
                    let key = format!("normal-{round}");
                    match client.put(put(&key, "v", &[])).await {
                        Ok(_) => match client.get(get(&key)).await {
                            Ok(read) if !read.get_ref().siblings.is_empty() => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => failures.push(format!("{key} read back empty")),
                            Err(status) => failures.push(format!("get {key}: {status}")),
                        },
                        Err(status) => failures.push(format!("put {key}: {status}")),
                    }
                    round += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                failures
            }
        });
        Ok(Self { stop, ok, task })
    }

    /// Stops, after at least a few more requests succeeded, and fails on
    /// any request that did not.
    async fn finish(self) -> anyhow::Result<()> {
        let before = self.ok.load(Ordering::Relaxed);
        dynamo_tests::wait::until("normal requests go on", Duration::from_secs(20), || {
            let ok = self.ok.load(Ordering::Relaxed);
            async move { Ok((ok >= before + 3).then_some(())) }
        })
        .await?;
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.task.await?;
        anyhow::ensure!(failures.is_empty(), "normal requests failed: {failures:?}");
        Ok(())
    }
}

fn assert_code<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    what: &str,
) -> tonic::Status {
    match result {
        Err(status) if status.code() == code => status,
        other => panic!("{what}: expected {code:?}, got {other:?}"),
    }
}

/// A version with a fresh random dot.
/// The engine's key of `key` in the default bucket of an N = 3 ring, as
/// peers exchange it.
fn engine_key(key: &[u8]) -> Bytes {
    let qualified = dynamo_ring::QualifiedKey {
        n: 3,
        bucket: "",
        key,
    };
    Bytes::from(qualified.encode())
}

fn version(value: &[u8]) -> pb::Version {
    pb::Version {
        dot_node: rand::random::<u64>() | 1,
        dot_counter: 1,
        value: Bytes::copy_from_slice(value),
        ..pb::Version::default()
    }
}

fn set(versions: Vec<pb::Version>) -> Option<pb::SiblingSet> {
    Some(pb::SiblingSet { versions })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_peer_keys_are_invalid_argument_and_never_reach_storage() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, quiet).await?;
    let workload = Workload::start(&cluster).await?;
    let mut peer = peer(&cluster, 0).await?;
    for bytes in [4097, PANIC_KEY_BYTES, 70_000] {
        let key = engine_key(&vec![b'k'; bytes]);
        let what = |rpc: &str| format!("{rpc} with a {bytes}-byte key");
        assert_code(
            peer.replica_read(pb::ReplicaReadRequest { key: key.clone() })
                .await,
            Code::InvalidArgument,
            &what("ReplicaRead"),
        );
        assert_code(
            peer.replica_write(pb::ReplicaWriteRequest {
                key: key.clone(),
                siblings: set(vec![version(b"v")]),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            &what("ReplicaWrite"),
        );
        assert_code(
            peer.forget_tombstone(pb::ForgetTombstoneRequest {
                key: key.clone(),
                digest: 1,
            })
            .await,
            Code::InvalidArgument,
            &what("ForgetTombstone"),
        );
        assert_code(
            peer.hint_write(pb::HintWriteRequest {
                target: "node-1".into(),
                key: key.clone(),
                siblings: set(vec![version(b"v")]),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            &what("HintWrite"),
        );
        assert_code(
            peer.holds_hint(pb::HoldsHintRequest { key: key.clone() })
                .await,
            Code::InvalidArgument,
            &what("HoldsHint"),
        );
        let status = assert_code(
            peer.stream_partition(pb::StreamPartitionRequest {
                n: 0,
                partition: 0,
                after: key.clone(),
            })
            .await,
            Code::InvalidArgument,
            &what("StreamPartition after"),
        );
        assert!(status.message().contains("limit of 4096 bytes"), "{status}");
    }
    assert!(refusals(&cluster, 0, "key_bytes") >= 18);
    // An empty key is never a stored key either.
    assert_code(
        peer.replica_write(pb::ReplicaWriteRequest {
            key: engine_key(b""),
            siblings: set(vec![version(b"v")]),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "ReplicaWrite with an empty key",
    );
    workload.finish().await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_items_in_an_exchange_frame_fail_alone_with_their_status() -> anyhow::Result<()> {
    use dynamo_proto::v1::frame_item::Call;
    use dynamo_proto::v1::item_reply::Outcome;

    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, quiet).await?;
    let workload = Workload::start(&cluster).await?;
    let mut peer = peer(&cluster, 0).await?;
    let big = engine_key(&vec![b'k'; PANIC_KEY_BYTES]);
    let item = |id, call| pb::FrameItem {
        id,
        timeout_ms: 10_000,
        call: Some(call),
    };
    let frame = pb::Frame {
        items: vec![
            item(1, Call::Read(pb::ReplicaReadRequest { key: big.clone() })),
            item(
                2,
                Call::Write(pb::ReplicaWriteRequest {
                    key: big.clone(),
                    siblings: set(vec![version(b"v")]),
                    ..Default::default()
                }),
            ),
            item(
                3,
                Call::Write(pb::ReplicaWriteRequest {
                    key: engine_key(b"fine"),
                    siblings: set(vec![version(b"v")]),
                    durability: 99,
                }),
            ),
            item(
                4,
                Call::Hint(pb::HintWriteRequest {
                    target: "node-1".into(),
                    key: big.clone(),
                    siblings: set(vec![version(b"v")]),
                    ..Default::default()
                }),
            ),
            item(
                5,
                Call::Write(pb::ReplicaWriteRequest {
                    key: engine_key(b"fine"),
                    siblings: set(vec![version(b"v")]),
                    ..Default::default()
                }),
            ),
            pb::FrameItem {
                id: 6,
                timeout_ms: 10_000,
                call: None,
            },
        ],
    };
    let mut answers = peer
        .exchange(futures::stream::iter([frame]).chain(futures::stream::pending()))
        .await?
        .into_inner();
    let mut outcomes = std::collections::BTreeMap::new();
    while outcomes.len() < 6 {
        let reply = tokio::time::timeout(Duration::from_secs(10), answers.message())
            .await??
            .expect("the stream stays open");
        for item in reply.items {
            outcomes.insert(item.id, item.outcome);
        }
    }
    for id in [1, 2, 3, 4, 6] {
        match &outcomes[&id] {
            Some(Outcome::Error(error)) => {
                assert_eq!(
                    Code::from(error.code),
                    Code::InvalidArgument,
                    "item {id}: {error:?}"
                )
            }
            other => panic!("item {id}: expected INVALID_ARGUMENT, got {other:?}"),
        }
    }
    assert!(
        matches!(outcomes[&5], Some(Outcome::Written(_))),
        "the valid write of the frame is applied: {:?}",
        outcomes[&5]
    );
    assert!(refusals(&cluster, 0, "key_bytes") >= 3);
    workload.finish().await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peer_values_keep_to_the_kv_limit_and_peer_messages_to_theirs() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, quiet).await?;
    let workload = Workload::start(&cluster).await?;
    let mut peer = peer(&cluster, 0).await?;
    let key = engine_key(b"large");
    let status = assert_code(
        peer.replica_write(pb::ReplicaWriteRequest {
            key: key.clone(),
            siblings: set(vec![version(&vec![7; 5 << 20])]),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "ReplicaWrite of a 5 MiB value",
    );
    assert!(
        status.message().contains("limit of 4194304 bytes"),
        "{status}"
    );
    let stored = peer
        .replica_read(pb::ReplicaReadRequest { key: key.clone() })
        .await?
        .into_inner()
        .siblings
        .unwrap_or_default();
    assert!(stored.versions.is_empty(), "nothing was stored");
    assert_code(
        peer.hint_write(pb::HintWriteRequest {
            target: "node-1".into(),
            key: key.clone(),
            siblings: set(vec![version(&vec![7; 5 << 20])]),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "HintWrite of a 5 MiB value",
    );
    assert_eq!(refusals(&cluster, 0, "value_bytes"), 2);
    // A message over limits.max_peer_message_bytes (64 MiB) is not decoded.
    assert_code(
        peer.replica_write(pb::ReplicaWriteRequest {
            key: key.clone(),
            siblings: set(vec![version(&vec![7; 70 << 20])]),
            ..Default::default()
        })
        .await,
        Code::ResourceExhausted,
        "ReplicaWrite of a 70 MiB message",
    );
    assert_eq!(refusals(&cluster, 0, "message_bytes"), 1);
    workload.finish().await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merkle_level_answers_are_bounded_by_the_tree() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, quiet).await?;
    let workload = Workload::start(&cluster).await?;
    let mut peer = peer(&cluster, 0).await?;
    let leaves = |parents: Vec<u32>| pb::MerkleLevelRequest {
        n: 0,
        partition: 0,
        level: 2,
        parents,
    };
    // 100,000 parents (a 100 KB request) once answered 25.6 MB.
    assert_code(
        peer.merkle_level(leaves(vec![0; 100_000])).await,
        Code::InvalidArgument,
        "100,000 parents",
    );
    let every_inner_node = peer
        .merkle_level(leaves((0..32).collect()))
        .await?
        .into_inner();
    assert_eq!(every_inner_node.hashes.len(), 1024, "the whole leaf level");
    assert_code(
        peer.merkle_level(leaves(vec![32])).await,
        Code::InvalidArgument,
        "a parent past the inner level",
    );
    assert_code(
        peer.merkle_level(pb::MerkleLevelRequest {
            n: 0,
            partition: 0,
            level: 9,
            parents: Vec::new(),
        })
        .await,
        Code::InvalidArgument,
        "level 9",
    );
    assert_code(
        peer.merkle_level(pb::MerkleLevelRequest {
            n: 0,
            partition: 64,
            level: 0,
            parents: Vec::new(),
        })
        .await,
        Code::InvalidArgument,
        "partition 64 of 64",
    );
    assert_code(
        peer.segment_keys(pb::SegmentKeysRequest {
            n: 0,
            partition: 0,
            segments: vec![1024],
        })
        .await,
        Code::InvalidArgument,
        "segment 1024 of 1024",
    );
    assert_eq!(refusals(&cluster, 0, "shape"), 5);
    workload.finish().await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_heartbeats_are_refused_or_dropped_never_kept_or_gossiped() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, quiet).await?;
    let workload = Workload::start(&cluster).await?;
    let mut peer = peer(&cluster, 0).await?;
    let beat = |id: String| pb::Heartbeat {
        id,
        counter: u64::MAX,
        incarnation: "0000000000000001".into(),
    };
    let flood = pb::GossipMessage {
        from: "node-1".into(),
        heartbeats: (0..10_000).map(|i| beat(format!("junk-{i}"))).collect(),
        ring: None,
    };
    assert_code(
        peer.gossip(flood).await,
        Code::InvalidArgument,
        "10,000 heartbeats",
    );
    let long = pb::GossipMessage {
        from: "node-1".into(),
        heartbeats: vec![pb::Heartbeat {
            incarnation: "f".repeat(10_000),
            ..beat("node-1".into())
        }],
        ring: None,
    };
    assert_code(
        peer.gossip(long).await,
        Code::InvalidArgument,
        "a 10 KB incarnation",
    );
    assert_eq!(refusals(&cluster, 0, "members"), 2);
    // A few junk ids within the bound: taken in without them.
    let few = pb::GossipMessage {
        from: "node-1".into(),
        heartbeats: (0..10).map(|i| beat(format!("junk-{i}"))).collect(),
        ring: None,
    };
    let answer = peer.gossip(few).await?.into_inner();
    let ids: Vec<&str> = answer.heartbeats.iter().map(|b| b.id.as_str()).collect();
    assert!(
        ids.iter().all(|id| id.starts_with("node-")),
        "the answer gossips on {ids:?}"
    );
    let kept = cluster.node(0).node().membership().heartbeats();
    assert!(
        kept.iter().all(|(id, _)| id.starts_with("node-")),
        "node-0 keeps {kept:?}"
    );
    workload.finish().await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rings_far_ahead_of_another_cluster_or_shape_are_refused() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, quiet).await?;
    let workload = Workload::start(&cluster).await?;
    let mut admin: AdminClient<Channel> = cluster.admin(0).await?;
    let mut peer = peer(&cluster, 0).await?;
    let current = cluster.node(0).node().ring().to_pb();
    let epoch = current.epoch;
    let change = |ring: pb::Ring| pb::RingChange { ring: Some(ring) };

    let last_epoch = pb::Ring {
        epoch: u64::MAX,
        ..current.clone()
    };
    let status = assert_code(
        admin.commit_ring(change(last_epoch.clone())).await,
        Code::FailedPrecondition,
        "CommitRing at epoch 2^64-1",
    );
    assert!(status.message().contains("max_epoch_step"), "{status}");
    assert_code(
        peer.gossip(pb::GossipMessage {
            from: "node-1".into(),
            heartbeats: Vec::new(),
            ring: Some(last_epoch),
        })
        .await,
        Code::FailedPrecondition,
        "a gossiped ring at epoch 2^64-1",
    );
    assert_eq!(refusals(&cluster, 0, "epoch_step"), 2);

    let other = pb::Ring {
        epoch: epoch + 1,
        cluster: "other".into(),
        ..current.clone()
    };
    let status = assert_code(
        admin.commit_ring(change(other.clone())).await,
        Code::FailedPrecondition,
        "CommitRing of another cluster",
    );
    assert!(
        status.message().contains("\"other\"") && status.message().contains("\"test\""),
        "names both clusters: {status}"
    );
    let same_epoch = pb::Ring { epoch, ..other };
    assert_code(
        admin.commit_ring(change(same_epoch)).await,
        Code::FailedPrecondition,
        "CommitRing of another cluster at the same epoch",
    );
    let fewer_partitions = pb::Ring {
        epoch: epoch + 1,
        owners: current.owners[..32].to_vec(),
        ..current.clone()
    };
    assert_code(
        admin.commit_ring(change(fewer_partitions)).await,
        Code::FailedPrecondition,
        "CommitRing with 32 of 64 partitions",
    );
    assert_eq!(refusals(&cluster, 0, "cluster"), 3);

    let mut crowd = current.clone();
    crowd.epoch = epoch + 1;
    crowd.members.extend((0..2000).map(|i| pb::Member {
        weight: 0,
        id: format!("extra-{i}"),
        address: format!("127.0.0.1:{}", 20_000 + i),
        zone: String::new(),
    }));
    assert_code(
        admin.commit_ring(change(crowd)).await,
        Code::InvalidArgument,
        "a ring of 2,003 members",
    );
    assert_eq!(
        cluster.node(0).node().ring().epoch(),
        epoch,
        "nothing adopted"
    );

    // The next real change is still accepted.
    let next = pb::Ring {
        epoch: epoch + 1,
        ..current
    };
    let answer = admin.commit_ring(change(next)).await?.into_inner();
    assert_eq!(answer.epoch, epoch + 1);
    workload.finish().await?;
    cluster.shutdown().await
}

/// Sends arbitrary bytes as the request body of a unary call.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

async fn raw_call(channel: &Channel, path: &'static str, body: &'static [u8]) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("channel ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    match grpc
        .unary(
            tonic::Request::new(Bytes::from_static(body)),
            path,
            RawCodec,
        )
        .await
    {
        Ok(_) => tonic::Status::ok("answered"),
        Err(status) => status,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undecodable_bodies_and_unknown_enum_values_are_invalid_argument() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, quiet).await?;
    let workload = Workload::start(&cluster).await?;
    let channel = channel(&cluster, 0).await?;
    // Field 1, length 5, then only one byte.
    let truncated: &'static [u8] = &[0x0a, 0x05, 0x01];
    for path in [
        "/dynamo.v1.Peer/ReplicaRead",
        "/dynamo.v1.Peer/Gossip",
        "/dynamo.v1.Kv/Put",
        "/dynamo.v1.Admin/CommitRing",
    ] {
        let status = raw_call(&channel, path, truncated).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
    }
    assert_eq!(refusals(&cluster, 0, "malformed"), 4);

    let mut kv = cluster.kv(0).await?;
    assert_code(
        kv.put(pb::PutRequest {
            durability: 99,
            ..put("durable", "v", &[])
        })
        .await,
        Code::InvalidArgument,
        "Put with durability 99",
    );
    assert!(
        kv.get(get("durable"))
            .await?
            .into_inner()
            .siblings
            .is_empty()
    );
    assert_code(
        kv.delete(pb::DeleteRequest {
            key: Bytes::from_static(b"durable"),
            durability: -3,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "Delete with durability -3",
    );
    let mut peer = peer(&cluster, 0).await?;
    assert_code(
        peer.replica_write(pb::ReplicaWriteRequest {
            key: engine_key(b"durable"),
            siblings: set(vec![version(b"v")]),
            durability: 99,
        })
        .await,
        Code::InvalidArgument,
        "ReplicaWrite with durability 99",
    );
    assert_eq!(refusals(&cluster, 0, "malformed"), 7);
    workload.finish().await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sibling_sets_from_peers_and_the_hint_store_are_bounded() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, |config| {
        quiet(config);
        config.background.max_hints = 3;
        // The hints stay queued: node-1 is up and would take them.
        config.background.hint_interval_ms = 3_600_000;
    })
    .await?;
    let workload = Workload::start(&cluster).await?;
    let mut peer = peer(&cluster, 0).await?;
    let versions = |count: usize| (0..count).map(|_| version(b"s")).collect::<Vec<_>>();
    let write = |key: &'static str, count: usize| pb::ReplicaWriteRequest {
        key: engine_key(key.as_bytes()),
        siblings: set(versions(count)),
        ..Default::default()
    };
    assert_code(
        peer.replica_write(write("crowded", 1025)).await,
        Code::InvalidArgument,
        "one set of 1,025 versions",
    );
    // Sets within the bound that together would grow the key past it.
    for round in 0..10 {
        peer.replica_write(write("crowded", 100))
            .await
            .unwrap_or_else(|status| panic!("round {round}: {status}"));
    }
    let status = assert_code(
        peer.replica_write(write("crowded", 100)).await,
        Code::FailedPrecondition,
        "a merge to 1,100 versions",
    );
    assert!(status.message().contains("limit of 1024"), "{status}");
    let stored = peer
        .replica_read(pb::ReplicaReadRequest {
            key: engine_key(b"crowded"),
        })
        .await?
        .into_inner()
        .siblings
        .unwrap_or_default();
    assert_eq!(
        stored.versions.len(),
        1000,
        "the refused merge wrote nothing"
    );

    let hint = |key: &'static str, count: usize| pb::HintWriteRequest {
        target: "node-1".into(),
        key: engine_key(key.as_bytes()),
        siblings: set(versions(count)),
        ..Default::default()
    };
    for _ in 0..10 {
        peer.hint_write(hint("hinted", 100)).await?;
    }
    assert_code(
        peer.hint_write(hint("hinted", 100)).await,
        Code::FailedPrecondition,
        "a hint grown to 1,100 versions",
    );
    assert_eq!(refusals(&cluster, 0, "replica_siblings"), 3);
    // background.max_hints = 3 hinted keys.
    peer.hint_write(hint("second", 1)).await?;
    peer.hint_write(hint("third", 1)).await?;
    assert_code(
        peer.hint_write(hint("fourth", 1)).await,
        Code::ResourceExhausted,
        "a fourth hinted key",
    );
    assert_eq!(refusals(&cluster, 0, "hints"), 1);
    workload.finish().await?;
    cluster.shutdown().await
}

/// Threads and resident memory of this process (and so of its in-process
/// nodes), from /proc.
fn threads_and_rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:") * 1024)
}

/// Keys whose values fill one partition with about 12 MiB, far more than one
/// stream buffers: a producer that is not read stays blocked on it.
const BIG_KEYS: usize = 24;

/// Writes `BIG_KEYS` keys of 512 KiB that all fall in one partition, and
/// returns it.
async fn fill_one_partition(cluster: &Cluster) -> anyhow::Result<u32> {
    let ring = cluster.node(0).node().ring();
    let partition = ring.partition_of(b"big-0");
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("big-{i}"))
        .filter(|key| ring.partition_of(key.as_bytes()) == partition)
        .take(BIG_KEYS)
        .collect();
    anyhow::ensure!(keys.len() == BIG_KEYS, "found only {} keys", keys.len());
    let mut kv = cluster.kv(0).await?;
    let value = Bytes::from(vec![b'x'; 512 * 1024]);
    for key in keys {
        kv.put(pb::PutRequest {
            key: key.into_bytes().into(),
            value: value.clone(),
            w: 3,
            ..Default::default()
        })
        .await?;
    }
    Ok(partition)
}

async fn open_streams(
    channels: &[Channel],
    partition: u32,
    count: usize,
) -> Vec<Result<tonic::Streaming<pb::PartitionChunk>, tonic::Status>> {
    let calls = (0..count).map(|i| {
        let mut client = PeerClient::new(channels[i % channels.len()].clone())
            .max_decoding_message_size(usize::MAX);
        async move {
            client
                .stream_partition(pb::StreamPartitionRequest {
                    n: 0,
                    partition,
                    after: Bytes::new(),
                })
                .await
                .map(tonic::Response::into_inner)
        }
    });
    futures::future::join_all(calls).await
}

/// Reads a stream to its end: the keys it carried and how it ended.
async fn drain(
    mut stream: tonic::Streaming<pb::PartitionChunk>,
) -> (usize, Result<(), tonic::Status>) {
    let mut keys = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            Ok(Some(Ok(chunk))) => keys += chunk.entries.len(),
            Ok(Some(Err(status))) => return (keys, Err(status)),
            Ok(None) => return (keys, Ok(())),
            Err(_) => {
                return (
                    keys,
                    Err(tonic::Status::deadline_exceeded("no chunk in 20 s")),
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unread_partition_streams_are_bounded_in_number_threads_and_memory() -> anyhow::Result<()> {
    let _alone = MEASURING.write().await;
    let cluster = Cluster::start_with(3, N3, quiet).await?;
    let partition = fill_one_partition(&cluster).await?;
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(channel(&cluster, 0).await?);
    }
    let workload = Workload::start(&cluster).await?;
    let (threads_before, rss_before) = threads_and_rss();
    let opened = open_streams(&channels, partition, 120).await;
    let accepted = opened.iter().filter(|result| result.is_ok()).count();
    let busy = opened
        .iter()
        .filter(|result| {
            result
                .as_ref()
                .is_err_and(|status| status.code() == Code::ResourceExhausted)
        })
        .count();
    assert_eq!(
        (accepted, busy),
        (16, 104),
        "limits.max_partition_streams is 16"
    );
    // Let every accepted producer run until its reader's buffers are full.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (threads_after, rss_after) = threads_and_rss();
    assert!(
        threads_after < threads_before + 60,
        "unread streams hold threads: {threads_before} -> {threads_after}"
    );
    let grown = rss_after.saturating_sub(rss_before) >> 20;
    assert!(grown < 350, "unread streams hold {grown} MiB");
    assert_eq!(refusals(&cluster, 0, "partition_streams"), 104);
    workload.finish().await?;

    drop(opened);
    let ((keys, end), _) = dynamo_tests::wait::until(
        "a stream slot is free again",
        Duration::from_secs(10),
        || async {
            let mut opened = open_streams(&channels, partition, 1).await;
            match opened.pop() {
                Some(Ok(stream)) => Ok(Some(drain(stream).await)),
                Some(Err(status)) => Err(status.into()),
                None => Ok(None),
            }
        },
    )
    .await?;
    // The workload's keys may fall in the partition too.
    assert!(keys >= BIG_KEYS, "the whole partition: {keys} keys");
    assert_eq!(end.map_err(|s| s.code()), Ok(()));
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_unread_for_the_idle_limit_ends_aborted_and_frees_its_slot() -> anyhow::Result<()>
{
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, |config| {
        quiet(config);
        config.limits.max_partition_streams = 2;
        config.limits.partition_stream_idle_ms = 300;
    })
    .await?;
    let partition = fill_one_partition(&cluster).await?;
    let channels = vec![channel(&cluster, 0).await?];
    let workload = Workload::start(&cluster).await?;
    let mut unread = open_streams(&channels, partition, 3).await;
    assert_eq!(
        unread.iter().filter(|result| result.is_ok()).count(),
        2,
        "two slots"
    );
    unread.retain(Result::is_ok);
    // Both unread streams are cut off, so a new reader gets a slot.
    let (_, waited) = dynamo_tests::wait::until(
        "both unread streams are cut off",
        Duration::from_secs(10),
        || async { Ok((refusals(&cluster, 0, "stream_idle") >= 2).then_some(())) },
    )
    .await?;
    assert!(
        waited >= Duration::from_millis(250),
        "cut off after {waited:?}"
    );
    dynamo_tests::wait::until(
        "an idle stream frees its slot",
        Duration::from_secs(10),
        || async {
            let mut opened = open_streams(&channels, partition, 1).await;
            Ok(opened.pop().and_then(Result::ok).map(|_| ()))
        },
    )
    .await?;
    let Some(Ok(first)) = unread.into_iter().next() else {
        unreachable!("kept only accepted streams");
    };
    let (keys, end) = drain(first).await;
    assert!(keys < BIG_KEYS, "the stream was cut off, {keys} keys");
    let status = end.expect_err("an idle stream never ends as if complete");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    workload.finish().await?;
    cluster.shutdown().await
}

/// Requests on `channel` to `path` whose body never comes: the node admits
/// each and its handler waits for the message, so each holds its place
/// under the load shedder until the returned tasks are aborted.
fn hold(channel: &Channel, path: &'static str, count: usize) -> Vec<JoinHandle<()>> {
    (0..count)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                if grpc.ready().await.is_err() {
                    return;
                }
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
                let body = futures::stream::pending::<Bytes>();
                let _ = grpc
                    .streaming(tonic::Request::new(body), path, RawCodec)
                    .await;
            })
        })
        .collect()
}

/// Waits until node `i` has at least `count` `service` requests in flight.
async fn in_flight(cluster: &Cluster, i: usize, service: &str, count: u64) -> anyhow::Result<()> {
    let series = format!("dynamo_requests_in_flight{{service=\"{service}\"}} ");
    dynamo_tests::wait::until("requests held in flight", Duration::from_secs(10), || {
        let text = cluster.node(i).node().render_metrics().expect("metrics");
        let now: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        async move { Ok((now >= count).then_some(())) }
    })
    .await?;
    Ok(())
}

/// A shed request: `RESOURCE_EXHAUSTED` naming `setting`, with the retry
/// hint.
fn assert_shed<T: std::fmt::Debug>(result: Result<T, tonic::Status>, setting: &str) {
    let status = result.expect_err("shed");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains(setting), "{status:?}");
    let hint = status
        .metadata()
        .get(dynamo_node::shed::RETRY_AFTER_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    assert_eq!(hint, Some(dynamo_node::shed::RETRY_AFTER_MS), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_connection_over_its_share_is_shed_while_others_are_served() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, |config| {
        quiet(config);
        config.limits.max_concurrent_requests_per_connection = 4;
    })
    .await?;
    let workload = Workload::start(&cluster).await?;
    let greedy = channel(&cluster, 0).await?;
    let held = hold(&greedy, "/dynamo.v1.Kv/Get", 4);
    in_flight(&cluster, 0, "kv", 4).await?;
    assert_shed(
        KvClient::new(greedy.clone()).get(get("k")).await,
        "max_concurrent_requests_per_connection",
    );
    // Another connection to the same node is served meanwhile.
    let mut other = KvClient::new(channel(&cluster, 0).await?);
    other.put(put("other", "v", &[])).await?;
    assert!(!other.get(get("other")).await?.get_ref().siblings.is_empty());
    assert!(refusals(&cluster, 0, "concurrent_requests_per_connection") >= 1);
    workload.finish().await?;
    held.iter().for_each(JoinHandle::abort);
    // The places come back: the same connection is served again.
    dynamo_tests::wait::until(
        "the connection is served again",
        Duration::from_secs(10),
        || {
            let mut client = KvClient::new(greedy.clone());
            async move { Ok(client.get(get("other")).await.ok().map(|_| ())) }
        },
    )
    .await?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_at_its_request_limit_sheds_clients_and_keeps_replicating() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, |config| {
        quiet(config);
        if config.id == "node-0" {
            config.limits.max_concurrent_requests = 8;
            config.limits.max_concurrent_requests_per_connection = 4;
        }
    })
    .await?;
    // Clients of the other nodes write, and node 0 takes their replicas.
    let workload = Workload::start_on(&cluster, &[1, 2, 1]).await?;
    let held: Vec<_> = [channel(&cluster, 0).await?, channel(&cluster, 0).await?]
        .iter()
        .flat_map(|channel| hold(channel, "/dynamo.v1.Kv/Put", 4))
        .collect();
    in_flight(&cluster, 0, "kv", 8).await?;
    assert_shed(
        cluster.kv(0).await?.get(get("k")).await,
        "limits.max_concurrent_requests)",
    );
    assert!(refusals(&cluster, 0, "concurrent_requests") >= 1);
    workload.finish().await?;
    // A write through node 1 reaches node 0's replica meanwhile.
    cluster
        .kv(1)
        .await?
        .put(put("while-shed", "v", &[]))
        .await?;
    let replica = peer(&cluster, 0).await?;
    dynamo_tests::wait::until("node 0 stores its replica", Duration::from_secs(10), || {
        let mut replica = replica.clone();
        async move {
            let read = replica
                .replica_read(pb::ReplicaReadRequest {
                    key: engine_key(b"while-shed"),
                })
                .await?;
            Ok(read.get_ref().siblings.is_some().then_some(()))
        }
    })
    .await?;
    assert_eq!(refusals(&cluster, 0, "concurrent_peer_requests"), 0);
    held.iter().for_each(JoinHandle::abort);
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peer_requests_over_their_limit_are_shed_while_clients_are_served() -> anyhow::Result<()> {
    let _shared = MEASURING.read().await;
    let cluster = Cluster::start_with(3, N3, |config| {
        quiet(config);
        if config.id == "node-0" {
            config.limits.max_concurrent_peer_requests = 4;
        }
    })
    .await?;
    let workload = Workload::start(&cluster).await?;
    let held = hold(
        &channel(&cluster, 0).await?,
        "/dynamo.v1.Peer/ReplicaRead",
        4,
    );
    in_flight(&cluster, 0, "peer", 4).await?;
    let mut peer = peer(&cluster, 0).await?;
    assert_shed(
        peer.replica_read(pb::ReplicaReadRequest {
            key: engine_key(b"k"),
        })
        .await,
        "max_concurrent_peer_requests",
    );
    assert!(refusals(&cluster, 0, "concurrent_peer_requests") >= 1);
    // Clients of node 0 are served meanwhile.
    workload.finish().await?;
    held.iter().for_each(JoinHandle::abort);
    cluster.shutdown().await
}
