//! The local platform: members are `dynamo-node` processes on 127.0.0.1,
//! each with a data directory under one root named by its member id. The
//! members of a cluster without pools are `<cluster>-<i>` on port base+i;
//! members of node pools are `<cluster>-<pool>-<i>` with their pool's weight
//! and zone, on ports from a table kept next to the data. It
//! runs the same [`Driver`] as Kubernetes, following edits of the manifest,
//! and restarts a member process that exits unexpectedly, with backoff, as
//! a StatefulSet restarts its pod.

pub mod certs;
mod ports;
mod restart;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dynamo_crd::{DynamoCluster, DynamoClusterSpec, SpecError};
use dynamo_proto::v1 as pb;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tracing::{info, warn};

use thiserror::Error;

use crate::admin::{Admin, GrpcAdmin};
use crate::driver::{Driver, DriverState, Launch, Platform, PlatformError, Shape};
use crate::pools;
use certs::{CertError, LocalCa};
use ports::Ports;
use restart::Restarts;

/// A member on port base+k serves HTTP (`/metrics`, `/readyz`, the ring
/// page) on base + this + k; it is also the most members a local cluster
/// runs.
pub const HTTP_PORT_OFFSET: u16 = 100;

/// How long a stopping node may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Member processes on this machine.
pub struct LocalPlatform {
    name: String,
    base_port: u16,
    root: PathBuf,
    node_binary: PathBuf,
    node_args: Vec<String>,
    /// The spec of the manifest followed: the members' pools.
    spec: Mutex<DynamoClusterSpec>,
    /// Member ids by platform index, learnt from the spec, the ring and the
    /// data directories, so members of a removed pool keep their names.
    names: Mutex<BTreeMap<usize, String>>,
    /// The members' port offsets.
    ports: Mutex<Ports>,
    children: Mutex<BTreeMap<usize, Child>>,
    /// Members that should be running: how each was launched, and its
    /// restarts. A member leaves this map only when stopped on purpose.
    supervised: Mutex<BTreeMap<usize, Supervised>>,
    /// How exited children ended, until the supervisor reports it.
    exits: Mutex<BTreeMap<usize, std::process::ExitStatus>>,
    admin: Arc<GrpcAdmin>,
    /// The CA that issues each member's certificate, for a TLS cluster.
    tls: Option<LocalCa>,
}

