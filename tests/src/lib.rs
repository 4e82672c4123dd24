//! Test harness: whole DynamoKV clusters of in-process nodes on 127.0.0.1,
//! each with its own data directory, that tests stop, restart and query.
//! Clusters of real `dynamo-node` processes behind link proxies, and the
//! fault-injection nemesis, are in the modules below.

pub mod endpoints;
pub mod history;
pub mod http;
pub mod inspect;
pub mod nemesis;
pub mod process;
pub mod proxy;
pub mod wait;
pub mod workload;

use std::net::SocketAddr;
use std::time::Duration;

use dynamo_node::config::{Config, Limits};
use dynamo_node::membership::Liveness;
use dynamo_node::ring::{Member, Replication};
use dynamo_node::tls::TlsSettings;
use dynamo_node::{RunningNode, start};
use dynamo_operator::local::certs::{Issued, LocalCa};
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_proto::v1::kv_client::KvClient;
use dynamo_proto::v1::peer_client::PeerClient;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Set to run every in-process cluster over mutual TLS, its harness
/// clients included (the engine suite runs so in CI).
pub const TLS_ENV: &str = "DYNAMO_TEST_TLS";

/// A cluster of in-process nodes. Dropping it stops every node.
pub struct Cluster {
    configs: Vec<Config>,
    nodes: Vec<Option<RunningNode>>,
    pki: Option<Pki>,
    _dirs: Vec<TempDir>,
}

/// The CA of a cluster that runs over TLS.
struct Pki {
    _dir: TempDir,
    ca: LocalCa,
}

impl Pki {
    /// A CA for cluster `test` when [`TLS_ENV`] is set.
    fn from_env() -> anyhow::Result<Option<Self>> {
        if std::env::var_os(TLS_ENV).is_none_or(|v| v.is_empty() || v == "0") {
            return Ok(None);
        }
        let dir = tempfile::tempdir()?;
        let ca = LocalCa::open(dir.path(), "test")?;
        Ok(Some(Self { _dir: dir, ca }))
    }

    /// The TLS section of member `id`.
    fn node(&self, id: &str) -> anyhow::Result<TlsSettings> {
        let issued = self.ca.member(id)?;
        Ok(TlsSettings {
            ca: self.ca.ca(),
            cert: issued.cert,
            key: issued.key,
            ..TlsSettings::default()
        })
    }

    /// Client TLS presenting `issued`, which the harness picks by the
    /// service it calls.
    fn client(&self, issued: &Issued) -> anyhow::Result<ClientTlsConfig> {
        let read = |path: &std::path::Path| std::fs::read(path);
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca.ca())?))
            .identity(Identity::from_pem(read(&issued.cert)?, read(&issued.key)?)))
    }
}

impl Cluster {
    /// Starts `size` nodes with the given replication and 64 partitions.
    ///
    /// # Errors
    /// When a port cannot be bound or a node does not start.
    pub async fn start(size: usize, replication: Replication) -> anyhow::Result<Self> {
        Self::start_with(size, replication, |_| {}).await
    }

    /// Starts `size` nodes, letting `tweak` adjust each node's configuration.
    ///
    /// # Errors
    /// When a port cannot be bound or a node does not start.
    pub async fn start_with(
        size: usize,
        replication: Replication,
        tweak: impl Fn(&mut Config),
    ) -> anyhow::Result<Self> {
        let mut listeners = Vec::with_capacity(size);
        for _ in 0..size {
            listeners.push(TcpListener::bind("127.0.0.1:0").await?);
        }
        let members: Vec<Member> = listeners
            .iter()
            .enumerate()
            .map(|(i, listener)| {
                Ok(Member {
                    weight: 0,
                    id: format!("node-{i}"),
                    address: listener.local_addr()?.to_string(),
                    zone: String::new(),
                })
            })
            .collect::<std::io::Result<_>>()?;
        let mut cluster = Self {
            configs: Vec::new(),
            nodes: Vec::new(),
            pki: Pki::from_env()?,
            _dirs: Vec::new(),
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            let dir = tempfile::tempdir()?;
            let config = Config {
                id: members[i].id.clone(),
                listen: listener.local_addr()?,
                data_dir: dir.path().to_owned(),
                cluster: "test".into(),
                partitions: 64,
                replication,
                members: members.clone(),
                limits: Limits::default(),
                request_timeout_ms: 2000,
                peer_timeout_ms: 500,
                ..Config::default()
            };
            let mut config = config;
            if let Some(pki) = &cluster.pki {
                config.tls = Some(pki.node(&config.id)?);
            }
            tweak(&mut config);
            let node = start(config.clone(), listener).await?;
            cluster.configs.push(config);
            cluster.nodes.push(Some(node));
            cluster._dirs.push(dir);
        }
        Ok(cluster)
    }

