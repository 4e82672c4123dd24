//! Start-up and shutdown of a node: bind HTTP, fetch a ring from the seeds
//! when the node has none, open the node's parts ([`Node::open`]), prepare
//! empty-disk recovery, serve gRPC ([`Server`]) and start the background
//! loops as named [`Workers`]. [`RunningNode::stop`] undoes it in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dynamo_proto::v1 as pb;
use thiserror::Error;
use tokio::net::TcpListener;
use tonic::metadata::AsciiMetadataValue;
use tracing::{info, warn};

use crate::config::Config;
use crate::http::HttpServer;
use crate::metrics::Metrics;
use crate::node::{Node, StartError};
use crate::peers::{GrpcTransport, Transport};
use crate::ring::Member;
use crate::server::{ServeError, Server};
use crate::storage::StorageError;
use crate::worker::Workers;

/// Why a node did not stop cleanly.
#[derive(Debug, Error)]
pub enum StopError {
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The final fsync failed.
    #[error("the final fsync failed: {0}")]
    Sync(#[from] StorageError),
}

/// A running node: its address, its parts, and the means to stop it.
pub struct RunningNode {
    node: Arc<Node>,
    address: SocketAddr,
    server: Server,
    workers: Workers,
    http: Option<HttpServer>,
}

impl RunningNode {
    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address of the HTTP server, when it is on.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::address)
    }

    /// The node's parts.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Stops the workers, stops accepting requests, finishes the ones in
    /// flight, and fsyncs.
    ///
    /// # Errors
    /// The server's or the final fsync's failure.
    pub async fn stop(self) -> Result<(), StopError> {
        let Self {
            node,
            server,
            workers,
            http,
            ..
        } = self;
        // `/readyz` says so while requests in flight finish.
        node.set_stopping();
        workers.stop().await;
        server.stop().await?;
        if let Some(http) = http {
            http.stop().await;
        }
        // Replication tails, read repairs and peer connections that are
        // still closing hold parts of the node; wait for them (bounded) so
        // the database is closed when `stop` returns and can be opened
        // again.
        let id = node.id().to_owned();
        let storage = Arc::clone(node.storage());
        let deadline = tokio::time::Instant::now() + node.config().request_timeout() * 5;
        drop(node);
        while Arc::strong_count(&storage) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if Arc::strong_count(&storage) > 1 {
            warn!(id, "background work still holds the node after stopping");
        }
        storage.sync()?;
        info!(id, "stopped");
        Ok(())
    }

    /// Waits until the server ends by itself (it only does on error).
    ///
    /// # Errors
    /// The server's failure.
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        self.server.wait().await
    }
}

/// Opens the node described by `config` and serves it on `listener`.
///
/// # Errors
/// [`StartError`] when the configuration, ring or storage is unusable.
pub async fn start(config: Config, listener: TcpListener) -> Result<RunningNode, StartError> {
    // HTTP comes first, so a slow start shows as alive but not ready.
    let http = match config.http_listen {
        Some(address) => Some(
            HttpServer::bind(address)
                .await
                .map_err(|source| StartError::Http { address, source })?,
        ),
        None => None,
    };
    let metrics_url = http
        .as_ref()
        .and_then(|http| AsciiMetadataValue::try_from(config.metrics_url(http.address())).ok());
    let metrics = Arc::new(Metrics::new());
    let tls = crate::tls::from_config(config.tls.as_ref(), &config.cluster, &config.id, &metrics)?;
    let transport = Arc::new(
        GrpcTransport::new(&config)
            .with_metrics(Arc::clone(&metrics))
            .with_tls(tls.clone()),
    );
    let seeded = if config.seeds.is_empty() {
        None
    } else {
        Some(ring_from_seeds(&config, transport.as_ref()).await?)
    };
    let node = Node::open(config, seeded, transport, metrics)?;
    node.recovery().prepare().await;
    node.membership().grace(std::time::Instant::now());
    let address = listener.local_addr().map_err(StartError::Listener)?;
    let server = Server::serve(Arc::clone(&node), listener, metrics_url, tls);
    let mut workers = Workers::new();
    // Transfers first: it resumes a change in flight, or finishes dropping
    // partitions a committed change took away.
    let part = Arc::clone(node.transfers());
    workers.spawn("transfers", |stop| part.run(stop));
    let part = Arc::clone(node.gossip());
    workers.spawn("gossip", |stop| part.run(stop));
    let part = Arc::clone(node.handoff());
    workers.spawn("handoff", |stop| part.run(stop));
    let part = Arc::clone(node.anti_entropy());
    workers.spawn("anti-entropy", |stop| part.run(stop));
    let part = Arc::clone(node.recovery());
    workers.spawn("recovery", |stop| part.run(stop));
    if let Some(http) = &http {
        http.attach(Arc::clone(&node));
        info!(id = node.id(), address = %http.address(), "serving HTTP");
    }
    info!(id = node.id(), %address, epoch = node.ring().epoch(), "serving");
    if node.ring().index_of(node.id()).is_none() {
        warn!(
            id = node.id(),
            "this node is not a member of its ring; it only forwards"
        );
    }
    Ok(RunningNode {
        node,
        address,
        server,
        workers,
        http,
    })
}

/// Fetches the ring from the first seed that answers, retrying for a while.
async fn ring_from_seeds(
    config: &Config,
    transport: &dyn Transport,
) -> Result<pb::Ring, StartError> {
    let deadline = tokio::time::Instant::now() + config.request_timeout() * 10;
    let mut errors = Vec::new();
    loop {
        for seed in &config.seeds {
            let member = Member {
                weight: 0,
                id: seed.clone(),
                address: seed.clone(),
                zone: String::new(),
            };
            match tokio::time::timeout(config.peer_timeout(), transport.ring(&member)).await {
                Ok(Ok(pb::GetRingResponse {
                    ring: Some(ring), ..
                })) => return Ok(ring),
                Ok(Ok(_)) => errors.push(format!("{seed}: the seed sent no ring")),
                Ok(Err(error)) => errors.push(error.to_string()),
                Err(_) => errors.push(format!("{seed}: no answer")),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StartError::Seeds {
                tried: errors.join("; "),
            });
        }
        tokio::time::sleep(config.peer_timeout()).await;
        errors.clear();
    }
}
