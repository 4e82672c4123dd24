//! `dynamo-node`: runs one DynamoKV storage node until SIGTERM or Ctrl-C.

use anyhow::Context;
use clap::Parser;
use dynamo_node::config::Flags;
use tracing::info;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    init_logging(&flags.log_format)?;
    // Listen for signals before the port opens, so an early SIGTERM is
    // graceful too.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let config = flags.load()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("bind {}", config.listen))?;
    let mut running = dynamo_node::start(config, listener).await?;
    println!("dynamo-node listening on {}", running.address());
    tokio::select! {
        result = running.wait() => result?,
        _ = terminate.recv() => {
            info!("SIGTERM: shutting down; finishing requests in flight");
            running.stop().await?;
        }
        _ = interrupt.recv() => {
            info!("shutting down; finishing requests in flight");
            running.stop().await?;
        }
    }
    Ok(())
}

fn init_logging(format: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // `try_init` also bridges fjall's `log` records into tracing.
        "json" => builder.json().try_init().map_err(anyhow::Error::msg)?,
        "text" => builder.try_init().map_err(anyhow::Error::msg)?,
        other => anyhow::bail!("log format must be text or json, not {other:?}"),
    }
    Ok(())
}