/// Why the local platform cannot run.
#[derive(Debug, Error)]
pub enum LocalError {
    /// The manifest cannot be read.
    #[error("read {path}: {source}", path = path.display())]
    ReadManifest {
        /// The manifest.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not a DynamoCluster.
    #[error("parse {path}: {source}", path = path.display())]
    ParseManifest {
        /// The manifest.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: dynamo_crd::ManifestError,
    },
    /// The manifest's spec breaks a rule.
    #[error("invalid spec in {path}: {source}", path = path.display())]
    InvalidSpec {
        /// The manifest.
        path: PathBuf,
        /// The rule broken.
        #[source]
        source: SpecError,
    },
    /// The edited manifest's spec cannot follow the one running.
    #[error("invalid change in {path}: {source}", path = path.display())]
    InvalidChange {
        /// The manifest.
        path: PathBuf,
        /// The rule broken.
        #[source]
        source: SpecError,
    },
    /// Two pools of the manifest cannot both have members.
    #[error("invalid pools in {path}: {reason}", path = path.display())]
    InvalidPools {
        /// The manifest.
        path: PathBuf,
        /// Which pools, and what to do.
        reason: String,
    },
    /// The cluster's certificates cannot be made.
    #[error("TLS certificates: {0}")]
    Certificates(#[from] CertError),
    /// The driver state file cannot be parsed.
    #[error("driver state file {path} is corrupt: {source}", path = path.display())]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A file, directory, signal or process operation failed.
    #[error(transparent)]
    Platform(#[from] PlatformError),
}

/// The [`PlatformError`] of a failed `action` (a phrase such as
/// `create /data/demo-1`).
fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> PlatformError {
    let action = action.into();
    move |source| PlatformError::Io { action, source }
}

/// A member the platform keeps running.
struct Supervised {
    launch: Launch,
    restarts: Restarts,
}

impl LocalPlatform {
    /// A platform for cluster `name` running the members of `spec`, whose
    /// members keep their data under `root` and run `node_binary` with
    /// `node_args` besides their identity; readiness is asked through
    /// `admin` (the caller the driver shares).
    ///
    /// # Errors
    /// When the port table under `root` cannot be read.
    pub fn new(
        name: &str,
        spec: &DynamoClusterSpec,
        base_port: u16,
        root: &Path,
        node_binary: &Path,
        node_args: Vec<String>,
        admin: Arc<GrpcAdmin>,
    ) -> Result<Self, PlatformError> {
        let ports = Ports::open(&root.join(format!("{name}-ports.json")))?;
        Ok(Self {
            name: name.to_owned(),
            base_port,
            root: root.to_owned(),
            node_binary: node_binary.to_owned(),
            node_args,
            spec: Mutex::new(spec.clone()),
            names: Mutex::new(BTreeMap::new()),
            ports: Mutex::new(ports),
            children: Mutex::new(BTreeMap::new()),
            supervised: Mutex::new(BTreeMap::new()),
            exits: Mutex::new(BTreeMap::new()),
            admin,
            tls: None,
        })
    }

    /// Members serve and dial over mutual TLS with certificates from `ca`.
    #[must_use]
    pub fn with_tls(mut self, ca: LocalCa) -> Self {
        self.tls = Some(ca);
        self
    }

    /// Follows the pools of an edited manifest.
    pub fn set_spec(&self, spec: &DynamoClusterSpec) {
        *lock(&self.spec) = spec.clone();
    }

    /// The id of member `index`: named by its pool in the spec, else by
    /// the name it was seen with (a member of a removed pool).
    fn id(&self, index: usize) -> String {
        let (slot, ordinal) = pools::split(index);
        let named = pools::pool_of(&lock(&self.spec), index)
            .map(|pool| pools::member_name(&self.name, pool.name, ordinal));
        let mut names = lock(&self.names);
        if let Some(name) = named {
            // Remembered for when the spec drops the pool.
            names.insert(index, name.clone());
            return name;
        }
        if let Some(name) = names.get(&index) {
            return name.clone();
        }
        // Never seen with a name: only the implicit pool's can be told.
        let pool = if slot == 0 {
            String::new()
        } else {
            format!("slot{slot}")
        };
        pools::member_name(&self.name, &pool, ordinal)
    }

    /// The port offset of member `index` (see [`ports`]).
    fn offset(&self, index: usize) -> u16 {
        let (slot, ordinal) = pools::split(index);
        let preferred = (slot == 0).then(|| u16::try_from(ordinal).ok()).flatten();
        lock(&self.ports).offset(&self.id(index), preferred)
    }

    fn port(&self, offset: u16) -> u16 {
        self.base_port.saturating_add(offset)
    }

    fn dir(&self, index: usize) -> PathBuf {
        self.root.join(self.id(index))
    }

    fn pid_file(&self, index: usize) -> PathBuf {
        self.dir(index).join("pid")
    }

    /// The pid of member `index` if its process runs (started by this
    /// operator or adopted from an earlier one through its pid file).
    fn running_pid(&self, index: usize) -> Option<Pid> {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(child) = children.get_mut(&index) {
            match child.try_wait() {
                Ok(None) => return child.id().map(|id| Pid::from_raw(id as i32)),
                exited => {
                    children.remove(&index);
                    if let Ok(Some(status)) = exited {
                        self.exits
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(index, status);
                    }
                    return None;
                }
            }
        }
        let text = std::fs::read_to_string(self.pid_file(index)).ok()?;
        let pid = Pid::from_raw(text.trim().parse().ok()?);
        kill(pid, None).ok().map(|()| pid)
    }

    /// Indexes of members that have a data directory (named by their id).
    pub fn existing_members(&self) -> Vec<usize> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut found: Vec<usize> = entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .filter_map(|entry| self.index_of(entry.file_name().to_str()?))
            .collect();
        found.sort_unstable();
        found
    }

    /// Stops every member process, keeping their data (Ctrl-C).
    pub async fn shutdown(&self) {
        for index in self.existing_members() {
            self.terminate(index).await;
        }
    }

    /// Restarts members whose process exited without being asked to: the
    /// exit is logged with the backoff, and the process starts again with
    /// its data directory once the backoff has passed. Called on every
    /// tick of [`run`].
    pub async fn supervise(&self) {
        let now = Instant::now();
        let indexes: Vec<usize> = self.supervised().keys().copied().collect();
        for index in indexes {
            let running = self.running_pid(index).is_some();
            let exit = self
                .exits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&index);
            let launch = {
                let mut supervised = self.supervised();
                let Some(member) = supervised.get_mut(&index) else {
                    continue;
                };
                if running {
                    continue;
                }
                if !member.restarts.scheduled() {
                    let backoff = member.restarts.exited(now);
                    let status =
                        exit.map_or_else(|| "gone".to_owned(), |status| status.to_string());
                    warn!(
                        member = self.id(index),
                        %status,
                        ?backoff,
                        restarts = member.restarts.crashes(),
                        "member exited unexpectedly; restarting it after the backoff"
                    );
                }
                if !member.restarts.is_due(now) {
                    continue;
                }
                member.restarts.restarted(now);
                member.launch.clone()
            };
            match self.spawn(index, launch).await {
                Ok(()) => info!(member = self.id(index), "restarted"),
                Err(error) => {
                    let mut supervised = self.supervised();
                    if let Some(member) = supervised.get_mut(&index) {
                        let backoff = member.restarts.exited(now);
                        warn!(
                            member = self.id(index),
                            ?backoff,
                            "could not restart the member: {error:#}"
                        );
                    }
                }
            }
        }
    }

    fn supervised(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Supervised>> {
        self.supervised.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn terminate(&self, index: usize) {
        // Asked to stop: no longer restarted.
        self.supervised().remove(&index);
        let Some(pid) = self.running_pid(index) else {
            return;
        };
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while self.running_pid(index).is_some() {
            if tokio::time::Instant::now() >= deadline {
                warn!(index, "member did not stop in time; killing it");
                let _ = kill(pid, Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_file(self.pid_file(index));
        info!(member = self.id(index), "stopped");
    }
}

impl Platform for LocalPlatform {
    fn member(&self, index: usize) -> pb::Member {
        let spec = lock(&self.spec).clone();
        let pool = pools::pool_of(&spec, index);
        pb::Member {
            weight: pool.map_or(0, |pool| pool.weight),
            id: self.id(index),
            address: format!("127.0.0.1:{}", self.port(self.offset(index))),
            zone: pool
                .and_then(|pool| pool.zone)
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The pool's zone; `None` for a member of a pool the spec no longer
    /// declares, which keeps the zone it has until it leaves.
    fn zone(&self, index: usize) -> Option<String> {
        let spec = lock(&self.spec);
        let pool = pools::pool_of(&spec, index)?;
        Some(pool.zone.unwrap_or_default().to_owned())
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        let index = pools::index_of(&self.name, id)?;
        lock(&self.names)
            .entry(index)
            .or_insert_with(|| id.to_owned());
        Some(index)
    }

    fn known(&self) -> Vec<usize> {
        self.supervised().keys().copied().collect()
    }

    async fn start(&self, index: usize, launch: Launch) -> Result<(), PlatformError> {
        self.supervised()
            .entry(index)
            .or_insert_with(|| Supervised {
                launch: launch.clone(),
                restarts: Restarts::new(Instant::now()),
            });
        self.spawn(index, launch).await
    }

    async fn is_ready(&self, index: usize) -> bool {
        self.running_pid(index).is_some()
            && self.admin.status(&self.member(index).address).await.is_ok()
    }

    async fn stop(&self, index: usize) -> Result<(), PlatformError> {
        self.terminate(index).await;
        // The member left the ring and its data lives elsewhere; a later
        // member with the same index starts clean, maybe on another port.
        let dir = self.dir(index);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(format!("remove {}", dir.display())))?;
        }
        let mut ports = lock(&self.ports);
        ports.release(&self.id(index));
        ports.save()
    }
}

impl LocalPlatform {
    /// The TLS flags of member `id`: none for a plaintext cluster.
    fn tls_args(&self, id: &str) -> Result<Vec<std::ffi::OsString>, PlatformError> {
        let Some(ca) = &self.tls else {
            return Ok(Vec::new());
        };
        let issued = ca.member(id).map_err(|error| PlatformError::Io {
            action: format!("issue the certificate of {id}"),
            source: std::io::Error::other(error),
        })?;
        Ok(vec![
            "--tls-ca".into(),
            ca.ca().into(),
            "--tls-cert".into(),
            issued.cert.into(),
            "--tls-key".into(),
            issued.key.into(),
        ])
    }

    /// Starts the process of member `index` unless it runs already.
    async fn spawn(&self, index: usize, launch: Launch) -> Result<(), PlatformError> {
        if self.running_pid(index).is_some() {
            return Ok(());
        }
        let member = self.member(index);
        let offset = self.offset(index);
        if offset >= HTTP_PORT_OFFSET {
            return Err(PlatformError::Io {
                action: format!("give {} a port", member.id),
                source: std::io::Error::other(format!(
                    "a local cluster runs at most {HTTP_PORT_OFFSET} members"
                )),
            });
        }
        // The port is on disk before a process listens on it.
        lock(&self.ports).save()?;
        let dir = self.dir(index);
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let log_path = dir.join("node.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("open {}", log_path.display())))?;
        let log_copy = log
            .try_clone()
            .map_err(io(format!("open {}", log_path.display())))?;
        let mut command = Command::new(&self.node_binary);
        command
            .arg("--id")
            .arg(&member.id)
            .arg("--listen")
            .arg(&member.address)
            .arg("--http-listen")
            .arg(format!(
                "127.0.0.1:{}",
                self.port(HTTP_PORT_OFFSET + offset)
            ))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--cluster")
            .arg(&self.name)
            .args(&self.node_args)
            .args(self.tls_args(&member.id)?)
            .stdin(Stdio::null())
            .stdout(log_copy)
            .stderr(log);
        match launch {
            Launch::Bootstrap { members } => {
                // With their pools' zones, so the first ring places
                // replicas by zone; weights come with the next ring.
                let list: Vec<String> = members
                    .iter()
                    .map(|m| match m.zone.as_str() {
                        "" => format!("{}={}", m.id, m.address),
                        zone => format!("{}={}@{zone}", m.id, m.address),
                    })
                    .collect();
                command.arg("--member").arg(list.join(","));
            }
            Launch::Join { seeds } => {
                if !seeds.is_empty() {
                    command.arg("--seed").arg(seeds.join(","));
                }
            }
        }
        let child = command
            .spawn()
            .map_err(io(format!("start {}", self.node_binary.display())))?;
        if let Some(pid) = child.id() {
            let pid_file = self.pid_file(index);
            std::fs::write(&pid_file, pid.to_string())
                .map_err(io(format!("write {}", pid_file.display())))?;
        }
        info!(member = member.id, address = member.address, "started");
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index, child);
        Ok(())
    }
}

/// Options of `dynamo-operator local`.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// The DynamoCluster manifest to follow.
    pub manifest: PathBuf,
    /// Root of the members' data directories.
    pub data_dir: PathBuf,
    /// Port of member 0; member i of a cluster without pools listens on
    /// base+i, pool members on the free ports above.
    pub base_port: u16,
    /// The `dynamo-node` binary.
    pub node_binary: PathBuf,
    /// Deadline of each Admin call to the members.
    pub admin_timeout: Duration,
    /// Run a mutual-TLS cluster with certificates from a CA kept in
    /// `<data_dir>/<cluster>-tls`.
    pub tls: bool,
}

/// A manifest as the local platform runs it.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The cluster's spec, validated.
    pub spec: DynamoClusterSpec,
    /// The shape the driver works towards.
    pub shape: Shape,
    /// The node flags the spec implies.
    pub node_args: Vec<String>,
}

/// Reads the manifest and turns it into the shape the driver works towards
/// and the node flags it implies.
///
/// # Errors
/// When the file cannot be read or the spec is invalid.
pub fn read_manifest(path: &Path) -> Result<Manifest, LocalError> {
    let text = std::fs::read_to_string(path).map_err(|source| LocalError::ReadManifest {
        path: path.to_owned(),
        source,
    })?;
    let cluster = DynamoCluster::from_yaml(&text).map_err(|source| LocalError::ParseManifest {
        path: path.to_owned(),
        source,
    })?;
    cluster
        .spec
        .validate()
        .map_err(|source| LocalError::InvalidSpec {
            path: path.to_owned(),
            source,
        })?;
    pools::check_slots(&cluster.spec).map_err(|reason| LocalError::InvalidPools {
        path: path.to_owned(),
        reason,
    })?;
    let spec = &cluster.spec;
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let shape = Shape::from_spec(&name, spec, pools::members(spec));
    let node_args = vec![
        format!("--partitions={}", spec.partitions),
        format!("--n={}", spec.replication.factor),
        format!("--r={}", spec.replication.read_quorum),
        format!("--w={}", spec.replication.write_quorum),
        format!("--durability={}", spec.durability.as_str()),
    ];
    Ok(Manifest {
        spec: cluster.spec,
        shape,
        node_args,
    })
}

/// Reads the edited manifest and checks it may follow `running`: the
/// transition rules the API server would apply (partitions fixed, buckets
/// kept with their factor).
///
/// # Errors
/// As [`read_manifest`], or [`LocalError::InvalidChange`].
pub fn read_edited_manifest(
    path: &Path,
    running: &DynamoClusterSpec,
) -> Result<Manifest, LocalError> {
    let manifest = read_manifest(path)?;
    manifest
        .spec
        .validate_update(running)
        .map_err(|source| LocalError::InvalidChange {
            path: path.to_owned(),
            source,
        })?;
    Ok(manifest)
}

/// The operator's TLS options: its own certificate from `ca`.
fn operator_tls(ca: &LocalCa) -> Result<dynamo_client::TlsOptions, LocalError> {
    let operator = ca.operator()?;
    dynamo_client::TlsOptions::from_files(&ca.ca(), Some(&operator.cert), Some(&operator.key))
        .map_err(|error| {
            LocalError::Certificates(CertError::File {
                action: "load",
                path: operator.cert.clone(),
                source: std::io::Error::other(error),
            })
        })
}

/// Runs the local platform until Ctrl-C or SIGTERM, then stops every member.
///
/// # Errors
/// When the manifest is invalid at start or a member cannot be started.
pub async fn run(options: LocalOptions) -> Result<(), LocalError> {
    // Listen for signals before any member starts, so none is orphaned.
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    // Taken before the manifest is read: an edit made while the members
    // start is still seen as one.
    let mut modified = modified_at(&options.manifest);
    let Manifest {
        mut spec,
        shape,
        node_args,
    } = read_manifest(&options.manifest)?;
    std::fs::create_dir_all(&options.data_dir)
        .map_err(io(format!("create {}", options.data_dir.display())))?;
    let state_file = options.data_dir.join(format!("{}-driver.json", shape.name));
    let state: DriverState = match std::fs::read(&state_file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| LocalError::CorruptState {
            path: state_file.clone(),
            source,
        })?,
        Err(_) => DriverState::default(),
    };
    let ca = if options.tls {
        let ca = LocalCa::open(
            &options.data_dir.join(format!("{}-tls", shape.name)),
            &shape.name,
        )?;
        let client = ca.client()?;
        info!(
            "TLS: dynamoctl --ca {} --cert {} --key {}",
            ca.ca().display(),
            client.cert.display(),
            client.key.display()
        );
        Some(ca)
    } else {
        None
    };
    let admin_tls = match &ca {
        Some(ca) => Some(operator_tls(ca)?),
        None => None,
    };
    let admin = Arc::new(GrpcAdmin::new(options.admin_timeout, admin_tls));
    let mut platform = LocalPlatform::new(
        &shape.name,
        &spec,
        options.base_port,
        &options.data_dir,
        &options.node_binary,
        node_args,
        Arc::clone(&admin),
    )?;
    if let Some(ca) = ca {
        platform = platform.with_tls(ca);
    }
    // Members that ran before (an earlier operator stopped them) come back
    // with their data and persisted ring.
    let existing = platform.existing_members();
    let previous: Vec<pb::Member> = existing.iter().map(|&i| platform.member(i)).collect();
    for &index in &existing {
        let launch = Launch::Bootstrap {
            members: previous.clone(),
        };
        platform.start(index, launch).await?;
    }
    let mut driver = Driver::new(platform, admin, shape.clone(), state);
    let mut announced = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
        let now_modified = modified_at(&options.manifest);
        if now_modified != modified {
            modified = now_modified;
            match read_edited_manifest(&options.manifest, &spec) {
                Ok(manifest) => {
                    info!(replicas = manifest.shape.replicas(), "manifest changed");
                    driver.platform().set_spec(&manifest.spec);
                    driver.set_shape(manifest.shape);
                    spec = manifest.spec;
                }
                Err(error) => warn!("ignoring the edited manifest: {error}"),
            }
        }
        let converged = match driver.step().await {
            Ok(converged) => converged,
            Err(error) => {
                warn!("driver step failed: {error}");
                false
            }
        };
        driver.platform().supervise().await;
        let serialized =
            serde_json::to_vec_pretty(driver.state()).expect("the driver state serializes");
        std::fs::write(&state_file, serialized)
            .map_err(io(format!("write {}", state_file.display())))?;
        if converged && announced != Some(driver.state().members) {
            announced = Some(driver.state().members);
            announce(&driver);
        }
    }
    info!("stopping every member");
    driver.platform().shutdown().await;
    Ok(())
}

fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, PlatformError> {
    tokio::signal::unix::signal(kind).map_err(io("listen for signals"))
}

fn announce(driver: &Driver<LocalPlatform>) {
    let Some(ring) = driver.ring() else {
        return;
    };
    println!(
        "DynamoKV is running with {} members (ring epoch {}):",
        ring.members.len(),
        ring.epoch
    );
    for member in &ring.members {
        println!("  {}  {}", member.id, member.address);
    }
    let Some(first) = ring.members.first().map(|member| &member.address) else {
        return;
    };
    println!(
        "Try: dynamoctl --endpoint {first} put hello world && dynamoctl --endpoint {first} get hello"
    );
}

/// Locks `mutex`, taking over its value if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn modified_at(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
