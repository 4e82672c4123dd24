//! The Kubernetes end-to-end suite (`scripts/e2e/run`): the README's guide
//! on a real kube-apiserver and kube-controller-manager, with a stand-in
//! kubelet that runs the storage pods as `dynamo-node` processes and the
//! operator out of the cluster with the chart's ServiceAccount.
//!
//! It runs when `DYNAMO_REQUIRE_E2E=1` (CI: a missing prerequisite then
//! fails the test) or when the control plane binaries are already built
//! (`scripts/e2e/build-control-plane`) and the test runs as root; otherwise
//! it prints why it skips.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, ensure};
use dynamo_tests::process::{dynamoctl_binary, node_binary, operator_binary};

/// Why the suite cannot run here, if it cannot.
fn missing_prerequisite(workspace: &Path) -> Option<String> {
    // /proc/self belongs to the process's effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return Some("it needs root for its private mount namespace".into());
    }
    let cached = Command::new(workspace.join("scripts/e2e/build-control-plane"))
        .arg("--cached")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match cached {
        Ok(status) if status.success() => None,
        _ => Some(
            "the control plane is not built: run scripts/e2e/build-control-plane (about 11 minutes)".into(),
        ),
    }
}

#[test]
fn the_readme_kubernetes_guide_works_on_a_real_control_plane() -> anyhow::Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    let required = std::env::var("DYNAMO_REQUIRE_E2E").is_ok_and(|v| v == "1");
    if !required && let Some(reason) = missing_prerequisite(workspace) {
        eprintln!(
            "skipping the Kubernetes end-to-end suite: {reason} (DYNAMO_REQUIRE_E2E=1 makes this an error)"
        );
        return Ok(());
    }
    let node = node_binary()?;
    let operator = operator_binary()?;
    dynamoctl_binary()?;
    let target = node.parent().context("the node binary has no directory")?;
    ensure!(
        operator.parent() == Some(target),
        "dynamo-node and dynamo-operator are in different directories"
    );
    let status = Command::new(workspace.join("scripts/e2e/run"))
        .env("DYNAMO_E2E_TARGET", target)
        .stdin(Stdio::null())
        .status()
        .context("run scripts/e2e/run")?;
    ensure!(
        status.success(),
        "the Kubernetes end-to-end suite failed ({status}); its output above shows the step, the objects and the logs"
    );
    Ok(())
}
