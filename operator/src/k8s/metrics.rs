//! Prometheus metrics of the reconciler and the HTTP endpoint that serves
//! them with `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a per-cluster metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Namespace of the DynamoCluster.
    pub namespace: String,
    /// Its name.
    pub cluster: String,
}

/// Labels of a driver step metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// The step's condition reason (Joining, Leaving, ...).
    pub step: String,
}

/// Labels of an error metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The error's kind.
    pub kind: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Reconciliations started, per cluster.
    pub reconciles: Family<ClusterLabels, Counter>,
    /// Reconciliation durations in seconds.
    pub duration: Histogram,
    /// Failed reconciliations, per kind of error.
    pub errors: Family<ErrorLabels, Counter>,
    /// Driver steps entered, per step.
    pub driver_steps: Family<StepLabels, Counter>,
    /// Refused specs and changes.
    pub refusals: Family<ErrorLabels, Counter>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dynamo_operator");
        let reconciles = Family::<ClusterLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        let errors = Family::<ErrorLabels, Counter>::default();
        let driver_steps = Family::<StepLabels, Counter>::default();
        let refusals = Family::<ErrorLabels, Counter>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciliations started", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciliations",
            duration.clone(),
        );
        registry.register("reconcile_errors", "Failed reconciliations", errors.clone());
        registry.register(
            "driver_steps",
            "Membership driver steps entered",
            driver_steps.clone(),
        );
        registry.register("refusals", "Specs and changes refused", refusals.clone());
        registry.register("leader", "1 while this replica leads", leader.clone());
        Self {
            registry,
            reconciles,
            duration,
            errors,
            driver_steps,
            refusals,
            leader,
        }
    }
}

impl Metrics {
    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Records one reconciliation of a cluster that took `elapsed`.
    pub fn reconciled(&self, namespace: &str, cluster: &str, elapsed: Duration) {
        self.reconciles
            .get_or_create(&ClusterLabels {
                namespace: namespace.to_owned(),
                cluster: cluster.to_owned(),
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

/// State of the HTTP endpoint.
#[derive(Clone)]
pub struct Endpoint {
    /// The metrics to serve.
    pub metrics: Arc<Metrics>,
    /// True once the operator reached the API server.
    pub ready: Arc<AtomicBool>,
}

async fn metrics(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        endpoint.metrics.encode(),
    )
}

async fn ready(State(endpoint): State<Endpoint>) -> StatusCode {
    if endpoint.ready.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The routes `/metrics`, `/healthz` and `/readyz`.
pub fn router(endpoint: Endpoint) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(endpoint)
}

/// Serves [`router`] on `listen` until `shutdown` completes.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    endpoint: Endpoint,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router(endpoint))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.reconciled("prod", "demo", Duration::from_millis(30));
        metrics
            .driver_steps
            .get_or_create(&StepLabels {
                step: "Joining".into(),
            })
            .inc();
        let text = metrics.encode();
        assert!(
            text.contains(r#"dynamo_operator_reconciles_total{namespace="prod",cluster="demo"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"dynamo_operator_driver_steps_total{step="Joining"} 1"#));
        assert!(text.contains("dynamo_operator_reconcile_duration_seconds_count 1"));
    }
}
