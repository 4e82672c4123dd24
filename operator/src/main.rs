//! `dynamo-operator`: runs the membership driver. `run` reconciles
//! DynamoClusters on Kubernetes, `local` drives `dynamo-node` processes on
//! this machine from a DynamoCluster manifest, and `render` prints the
//! objects the operator would make for a manifest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use dynamo_operator::admin::{self, GrpcAdmin};
use dynamo_operator::k8s::leader::{Elector, LeaseConfig};
use dynamo_operator::k8s::metrics::{self, Endpoint, Metrics};
use dynamo_operator::k8s::network::OperatorPods;
use dynamo_operator::k8s::{controller, names, platform, render};
use dynamo_operator::local::{self, LocalOptions};
use kube::runtime::events::Reporter;
use tokio::sync::watch;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "dynamo-operator", version, about = "DynamoKV operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Log line format.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Reconciles DynamoClusters on Kubernetes (in the cluster, or from
    /// KUBECONFIG).
    Run {
        /// Watch only this namespace; all namespaces when not set.
        #[arg(long, env = "WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Address of the HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_listen: SocketAddr,
        /// Log line format.
        #[arg(
            long,
            value_enum,
            default_value = "text",
            env = "DYNAMO_OPERATOR_LOG_FORMAT"
        )]
        log_format: LogFormat,
        /// Elect a leader through a Lease so that only one replica reconciles.
        /// `--leader-election` alone means true; pass `=false` to turn it off.
        #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
        leader_election: bool,
        /// Name of the Lease.
        #[arg(long, default_value = "dynamo-operator")]
        lease_name: String,
        /// Namespace of the Lease; the operator's own namespace.
        #[arg(long, env = "POD_NAMESPACE")]
        lease_namespace: Option<String>,
        /// This replica's identity in the Lease and in Events.
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// TLS for the operator's Admin calls to the nodes.
        #[command(flatten)]
        tls: TlsFlags,
        /// Labels of the operator's own pods (`k=v,k2=v2`), in the namespace
        /// of `--lease-namespace`/`POD_NAMESPACE`: the storage pods'
        /// NetworkPolicy admits them. When unset, the operator must run
        /// where every policy admits it.
        #[arg(long, env = "DYNAMO_OPERATOR_POD_LABELS")]
        operator_pod_labels: Option<String>,
    },
    /// Prints the objects the operator makes for a DynamoCluster manifest,
    /// as a multi-document YAML stream.
    Render {
        /// The DynamoCluster manifest.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Namespace of the objects when the manifest names none.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Print the DynamoCluster CRD first.
        #[arg(long)]
        crd: bool,
        /// Labels of the operator's pods (`k=v,k2=v2`), admitted by the
        /// NetworkPolicy; needs `--operator-namespace`.
        #[arg(long, requires = "operator_namespace")]
        operator_pod_labels: Option<String>,
        /// Namespace of the operator's pods.
        #[arg(long, requires = "operator_pod_labels")]
        operator_namespace: Option<String>,
    },
    /// Issues the certificates of a cluster with `spec.tls` from a CA kept
    /// in --dir and prints them as Secrets (`kubectl apply -f -`): the
    /// nodes' (`<cluster>-tls`), the operator's and a client's
    /// (`<cluster>-client-tls`, also left in --dir for dynamoctl).
    Certs {
        /// The DynamoCluster's name.
        #[arg(long)]
        cluster: String,
        /// The DynamoCluster's namespace.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The operator release's namespace, where its Secret goes.
        #[arg(long, default_value = "dynamo-system")]
        operator_namespace: String,
        /// Name of the operator's Secret (the chart's `tls.secretName`).
        #[arg(long, default_value = "dynamo-operator-tls")]
        operator_secret: String,
        /// Directory of the CA (created, or reused when it holds one) and
        /// of the issued files.
        #[arg(long, default_value = "dynamo-ca")]
        dir: PathBuf,
    },
    /// Runs a cluster of local `dynamo-node` processes described by a
    /// DynamoCluster manifest (node pools and buckets included), and
    /// follows edits of it.
    Local {
        /// The DynamoCluster manifest.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Root directory of the members' data.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Port of member 0; member i listens on base-port + i (pool
        /// members on the free ports above, kept under --data-dir) and
        /// serves HTTP (metrics, health, the ring page) 100 ports higher.
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
        /// The `dynamo-node` binary; by default the one next to this program.
        #[arg(long, env = "DYNAMO_NODE_BIN")]
        node_binary: Option<PathBuf>,
        /// Run a mutual-TLS cluster, with a CA generated under --data-dir.
        #[arg(long)]
        tls: bool,
    },
}

