//! The node configuration files of the ConfigMap: settings shared by every
//! member plus, per member, how it starts on an empty volume (the first
//! members' list, or seeds to join through). The keys are exactly those of
//! `dynamo-node`'s config file, which refuses unknown ones.

use serde::Serialize;

use super::cluster::ValidatedCluster;
use super::names;
use super::state::{LaunchMember, MemberLaunch};

#[derive(Serialize)]
struct Replication {
    n: u32,
    r: u32,
    w: u32,
}

#[derive(Serialize)]
struct Background {
    gossip_interval_ms: u64,
    anti_entropy_interval_ms: u64,
    tombstone_grace_ms: u64,
}

/// The node's `tls` section: the Secret's files, and who is who.
#[derive(Serialize)]
struct Tls<'a> {
    ca: String,
    cert: String,
    key: String,
    client_auth: &'a str,
    node_names: Vec<String>,
    operator_names: &'a [String],
}

#[derive(Serialize)]
struct NodeFile<'a> {
    cluster: &'a str,
    listen: String,
    http_listen: String,
    data_dir: &'a str,
    partitions: u32,
    replication: Replication,
    durability: &'a str,
    background: Background,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    members: &'a [LaunchMember],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    seeds: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls<'a>>,
}

fn render(cluster: &ValidatedCluster, members: &[LaunchMember], seeds: &[String]) -> String {
    let spec = &cluster.spec;
    let file = NodeFile {
        cluster: &cluster.name,
        listen: format!("0.0.0.0:{}", names::GRPC_PORT),
        http_listen: format!("0.0.0.0:{}", names::HTTP_PORT),
        data_dir: names::DATA_DIR,
        partitions: spec.partitions,
        replication: Replication {
            n: spec.replication.factor,
            r: spec.replication.read_quorum,
            w: spec.replication.write_quorum,
        },
        durability: spec.durability.as_str(),
        background: Background {
            gossip_interval_ms: spec.gossip_interval_ms,
            anti_entropy_interval_ms: spec.anti_entropy_interval_ms,
            tombstone_grace_ms: spec.tombstone_grace_seconds.saturating_mul(1000),
        },
        members,
        seeds,
        tls: spec.tls.as_ref().map(|tls| Tls {
            ca: format!("{}/ca.crt", names::TLS_MOUNT),
            cert: format!("{}/tls.crt", names::TLS_MOUNT),
            key: format!("{}/tls.key", names::TLS_MOUNT),
            client_auth: tls.client_auth.as_str(),
            node_names: vec![names::node_certificate_name(
                &cluster.namespace,
                &cluster.name,
            )],
            operator_names: &tls.operator_names,
        }),
    };
    serde_yaml::to_string(&file).expect("the node file is plain data")
}

/// The settings every member shares, as a YAML file.
pub fn shared(cluster: &ValidatedCluster) -> String {
    render(cluster, &[], &[])
}

/// The configuration file of member `index`, when it was launched.
pub fn member(cluster: &ValidatedCluster, index: usize) -> Option<String> {
    let file = match cluster.state.launches.get(&index)? {
        MemberLaunch::Bootstrap => render(cluster, &cluster.state.bootstrap_members, &[]),
        MemberLaunch::Join { seeds } => render(cluster, &[], seeds),
    };
    Some(file)
}

/// A stable hash of `text` (FNV-1a, 64 bits) in hex: the same on every
/// operator build, so an upgrade of the operator does not roll the pods.
pub fn stable_hash(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}
