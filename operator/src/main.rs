//! `dynamo-operator`: runs the membership driver. `local` drives
//! `dynamo-node` processes on this machine from a DynamoCluster manifest.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dynamo_operator::local::{self, LocalOptions};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "dynamo-operator", version, about = "DynamoKV operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a cluster of local `dynamo-node` processes described by a
    /// DynamoCluster manifest, and follows edits of its `replicas`.
    Local {
        /// The DynamoCluster manifest.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Root directory of the members' data.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Port of member 0; member i listens on base-port + i.
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
        /// The `dynamo-node` binary; by default the one next to this program.
        #[arg(long, env = "DYNAMO_NODE_BIN")]
        node_binary: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(anyhow::Error::msg)?;
    match Cli::parse().command {
        Command::Local {
            file,
            data_dir,
            base_port,
            node_binary,
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
            })
            .await
        }
    }
}
