//! The README's local tour, run as written: `dynamo-operator local` starts
//! the cluster of the README's set-up command, and every command of the
//! "A short tour" block runs through `sh` with `dynamoctl` standing for the
//! built binary. Each command's exit code and output are checked against
//! what the README says it does. A tour command the test does not know, or
//! a checked step the tour no longer has, fails the test.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use dynamo_client::Client;
use dynamo_tests::process::{dynamoctl_binary, node_binary, operator_binary};
use dynamo_tests::wait;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// The README's tour section and its set-up section.
const TOUR_HEADING: &str = "## A short tour";
const SETUP_HEADING: &str = "## Set up";
/// How the tour defines `dynamoctl`.
const ALIAS_PREFIX: &str = "alias dynamoctl=";

/// How long the first members may take to form the cluster.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a scale change may take to be committed.
const SCALE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one tour command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tour_command_works_as_the_readme_says() -> anyhow::Result<()> {
    let workspace = workspace_root();
    let readme = std::fs::read_to_string(workspace.join("README.md")).context("read README")?;
    let manifest_path = setup_manifest(&readme)?;
    let tour = tour_commands(&readme)?;

    let dynamoctl = dynamoctl_binary()?;
    let operator_binary = operator_binary()?;
    let node = node_binary()?;

    // The tour runs in a scratch directory holding a copy of the manifest
    // at the README's path, since `dynamoctl scale` edits it.
    let dir = tempfile::Builder::new()
        .prefix("dynamo-readme-tour-")
        .tempdir()?;
    let manifest = dir.path().join(&manifest_path);
    std::fs::create_dir_all(manifest.parent().context("the manifest has a directory")?)?;
    std::fs::copy(workspace.join(&manifest_path), &manifest)
        .with_context(|| format!("copy {}", manifest_path.display()))?;
    let replicas = manifest_replicas(&manifest)?;

    let base_port = free_port_range(8)?;
    let endpoint = format!("127.0.0.1:{base_port}");
    let mut operator = Operator::start(&operator_binary, &node, dir.path(), &manifest, base_port)?;
    let took = operator.wait_for_members(replicas, START_TIMEOUT).await?;
    eprintln!("{replicas} members up in {took:?}");

    let shell = Shell {
        dynamoctl,
        endpoint: endpoint.clone(),
        dir: dir.path().to_owned(),
    };
    let mut state = TourState {
        members: replicas,
        ..TourState::default()
    };
    for line in &tour {
        let step = Step::parse(line)?;
        let started = std::time::Instant::now();
        let output = shell.run(line).await?;
        eprintln!("{:>6.1?}  {line}", started.elapsed());
        let out = String::from_utf8_lossy(&output.stdout).into_owned();
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        let code = output.status.code();
        let context = || format!("`{line}` exited with {code:?}\nstdout:\n{out}\nstderr:\n{err}");
        // Every command but the not-found read exits 0 (that one ends with
        // `echo`, which does).
        ensure!(code == Some(0), "{}", context());
        match step {
            Step::Put {
                value,
                with_context: false,
            } => {
                ensure!(out.starts_with("OK context="), "{}", context());
                state.live.push(value);
            }
            Step::Put {
                value,
                with_context: true,
            } => {
                ensure!(out.starts_with("OK context="), "{}", context());
                state.live = vec![value.clone()];
                // The write with the read's context replaced every sibling.
                let read = shell.run("dynamoctl get cart --output json").await?;
                let (values, _) = siblings(&read.stdout)?;
                ensure!(values == [value.clone()], "after `{line}`: {values:?}");
                state.resolved = Some(value);
            }
            Step::Get { json: false } => {
                ensure!(
                    !state.live.is_empty(),
                    "the tour reads a key it did not write"
                );
                for value in &state.live {
                    ensure!(
                        out.lines()
                            .any(|l| l == value || l.ends_with(&format!(": {value}"))),
                        "{value} missing; {}",
                        context()
                    );
                }
                ensure!(out.contains("context: "), "{}", context());
            }
            Step::Get { json: true } => {
                let (mut values, token) = siblings(&output.stdout)?;
                values.sort();
                let mut expected = state.live.clone();
                expected.sort();
                ensure!(values == expected, "siblings {values:?}; {}", context());
                ensure!(!token.is_empty(), "no context; {}", context());
                state.most_siblings = state.most_siblings.max(values.len());
            }
            Step::GetMissing => {
                ensure!(
                    state.live.is_empty(),
                    "the tour expects a live key to be missing"
                );
                ensure!(out.contains("not found"), "{}", context());
                ensure!(out.contains("exit code 3"), "{}", context());
                state.not_found = true;
            }
            Step::Delete => {
                ensure!(out.starts_with("OK context="), "{}", context());
                state.live.clear();
            }
            Step::Status => {
                let ring = Client::connect(&endpoint).await?.ring();
                let ids: Vec<&str> = ring.members().iter().map(|m| m.id.as_str()).collect();
                ensure!(ids.len() == state.members, "ring members {ids:?}");
                let rows: Vec<&str> = out
                    .lines()
                    .filter(|l| {
                        l.split_whitespace()
                            .next()
                            .is_some_and(|id| ids.contains(&id))
                    })
                    .collect();
                ensure!(rows.len() == state.members, "{}", context());
                ensure!(
                    rows.iter()
                        .all(|row| row.split_whitespace().any(|word| word == "up")),
                    "a member is not up; {}",
                    context()
                );
                state.status_members = Some(rows.len());
            }
            Step::Ring => {
                let ring = Client::connect(&endpoint).await?.ring();
                let header = format!("Q={} N={}", ring.partitions(), ring.n());
                ensure!(out.contains(&header), "{header} missing; {}", context());
                let ids: Vec<&str> = ring.members().iter().map(|m| m.id.as_str()).collect();
                let partition_rows = out
                    .lines()
                    .filter(|l| {
                        let mut words = l.split_whitespace();
                        words.next().is_some_and(|w| w.parse::<usize>().is_ok())
                            && words.next().is_some_and(|owner| ids.contains(&owner))
                    })
                    .count();
                ensure!(partition_rows == ring.partitions(), "{}", context());
                state.ring_partitions = Some(partition_rows);
            }
            Step::Scale { replicas, file } => {
                ensure!(
                    file == manifest_path,
                    "the tour scales {} but the cluster runs {}",
                    file.display(),
                    manifest_path.display()
                );
                ensure!(manifest_replicas(&manifest)? == replicas, "{}", context());
                let took = operator.wait_for_members(replicas, SCALE_TIMEOUT).await?;
                eprintln!("scaled to {replicas} members in {took:?}");
                let status = shell.run("dynamoctl status --output json").await?;
                let rows: serde_json::Value = serde_json::from_slice(&status.stdout)
                    .with_context(|| String::from_utf8_lossy(&status.stderr).into_owned())?;
                let rows = rows.as_array().context("status is a list")?;
                ensure!(rows.len() == replicas, "status after scaling: {rows:?}");
                ensure!(
                    rows.iter().all(|row| row["state"] == "up"),
                    "status after scaling: {rows:?}"
                );
                state.members = replicas;
                state.scaled_to = Some(replicas);
            }
            Step::DeclareBucket { name } => {
                let wanted = name.clone();
                let endpoint = endpoint.clone();
                let (_, took) = wait::until("the bucket in the ring", SCALE_TIMEOUT, || {
                    let (endpoint, wanted) = (endpoint.clone(), wanted.clone());
                    async move {
                        let ring = Client::connect(&endpoint).await?.ring();
                        Ok(ring
                            .buckets()
                            .iter()
                            .any(|b| b.name == wanted)
                            .then_some(()))
                    }
                })
                .await?;
                eprintln!("bucket {name} committed in {took:?}");
                state.bucket = Some(name);
            }
            Step::BucketPut { bucket, value } => {
                ensure!(
                    state.bucket.as_ref() == Some(&bucket),
                    "the tour writes to bucket {bucket} before declaring it"
                );
                ensure!(out.starts_with("OK context="), "{}", context());
                state.bucket_value = Some(value);
            }
            Step::BucketGet { bucket } => {
                let value = state
                    .bucket_value
                    .as_ref()
                    .with_context(|| format!("the tour reads bucket {bucket} before writing it"))?;
                ensure!(
                    out.lines()
                        .any(|l| l == value || l.ends_with(&format!(": {value}"))),
                    "{value} missing; {}",
                    context()
                );
                state.bucket_read = true;
            }
            Step::BucketRing { bucket } => {
                let ring = Client::connect(&endpoint).await?.ring();
                let n = ring.bucket_n(&bucket).context("the bucket is declared")? as usize;
                let ids: Vec<&str> = ring.members().iter().map(|m| m.id.as_str()).collect();
                let lists = out
                    .lines()
                    .filter_map(|l| {
                        let words: Vec<&str> = l.split_whitespace().collect();
                        (words.len() >= 3
                            && words[0].parse::<usize>().is_ok()
                            && ids.contains(&words[1]))
                        .then(|| words[2].split(',').count())
                    })
                    .collect::<Vec<_>>();
                ensure!(
                    lists.len() == ring.partitions() && lists.iter().all(|&len| len == n),
                    "every partition should list {n} replicas; {}",
                    context()
                );
                state.bucket_ring = true;
            }
            Step::Bench => {
                ensure!(out.contains("closed loop"), "{}", context());
                for op in ["read", "write"] {
                    let row: Vec<&str> = out
                        .lines()
                        .find(|l| l.split_whitespace().next() == Some(op))
                        .with_context(|| format!("no {op} row; {}", context()))?
                        .split_whitespace()
                        .collect();
                    let count: u64 = row.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                    ensure!(count > 0, "no {op} counted; {}", context());
                    ensure!(row.get(2) == Some(&"0"), "{op} errors; {}", context());
                }
                state.benched = true;
            }
        }
    }
    ensure!(
        state.most_siblings == 2,
        "the tour promises two siblings; saw {}",
        state.most_siblings
    );
    ensure!(
        state.resolved.is_some(),
        "the tour no longer resolves siblings"
    );
    ensure!(state.not_found, "the tour no longer shows exit code 3");
    ensure!(
        state.status_members.is_some(),
        "the tour no longer runs status"
    );
    ensure!(
        state.ring_partitions.is_some(),
        "the tour no longer lists partitions"
    );
    ensure!(state.scaled_to.is_some(), "the tour no longer scales");
    ensure!(state.benched, "the tour no longer runs bench");
    ensure!(
        state.bucket.is_some(),
        "the tour no longer declares a bucket"
    );
    ensure!(
        state.bucket_read && state.bucket_ring,
        "the tour no longer writes, reads and lists a bucket"
    );
    operator.stop().await
}

