//! Clusters of real `dynamo-node` processes on 127.0.0.1: one temporary
//! directory, config file and log per node, a proxy on every directed link,
//! and controls to kill, restart, pause, resume and terminate nodes.
//! Dropping the cluster kills and reaps every process, even during a panic.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail, ensure};
use dynamo_node::config::{Background, Config, Limits};
use dynamo_node::ring::{Member, Replication};
use dynamo_proto::v1 as pb;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::endpoints::Endpoints;
use crate::proxy::Network;
use crate::wait;

/// Times a node may be started on a fresh port after finding its port taken.
const PORT_ATTEMPTS: usize = 5;

/// Lines of a node's log printed when something goes wrong.
const LOG_TAIL_LINES: usize = 40;

/// How long a node may take to exit after SIGTERM.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings shared by every node of a process cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of partitions Q.
    pub partitions: u32,
    /// N, R and W.
    pub replication: Replication,
    /// Deadline of a whole client request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Deadline of one call to a peer, in milliseconds.
    pub peer_timeout_ms: u64,
    /// Gossip, failure detection, handoff and anti-entropy settings.
    pub background: Background,
    /// How long a node may take to answer `Admin.Status` after it starts.
    pub startup_timeout: Duration,
    /// The nodes' limits.
    pub limits: Limits,
}

impl Default for Options {
    /// 64 partitions, N=3 R=2 W=2, short timeouts and fast background
    /// intervals, anti-entropy only on request.
    fn default() -> Self {
        Self {
            partitions: 64,
            replication: Replication { n: 3, r: 2, w: 2 },
            request_timeout_ms: 1500,
            peer_timeout_ms: 300,
            background: Background {
                gossip_interval_ms: 200,
                suspect_after_ms: 1000,
                hint_interval_ms: 200,
                anti_entropy_interval_ms: 0,
                ..Background::default()
            },
            startup_timeout: Duration::from_secs(60),
            limits: Limits::default(),
        }
    }
}

/// One node process and everything it keeps on disk.
struct NodeProcess {
    dir: Option<TempDir>,
    root: PathBuf,
    config: Config,
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

impl NodeProcess {
    fn config_path(&self) -> PathBuf {
        self.root.join("node.yaml")
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("node.log")
    }

    fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .map(|child| Pid::from_raw(i32::try_from(child.id()).expect("process ids fit in i32")))
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.config.id))?;
        kill(pid, signal).with_context(|| format!("send {signal} to {}", self.config.id))
    }

    /// SIGKILLs and reaps the process, if any.
    fn kill(&mut self) -> anyhow::Result<()> {
        if self.paused {
            // Not needed for SIGKILL, but leaves nothing stopped behind.
            let _ = self.signal(Signal::SIGCONT);
            self.paused = false;
        }
        if let Some(mut child) = self.child.take() {
            // An error means it already exited; wait reaps it either way.
            let _ = child.kill();
            child
                .wait()
                .with_context(|| format!("reap {}", self.config.id))?;
        }
        Ok(())
    }
}

/// A cluster of `dynamo-node` processes. Node `i` is member `node-i`; it
/// listens on its own port and reaches node `j` through the proxy of link
/// `(i, j)` of [`ProcessCluster::network`].
///
/// # Examples
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use dynamo_tests::process::{Options, ProcessCluster};
///
/// let mut cluster = ProcessCluster::start(3, Options::default()).await?;
/// cluster.kill(2)?;
/// cluster.network().isolate(1);
/// let status = cluster.endpoints().status(0).await?;
/// cluster.heal_all().await?;
/// # Ok(())
/// # }
/// ```
pub struct ProcessCluster {
    binary: PathBuf,
    options: Options,
    network: Network,
    endpoints: Endpoints,
    nodes: Vec<NodeProcess>,
    keep_on_panic: bool,
}