/// The operator's certificate for its calls to TLS nodes.
#[derive(Debug, clap::Args)]
struct TlsFlags {
    /// PEM file of the cluster CA; set for clusters that serve TLS.
    #[arg(long, env = "DYNAMO_OPERATOR_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// PEM file of the operator's certificate (its names are the nodes'
    /// `operator_names`).
    #[arg(long, env = "DYNAMO_OPERATOR_TLS_CERT", requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    /// PEM file of the operator's private key.
    #[arg(long, env = "DYNAMO_OPERATOR_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsFlags {
    /// The client TLS options the flags ask for.
    fn options(&self) -> anyhow::Result<Option<dynamo_client::TlsOptions>> {
        self.tls_ca
            .as_deref()
            .map(|ca| {
                dynamo_client::TlsOptions::from_files(
                    ca,
                    self.tls_cert.as_deref(),
                    self.tls_key.as_deref(),
                )
            })
            .transpose()
            .context("the operator's TLS files")
    }
}

fn init_logs(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(anyhow::Error::msg)
}

/// Completes on SIGTERM or SIGINT.
async fn terminated() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

/// Options of `dynamo-operator run`.
struct RunOptions {
    namespace: Option<String>,
    metrics_listen: SocketAddr,
    leader_election: bool,
    lease_name: String,
    lease_namespace: Option<String>,
    identity: Option<String>,
    tls: Option<dynamo_client::TlsOptions>,
    operator_pod_labels: Option<String>,
}

/// The operator's own pods from `--operator-pod-labels`, in its namespace.
fn operator_pods(
    labels: Option<&str>,
    namespace: Option<&str>,
) -> anyhow::Result<Option<OperatorPods>> {
    let Some(labels) = labels else {
        return Ok(None);
    };
    let namespace = namespace.context(
        "--operator-pod-labels needs the operator's namespace: --lease-namespace or POD_NAMESPACE",
    )?;
    let pods = OperatorPods::parse(namespace, labels).context("--operator-pod-labels")?;
    Ok(Some(pods))
}