/// What the tour has done so far, and what the next commands must see.
#[derive(Default)]
struct TourState {
    /// Live values of the key, in write order.
    live: Vec<String>,
    /// Most siblings one read returned.
    most_siblings: usize,
    /// The value that replaced the siblings.
    resolved: Option<String>,
    /// The not-found read exited with 3.
    not_found: bool,
    /// Members the cluster has.
    members: usize,
    /// Members `status` listed.
    status_members: Option<usize>,
    /// Partition rows `ring --partitions` printed.
    ring_partitions: Option<usize>,
    /// Members after `scale`.
    scaled_to: Option<usize>,
    /// `bench` reported reads and writes.
    benched: bool,
    /// The bucket the tour declared in the manifest.
    bucket: Option<String>,
    /// The value the tour wrote to that bucket.
    bucket_value: Option<String>,
    /// The tour read that value back.
    bucket_read: bool,
    /// `ring --bucket` listed the bucket's preference lists.
    bucket_ring: bool,
}

/// A tour command, as far as the test checks it.
#[derive(Debug, PartialEq)]
enum Step {
    /// `put KEY VALUE`, with or without `--context`.
    Put { value: String, with_context: bool },
    /// `get KEY`, as text or JSON.
    Get { json: bool },
    /// `get KEY; echo "exit code $?"` after the delete.
    GetMissing,
    /// `delete KEY --context ...`.
    Delete,
    /// `status`.
    Status,
    /// `ring --partitions`.
    Ring,
    /// `scale N -f FILE`.
    Scale { replicas: usize, file: PathBuf },
    /// `bench ...`.
    Bench,
    /// `grep -q ... || printf '  buckets: ...' >> FILE`: declares a bucket in
    /// the manifest unless it already declares buckets.
    DeclareBucket { name: String },
    /// `--bucket B put KEY VALUE`.
    BucketPut { bucket: String, value: String },
    /// `--bucket B get KEY`.
    BucketGet { bucket: String },
    /// `ring --bucket B`.
    BucketRing { bucket: String },
}

