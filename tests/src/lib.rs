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
use dynamo_node::ring::{Member, Replication};
use dynamo_node::{RunningNode, start};
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_proto::v1::kv_client::KvClient;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// A cluster of in-process nodes. Dropping it stops every node.
pub struct Cluster {
    configs: Vec<Config>,
    nodes: Vec<Option<RunningNode>>,
    _dirs: Vec<TempDir>,
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

    /// An `Admin` client connected to node `i`.
    ///
    /// # Errors
    /// When node `i` cannot be reached.
    pub async fn admin(&self, i: usize) -> anyhow::Result<AdminClient<Channel>> {
        Ok(AdminClient::connect(format!("http://{}", self.address(i))).await?)
    }

    /// A `Kv` client connected to node `i`.
    ///
    /// # Errors
    /// When the address is not a valid endpoint.
    pub async fn kv(&self, i: usize) -> anyhow::Result<KvClient<Channel>> {
        let channel = Channel::from_shared(format!("http://{}", self.address(i)))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect()
            .await?;
        Ok(KvClient::new(channel))
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

/// A put request with the default W.
pub fn put(key: &str, value: &str, context: &[u8]) -> pb::PutRequest {
    pb::PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        context: context.to_vec().into(),
        ..Default::default()
    }
}
