//! Mutual TLS between nodes and for clients (docs/security.md): a TLS
//! cluster replicates and serves clients that trust its CA; callers without
//! a cluster certificate, with a foreign one, or with a client certificate
//! reach only what their role allows; rotated files are used without a
//! restart; a plaintext/TLS mismatch gets a clear error.

use std::path::Path;
use std::time::Duration;

use dynamo_client::{Client, ClientOptions, Error, ReadOptions, Rpc, TlsOptions};
use dynamo_node::config::Config;
use dynamo_node::ring::Replication;
use dynamo_node::tls::{ClientAuth, TlsSettings};
use dynamo_operator::local::certs::{Issued, LocalCa};
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_proto::v1::peer_client::PeerClient;
use dynamo_tests::Cluster;
use tempfile::TempDir;
use tonic::Code;

const N3: Replication = Replication { n: 3, r: 2, w: 2 };
const N1: Replication = Replication { n: 1, r: 1, w: 1 };
const TIMEOUT: Duration = Duration::from_secs(5);

/// A CA for the in-process cluster `test` (members `node-<i>`).
struct Pki {
    _dir: TempDir,
    ca: LocalCa,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = LocalCa::open(dir.path(), "test").expect("CA");
        Self { _dir: dir, ca }
    }

    /// The TLS section of member `id`.
    fn node(&self, id: &str) -> TlsSettings {
        let issued = self.ca.member(id).expect("member certificate");
        TlsSettings {
            ca: self.ca.ca(),
            cert: issued.cert,
            key: issued.key,
            client_auth: ClientAuth::Required,
            ..TlsSettings::default()
        }
    }

    /// Client options that trust this CA and present `identity`.
    fn client(&self, identity: Option<&Issued>) -> TlsOptions {
        let (cert, key) = match identity {
            Some(issued) => (Some(issued.cert.as_path()), Some(issued.key.as_path())),
            None => (None, None),
        };
        TlsOptions::from_files(&self.ca.ca(), cert, key).expect("client TLS files")
    }
}

async fn tls_cluster(pki: &Pki, size: usize, replication: Replication) -> Cluster {
    Cluster::start_with(size, replication, |config: &mut Config| {
        config.tls = Some(pki.node(&config.id));
    })
    .await
    .expect("a TLS cluster starts")
}

fn options(tls: TlsOptions) -> ClientOptions {
    ClientOptions {
        timeout: TIMEOUT,
        tls: Some(tls),
        ..ClientOptions::default()
    }
}

/// The status code a refused call ends with, or `None` when it was served.
async fn peer_code(rpc: &Rpc, address: &str, call: &str) -> Option<Code> {
    let result = match call {
        "ReplicaWrite" => rpc
            .call(
                address,
                pb::ReplicaWriteRequest::default(),
                |c, r| async move { PeerClient::new(c).replica_write(r).await },
            )
            .await
            .map(drop),
        "HintWrite" => rpc
            .call(
                address,
                pb::HintWriteRequest::default(),
                |c, r| async move { PeerClient::new(c).hint_write(r).await },
            )
            .await
            .map(drop),
        "Gossip" => rpc
            .call(address, pb::GossipMessage::default(), |c, r| async move {
                PeerClient::new(c).gossip(r).await
            })
            .await
            .map(drop),
        "StreamPartition" => rpc
            .call(
                address,
                pb::StreamPartitionRequest::default(),
                |c, r| async move { PeerClient::new(c).stream_partition(r).await },
            )
            .await
            .map(drop),
        "ProposeRing" => rpc
            .call(address, pb::RingChange::default(), |c, r| async move {
                AdminClient::new(c).propose_ring(r).await
            })
            .await
            .map(drop),
        "CommitRing" => rpc
            .call(address, pb::RingChange::default(), |c, r| async move {
                AdminClient::new(c).commit_ring(r).await
            })
            .await
            .map(drop),
        other => panic!("no such call {other}"),
    };
    match result {
        Ok(()) => None,
        Err(Error::Status { status, .. }) => Some(status.code()),
        Err(Error::InvalidArgument { .. }) => Some(Code::InvalidArgument),
        Err(other) => panic!("{call}: not an answer from the node: {other}"),
    }
}