impl Step {
    /// Classifies a tour line by its `dynamoctl` subcommand.
    fn parse(line: &str) -> anyhow::Result<Self> {
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.contains("printf '  buckets:") && line.contains(">>") {
            let name = line
                .split("name: ")
                .nth(1)
                .and_then(|rest| rest.split([',', '}']).next())
                .with_context(|| format!("`{line}` names no bucket"))?;
            return Ok(Self::DeclareBucket {
                name: name.trim().to_owned(),
            });
        }
        ensure!(
            words.first() == Some(&"dynamoctl"),
            "tour line `{line}` does not run dynamoctl; teach readme_tour.rs what it does"
        );
        let arg = |i: usize| {
            words
                .get(i)
                .map(|w| w.trim_end_matches(';'))
                .with_context(|| format!("`{line}` is missing an argument"))
        };
        if arg(1)? == "--bucket" {
            let bucket = arg(2)?.to_owned();
            return Ok(match arg(3)? {
                "put" => Self::BucketPut {
                    bucket,
                    value: arg(5)?.to_owned(),
                },
                "get" => Self::BucketGet { bucket },
                other => bail!("tour command `{line}` ({other}) has no check in readme_tour.rs"),
            });
        }
        Ok(match arg(1)? {
            "put" => Self::Put {
                value: arg(3)?.to_owned(),
                with_context: line.contains("--context"),
            },
            "get" if line.contains("$?") => Self::GetMissing,
            "get" => Self::Get {
                json: line.contains("--output json"),
            },
            "delete" => Self::Delete,
            "status" => Self::Status,
            "ring" if line.contains("--partitions") => Self::Ring,
            "ring" if arg(2)? == "--bucket" => Self::BucketRing {
                bucket: arg(3)?.to_owned(),
            },
            "scale" => {
                let file = words
                    .iter()
                    .position(|w| *w == "-f" || *w == "--file")
                    .and_then(|i| words.get(i + 1))
                    .with_context(|| format!("`{line}` names no manifest"))?;
                Self::Scale {
                    replicas: arg(2)?.parse()?,
                    file: PathBuf::from(file),
                }
            }
            "bench" => Self::Bench,
            other => bail!("tour command `{line}` ({other}) has no check in readme_tour.rs"),
        })
    }
}

