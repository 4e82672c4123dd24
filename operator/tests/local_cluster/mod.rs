//! A `dynamo-operator local` process for tests, following a manifest in a
//! temporary directory. Dropping it kills the operator and every node that
//! has a pid file under its data directory, whatever the members are
//! called, so no process outlives a failed test.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use dynamo_operator::local::HTTP_PORT_OFFSET;
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How long a cluster may take to reach the state a test waits for.
pub const CONVERGENCE: Duration = Duration::from_secs(180);

/// The operator process and its temporary directory.
pub struct LocalOperator {
    child: Option<Child>,
    /// Holds the directory until the guard is dropped.
    _dir: tempfile::TempDir,
    root: PathBuf,
    name: String,
    /// Port of the first member.
    pub base_port: u16,
}

impl LocalOperator {
    /// Writes `manifest` (of cluster `name`) and starts the operator on it.
    pub fn start(name: &str, manifest: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().to_owned();
        let mut operator = Self {
            child: None,
            _dir: dir,
            root,
            name: name.to_owned(),
            base_port: base_port(),
        };
        operator.edit(manifest);
        operator.spawn();
        operator
    }

    fn manifest(&self) -> PathBuf {
        self.root.join("cluster.yaml")
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("operator.log"))
            .expect("open the operator log");
        let child = Command::new(env!("CARGO_BIN_EXE_dynamo-operator"))
            .arg("local")
            .arg("-f")
            .arg(self.manifest())
            .arg("--data-dir")
            .arg(self.data())
            .arg("--base-port")
            .arg(self.base_port.to_string())
            .stdout(log.try_clone().expect("share the operator log"))
            .stderr(log)
            .spawn()
            .expect("start dynamo-operator");
        self.child = Some(child);
    }

    /// Replaces the manifest; the operator reads it on its next tick.
    pub fn edit(&self, manifest: &str) {
        std::fs::write(self.manifest(), manifest).expect("write the manifest");
    }

    /// SIGKILL: the operator dies; its nodes keep running.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the operator again after [`crash`](Self::crash).
    pub fn restart(&mut self) {
        self.crash();
        self.spawn();
    }

    /// The driver's persisted state.
    pub fn state(&self) -> serde_json::Value {
        std::fs::read(self.data().join(format!("{}-driver.json", self.name)))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The operator's log and what it printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("operator.log")).unwrap_or_default()
    }

    /// The last lines of the operator's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The data directory of member `id`.
    pub fn member_dir(&self, id: &str) -> PathBuf {
        self.data().join(id)
    }

    /// Address of the member on the base port (the first member to start).
    pub fn first_address(&self) -> String {
        format!("127.0.0.1:{}", self.base_port)
    }

    /// Waits until the driver reports `members` members and nothing to do.
    pub async fn converged(&self, members: usize) -> anyhow::Result<()> {
        self.wait_for(&format!("convergence to {members} members"), || {
            let state = self.state();
            state["members"] == members && state["step"]["step"] == "idle"
        })
        .await
    }

    /// Waits until the operator's log contains `text`.
    pub async fn logged(&self, text: &str) -> anyhow::Result<()> {
        self.logged_after(0, text).await
    }

    /// The length of the log so far, for [`logged_after`](Self::logged_after).
    pub fn log_mark(&self) -> usize {
        self.log().len()
    }

    /// Waits until the log past `mark` contains `text`.
    pub async fn logged_after(&self, mark: usize, text: &str) -> anyhow::Result<()> {
        self.wait_for(&format!("the log line {text:?}"), || {
            self.log().get(mark..).is_some_and(|new| new.contains(text))
        })
        .await
    }

    /// Waits until `done` holds, for at most [`CONVERGENCE`]; the error
    /// carries the driver's state and the log's tail.
    pub async fn wait_for(&self, what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
        until(what, CONVERGENCE, || async { Ok(done().then_some(())) })
            .await
            .map(|_| ())
            .map_err(|error| self.explained(error))
    }

    /// `error` with the driver's state and the log's tail.
    fn explained(&self, error: anyhow::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "{error:#}; driver state {}\n{}",
            self.state(),
            self.log_tail()
        )
    }

    /// The ring served by the first member answering on the base port or
    /// the 7 ports above it.
    pub async fn any_ring(&self) -> anyhow::Result<pb::GetRingResponse> {
        let mut last = Err(anyhow::anyhow!("no port to ask"));
        for offset in 0..8 {
            last = ring(&format!("127.0.0.1:{}", self.base_port + offset)).await;
            if last.is_ok() {
                break;
            }
        }
        last
    }

    /// Waits until the ring a member serves satisfies `done`, and returns
    /// it.
    pub async fn ring_where(
        &self,
        what: &str,
        done: impl Fn(&pb::GetRingResponse) -> bool,
    ) -> anyhow::Result<pb::GetRingResponse> {
        let wanted = format!("a ring with {what}");
        until(&wanted, CONVERGENCE, || async {
            let ring = self.any_ring().await?;
            Ok(done(&ring).then_some(ring))
        })
        .await
        .map(|(ring, _)| ring)
        .map_err(|error| self.explained(error))
    }
}