async fn epoch(rpc: &Rpc, address: &str) -> u64 {
    rpc.call(address, pb::GetRingRequest {}, |c, r| async move {
        AdminClient::new(c).get_ring(r).await
    })
    .await
    .expect("every certificate reads the ring")
    .ring
    .expect("a ring")
    .epoch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mutual_tls_cluster_replicates_and_serves_its_clients() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki, 3, N3).await;
    let client_cert = pki.ca.client().expect("client certificate");
    let client = Client::connect_with(
        &cluster.address(0).to_string(),
        options(pki.client(Some(&client_cert))),
    )
    .await
    .expect("a client with the cluster's CA and a certificate connects");
    for k in 0..30 {
        client
            .put(format!("key-{k}"), format!("value-{k}"), None)
            .await
            .expect("put over TLS");
    }
    // R = 3: every replica answers, so every peer link carried TLS.
    for k in 0..30 {
        let read = client
            .get_with(format!("key-{k}"), ReadOptions { r: Some(3) })
            .await
            .expect("get over TLS from all replicas");
        let values: Vec<&[u8]> = read.live().map(|s| s.value.as_ref()).collect();
        assert_eq!(values, [format!("value-{k}").as_bytes()], "key-{k}");
    }
    cluster.shutdown().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_without_a_cluster_certificate_reach_only_kv_and_ring_reads() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki, 3, N3).await;
    let address = cluster.address(0).to_string();
    let node = cluster.node(0).node();
    let client = Rpc::new(
        TIMEOUT,
        Some(pki.client(Some(&pki.ca.client().expect("cert")))),
    );
    let before = epoch(&client, &address).await;
    let refusals = node.metrics().tls_refusal_count();
    // Every attack of the plaintext cluster, replayed with a certificate
    // the CA signed for a client.
    let attacks = [
        "ReplicaWrite",
        "HintWrite",
        "Gossip",
        "StreamPartition",
        "ProposeRing",
        "CommitRing",
    ];
    for call in attacks {
        assert_eq!(
            peer_code(&client, &address, call).await,
            Some(Code::PermissionDenied),
            "{call} with a client certificate"
        );
    }
    assert_eq!(
        node.metrics().tls_refusal_count(),
        refusals + attacks.len() as u64,
        "each refusal is counted"
    );
    assert_eq!(
        epoch(&client, &address).await,
        before,
        "the ring did not move"
    );

    // The operator's certificate may change the ring (this empty change
    // is refused for what it says, not for who sent it).
    let operator = Rpc::new(
        TIMEOUT,
        Some(pki.client(Some(&pki.ca.operator().expect("cert")))),
    );
    assert_ne!(
        peer_code(&operator, &address, "ProposeRing").await,
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        peer_code(&operator, &address, "ReplicaWrite").await,
        Some(Code::PermissionDenied),
        "the operator is no peer"
    );

    // No certificate at all: the handshake fails, nothing is served.
    let anonymous = Rpc::new(TIMEOUT, Some(pki.client(None)));
    let refused = anonymous
        .call(&address, pb::GetRingRequest {}, |c, r| async move {
            AdminClient::new(c).get_ring(r).await
        })
        .await
        .expect_err("client certificates are required");
    assert!(
        refused.is_retryable() || matches!(refused, Error::Tls { .. }),
        "{refused}"
    );
    cluster.shutdown().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_a_foreign_certificate_is_refused_and_counted() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki, 1, N1).await;
    let address = cluster.address(0).to_string();
    let node = cluster.node(0).node();

    // Another CA's certificate with a member's name: the handshake fails
    // and the node counts the refusal.
    let foreign = Pki::new();
    let impostor = foreign.ca.member("node-0").expect("foreign certificate");
    let refusals = node.metrics().tls_refusal_count();
    let mut tls = pki.client(None);
    tls.identity = Some((
        std::fs::read(&impostor.cert).expect("cert"),
        std::fs::read(&impostor.key).expect("key"),
    ));
    let rpc = Rpc::new(TIMEOUT, Some(tls));
    let err = rpc
        .call(&address, pb::GossipMessage::default(), |c, r| async move {
            PeerClient::new(c).gossip(r).await
        })
        .await
        .expect_err("a certificate of another CA is refused");
    assert!(
        !matches!(err, Error::Status { .. }),
        "refused before any call: {err}"
    );
    assert!(
        node.metrics().tls_refusal_count() > refusals,
        "the refusal is counted"
    );

    // The cluster's own CA, but a name outside the cluster: no peer.
    let outsider = pki
        .ca
        .issue("outsider", vec!["node-0.other-cluster".into()])
        .expect("certificate");
    let rpc = Rpc::new(TIMEOUT, Some(pki.client(Some(&outsider))));
    assert_eq!(
        peer_code(&rpc, &address, "Gossip").await,
        Some(Code::PermissionDenied)
    );
    cluster.shutdown().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plaintext_tls_mismatch_gets_a_clear_error() {
    let pki = Pki::new();
    let secure = tls_cluster(&pki, 1, N1).await;
    let err = Client::connect_with(
        &secure.address(0).to_string(),
        ClientOptions {
            timeout: TIMEOUT,
            ..ClientOptions::default()
        },
    )
    .await
    .expect_err("a plaintext client cannot talk to a TLS node");
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(err.to_string().contains("may require TLS"), "{err}");

    let plain = Cluster::start(1, N1).await.expect("plaintext node");
    let err = Client::connect_with(
        &plain.address(0).to_string(),
        options(pki.client(Some(&pki.ca.client().expect("cert")))),
    )
    .await
    .expect_err("a TLS client cannot talk to a plaintext node");
    assert!(err.to_string().contains("plaintext"), "{err}");
    secure.shutdown().await.expect("stop");
    plain.shutdown().await.expect("stop");
}

