//! `dynamoctl bench` in its smoke mode against a 3-node cluster (N=3, R=2,
//! W=2): it loads, runs the mix, and reports figures for both operations.

use dynamo_node::ring::Replication;
use dynamo_tests::{Cluster, dynamoctl_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_smoke_run_reports_reads_and_writes() -> anyhow::Result<()> {
    let cluster = Cluster::start(3, Replication { n: 3, r: 2, w: 2 }).await?;
    let endpoint = cluster.address(0).to_string();
    let report = dynamoctl_json(
        &endpoint,
        &[
            "bench",
            "--records",
            "200",
            "--duration",
            "2s",
            "--warmup",
            "0s",
            "--concurrency",
            "8",
            "--value-size",
            "1024",
            "--workload",
            "a",
        ],
    )
    .await?;
    for op in ["read", "write"] {
        assert!(report[op]["count"].as_u64().unwrap_or(0) > 0, "{report}");
        assert_eq!(report[op]["errors"], 0, "{report}");
        let p50 = report[op]["p50_us"].as_u64().unwrap_or(0);
        let p999 = report[op]["p999_us"].as_u64().unwrap_or(0);
        assert!(p50 > 0 && p50 <= p999, "{report}");
    }
    assert_eq!(report["mode"], "closed");
    cluster.shutdown().await
}