impl ProcessCluster {
    /// Starts `size` nodes and waits until each answers `Admin.Status`.
    ///
    /// # Errors
    /// When the binary is missing or stale, or a node does not become ready
    /// (the message carries the tail of its log).
    pub async fn start(size: usize, options: Options) -> anyhow::Result<Self> {
        ensure!(size > 0, "a cluster needs at least one node");
        let binary = node_binary()?;
        let mut addresses = Vec::with_capacity(size);
        for _ in 0..size {
            addresses.push(pick_port()?);
        }
        let network = Network::start(&addresses)
            .await
            .context("start link proxies")?;
        let mut cluster = Self {
            binary,
            network,
            endpoints: Endpoints::new(addresses.clone()),
            nodes: Vec::with_capacity(size),
            options,
            keep_on_panic: true,
        };
        for (i, &address) in addresses.iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix(&format!("dynamo-node-{i}-"))
                .tempdir()
                .context("create a node directory")?;
            let root = dir.path().to_owned();
            let config = cluster.node_config(i, address, &root);
            cluster.nodes.push(NodeProcess {
                dir: Some(dir),
                root,
                config,
                child: None,
                paused: false,
                starts: 0,
            });
        }
        for i in 0..size {
            cluster.spawn(i)?;
        }
        for i in 0..size {
            cluster.wait_ready_or_move(i).await?;
        }
        Ok(cluster)
    }

    /// Number of nodes, running or not.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Member id of node `i`.
    pub fn id(&self, i: usize) -> &str {
        &self.nodes[i].config.id
    }

    /// The node index of member `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.config.id == id)
    }

    /// The settings the cluster was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Clients of the nodes at their real addresses.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The proxies between the nodes.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The real address of node `i`.
    pub fn address(&self, i: usize) -> SocketAddr {
        self.endpoints.address(i)
    }

    /// The log file of node `i` (stdout and stderr of every start).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.nodes[i].log_path()
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        tail(&self.nodes[i].log_path(), lines)
    }

    /// True when node `i` has a process (paused or not).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Removes the node directories even when the test panics (by default
    /// they are kept and their paths printed).
    pub fn discard_files_on_panic(&mut self) {
        self.keep_on_panic = false;
    }

    /// The process id of node `i`, if it is running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// True when node `i` is stopped by SIGSTOP.
    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    /// SIGKILLs node `i` and reaps it; nothing happens if it is not running.
    ///
    /// # Errors
    /// When the process cannot be reaped.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].kill()
    }

    /// Starts node `i` again on its data directory and port, and waits until
    /// it answers.
    ///
    /// # Errors
    /// When node `i` is running or does not become ready.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        ensure!(
            !self.is_running(i),
            "{} is running; kill or terminate it first",
            self.id(i)
        );
        self.spawn(i)?;
        self.wait_ready_or_move(i).await
    }

    /// Stops node `i` with SIGSTOP: it keeps its sockets but answers nothing.
    ///
    /// # Errors
    /// When the node is not running or the signal fails.
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].signal(Signal::SIGSTOP)?;
        self.nodes[i].paused = true;
        Ok(())
    }

    /// Continues a paused node `i` with SIGCONT.
    ///
    /// # Errors
    /// When the node is not running or the signal fails.
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].signal(Signal::SIGCONT)?;
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Stops node `i` gracefully with SIGTERM and waits for it to exit.
    ///
    /// # Errors
    /// When the node is not running, or does not exit in time (it is then
    /// killed).
    pub async fn terminate(&mut self, i: usize) -> anyhow::Result<ExitStatus> {
        if self.nodes[i].paused {
            self.resume(i)?;
        }
        self.nodes[i].signal(Signal::SIGTERM)?;
        let id = self.id(i).to_owned();
        let node = &mut self.nodes[i];
        let child = node.child.as_mut().expect("signalled, so running");
        let waited = wait::until(&format!("{id} to exit"), TERMINATE_TIMEOUT, || {
            let status = child.try_wait();
            async move { Ok(status?) }
        })
        .await;
        match waited {
            Ok((status, _)) => {
                node.child = None;
                Ok(status)
            }
            Err(error) => {
                node.kill()?;
                Err(error.context(format!("{id} ignored SIGTERM and was killed")))
            }
        }
    }

    /// Heals every link, resumes paused nodes and restarts dead ones.
    ///
    /// # Errors
    /// When a node cannot be resumed or restarted.
    pub async fn heal_all(&mut self) -> anyhow::Result<()> {
        self.network.heal_all();
        for i in 0..self.len() {
            if self.is_paused(i) {
                self.resume(i)?;
            }
            if !self.is_running(i) {
                self.restart(i).await?;
            }
        }
        Ok(())
    }

    /// The config node `i` is started with.
    fn node_config(&self, i: usize, address: SocketAddr, root: &Path) -> Config {
        let members = (0..self.network.len())
            .map(|j| Member {
                weight: 0,
                id: member_id(j),
                address: if i == j {
                    address.to_string()
                } else {
                    self.network.address(i, j).to_string()
                },
                zone: String::new(),
            })
            .collect();
        Config {
            id: member_id(i),
            listen: address,
            data_dir: root.join("data"),
            cluster: "dynamo-tests".into(),
            partitions: self.options.partitions,
            replication: self.options.replication,
            members,
            request_timeout_ms: self.options.request_timeout_ms,
            peer_timeout_ms: self.options.peer_timeout_ms,
            background: self.options.background,
            limits: self.options.limits,
            ..Config::default()
        }
    }

    /// Writes node `i`'s config and starts its process, logging to its log.
    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        node.starts += 1;
        let yaml = serde_yaml::to_string(&node.config).context("serialize node config")?;
        std::fs::write(node.config_path(), yaml).context("write node config")?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log_path())
            .context("open node log")?;
        writeln!(
            log,
            "===== start #{} of {} on {} =====",
            node.starts, node.config.id, node.config.listen
        )?;
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(node.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// Waits until node `i` is ready; if it exited because its port was
    /// taken, moves it to a fresh port and tries again.
    async fn wait_ready_or_move(&mut self, i: usize) -> anyhow::Result<()> {
        for _ in 0..PORT_ATTEMPTS {
            match self.wait_ready(i).await {
                Ok(()) => return Ok(()),
                Err(Startup::PortTaken) => {
                    let address = pick_port()?;
                    let root = self.nodes[i].root.clone();
                    self.nodes[i].config = self.node_config(i, address, &root);
                    self.network.retarget(i, address);
                    self.endpoints.set_address(i, address);
                    self.spawn(i)?;
                }
                Err(Startup::Failed(error)) => {
                    self.nodes[i].kill()?;
                    return Err(error.context(format!(
                        "{} did not start; last lines of {}:\n{}",
                        self.id(i),
                        self.log_path(i).display(),
                        self.log_tail(i, LOG_TAIL_LINES)
                    )));
                }
            }
        }
        bail!("{} found its port taken {PORT_ATTEMPTS} times", self.id(i))
    }

    /// Polls `Admin.Status` of node `i` until it answers with its own id.
    async fn wait_ready(&mut self, i: usize) -> Result<(), Startup> {
        let endpoints = self.endpoints.clone();
        let node = &mut self.nodes[i];
        let id = node.config.id.clone();
        let log_path = node.log_path();
        let child = node.child.as_mut().expect("spawned");
        let outcome = wait::until(
            &format!("{id} to answer Admin.Status"),
            self.options.startup_timeout,
            || {
                let exited = child.try_wait();
                let mut admin = endpoints.admin(i);
                let id = id.clone();
                async move {
                    if let Some(status) = exited? {
                        return Ok(Some(Err(status)));
                    }
                    let status = admin.status(pb::StatusRequest {}).await?.into_inner();
                    ensure!(status.id == id, "{} answered as {}", id, status.id);
                    Ok(Some(Ok(())))
                }
            },
        )
        .await;
        match outcome {
            Ok((Ok(()), _)) => Ok(()),
            Ok((Err(status), _)) => {
                node.child = None;
                let log = tail(&log_path, LOG_TAIL_LINES);
                let this_start = log.rsplit("===== start #").next().unwrap_or_default();
                if this_start.contains("Address already in use") {
                    Err(Startup::PortTaken)
                } else {
                    Err(Startup::Failed(anyhow::anyhow!(
                        "{id} exited with {status}"
                    )))
                }
            }
            Err(error) => Err(Startup::Failed(error)),
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let keep = self.keep_on_panic;
        for node in &mut self.nodes {
            if let Err(error) = node.kill() {
                eprintln!("{error:#}");
            }
            if panicking {
                eprintln!(
                    "----- last lines of {} ({}) -----\n{}",
                    node.config.id,
                    node.log_path().display(),
                    tail(&node.log_path(), LOG_TAIL_LINES)
                );
                if keep && let Some(dir) = node.dir.take() {
                    eprintln!("kept {} for inspection", dir.keep().display());
                }
            }
        }
    }
}

/// Why a node did not become ready.
enum Startup {
    /// It exited because another process holds its port.
    PortTaken,
    /// Anything else.
    Failed(anyhow::Error),
}

/// Member id of node `i`.
pub fn member_id(i: usize) -> String {
    format!("node-{i}")
}

/// The `dynamo-node` binary: `DYNAMO_NODE_BIN`, or the one cargo builds
/// next to the test executable (`target/<profile>/dynamo-node`). When that
/// one is missing or older than the node's sources and the tests run under
/// cargo, it is built first (`cargo test` alone builds only the library).
///
/// # Errors
/// When it is missing or stale and cannot be built, with the command that
/// builds it.
pub fn node_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("DYNAMO_NODE_BIN") {
        return Ok(PathBuf::from(path));
    }
    workspace_binary(
        "dynamo-node",
        "dynamo-node",
        &["node/src", "ring/src", "proto/proto"],
    )
}

