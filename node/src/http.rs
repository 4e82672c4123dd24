//! The node's small HTTP server, for operators and monitoring rather than
//! clients: `/healthz` (the process runs), `/readyz` (the node serves
//! requests), `/metrics` (Prometheus text), `/api/ring` (the ring as JSON)
//! and `/` (a page that draws the ring from `/api/ring`).
//!
//! It starts before the node opens, so a slow start (waiting for a seed,
//! recovering an empty disk) is visible as "alive but not ready".

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::node::Node;
use crate::ring::Member;

/// The ring page: static HTML and JavaScript, no build step.
const RING_PAGE: &str = include_str!("ringpage.html");

/// How long stopping waits for open HTTP connections to finish.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handlers share: the node once it has started.
#[derive(Default)]
struct Shared {
    node: RwLock<Option<Arc<Node>>>,
}

impl Shared {
    fn node(&self) -> Option<Arc<Node>> {
        self.node.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, node: Option<Arc<Node>>) {
        *self.node.write().unwrap_or_else(|e| e.into_inner()) = node;
    }
}

/// A running HTTP server. Dropping it stops it without waiting.
pub struct HttpServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// Binds `address` and serves; until [`HttpServer::attach`] is called
    /// the node reports alive but not ready.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(address: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let router = Router::new()
            .route("/", get(ring_page))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/api/ring", get(ring_json))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            address,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Starts answering for `node`.
    pub fn attach(&self, node: Arc<Node>) {
        self.shared.set(Some(node));
    }

    /// Stops accepting connections, lets open ones finish for a moment, and
    /// lets go of the node.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(STOP_TIMEOUT, &mut self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => warn!(%error, "the HTTP server failed"),
            Ok(Err(join)) if join.is_panic() => warn!("the HTTP server panicked"),
            Ok(Err(_)) => {}
            Err(_) => self.task.abort(),
        }
        self.shared.set(None);
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shared.set(None);
        self.task.abort();
    }
}

/// The handlers' view of [`Shared`].
type SharedState = State<Arc<Shared>>;

/// 200 as long as the process serves HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the node serves requests, else 503 with the reason.
async fn readyz(State(shared): SharedState) -> Response {
    let reason = match shared.node() {
        None => "starting: waiting for the ring and storage".to_owned(),
        Some(node) => match node.not_ready() {
            None => return (StatusCode::OK, "ready\n").into_response(),
            Some(reason) => reason,
        },
    };
    (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response()
}

/// The node's metrics in the Prometheus text format.
async fn metrics(State(shared): SharedState) -> Response {
    let Some(node) = shared.node() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    };
    // Reading fjall's sizes and the hint counts touches locks and files:
    // keep it off the async workers.
    match tokio::task::spawn_blocking(move || node.render_metrics()).await {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
        }
        Ok(Err(_)) | Err(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

/// The ring page.
async fn ring_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        RING_PAGE,
    )
        .into_response()
}

/// The ring and this node's view of it, as JSON for the ring page.
async fn ring_json(State(shared): SharedState) -> Response {
    let Some(node) = shared.node() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    };
    match serde_json::to_string(&RingView::of(&node)) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the ring\n",
        )
            .into_response(),
    }
}

/// `/api/ring`: what the ring page draws.
#[derive(Debug, Serialize)]
pub struct RingView {
    /// The answering node's member name.
    pub node: String,
    /// Cluster name.
    pub cluster: String,
    /// Ring epoch.
    pub epoch: u64,
    /// Q.
    pub partitions: u32,
    /// N, R, W.
    pub replication: crate::ring::Replication,
    /// Members with this node's judgement of each.
    pub members: Vec<MemberView>,
    /// Owner (index into `members`) of every partition.
    pub owners: Vec<u32>,
    /// Owners after the membership change in flight, if any.
    pub next_owners: Option<Vec<u32>>,
    /// Hinted keys queued on this node, per intended replica.
    pub hints: Vec<HintsView>,
    /// Incoming partition transfers of the change in flight, if any.
    pub transfer: Option<TransferView>,
    /// Partitions being streamed back after an empty-disk start.
    pub recovering: u32,
    /// Why the node is not ready, if it is not.
    pub not_ready: Option<String>,
}

/// One member in [`RingView`].
#[derive(Debug, Serialize)]
pub struct MemberView {
    /// The member.
    #[serde(flatten)]
    pub member: Member,
    /// `self`, `up` or `down`, by this node's failure detector.
    pub liveness: &'static str,
    /// Partitions the member owns.
    pub partitions: u32,
}

/// Hints for one target in [`RingView`].
#[derive(Debug, Serialize)]
pub struct HintsView {
    /// The intended replica.
    pub target: String,
    /// Keys queued.
    pub keys: u64,
}

/// Transfer progress in [`RingView`].
#[derive(Debug, Serialize)]
pub struct TransferView {
    /// Epoch of the proposed ring.
    pub epoch: u64,
    /// Partitions to receive.
    pub total: u32,
    /// Partitions received.
    pub done: u32,
    /// Keys received.
    pub keys: u64,
    /// Bytes received.
    pub bytes: u64,
    /// The last error of a retrying stream.
    pub error: String,
}

impl RingView {
    /// The current view of `node`.
    pub fn of(node: &Node) -> Self {
        let ring = node.ring();
        let now = std::time::Instant::now();
        let members = {
            let membership = node.membership();
            ring.members()
                .iter()
                .enumerate()
                .map(|(index, member)| MemberView {
                    member: member.clone(),
                    liveness: membership.liveness(&member.id, now).as_str(),
                    partitions: ring.owned_by(index as u32),
                })
                .collect()
        };
        let transfer = ring.next_owners().map(|_| {
            let progress = node.transfer_progress();
            TransferView {
                epoch: progress.epoch,
                total: progress.total,
                done: progress.done.len() as u32,
                keys: progress.keys,
                bytes: progress.bytes,
                error: progress.error.clone(),
            }
        });
        // Each lock is taken and released in a statement of its own.
        let recovering = node.recovering().len() as u32;
        let not_ready = node.not_ready();
        Self {
            node: node.id().to_owned(),
            cluster: ring.cluster().to_owned(),
            epoch: ring.epoch(),
            partitions: ring.partitions(),
            replication: ring.replication(),
            members,
            owners: ring.owners().to_vec(),
            next_owners: ring.next_owners().map(<[u32]>::to_vec),
            hints: node
                .storage()
                .hints()
                .counts()
                .into_iter()
                .map(|(target, keys)| HintsView { target, keys })
                .collect(),
            transfer,
            recovering,
            not_ready,
        }
    }
}
