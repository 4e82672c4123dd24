//! Routing through the endpoint against real nodes: a node whose ring names
//! it by an in-cluster DNS name nobody here resolves (what a laptop sees
//! through `kubectl port-forward`), and a cluster whose endpoint forwards
//! the keys it does not replicate.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use dynamo_client::{Client, ClientOptions, Routing};
use dynamo_node::ring::Replication;
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_tests::process::{Options, ProcessCluster, dynamoctl_binary, node_binary};
use dynamo_tests::wait;

/// The name the node advertises: a pod DNS name under the reserved
/// `.invalid` domain, so no resolver knows it.
const POD_ADDRESS: &str = "demo-0.demo-peers.dynamo.svc.invalid:7400";

/// A `dynamo-node` process, killed and reaped when dropped.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a one-member cluster whose ring names its member [`POD_ADDRESS`]
/// while it listens on `listen`; returns once it answers.
async fn start_behind_pod_name(dir: &Path, listen: &str) -> anyhow::Result<Node> {
    let log = std::fs::File::create(dir.join("node.log"))?;
    let child = Command::new(node_binary()?)
        .args(["--id", "demo-0", "--cluster", "demo"])
        .args(["--listen", listen, "--advertise", POD_ADDRESS])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--partitions", "8", "--n", "1", "--r", "1", "--w", "1"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start dynamo-node")?;
    let mut node = Node(child);
    let url = format!("http://{listen}");
    wait::until("the node to answer", Duration::from_secs(60), || {
        let exited = node.0.try_wait();
        let url = url.clone();
        async move {
            if let Some(status) = exited? {
                anyhow::bail!("dynamo-node exited with {status}");
            }
            let mut admin = AdminClient::connect(url).await?;
            admin.status(pb::StatusRequest {}).await?;
            Ok(Some(()))
        }
    })
    .await
    .with_context(|| std::fs::read_to_string(dir.join("node.log")).unwrap_or_default())?;
    Ok(node)
}

/// Runs the built `dynamoctl` with `args` against `endpoint`.
async fn run(endpoint: &str, args: &[&str]) -> anyhow::Result<Output> {
    let dynamoctl = dynamoctl_binary()?;
    let mut command = Command::new(dynamoctl);
    command
        .env_remove("DYNAMO_VIA_ENDPOINT")
        .args(["--endpoint", endpoint])
        .args(args);
    Ok(tokio::task::spawn_blocking(move || command.output()).await??)
}

/// A port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamoctl_reaches_a_pod_named_node_through_its_endpoint() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let endpoint = format!("127.0.0.1:{}", free_port()?);
    let _node = start_behind_pod_name(dir.path(), &endpoint).await?;

    let direct = run(&endpoint, &["put", "cart", "apples"]).await?;
    let stderr = String::from_utf8_lossy(&direct.stderr);
    ensure!(direct.status.code() == Some(4), "{stderr}");
    ensure!(stderr.contains("--via-endpoint"), "{stderr}");
    ensure!(stderr.contains(POD_ADDRESS), "{stderr}");

    let put = run(&endpoint, &["--via-endpoint", "put", "cart", "apples"]).await?;
    ensure!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = run(&endpoint, &["--via-endpoint", "get", "cart"]).await?;
    let stdout = String::from_utf8_lossy(&get.stdout);
    ensure!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    ensure!(stdout.lines().next() == Some("apples"), "{stdout}");

    let status = run(&endpoint, &["--via-endpoint", "status", "--output", "json"]).await?;
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout)
        .with_context(|| String::from_utf8_lossy(&status.stderr).into_owned())?;
    ensure!(rows[0]["member"] == "demo-0", "{rows}");
    ensure!(rows[0]["address"] == POD_ADDRESS, "{rows}");
    ensure!(rows[0]["state"] == "up", "{rows}");
    ensure!(rows[0]["keys"] == 1, "{rows}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_forwards_keys_it_does_not_replicate() -> anyhow::Result<()> {
    let options = Options {
        replication: Replication { n: 1, r: 1, w: 1 },
        ..Options::default()
    };
    let mut cluster = ProcessCluster::start(3, options).await?;
    cluster.discard_files_on_panic();
    let client = Client::connect_with(
        &cluster.address(0).to_string(),
        ClientOptions {
            routing: Routing::ViaEndpoint,
            ..ClientOptions::default()
        },
    )
    .await?;
    let ring = client.ring();
    let endpoint_id = cluster.id(0);
    let mut forwarded = 0;
    for i in 0..24 {
        let key = format!("key-{i}");
        let partition = ring.partition_of(key.as_bytes());
        if !ring
            .preference_list(partition)
            .any(|member| member.id == endpoint_id)
        {
            forwarded += 1;
        }
        client.put(&key, key.clone(), None).await?;
        let read = client.get(&key).await?;
        let value = read.last_writer_wins().map(|sibling| sibling.value.clone());
        ensure!(value.as_deref() == Some(key.as_bytes()), "{key}: {value:?}");
    }
    ensure!(
        forwarded > 0,
        "every key lives on the endpoint; nothing was forwarded"
    );

    // Status through the endpoint: the others are not asked, and their rows
    // show how the endpoint's failure detector sees them, not "unreachable".
    let endpoint = cluster.address(0).to_string();
    wait::until(
        "the endpoint to see every member up",
        Duration::from_secs(30),
        || async {
            let status = run(&endpoint, &["--via-endpoint", "status", "--output", "json"]).await?;
            let rows: serde_json::Value = serde_json::from_slice(&status.stdout)
                .with_context(|| String::from_utf8_lossy(&status.stderr).into_owned())?;
            let rows = rows.as_array().context("rows")?;
            ensure!(rows.len() == 3, "{rows:?}");
            let others_up = rows
                .iter()
                .filter(|row| row["member"] != endpoint_id)
                .all(|row| {
                    row["seen_by"] == endpoint_id
                        && row["state"]
                            .as_str()
                            .is_some_and(|s| s.starts_with("up (seen by"))
                });
            Ok(others_up.then_some(()))
        },
    )
    .await?;
    Ok(())
}