/// `dynamoctl` from the dynamoctl crate, next to the test binaries; built
/// first when it is missing or older than its sources.
///
/// # Errors
/// As [`workspace_binary`].
pub fn dynamoctl_binary() -> anyhow::Result<PathBuf> {
    workspace_binary(
        "dynamoctl",
        "dynamoctl",
        &["dynamoctl/src", "client/src", "ring/src", "proto/proto"],
    )
}

/// `dynamo-operator`, next to the test binaries; built first when it is
/// missing or older than its sources.
///
/// # Errors
/// As [`workspace_binary`].
pub fn operator_binary() -> anyhow::Result<PathBuf> {
    workspace_binary(
        "dynamo-operator",
        "dynamo-operator",
        &[
            "operator/src",
            "crd/src",
            "client/src",
            "ring/src",
            "proto/proto",
        ],
    )
}

/// The binary `bin` of workspace package `package`, next to the test
/// executable (`target/<profile>/<bin>`). When it is missing or older than
/// any file under `sources` (directories relative to the workspace root)
/// and the tests run under cargo, `cargo build -p <package> --bin <bin>`
/// builds it first. Each binary is checked once per test executable.
///
/// # Errors
/// When it is missing or stale and cannot be built, with the command that
/// builds it.
pub fn workspace_binary(package: &str, bin: &str, sources: &[&str]) -> anyhow::Result<PathBuf> {
    // Tests of one executable run in parallel; build each at most once.
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, binary)) = built.iter().find(|(name, _)| name == bin) {
        return Ok(binary.clone());
    }
    let exe = std::env::current_exe().context("locate the test executable")?;
    let mut profile_dir = exe.parent().context("test executable has no directory")?;
    if profile_dir.ends_with("deps") {
        profile_dir = profile_dir.parent().context("deps/ has no parent")?;
    }
    let binary = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    if let Some(reason) = outdated(&binary, sources) {
        let cargo = std::env::var_os("CARGO")
            .with_context(|| format!("{reason}: run `cargo build -p {package}` first"))?;
        eprintln!("{reason}; building it");
        build_binary(&cargo, profile_dir, package, bin)
            .with_context(|| format!("{reason}; `cargo build -p {package}` failed"))?;
        ensure!(
            binary.exists(),
            "cargo built {bin}, but not at {}: run `cargo build -p {package}`",
            binary.display()
        );
    }
    built.push((bin.to_owned(), binary.clone()));
    Ok(binary)
}