/// The live values and context of a `get --output json`.
fn siblings(stdout: &[u8]) -> anyhow::Result<(Vec<String>, String)> {
    let read: serde_json::Value = serde_json::from_slice(stdout)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(stdout)))?;
    let values = read["siblings"]
        .as_array()
        .context("no siblings array")?
        .iter()
        .filter(|s| s["tombstone"] != true)
        .filter_map(|s| s["value"].as_str().map(str::to_owned))
        .collect();
    let context = read["context"].as_str().unwrap_or_default().to_owned();
    Ok((values, context))
}

/// The workspace root (the tests crate's parent).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// The lines of the first `sh` block after `heading`.
fn sh_block<'a>(readme: &'a str, heading: &str) -> anyhow::Result<Vec<&'a str>> {
    let section = readme
        .split_once(&format!("\n{heading}\n"))
        .with_context(|| format!("README has no `{heading}` section"))?
        .1;
    let block = section
        .split_once("```sh\n")
        .with_context(|| format!("`{heading}` has no sh block"))?
        .1;
    let block = block
        .split_once("\n```")
        .with_context(|| format!("`{heading}`'s sh block is not closed"))?
        .0;
    Ok(block.lines().collect())
}

/// The manifest the README's set-up command runs `dynamo-operator local` on.
fn setup_manifest(readme: &str) -> anyhow::Result<PathBuf> {
    let line = sh_block(readme, SETUP_HEADING)?
        .into_iter()
        .find(|line| line.contains("dynamo-operator local"))
        .context("the set-up block does not run `dynamo-operator local`")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let file = words
        .iter()
        .position(|w| *w == "-f")
        .and_then(|i| words.get(i + 1))
        .context("the set-up command names no manifest")?;
    Ok(PathBuf::from(file))
}