async fn run(options: RunOptions) -> anyhow::Result<()> {
    let operator_pods = operator_pods(
        options.operator_pod_labels.as_deref(),
        options.lease_namespace.as_deref(),
    )?;
    match &operator_pods {
        Some(pods) => {
            info!(namespace = pods.namespace, labels = ?pods.labels, "NetworkPolicies admit the operator's pods")
        }
        None => warn!(
            "--operator-pod-labels (DYNAMO_OPERATOR_POD_LABELS) is not set: the NetworkPolicy of a cluster with spec.networkPolicy admits no operator pod, so where a network plugin enforces it the operator's Admin calls to the nodes are blocked unless its pods match spec.networkPolicy.clients"
        ),
    }
    let (stop, stopped) = watch::channel(false);
    let until = |mut receiver: watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    let signals = stop.clone();
    tokio::spawn(async move {
        if let Err(error) = terminated().await {
            warn!("cannot listen for signals: {error}");
            return;
        }
        info!("shutting down");
        let _ = signals.send(true);
    });

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let endpoint = Endpoint {
        metrics: Arc::clone(&metrics),
        ready: Arc::clone(&ready),
    };
    let server = tokio::spawn(metrics::serve(
        options.metrics_listen,
        endpoint,
        until(stopped.clone()),
    ));
    info!(listen = %options.metrics_listen, "serving /metrics, /healthz and /readyz");

    let client = kube::Client::try_default()
        .await
        .context("connect to Kubernetes (in the cluster, or through KUBECONFIG)")?;
    let identity = match options.identity {
        Some(identity) => identity,
        None => format!("dynamo-operator-{}", std::process::id()),
    };
    let elector = if options.leader_election {
        let namespace = options
            .lease_namespace
            .or_else(|| options.namespace.clone())
            .context("leader election needs --lease-namespace (or POD_NAMESPACE)")?;
        Some(Elector::new(
            client.clone(),
            LeaseConfig::new(&options.lease_name, &namespace, &identity),
        ))
    } else {
        None
    };
    ready.store(true, Ordering::Relaxed);
    if let Some(elector) = &elector {
        tokio::select! {
            () = elector.acquire() => {}
            () = until(stopped.clone()) => return Ok(()),
        }
        metrics.leader.set(1);
    }
    let (lost, lost_signal) = watch::channel(false);
    let shutdown = {
        let stopped = stopped.clone();
        let lost_signal = lost_signal.clone();
        async move {
            tokio::select! {
                () = until(stopped) => {}
                () = until(lost_signal) => {}
            }
        }
    };
    let context = Arc::new(controller::Context {
        reporter: Reporter {
            controller: names::MANAGER.into(),
            instance: Some(identity.clone()),
        },
        client,
        metrics: Arc::clone(&metrics),
        address: platform::cluster_dns(),
        admin: Arc::new(GrpcAdmin::new(admin::DEFAULT_TIMEOUT, None)),
        admin_tls: options
            .tls
            .map(|tls| Arc::new(GrpcAdmin::new(admin::DEFAULT_TIMEOUT, Some(tls)))),
        clock: k8s_openapi::jiff::Timestamp::now,
        operator_pods,
    });
    let controller = controller::run(context, options.namespace.as_deref(), shutdown);
    let result = match &elector {
        Some(elector) => {
            let hold = async {
                elector.hold().await;
                let _ = lost.send(true);
            };
            let (result, ()) = tokio::join!(controller, async {
                tokio::select! {
                    () = hold => {}
                    () = until(stopped.clone()) => {}
                }
            });
            result
        }
        None => controller.await,
    };
    let leadership_lost = *lost_signal.borrow();
    if let Some(elector) = &elector {
        metrics.leader.set(0);
        if !leadership_lost {
            elector.release().await;
        }
    }
    let _ = stop.send(true);
    server.await.context("metrics server")??;
    result?;
    anyhow::ensure!(
        !leadership_lost,
        "lost the leader Lease; exiting so that only one replica reconciles"
    );
    info!("stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Run { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    };
    init_logs(format)?;
    match cli.command {
        Command::Run {
            namespace,
            metrics_listen,
            log_format: _,
            leader_election,
            lease_name,
            lease_namespace,
            identity,
            tls,
            operator_pod_labels,
        } => {
            run(RunOptions {
                namespace,
                metrics_listen,
                leader_election,
                lease_name,
                lease_namespace,
                identity,
                tls: tls.options()?,
                operator_pod_labels,
            })
            .await
        }
        Command::Render {
            file,
            namespace,
            crd,
            operator_pod_labels,
            operator_namespace,
        } => {
            let operator = operator_pods(
                operator_pod_labels.as_deref(),
                operator_namespace.as_deref(),
            )?;
            let manifest = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            let objects = render::render(&manifest, &namespace, operator.as_ref())
                .with_context(|| format!("render {}", file.display()))?;
            if crd {
                use dynamo_crd::CustomResourceExt;
                let crd = dynamo_crd::to_kubernetes_yaml(&dynamo_crd::DynamoCluster::crd())?;
                println!("{crd}---");
            }
            print!("{objects}");
            Ok(())
        }
        Command::Certs {
            cluster,
            namespace,
            operator_namespace,
            operator_secret,
            dir,
        } => {
            let request = dynamo_operator::k8s::certs::CertsRequest {
                dir,
                cluster,
                namespace,
                operator_namespace,
                operator_secret,
            };
            let secrets = dynamo_operator::k8s::certs::secrets(&request).with_context(|| {
                format!(
                    "issue certificates from the CA in {}",
                    request.dir.display()
                )
            })?;
            print!("{secrets}");
            Ok(())
        }
        Command::Local {
            file,
            data_dir,
            base_port,
            node_binary,
            tls,
        } => {
            let node_binary = match node_binary {
                Some(path) => path,
                None => std::env::current_exe()
                    .context("locate this program")?
                    .with_file_name("dynamo-node"),
            };
            anyhow::ensure!(
                node_binary.exists(),
                "{} does not exist; build it with `cargo build --release --bins` or pass --node-binary",
                node_binary.display()
            );
            local::run(LocalOptions {
                manifest: file,
                data_dir,
                base_port,
                node_binary,
                admin_timeout: admin::DEFAULT_TIMEOUT,
                tls,
            })
            .await
            .map_err(anyhow::Error::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_pod_labels_need_the_operators_namespace() {
        assert_eq!(operator_pods(None, None).expect("no labels"), None);
        let error = operator_pods(Some("app=op"), None).expect_err("no namespace");
        assert!(error.to_string().contains("POD_NAMESPACE"), "{error}");
        assert!(operator_pods(Some("app"), Some("ops")).is_err());
        let pods = operator_pods(Some("app=op"), Some("ops"))
            .expect("labels and a namespace")
            .expect("operator pods");
        assert_eq!(pods.namespace, "ops");
        assert_eq!(pods.labels.get("app").map(String::as_str), Some("op"));
    }

    #[test]
    fn render_takes_the_operator_flags_together() {
        let parsed = Cli::try_parse_from([
            "dynamo-operator",
            "render",
            "-f",
            "x.yaml",
            "--operator-pod-labels",
            "app=op",
        ]);
        assert!(parsed.is_err(), "labels without a namespace were accepted");
    }
}
