//! The local platform end to end: `dynamo-operator local` scales a cluster of
//! real `dynamo-node` processes 3 -> 5 -> 2 -> 4 while a client writes and
//! reads, a driver killed mid-stream finishes the change after a restart,
//! and a member killed with SIGKILL is restarted with its data.

// Shared with local_pools.rs and local_buckets.rs, which use the rest of it.
#[allow(dead_code)]
mod local_cluster;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamo_client::{Client, WriteOptions};
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_proto::v1::peer_client::PeerClient;
use local_cluster::base_port;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::time::Instant;

const NAME: &str = "scale";
const PARTITIONS: u32 = 64;

/// The operator process, and cleanup of every node it started.
struct Operator {
    child: Option<Child>,
    root: PathBuf,
    manifest: PathBuf,
    base_port: u16,
}

impl Operator {
    fn start(root: &Path, manifest: &Path, base_port: u16) -> Self {
        let mut operator = Self {
            child: None,
            root: root.to_owned(),
            manifest: manifest.to_owned(),
            base_port,
        };
        operator.spawn();
        operator
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("operator.log"))
            .expect("open log");
        let child = Command::new(env!("CARGO_BIN_EXE_dynamo-operator"))
            .arg("local")
            .arg("-f")
            .arg(&self.manifest)
            .arg("--data-dir")
            .arg(self.root.join("data"))
            .arg("--base-port")
            .arg(self.base_port.to_string())
            // Slow transfers down so a change is still streaming when the
            // test kills the driver.
            .env("DYNAMO_TRANSFER_BYTES_PER_SECOND", "400000")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dynamo-operator");
        self.child = Some(child);
    }

    /// SIGKILL: the driver dies mid-step; its nodes keep running.
    fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM: the operator stops its nodes.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("operator runs");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        child.wait().expect("operator exits")
    }

    fn state(&self) -> serde_json::Value {
        std::fs::read(self.root.join("data").join(format!("{NAME}-driver.json")))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn address(&self, index: usize) -> String {
        format!("127.0.0.1:{}", usize::from(self.base_port) + index)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.root.join("operator.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.crash();
        // Nodes outlive a crashed operator: kill them through their pid files.
        for index in 0..16 {
            let pid_file = self
                .root
                .join("data")
                .join(format!("{NAME}-{index}"))
                .join("pid");
            if let Ok(text) = std::fs::read_to_string(pid_file)
                && let Ok(pid) = text.trim().parse::<i32>()
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

fn manifest(replicas: usize) -> String {
    format!(
        "apiVersion: dynamokv.io/v1alpha1\nkind: DynamoCluster\nmetadata:\n  name: {NAME}\nspec:\n  replicas: {replicas}\n  partitions: {PARTITIONS}\n  replication:\n    factor: 2\n    readQuorum: 1\n    writeQuorum: 2\n"
    )
}

/// Waits until the driver reports `members` members and nothing to do.
async fn converged(operator: &Operator, members: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let state = operator.state();
        if state["members"] == members && state["step"]["step"] == "idle" {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no convergence to {members} members; state {state}\n{}",
            operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keys acknowledged by the writer, with their last acknowledged value.
type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Writes new keys and reads old ones until `stop` is set.
async fn workload(client: Client, acked: Acked, stop: Arc<std::sync::atomic::AtomicBool>) -> u64 {
    let mut i = 0u64;
    let mut failures = 0;
    // About 50 writes a second: enough load to overlap every step, little
    // enough that the checks stay quick.
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        pace.tick().await;
        let key = format!("key-{i:06}");
        let value = format!("value-{i}-{}", "x".repeat(900));
        match client
            .put_with(
                &key,
                value.clone().into_bytes(),
                None,
                WriteOptions::default(),
            )
            .await
        {
            Ok(_) => {
                acked.lock().expect("acked").insert(key, value);
            }
            Err(_) => failures += 1,
        }
        if i.is_multiple_of(10) {
            let _ = client.get(format!("key-{:06}", i / 2)).await;
            if i.is_multiple_of(200) {
                let _ = client.refresh_ring().await;
            }
        }
        i += 1;
    }
    failures
}

/// Every acknowledged key is on every replica of its preference list, and
/// ownership is balanced.
async fn check(operator: &Operator, acked: &Acked, members: usize) -> anyhow::Result<()> {
    let mut admin = AdminClient::connect(format!("http://{}", operator.address(0))).await?;
    let ring = admin.get_ring(pb::GetRingRequest {}).await?.into_inner();
    let preferences = ring.preferences;
    let ring = ring.ring.expect("ring");
    assert_eq!(ring.members.len(), members);
    assert!(ring.next_owners.is_empty());
    let mut owned = vec![0u32; members];
    for &owner in &ring.owners {
        owned[owner as usize] += 1;
    }
    let floor = PARTITIONS / members as u32;
    assert!(
        owned.iter().all(|&c| c == floor || c == floor + 1),
        "unbalanced: {owned:?}"
    );
    // Anti-entropy settles writes that were acknowledged through hints.
    for member in &ring.members {
        AdminClient::connect(format!("http://{}", member.address))
            .await?
            .anti_entropy(pb::AntiEntropyRequest {})
            .await?;
    }
    let mut peers = BTreeMap::new();
    for member in &ring.members {
        peers.insert(
            member.id.clone(),
            PeerClient::connect(format!("http://{}", member.address)).await?,
        );
    }
    let acked = acked.lock().expect("acked").clone();
    for (key, value) in &acked {
        let partition = dynamo_client::partition_of(key.as_bytes(), PARTITIONS);
        let replicas = &preferences[partition as usize].members[..2.min(members)];
        for &replica in replicas {
            let id = &ring.members[replica as usize].id;
            let copy = peers
                .get_mut(id)
                .expect("peer")
                .replica_read(pb::ReplicaReadRequest {
                    key: default_bucket_key(key, ring.n).into(),
                })
                .await?
                .into_inner()
                .siblings
                .unwrap_or_default();
            assert!(
                copy.versions.iter().any(|v| v.value == value.as_bytes()),
                "{key} is missing on its replica {id} after scaling to {members}"
            );
        }
    }
    eprintln!(
        "{members} members: {} acknowledged keys on all their replicas",
        acked.len()
    );
    Ok(())
}

fn scale(manifest_path: &Path, replicas: usize) {
    std::fs::write(manifest_path, manifest(replicas)).expect("write manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_3_5_2_4_under_load_and_survive_a_driver_crash() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let manifest_path = root.path().join("cluster.yaml");
    scale(&manifest_path, 3);
    let port = base_port();
    let mut operator = Operator::start(root.path(), &manifest_path, port);
    converged(&operator, 3).await?;

    let client = Client::connect(&operator.address(0)).await?;
    let acked: Acked = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(workload(
        client.clone(),
        Arc::clone(&acked),
        Arc::clone(&stop),
    ));
    // Enough data that a transfer takes a few seconds at the test's rate.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("acked").len() < 1000 {
        anyhow::ensure!(Instant::now() < deadline, "the writer is too slow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for members in [5, 2] {
        scale(&manifest_path, members);
        converged(&operator, members).await?;
        check(&operator, &acked, members).await?;
    }

    // 2 -> 4, killing the driver while the first join streams.
    scale(&manifest_path, 4);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = operator.state();
        if state["step"]["step"] == "stream" && state["partitionsLeft"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "never saw a stream: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    operator.crash();
    eprintln!("driver killed mid-stream");
    operator.spawn();
    converged(&operator, 4).await?;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let failures = writer.await?;
    eprintln!(
        "writer: {} acknowledged, {failures} refused",
        acked.lock().expect("acked").len()
    );
    check(&operator, &acked, 4).await?;
    assert!(operator.terminate().success());
    Ok(())
}

/// The pid in member `index`'s pid file.
fn member_pid(operator: &Operator, index: usize) -> Option<i32> {
    let file = operator
        .root
        .join("data")
        .join(format!("{NAME}-{index}"))
        .join("pid");
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Whether the node at `address` answers `Admin.Status`.
async fn status_answers(address: &str) -> bool {
    match AdminClient::connect(format!("http://{address}")).await {
        Ok(mut admin) => admin.status(pb::StatusRequest {}).await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_member_is_restarted_with_its_data() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let manifest_path = root.path().join("cluster.yaml");
    scale(&manifest_path, 3);
    let port = base_port();
    let mut operator = Operator::start(root.path(), &manifest_path, port);
    converged(&operator, 3).await?;
    let client = Client::connect(&operator.address(0)).await?;
    let mut written = Vec::new();
    for i in 0..100 {
        let key = format!("kept-{i:03}");
        client.put(&key, format!("value-{i}"), None).await?;
        written.push(key);
    }

    let victim = 1;
    let old_pid = member_pid(&operator, victim).expect("member 1 has a pid file");
    kill(Pid::from_raw(old_pid), Signal::SIGKILL)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let restarted = member_pid(&operator, victim).is_some_and(|pid| pid != old_pid);
        if restarted && status_answers(&operator.address(victim)).await {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "member {victim} was not restarted\n{}",
            operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(root.path().join("operator.log"))?;
    assert!(
        log.contains("member exited unexpectedly"),
        "the restart is logged:\n{}",
        operator.log_tail()
    );

    // The restarted member still holds every key it replicates.
    let mut admin = AdminClient::connect(format!("http://{}", operator.address(0))).await?;
    let ring = admin.get_ring(pb::GetRingRequest {}).await?.into_inner();
    let victim_id = format!("{NAME}-{victim}");
    let victim_index = ring
        .ring
        .as_ref()
        .and_then(|ring| ring.members.iter().position(|m| m.id == victim_id))
        .expect("the victim is a member") as u32;
    let n = ring.ring.as_ref().map_or(0, |ring| ring.n);
    let mut peer = PeerClient::connect(format!("http://{}", operator.address(victim))).await?;
    let mut held = 0;
    for (i, key) in written.iter().enumerate() {
        let partition = dynamo_client::partition_of(key.as_bytes(), PARTITIONS) as usize;
        if !ring.preferences[partition].members[..2].contains(&victim_index) {
            continue;
        }
        let copy = peer
            .replica_read(pb::ReplicaReadRequest {
                key: default_bucket_key(key, n).into(),
            })
            .await?
            .into_inner()
            .siblings
            .unwrap_or_default();
        assert!(
            copy.versions
                .iter()
                .any(|v| v.value == format!("value-{i}").as_bytes()),
            "{key} is missing on the restarted member"
        );
        held += 1;
    }
    assert!(held > 20, "member {victim} replicates only {held} keys");
    assert!(operator.terminate().success());
    Ok(())
}

/// The engine's key of `key` in the default bucket of a ring with N = `n`.
fn default_bucket_key(key: &str, n: u32) -> Vec<u8> {
    dynamo_ring::QualifiedKey {
        n: u8::try_from(n).expect("N fits a byte"),
        bucket: "",
        key: key.as_bytes(),
    }
    .encode()
}
