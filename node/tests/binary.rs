//! The `dynamo-node` binary: configuration from a file and flags, and a
//! graceful SIGTERM that finishes requests in flight and loses nothing.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dynamo_proto::v1 as pb;
use dynamo_proto::v1::kv_client::KvClient;

/// Kills the node if the test ends early.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn spawn(dir: &std::path::Path, port: u16) -> Guard {
    let config = dir.join("node.yaml");
    std::fs::write(
        &config,
        format!(
            "id: solo\nreplication: {{n: 1, r: 1, w: 1}}\npartitions: 16\ndata_dir: {}\n",
            dir.join("data").display()
        ),
    )
    .expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_dynamo-node"))
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dynamo-node");
    Guard(child)
}

async fn connect(port: u16) -> KvClient<tonic::transport::Channel> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match KvClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(client) => return client,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node never answered: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_and_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut node = spawn(dir.path(), port);
    let client = connect(port).await;

    let writers: Vec<_> = (0..200)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let request = pb::PutRequest {
                    key: format!("key-{i}").into_bytes().into(),
                    value: format!("value-{i}").into_bytes().into(),
                    ..Default::default()
                };
                client.put(request).await.is_ok().then_some(i)
            })
        })
        .collect();
    // Signal while the writes are on the wire.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(node.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
    let mut acknowledged = Vec::new();
    for writer in writers {
        if let Some(i) = writer.await.expect("writer task") {
            acknowledged.push(i);
        }
    }
    let status = node.0.wait().expect("node exits");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let _restarted = spawn(dir.path(), port);
    let mut client = connect(port).await;
    for i in acknowledged {
        let response = client
            .get(pb::GetRequest {
                key: format!("key-{i}").into_bytes().into(),
                ..Default::default()
            })
            .await
            .expect("get after restart")
            .into_inner();
        assert_eq!(response.siblings.len(), 1, "key-{i} was acknowledged");
        assert_eq!(
            response.siblings[0].value,
            format!("value-{i}").into_bytes()
        );
    }
}

#[test]
fn a_bad_config_file_is_refused_with_its_path_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("node.yaml");
    std::fs::write(&config, "replication: {n: 3, r: 4, w: 2}\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_dynamo-node"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run dynamo-node");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("r=4"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_database_stops_the_start_naming_the_directory_and_the_repair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut node = spawn(dir.path(), port);
    let mut client = connect(port).await;
    client
        .put(pb::PutRequest {
            key: b"kept".to_vec().into(),
            value: b"v".to_vec().into(),
            ..Default::default()
        })
        .await
        .expect("put");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(node.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
    assert!(node.0.wait().expect("node exits").success());

    // fjall checks its format marker on open: a garbled one is refused.
    let data = dir.path().join("data");
    std::fs::write(data.join("version"), b"garbage").expect("garble the version marker");
    let config = dir.path().join("node.yaml");
    let mut corrupt = Command::new(env!("CARGO_BIN_EXE_dynamo-node"))
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Guard)
        .expect("start dynamo-node");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = corrupt.0.try_wait().expect("poll the node") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node kept running on a corrupt database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(
        corrupt.0.stderr.as_mut().expect("piped stderr"),
        &mut stderr,
    )
    .expect("read stderr");
    assert!(
        !status.success(),
        "a corrupt database must not start: {status}"
    );
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(stderr.contains("move"), "{stderr}");
    assert!(stderr.contains("empty data directory"), "{stderr}");

    // The repair path: the directory moved aside, the node starts empty.
    std::fs::rename(&data, dir.path().join("data.corrupt")).expect("move aside");
    let _repaired = spawn(dir.path(), port);
    let mut client = connect(port).await;
    let read = client
        .get(pb::GetRequest {
            key: b"kept".to_vec().into(),
            ..Default::default()
        })
        .await
        .expect("the repaired node serves");
    // A single node (N=1) has no replica to stream from: the key is gone,
    // which is why the repair needs the other replicas up.
    assert!(read.into_inner().siblings.is_empty());
}