/// The tour's commands in order, without blank lines and comments; the
/// alias that defines `dynamoctl` comes first and is left out.
fn tour_commands(readme: &str) -> anyhow::Result<Vec<String>> {
    let mut lines = sh_block(readme, TOUR_HEADING)?
        .into_iter()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let alias = lines.next().context("the tour block is empty")?;
    ensure!(
        alias.starts_with(ALIAS_PREFIX),
        "the tour should start by defining dynamoctl, not with `{alias}`"
    );
    let commands: Vec<String> = lines.map(str::to_owned).collect();
    ensure!(!commands.is_empty(), "the tour has no commands");
    Ok(commands)
}

/// `spec.replicas` of a DynamoCluster manifest.
fn manifest_replicas(path: &Path) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path)?;
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let replicas = manifest["spec"]["replicas"]
        .as_u64()
        .with_context(|| format!("{} has no spec.replicas", path.display()))?;
    Ok(usize::try_from(replicas)?)
}

/// A port with `count - 1` free ports above it, below the ephemeral range
/// so that no outgoing connection takes one of them meanwhile.
fn free_port_range(count: u16) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let base: u16 = rand::random_range(20_000..30_000);
        let free = (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return Ok(base);
        }
    }
    bail!("found no {count} free consecutive ports on 127.0.0.1")
}

/// Runs tour lines the way a user's shell does.
struct Shell {
    dynamoctl: PathBuf,
    endpoint: String,
    dir: PathBuf,
}