/// Why `binary` cannot be used as it is, if it cannot.
fn outdated(binary: &Path, sources: &[&str]) -> Option<String> {
    let Ok(built) = modified(binary) else {
        return Some(format!("{} is missing", binary.display()));
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    sources
        .iter()
        .filter_map(|sources| newest_file(&workspace.join(sources)))
        .find(|(newest, _)| *newest > built)
        .map(|(_, path)| format!("{} is older than {}", binary.display(), path.display()))
}

/// Runs `cargo build -p <package> --bin <bin>` for the profile whose output
/// directory is `profile_dir` (`target/debug`, `target/release`, ...).
fn build_binary(
    cargo: &std::ffi::OsStr,
    profile_dir: &Path,
    package: &str,
    bin: &str,
) -> anyhow::Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["-p", package, "--bin", bin]);
    if let Some(target_dir) = profile_dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let output = command.stdin(Stdio::null()).output().context("run cargo")?;
    ensure!(
        output.status.success(),
        "cargo exited with {}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn modified(path: &Path) -> anyhow::Result<SystemTime> {
    Ok(std::fs::metadata(path)?.modified()?)
}

/// The most recently modified file under `dir`.
fn newest_file(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(time) = modified(&path)
                && newest.as_ref().is_none_or(|(best, _)| time > *best)
            {
                newest = Some((time, path));
            }
        }
    }
    newest
}

/// A free port on 127.0.0.1 below the kernel's ephemeral range, so that no
/// outgoing connection takes it while its node is down.
fn pick_port() -> anyhow::Result<SocketAddr> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    for _ in 0..100 {
        let port = if ephemeral_start > 11_000 {
            rand::random_range(10_000..ephemeral_start)
        } else {
            0
        };
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return Ok(listener.local_addr()?);
        }
    }
    bail!("found no free port on 127.0.0.1")
}

/// The last `lines` lines of a file, or a note that it cannot be read.
fn tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(64 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}
