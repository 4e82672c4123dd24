//! Load shedding at the gRPC edge: a bound on the requests a node serves at
//! once, for the whole node and for each connection. A request over a bound
//! is answered at once with `RESOURCE_EXHAUSTED` and a `retry-after-ms`
//! hint, never queued, so an overloaded node keeps its memory and the
//! latency of what it admits (docs/security.md, "Load shedding").
//!
//! `Kv` and `Peer` have separate node-wide bounds, so replication is not
//! starved by clients. A request holds its place until its handler answers
//! (for a stream: until the stream starts).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use prometheus_client::metrics::gauge::Gauge;
use tonic::Status;
use tonic::codegen::{Service, http};
use tonic::metadata::MetadataValue;
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;

use crate::config::{Limit, Limits};
use crate::metrics::Metrics;

/// Metadata key of a refusal naming how many milliseconds the caller should
/// wait before it tries this node again.
pub const RETRY_AFTER_HEADER: &str = "retry-after-ms";

/// The retry hint a refusal carries, in milliseconds: about the time a few
/// admitted requests take to finish on a loaded node.
pub const RETRY_AFTER_MS: u64 = 20;

/// One bound on requests in flight.
struct Bound {
    limit: usize,
    in_flight: AtomicUsize,
    refusal: Limit,
}

impl Bound {
    fn new(limit: usize, refusal: Limit) -> Self {
        Self {
            limit,
            in_flight: AtomicUsize::new(0),
            refusal,
        }
    }

    /// Takes a place, or says the bound is reached.
    fn enter(&self) -> bool {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The bounds of one service on one node: node-wide, and per connection
/// when set.
pub struct Gate {
    node: Bound,
    per_connection: Option<(usize, Mutex<HashMap<SocketAddr, usize>>)>,
    gauge: Gauge,
    metrics: Arc<Metrics>,
}

impl Gate {
    /// The gate of the `Kv` service: `max_concurrent_requests` in all,
    /// `max_concurrent_requests_per_connection` per connection.
    pub fn kv(limits: &Limits, metrics: &Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            node: Bound::new(limits.max_concurrent_requests, Limit::ConcurrentRequests),
            per_connection: Some((
                limits.max_concurrent_requests_per_connection,
                Mutex::new(HashMap::new()),
            )),
            gauge: metrics.requests_in_flight("kv"),
            metrics: Arc::clone(metrics),
        })
    }

    /// The gate of the `Peer` service: `max_concurrent_peer_requests` in all.
    pub fn peer(limits: &Limits, metrics: &Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            node: Bound::new(limits.max_concurrent_peer_requests, Limit::PeerRequests),
            per_connection: None,
            gauge: metrics.requests_in_flight("peer"),
            metrics: Arc::clone(metrics),
        })
    }

    /// Admits a request from `connection` (its remote address; `None` holds
    /// it to the node-wide bound only), or names the bound it ran into.
    fn admit(self: &Arc<Self>, connection: Option<SocketAddr>) -> Result<Permit, Limit> {
        if !self.node.enter() {
            return Err(self.node.refusal);
        }
        let connection = match (&self.per_connection, connection) {
            (Some((limit, counts)), Some(address)) => {
                let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                let count = counts.entry(address).or_insert(0);
                if *count >= *limit {
                    drop(counts);
                    self.node.leave();
                    return Err(Limit::ConnectionRequests);
                }
                *count += 1;
                Some(address)
            }
            _ => None,
        };
        self.gauge.inc();
        Ok(Permit {
            gate: Arc::clone(self),
            connection,
        })
    }

    /// The answer to a refused request: `RESOURCE_EXHAUSTED` with the
    /// retry hint, counted against `limit`.
    fn refusal(&self, limit: Limit) -> http::Response<tonic::body::Body> {
        self.metrics.limit_refused(limit);
        let mut status = Status::resource_exhausted(format!(
            "the node is overloaded ({} requests in flight reached limits.{}); retry after {RETRY_AFTER_MS} ms, or at another replica",
            match limit {
                Limit::ConnectionRequests => "this connection's",
                _ => "its",
            },
            match limit {
                Limit::ConnectionRequests => "max_concurrent_requests_per_connection",
                Limit::PeerRequests => "max_concurrent_peer_requests",
                _ => "max_concurrent_requests",
            },
        ));
        status
            .metadata_mut()
            .insert(RETRY_AFTER_HEADER, MetadataValue::from(RETRY_AFTER_MS));
        status.into_http()
    }
}