impl Shell {
    /// Runs `line` with `sh` in the tour directory, `dynamoctl` being the
    /// built binary and `DYNAMO_ENDPOINT` the cluster's first member. The
    /// line runs in its own process group, killed if it overstays
    /// [`COMMAND_TIMEOUT`].
    async fn run(&self, line: &str) -> anyhow::Result<Output> {
        let script = format!("dynamoctl() {{ \"$DYNAMOCTL\" \"$@\"; }}\n{line}\n");
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .env("DYNAMOCTL", &self.dynamoctl)
            .env("DYNAMO_ENDPOINT", &self.endpoint)
            .env_remove("DYNAMO_VIA_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("run sh")?;
        let group = child.id().context("sh has a pid")?;
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await;
        // Nothing of the line may outlive it (a `$(...)` still running).
        let _ = killpg(Pid::from_raw(i32::try_from(group)?), Signal::SIGKILL);
        match output {
            Ok(output) => Ok(output?),
            Err(_) => bail!("`{line}` ran longer than {COMMAND_TIMEOUT:?}"),
        }
    }
}

/// `dynamo-operator local` in its own process group, which every member it
/// starts joins; dropping it kills the whole group.
struct Operator {
    child: Option<Child>,
    stdout: PathBuf,
    log: PathBuf,
}

impl Operator {
    fn start(
        binary: &Path,
        node: &Path,
        dir: &Path,
        manifest: &Path,
        base_port: u16,
    ) -> anyhow::Result<Self> {
        let stdout = dir.join("operator.out");
        let log = dir.join("operator.log");
        let child = Command::new(binary)
            .arg("local")
            .arg("-f")
            .arg(manifest)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--base-port")
            .arg(base_port.to_string())
            .arg("--node-binary")
            .arg(node)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&log)?)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        Ok(Self {
            child: Some(child),
            stdout,
            log,
        })
    }

    /// Waits until the operator announces a committed ring of `members`.
    async fn wait_for_members(
        &mut self,
        members: usize,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let announcement = format!("DynamoKV is running with {members} members");
        let stdout = self.stdout.clone();
        let child = self.child.as_mut().context("the operator was stopped")?;
        let waited = wait::until(&announcement, timeout, || {
            let exited = child.try_wait();
            let printed = std::fs::read_to_string(&stdout);
            let announcement = &announcement;
            async move {
                if let Some(status) = exited? {
                    bail!("the operator exited with {status}");
                }
                Ok(printed?.contains(announcement.as_str()).then_some(()))
            }
        })
        .await;
        match waited {
            Ok(((), took)) => Ok(took),
            Err(error) => Err(error.context(format!("operator log:\n{}", self.log_tail()))),
        }
    }

    /// Stops the operator with SIGTERM; it stops its members first.
    async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(i32::try_from(child.id().context("operator pid")?)?);
        kill(pid, Signal::SIGTERM)?;
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .context("the operator did not stop within 30s of SIGTERM")??;
        ensure!(status.success(), "the operator exited with {status}");
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.start_kill();
            if std::thread::panicking() {
                eprintln!("----- operator log -----\n{}", self.log_tail());
            }
        }
    }
}

#[test]
fn tour_lines_are_classified_or_refused() {
    let step = |line: &str| Step::parse(line).expect("a known command");
    assert_eq!(
        step("dynamoctl put cart apples  # comment"),
        Step::Put {
            value: "apples".into(),
            with_context: false
        }
    );
    assert_eq!(
        step(r#"dynamoctl get cart; echo "exit code $?""#),
        Step::GetMissing
    );
    assert_eq!(
        step("dynamoctl scale 5 -f examples/x.yaml"),
        Step::Scale {
            replicas: 5,
            file: PathBuf::from("examples/x.yaml")
        }
    );
    assert_eq!(
        step("printf '  buckets:\\n  - {name: carts, factor: 2}\\n' >> examples/x.yaml"),
        Step::DeclareBucket {
            name: "carts".into()
        }
    );
    assert_eq!(
        step("dynamoctl --bucket carts put cart-1 apples  # comment"),
        Step::BucketPut {
            bucket: "carts".into(),
            value: "apples".into()
        }
    );
    assert_eq!(
        step("dynamoctl ring --bucket carts"),
        Step::BucketRing {
            bucket: "carts".into()
        }
    );
    for unknown in [
        "dynamoctl frobnicate cart",
        "curl 127.0.0.1:7400",
        "dynamoctl ring",
    ] {
        assert!(Step::parse(unknown).is_err(), "{unknown}");
    }
    let readme = "## A short tour\n\n```sh\nalias dynamoctl=x\n\n# note\ndynamoctl status\n```\n";
    assert_eq!(
        tour_commands(&format!("intro\n{readme}")).expect("a tour"),
        ["dynamoctl status"]
    );
    assert!(tour_commands("intro\n## A short tour\n```sh\ndynamoctl status\n```\n").is_err());
}