/// Pause between two checks of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Checks `condition` every [`POLL_INTERVAL`] until it returns `Ok(Some)`,
/// and returns that value with the time it took. `Ok(None)` and errors mean
/// "not yet"; the last error goes in the timeout's message.
///
/// # Errors
/// When `timeout` passes first.
pub async fn until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut condition: F,
) -> anyhow::Result<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last = String::from("condition still false");
    loop {
        match tokio::time::timeout_at(deadline, condition()).await {
            Ok(Ok(Some(value))) => return Ok((value, started.elapsed())),
            Ok(Ok(None)) => last = String::from("condition still false"),
            Ok(Err(error)) => last = format!("{error:#}"),
            Err(_) => last = format!("the last check was still running ({last})"),
        }
        anyhow::ensure!(
            Instant::now() + POLL_INTERVAL < deadline,
            "timed out after {timeout:?} waiting for {what}: {last}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

impl Drop for LocalOperator {
    fn drop(&mut self) {
        self.crash();
        // Nodes outlive a killed operator: kill them through their pid files.
        let Ok(entries) = std::fs::read_dir(self.data()) else {
            return;
        };
        for entry in entries.flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path().join("pid"))
                && let Ok(pid) = text.trim().parse::<i32>()
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// The ring a node at `address` serves.
pub async fn ring(address: &str) -> anyhow::Result<pb::GetRingResponse> {
    let mut admin = AdminClient::connect(format!("http://{address}")).await?;
    Ok(admin.get_ring(pb::GetRingRequest {}).await?.into_inner())
}

/// The `/metrics` text of the member serving gRPC at `address`.
pub async fn metrics(address: &str) -> anyhow::Result<String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("no port in {address}"))?;
    let http = format!("{host}:{}", port.parse::<u16>()? + HTTP_PORT_OFFSET);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&http).await?;
        stream
            .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n").as_bytes())
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange).await??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP response from {http}"))?;
    anyhow::ensure!(head.contains(" 200 "), "{http}/metrics answered {head}");
    Ok(body.to_owned())
}

/// The value of the sample `name{labels}` in metrics `text`, the labels
/// given as `key="value"` pairs in any order; 0 when there is none.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (set, value) = rest.split_once("} ")?;
            labels
                .iter()
                .all(|label| set.split(',').any(|l| l == *label))
                .then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// A base port with 8 free ports above it, and 8 more at the local
/// platform's HTTP offset above them.
pub fn base_port() -> u16 {
    for _ in 0..100 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = listener.local_addr().expect("address").port();
        drop(listener);
        if base < 60_000 - HTTP_PORT_OFFSET
            && (0..8).all(|i| {
                [base + i, base + HTTP_PORT_OFFSET + i]
                    .iter()
                    .all(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
            })
        {
            return base;
        }
    }
    panic!("no free port range");
}