/// A request's place under a [`Gate`]; dropping it gives the place back.
pub struct Permit {
    gate: Arc<Gate>,
    connection: Option<SocketAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let (Some((_, counts)), Some(address)) = (&self.gate.per_connection, self.connection) {
            let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = counts.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&address);
                }
            }
        }
        self.gate.node.leave();
        self.gate.gauge.dec();
    }
}

/// A gRPC service behind a [`Gate`].
#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> Shed<S> {
    /// Puts `inner` behind `gate`.
    pub fn new(inner: S, gate: Arc<Gate>) -> Self {
        Self { inner, gate }
    }
}

impl<S: NamedService> NamedService for Shed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Shed<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = ShedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let connection = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        match self.gate.admit(connection) {
            Ok(permit) => ShedFuture::Admitted {
                inner: self.inner.call(request),
                _permit: permit,
            },
            Err(limit) => ShedFuture::Refused(Some(self.gate.refusal(limit))),
        }
    }
}

/// The response future of [`Shed`].
pub enum ShedFuture<F> {
    /// The request runs and holds its place until it is answered.
    Admitted {
        /// The service's answer.
        inner: F,
        /// Its place under the gate.
        _permit: Permit,
    },
    /// The request was refused.
    Refused(Option<http::Response<tonic::body::Body>>),
}

impl<F> Future for ShedFuture<F>
where
    F: Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Admitted { inner, .. } => Pin::new(inner).poll(cx),
            Self::Refused(response) => Poll::Ready(Ok(response
                .take()
                .expect("a refused request's future is polled once after it is ready"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(node: usize, connection: usize) -> Limits {
        Limits {
            max_concurrent_requests: node,
            max_concurrent_requests_per_connection: connection,
            ..Limits::default()
        }
    }

    #[test]
    fn a_connection_at_its_bound_is_refused_while_others_are_admitted() {
        let metrics = Arc::new(Metrics::new());
        let gate = Gate::kv(&limits(3, 2), &metrics);
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("address");
        let b: SocketAddr = "127.0.0.1:1001".parse().expect("address");
        let first = gate.admit(Some(a)).expect("admitted");
        let _second = gate.admit(Some(a)).expect("admitted");
        assert_eq!(gate.admit(Some(a)).err(), Some(Limit::ConnectionRequests));
        let _third = gate.admit(Some(b)).expect("another connection is admitted");
        assert_eq!(gate.admit(Some(b)).err(), Some(Limit::ConcurrentRequests));
        assert_eq!(gate.gauge.get(), 3);
        drop(first);
        assert_eq!(gate.gauge.get(), 2);
        let _again = gate.admit(Some(a)).expect("a place came back");
    }

    #[test]
    fn places_are_given_back_and_empty_connections_forgotten() {
        let metrics = Arc::new(Metrics::new());
        let gate = Gate::kv(&limits(2, 2), &metrics);
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("address");
        for _ in 0..10 {
            let one = gate.admit(Some(a)).expect("admitted");
            let two = gate.admit(None).expect("admitted without a connection");
            assert_eq!(gate.admit(None).err(), Some(Limit::ConcurrentRequests));
            drop((one, two));
        }
        let counts = &gate.per_connection.as_ref().expect("kv counts").1;
        assert!(counts.lock().expect("lock").is_empty());
        assert_eq!(gate.node.in_flight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_refusal_carries_the_status_and_the_retry_hint() {
        let metrics = Arc::new(Metrics::new());
        let gate = Gate::peer(&Limits::default(), &metrics);
        let response = gate.refusal(Limit::PeerRequests);
        let status = Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("max_concurrent_peer_requests"));
        assert_eq!(
            response
                .headers()
                .get(RETRY_AFTER_HEADER)
                .map(|v| v.as_bytes()),
            Some(RETRY_AFTER_MS.to_string().as_bytes())
        );
        assert_eq!(metrics.limit_refusal_count(Limit::PeerRequests), 1);
    }
}