    /// Number of nodes, running or not.
    pub fn len(&self) -> usize {
        self.configs.len()
    }

    /// True when the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// The address of node `i`.
    pub fn address(&self, i: usize) -> SocketAddr {
        self.configs[i].listen
    }

    /// The HTTP address of node `i`, when it runs with `http_listen` set.
    pub fn http_address(&self, i: usize) -> Option<SocketAddr> {
        self.nodes[i].as_ref()?.http_address()
    }

    /// The running node `i`.
    ///
    /// # Panics
    /// When node `i` is stopped.
    pub fn node(&self, i: usize) -> &RunningNode {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// Stops node `i` gracefully.
    ///
    /// # Errors
    /// When the node fails to stop cleanly.
    pub async fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(node) = self.nodes[i].take() {
            node.stop().await?;
        }
        Ok(())
    }

    /// Waits until every running node's failure detector sees every other
    /// running node as up. Calls made while a cluster starts may fail (a
    /// node's listener is bound before it serves), and a member suspected
    /// for them sends its writes to fallbacks until it is heard from again;
    /// a test that counts hints waits for this first.
    ///
    /// # Errors
    /// When some node still suspects another after `timeout`, naming them.
    pub async fn wait_until_all_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let running: Vec<&RunningNode> = self.nodes.iter().flatten().collect();
        wait::until("every node to see the others up", timeout, || async {
            let mut suspected = Vec::new();
            for observer in &running {
                let observer = observer.node();
                for other in &running {
                    let id = other.node().id();
                    if id != observer.id() && observer.liveness(id) != Liveness::Up {
                        suspected.push(format!("{} suspects {id}", observer.id()));
                    }
                }
            }
            if suspected.is_empty() {
                Ok(Some(()))
            } else {
                anyhow::bail!("{}", suspected.join(", "))
            }
        })
        .await
        .map(|_| ())
    }

    /// Deletes the data directory of stopped node `i`: its disk is lost.
    ///
    /// # Errors
    /// When node `i` runs or the directory cannot be removed.
    pub fn wipe(&mut self, i: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.nodes[i].is_none(), "node {i} is running");
        std::fs::remove_dir_all(&self.configs[i].data_dir)?;
        Ok(())
    }

    /// Restarts a stopped node `i` on its old address and data directory.
    ///
    /// # Errors
    /// When the port cannot be bound again or the node does not start.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.nodes[i].is_none(), "node {i} is running");
        let listener = TcpListener::bind(self.configs[i].listen).await?;
        self.nodes[i] = Some(start(self.configs[i].clone(), listener).await?);
        Ok(())
    }

    /// A channel to node `i`; over TLS the harness presents the
    /// certificate of `role` (see [`Pki`]).
    async fn channel(&self, i: usize, role: Role) -> anyhow::Result<Channel> {
        let endpoint = match &self.pki {
            None => Channel::from_shared(format!("http://{}", self.address(i)))?,
            Some(pki) => {
                let issued = match role {
                    Role::Client => pki.ca.client()?,
                    Role::Operator => pki.ca.operator()?,
                    Role::Node => pki.ca.member("harness")?,
                };
                Channel::from_shared(format!("https://{}", self.address(i)))?
                    .tls_config(pki.client(&issued)?)?
            }
        };
        Ok(endpoint
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect()
            .await?)
    }

    /// An `Admin` client connected to node `i`, allowed ring changes.
    ///
    /// # Errors
    /// When node `i` cannot be reached.
    pub async fn admin(&self, i: usize) -> anyhow::Result<AdminClient<Channel>> {
        Ok(AdminClient::new(self.channel(i, Role::Operator).await?))
    }

    /// A `Kv` client connected to node `i`.
    ///
    /// # Errors
    /// When node `i` cannot be reached.
    pub async fn kv(&self, i: usize) -> anyhow::Result<KvClient<Channel>> {
        Ok(KvClient::new(self.channel(i, Role::Client).await?))
    }

    /// A `Peer` client connected to node `i`, as a node of the cluster.
    ///
    /// # Errors
    /// When node `i` cannot be reached.
    pub async fn peer(&self, i: usize) -> anyhow::Result<PeerClient<Channel>> {
        Ok(PeerClient::new(self.channel(i, Role::Node).await?))
    }

    /// Client options that reach this cluster: its CA and a client
    /// certificate when it runs over TLS.
    ///
    /// # Errors
    /// When the certificate cannot be issued.
    pub fn client_tls(&self) -> anyhow::Result<Option<dynamo_client::TlsOptions>> {
        let Some(pki) = &self.pki else {
            return Ok(None);
        };
        let client = pki.ca.client()?;
        Ok(Some(dynamo_client::TlsOptions::from_files(
            &pki.ca.ca(),
            Some(&client.cert),
            Some(&client.key),
        )?))
    }

    /// Stops every running node.
    ///
    /// # Errors
    /// The first node that fails to stop cleanly.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            self.stop(i).await?;
        }
        Ok(())
    }
}

