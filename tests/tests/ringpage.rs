//! The ring page served by a node, rendered by headless Chromium: every
//! partition is drawn, members show their state, hints queued show up, and
//! a screenshot is taken.
//!
//! Skipped with a notice when `/usr/bin/chromium` is missing, unless
//! `DYNAMO_REQUIRE_CHROMIUM=1`, which turns the absence into a failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dynamo_node::ring::Replication;
use dynamo_tests::{Cluster, http, put, wait};

const CHROMIUM: &str = "/usr/bin/chromium";
const PARTITIONS: usize = 64;

/// How long one Chromium run may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// A Chromium process, killed and reaped when dropped.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The browser to use, or `None` (with a notice) when the test is skipped.
fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(CHROMIUM);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("DYNAMO_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
        "DYNAMO_REQUIRE_CHROMIUM=1 but {CHROMIUM} is missing (apt-get install chromium)"
    );
    eprintln!(
        "NOTICE: skipping the ring page test: {CHROMIUM} is missing (apt-get install chromium)"
    );
    None
}

/// Runs headless Chromium on `url` with `extra` arguments, its stdout in
/// `dir/stdout`, and waits for it to exit. Returns what it printed.
async fn run_browser(
    binary: &Path,
    dir: &Path,
    run: &str,
    url: &str,
    extra: &[String],
) -> anyhow::Result<String> {
    let profile = dir.join(format!("profile-{run}"));
    let stdout = dir.join(format!("{run}.out"));
    let stderr = dir.join(format!("{run}.err"));
    let child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout)?)
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()?;
    let mut browser = Browser(child);
    let status = wait::until(
        &format!("chromium ({run}) to exit"),
        BROWSER_TIMEOUT,
        || {
            let status = browser.0.try_wait();
            async move { Ok(status?) }
        },
    )
    .await;
    let status = match status {
        Ok((status, _)) => status,
        Err(error) => {
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            return Err(error.context(log));
        }
    };
    anyhow::ensure!(
        status.success(),
        "chromium ({run}) failed with {status}: {}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    Ok(std::fs::read_to_string(&stdout)?)
}

/// The `<tr>` of `member` in the members table of `dom`.
fn member_row<'a>(dom: &'a str, member: &str) -> Option<&'a str> {
    let start = dom.find(&format!("{member}</td>"))?;
    let end = start + dom[start..].find("</tr>")?;
    Some(&dom[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ring_page_draws_partitions_members_and_hints() -> anyhow::Result<()> {
    let Some(binary) = chromium() else {
        return Ok(());
    };
    let mut cluster = Cluster::start_with(4, Replication { n: 3, r: 2, w: 2 }, |config| {
        config.http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.background.suspect_after_ms = 500;
        config.background.gossip_interval_ms = 100;
        config.background.anti_entropy_interval_ms = 0;
    })
    .await?;
    let address = cluster.http_address(0).expect("node 0 serves HTTP");
    // node-3 goes down; writes it replicates leave hints, some on node 0.
    cluster.stop(3).await?;
    let mut client = cluster.kv(0).await?;
    for k in 0..60 {
        client.put(put(&format!("key-{k}"), "value", &[])).await?;
    }
    let hints_for_node_3 = |view: &serde_json::Value| {
        view["hints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["target"] == "node-3")
            .and_then(|h| h["keys"].as_u64())
    };
    let (view, _) = wait::until(
        "node 0 to see node-3 down with hints",
        Duration::from_secs(20),
        || async {
            let response = http::get(address, "/api/ring").await?;
            let view: serde_json::Value = serde_json::from_str(&response.body)?;
            let down = view["members"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["id"] == "node-3" && m["liveness"] == "down");
            let hints = hints_for_node_3(&view).is_some_and(|keys| keys > 0);
            Ok((down && hints).then_some(view))
        },
    )
    .await?;
    // Fallback writes may still land after their puts were acknowledged,
    // so the page's count lies between what the API said before and after.
    let hints_before = hints_for_node_3(&view).expect("hints for node-3");

    let dir = tempfile::tempdir()?;
    let url = format!("http://{address}/");
    let dom = run_browser(&binary, dir.path(), "dom", &url, &["--dump-dom".into()]).await?;
    assert!(
        dom.contains("data-rendered=\"true\""),
        "the page never rendered:\n{dom}"
    );
    assert_eq!(
        dom.matches("class=\"partition").count(),
        PARTITIONS,
        "one arc per partition"
    );
    assert!(dom.contains(&format!("data-partitions=\"{PARTITIONS}\"")));
    for i in 0..3 {
        let row = member_row(&dom, &format!("node-{i}")).expect("member row");
        assert!(
            row.contains("class=\"state-up\"") || row.contains("class=\"state-self\""),
            "{row}"
        );
    }
    let after: serde_json::Value =
        serde_json::from_str(&http::get(address, "/api/ring").await?.body)?;
    let hints_after = hints_for_node_3(&after).expect("hints for node-3");
    let row = member_row(&dom, "node-3").expect("node-3 row");
    assert!(row.contains("<td class=\"state-down\">down</td>"), "{row}");
    let shown: u64 = row
        .rsplit("<td>")
        .next()
        .and_then(|cell| cell.strip_suffix("</td>"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no hint count in {row}"));
    assert!(
        (hints_before..=hints_after).contains(&shown),
        "the page shows {shown} hints, the API {hints_before} before and {hints_after} after: {row}"
    );

    let screenshot = dir.path().join("ring.png");
    run_browser(
        &binary,
        dir.path(),
        "screenshot",
        &url,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,800".into(),
        ],
    )
    .await?;
    let png = std::fs::read(&screenshot)?;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a {} byte screenshot is blank",
        png.len()
    );
    if let Ok(keep) = std::env::var("DYNAMO_RING_SCREENSHOT") {
        std::fs::copy(&screenshot, keep)?;
    }
    cluster.shutdown().await
}