/// Copies `from` over `to` through a temporary file, as a Secret volume
/// update swaps files.
fn replace(from: &Path, to: &Path) {
    let staged = to.with_extension("new");
    std::fs::copy(from, &staged).expect("stage");
    std::fs::rename(&staged, to).expect("swap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotated_certificate_files_are_used_without_a_restart() {
    let pki = Pki::new();
    // The node reads copies that the test rotates.
    let live = tempfile::tempdir().expect("temp dir");
    let settings = pki.node("node-0");
    let files = [
        (settings.ca.clone(), live.path().join("ca.pem")),
        (settings.cert.clone(), live.path().join("tls.crt")),
        (settings.key.clone(), live.path().join("tls.key")),
    ];
    for (from, to) in &files {
        std::fs::copy(from, to).expect("copy");
    }
    let cluster = Cluster::start_with(1, N1, |config: &mut Config| {
        config.tls = Some(TlsSettings {
            ca: files[0].1.clone(),
            cert: files[1].1.clone(),
            key: files[2].1.clone(),
            ..settings.clone()
        });
    })
    .await
    .expect("a TLS node starts");
    let address = cluster.address(0).to_string();
    let old_client = pki.ca.client().expect("cert");
    Client::connect_with(&address, options(pki.client(Some(&old_client))))
        .await
        .expect("the first CA's clients connect");

    // A new CA and certificate, swapped in while the node runs.
    let next = Pki::new();
    let next_node = next.node("node-0");
    replace(&next_node.ca, &files[0].1);
    replace(&next_node.cert, &files[1].1);
    replace(&next_node.key, &files[2].1);

    let next_client = next.ca.client().expect("cert");
    Client::connect_with(&address, options(next.client(Some(&next_client))))
        .await
        .expect("new connections use the rotated files");
    let err = Client::connect_with(&address, options(pki.client(Some(&old_client))))
        .await
        .expect_err("the old CA is no longer trusted");
    assert!(!matches!(err, Error::Status { .. }), "{err}");
    drop(pki);
    cluster.shutdown().await.expect("stop");
}