/// Whose certificate the harness presents on a TLS cluster.
#[derive(Clone, Copy)]
enum Role {
    Client,
    Operator,
    Node,
}

/// `dynamoctl` from the dynamoctl crate, next to the test binaries; built
/// first when it is missing or older than its sources.
///
/// # Panics
/// When it is missing or stale and cannot be built.
pub fn dynamoctl() -> std::path::PathBuf {
    process::dynamoctl_binary().expect("dynamoctl builds")
}

/// Runs the workspace's `dynamoctl --endpoint ENDPOINT --output json ARGS`
/// off the async workers and parses what it prints.
///
/// # Errors
/// When it cannot start, exits with failure (its stderr is in the error) or
/// prints something that is not JSON.
pub async fn dynamoctl_json(endpoint: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let mut command = std::process::Command::new(dynamoctl());
    command
        .args(["--endpoint", endpoint, "--output", "json"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    anyhow::ensure!(
        output.status.success(),
        "dynamoctl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Values of the live siblings of a get response, sorted.
pub fn live_values(response: &pb::GetResponse) -> Vec<String> {
    let mut values: Vec<String> = response
        .siblings
        .iter()
        .filter(|sibling| !sibling.tombstone)
        .map(|sibling| String::from_utf8_lossy(&sibling.value).into_owned())
        .collect();
    values.sort();
    values
}

/// A get request with the default R.
pub fn get(key: &str) -> pb::GetRequest {
    pb::GetRequest {
        key: key.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

/// The engine's bucket-qualified form of default-bucket `key` in a ring
/// with N = `n`: what replicas store and exchange over the Peer service.
pub fn engine_key(n: u32, key: &[u8]) -> bytes::Bytes {
    dynamo_ring::QualifiedKey {
        n: u8::try_from(n).unwrap_or(u8::MAX),
        bucket: "",
        key,
    }
    .encode()
    .into()
}

/// A put request with the default W.
pub fn put(key: &str, value: &str, context: &[u8]) -> pb::PutRequest {
    pb::PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        context: context.to_vec().into(),
        ..Default::default()
    }
}
