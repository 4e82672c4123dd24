//! `dynamo-node`: runs one DynamoKV storage node until SIGTERM or Ctrl-C.

use anyhow::Context;
use clap::Parser;
use dynamo_node::config::{Flags, LogFormat};
use tracing::info;
use tracing_subscriber::EnvFilter;

/// mimalloc: every request allocates buffers and futures, and it costs
/// noticeably less CPU per request than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    init_logging(flags.log_format)?;
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
    if let Some(http) = running.http_address() {
        println!("dynamo-node serving HTTP on {http}");
    }
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

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) => EnvFilter::try_new(&directives)
            .with_context(|| format!("RUST_LOG={directives:?} is not a valid filter"))?,
        Err(_) => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` also bridges fjall's `log` records into tracing.
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    }
    .map_err(anyhow::Error::msg)
}
