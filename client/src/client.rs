//! The client: keeps the ring and sends each request straight to a replica
//! of its key, failing over along the preference list, or through the
//! endpoint when only the endpoint is reachable.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use tokio::time::Instant;
use tonic::transport::Channel;
use tracing::Instrument as _;

use crate::health::Health;
use crate::hedge::race;
use crate::options::{durability_to_proto, quorum_to_proto};
use crate::routing::attempt_order;
use crate::rpc::{Rpc, admin, kv, uri};
use crate::{
    ClientOptions, Context, Error, GetResult, NodeStatus, ReadOptions, Result, Ring, Routing,
    WriteOptions,
};

/// A connection to a DynamoKV cluster.
///
/// Each request goes straight to a replica of its key (single-hop routing),
/// starting with a different member of the preference list each time to
/// spread load. When that member cannot be reached, times out or answers
/// `Unavailable`, the next member of the preference list is tried, then the
/// fallbacks. A member that has not answered after its hedge delay (its
/// recent p99 latency) gets company from the next one, and the first
/// answer wins ([`HedgeOptions`](crate::HedgeOptions)); members that time
/// out or stall are tried last until a probe finds them answering again.
/// One deadline ([`ClientOptions::timeout`]) covers the whole request.
///
/// When every replica fails, the error reported is the most telling one: a
/// node's `Unavailable` answer (for example too few acknowledgements) rather
/// than a node that could not be reached. When none could be reached but
/// the endpoint answers, the error is [`Error::ReplicasUnreachable`].
///
/// With [`Routing::ViaEndpoint`] every request goes to the endpoint instead,
/// which coordinates it or forwards it to a replica; the node does the
/// failing over.
///
/// A retried or hedged write may have been applied by two coordinators:
/// the key then holds two versions with the same value, both replacing
/// what the context had seen. A read shows them as one sibling, and the
/// next write with its context replaces both.
///
/// `Client` is cheap to clone; clones share the ring and the connections.
///
/// # Examples
///
/// ```no_run
/// # async fn example() -> Result<(), dynamo_client::Error> {
/// use dynamo_client::Client;
///
/// let client = Client::connect("127.0.0.1:7400").await?;
/// let read = client.get("cart:alice").await?;
/// let context = client.put("cart:alice", "milk,eggs", Some(&read.context)).await?;
/// client.delete("cart:alice", Some(&context)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The address the client was created with; asked first for the ring.
    endpoint: String,
    routing: Routing,
    rpc: Rpc,
    /// Deadline of a whole request.
    timeout: Duration,
    /// What the client learned of each node's latency and failures.
    health: Health,
    ring: RwLock<Arc<Ring>>,
    /// Rotates the first replica tried, to spread load.
    next_start: AtomicUsize,
}

impl Client {
    /// Connects to the cluster through `endpoint` (`host:port`, `http://`
    /// optional) with default options.
    ///
    /// # Errors
    ///
    /// See [`connect_with`](Self::connect_with).
    pub async fn connect(endpoint: &str) -> Result<Self> {
        Self::connect_with(endpoint, ClientOptions::default()).await
    }

    /// Connects to the cluster through `endpoint`: asks it for the ring,
    /// which tells where every key lives.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] for a malformed endpoint,
    /// [`Error::InvalidRing`] when the node's ring is inconsistent, and the
    /// errors of a failed call ([`Error::Transport`], [`Error::Timeout`],
    /// [`Error::Unavailable`], ...).
    pub async fn connect_with(endpoint: &str, options: ClientOptions) -> Result<Self> {
        let rpc = Rpc::new(options.timeout, options.tls.clone());
        let endpoint = endpoint.trim().to_owned();
        let ring = fetch_ring(&rpc, &endpoint)
            .await
            .map_err(|error| rpc.mismatch(error))?;
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint,
                routing: options.routing,
                rpc,
                timeout: options.timeout,
                health: Health::new(options.hedge),
                ring: RwLock::new(Arc::new(ring)),
                next_start: AtomicUsize::new(0),
            }),
        })
    }

    /// The ring the client routes with.
    pub fn ring(&self) -> Arc<Ring> {
        // Replacing an `Arc` cannot leave the lock's value half-written.
        let ring = self
            .inner
            .ring
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&ring)
    }

    /// Asks the cluster for its current ring (the endpoint first, then each
    /// member) and adopts it unless it is older than the one in use.
    /// Returns the ring in use afterwards.
    ///
    /// # Errors
    ///
    /// The error of the last node asked, when none answered with a ring.
    pub async fn refresh_ring(&self) -> Result<Arc<Ring>> {
        let current = self.ring();
        let mut addresses = vec![self.inner.endpoint.as_str()];
        for member in current.members() {
            if !addresses.contains(&member.address.as_str()) {
                addresses.push(&member.address);
            }
        }
        let mut last_error = None;
        for address in addresses {
            match fetch_ring(&self.inner.rpc, address).await {
                Ok(ring) => return Ok(self.adopt(ring)),
                Err(err) => {
                    tracing::debug!(%address, error = %err, "no ring from this node; asking the next");
                    last_error = Some(err);
                }
            }
        }
        Err(last_error.expect("the endpoint is always asked"))
    }

    /// Reports the status of the node at `address` (one attempt, no
    /// failover).
    ///
    /// # Errors
    ///
    /// The errors of a failed call.
    pub async fn status(&self, address: &str) -> Result<NodeStatus> {
        let (status, metrics_url) = self
            .inner
            .rpc
            .call(
                address,
                pb::StatusRequest {},
                |channel, request| async move {
                    let response = admin(channel).status(request).await?;
                    let metrics_url = response
                        .metadata()
                        .get(crate::status::METRICS_URL_HEADER)
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned);
                    Ok(tonic::Response::new((response.into_inner(), metrics_url)))
                },
            )
            .await?;
        Ok(NodeStatus {
            metrics_url,
            ..NodeStatus::from(status)
        })
    }

    /// A handle on the keys of bucket `name`: the same operations, with the
    /// bucket's N, R, W and durability, routed to the bucket's replicas.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(client: dynamo_client::Client) -> dynamo_client::Result<()> {
    /// let carts = client.bucket("carts");
    /// carts.put("cart-1", "apples", None).await?;
    /// let cart = carts.get("cart-1").await?;
    /// # Ok(()) }
    /// ```
    pub fn bucket(&self, name: impl Into<String>) -> Bucket {
        Bucket {
            client: self.clone(),
            name: name.into(),
        }
    }

    /// Reads `key` with the cluster's default read quorum.
    ///
    /// # Errors
    ///
    /// See [`get_with`](Self::get_with).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<GetResult> {
        self.get_with(key, ReadOptions::default()).await
    }

    /// Reads `key`: every concurrent version and the context covering them.
    /// A missing key is a result without live siblings
    /// ([`GetResult::is_found`] is false).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad key or quorum; otherwise, when
    /// no replica could answer, the most telling of their failures.
    pub async fn get_with(&self, key: impl AsRef<[u8]>, options: ReadOptions) -> Result<GetResult> {
        self.get_in("", key.as_ref(), options).await
    }

    /// [`get_with`](Self::get_with) of a key of bucket `bucket`.
    pub(crate) async fn get_in(
        &self,
        bucket: &str,
        key: &[u8],
        options: ReadOptions,
    ) -> Result<GetResult> {
        let key = Bytes::copy_from_slice(key);
        let request = pb::GetRequest {
            key: key.clone(),
            r: quorum("r", options.r)?,
            forwarded: false,
            bucket: bucket.to_owned(),
        };
        let response = self
            .route(
                "get",
                bucket,
                &key,
                request,
                |channel, request| async move { kv(channel).get(request).await },
            )
            .await?;
        Ok(GetResult::from(response))
    }

    /// Writes `value` under `key` with the cluster's default write quorum.
    ///
    /// # Errors
    ///
    /// See [`put_with`](Self::put_with).
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
    ) -> Result<Context> {
        self.put_with(key, value, context, WriteOptions::default())
            .await
    }

    /// Writes `value` under `key`, replacing the versions `context` has seen
    /// (`None` adds a sibling next to whatever is there). Returns the
    /// context of the new version.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad key, value, context or quorum;
    /// otherwise, when no replica could answer, the most telling of their
    /// failures.
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
        options: WriteOptions,
    ) -> Result<Context> {
        self.put_in("", key.as_ref(), value.into(), context, options)
            .await
    }

    /// [`put_with`](Self::put_with) of a key of bucket `bucket`.
    pub(crate) async fn put_in(
        &self,
        bucket: &str,
        key: &[u8],
        value: Bytes,
        context: Option<&Context>,
        options: WriteOptions,
    ) -> Result<Context> {
        let key = Bytes::copy_from_slice(key);
        let request = pb::PutRequest {
            key: key.clone(),
            value,
            context: wire_context(context),
            w: quorum("w", options.w)?,
            durability: durability_to_proto(options.durability).into(),
            forwarded: false,
            bucket: bucket.to_owned(),
        };
        let response = self
            .route(
                "put",
                bucket,
                &key,
                request,
                |channel, request| async move { kv(channel).put(request).await },
            )
            .await?;
        Ok(Context::from_bytes(response.context))
    }

    /// Deletes `key` with the cluster's default write quorum.
    ///
    /// # Errors
    ///
    /// See [`delete_with`](Self::delete_with).
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
    ) -> Result<Context> {
        self.delete_with(key, context, WriteOptions::default())
            .await
    }

    /// Writes a tombstone for `key` that replaces the versions `context`
    /// has seen. Returns the tombstone's context: a put with it brings the
    /// key back on purpose.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad key, context or quorum;
    /// otherwise, when no replica could answer, the most telling of their
    /// failures.
    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
        options: WriteOptions,
    ) -> Result<Context> {
        self.delete_in("", key.as_ref(), context, options).await
    }

    /// [`delete_with`](Self::delete_with) of a key of bucket `bucket`.
    pub(crate) async fn delete_in(
        &self,
        bucket: &str,
        key: &[u8],
        context: Option<&Context>,
        options: WriteOptions,
    ) -> Result<Context> {
        let key = Bytes::copy_from_slice(key);
        let request = pb::DeleteRequest {
            key: key.clone(),
            context: wire_context(context),
            w: quorum("w", options.w)?,
            durability: durability_to_proto(options.durability).into(),
            forwarded: false,
            bucket: bucket.to_owned(),
        };
        let response = self
            .route(
                "delete",
                bucket,
                &key,
                request,
                |channel, request| async move { kv(channel).delete(request).await },
            )
            .await?;
        Ok(Context::from_bytes(response.context))
    }

    /// Sends `message` for `key` of `bucket` to the replicas of its
    /// partition (the first N of the walk, N of the bucket) in
    /// [`attempt_order`] until one answers or fails with an error another
    /// replica cannot fix, hedging as [`race`] does. When all fail, reports
    /// the most telling failure, or [`Error::ReplicasUnreachable`] when none could be
    /// reached but the endpoint answers. With [`Routing::ViaEndpoint`],
    /// sends it to the endpoint once.
    async fn route<M, T, F, Fut>(
        &self,
        operation: &'static str,
        bucket: &str,
        key: &[u8],
        message: M,
        method: F,
    ) -> Result<T>
    where
        M: Clone,
        F: Fn(Channel, tonic::Request<M>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let ring = self.ring();
        let partition = ring.bucket_partition_of(bucket, key);
        // A bucket this ring does not know yet: the whole walk, so some node
        // answers (with NOT_FOUND if the cluster does not declare it either).
        let n = ring.bucket_n(bucket).unwrap_or(u32::MAX);
        let start = self.inner.next_start.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("route", operation, partition, epoch = ring.epoch());
        async {
            if self.inner.routing == Routing::ViaEndpoint {
                return self
                    .inner
                    .rpc
                    .call_within(&self.inner.endpoint, self.inner.timeout, message, &method)
                    .await;
            }
            let addresses: Vec<&str> = attempt_order(&ring, partition, n, start)
                .into_iter()
                .map(|index| ring.members()[index].address.as_str())
                .collect();
            let begun = Instant::now();
            let deadline = begun + self.inner.timeout;
            let all_unreachable = AtomicBool::new(true);
            let result = loop {
                let plan = self.inner.health.plan(&addresses, Instant::now());
                let result = race(
                    &self.inner.health,
                    plan,
                    deadline,
                    self.inner.health.options().enabled,
                    |address, timeout| {
                        let address = address.to_owned();
                        let message = message.clone();
                        let (rpc, method, all_unreachable) =
                            (&self.inner.rpc, &method, &all_unreachable);
                        async move {
                            let result = rpc.call_within(&address, timeout, message, method).await;
                            if let Err(err) = &result
                                && !matches!(err, Error::Transport { .. })
                            {
                                all_unreachable.store(false, Ordering::Relaxed);
                            }
                            result
                        }
                    },
                )
                .await;
                // Every replica shed the request: wait the hint and try
                // again while the deadline leaves room for it.
                match &result {
                    Err(Error::Overloaded { retry_after, .. })
                        if Instant::now() + *retry_after * 2 < deadline =>
                    {
                        tokio::time::sleep(*retry_after).await;
                    }
                    _ => break result,
                }
            };
            let failure = match result {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            if !failure.is_retryable() {
                return Err(failure);
            }
            if all_unreachable.load(Ordering::Relaxed)
                && matches!(failure, Error::Transport { .. })
                && self.endpoint_answers_outside(&ring).await
            {
                return Err(Error::ReplicasUnreachable {
                    endpoint: self.inner.endpoint.clone(),
                    source: Box::new(failure),
                });
            }
            Err(failure)
        }
        .instrument(span)
        .await
    }

    /// Whether the endpoint is not a ring address and answers now: the
    /// sign of a client that reaches the cluster only through its endpoint.
    async fn endpoint_answers_outside(&self, ring: &Ring) -> bool {
        let endpoint = uri(&self.inner.endpoint);
        let in_ring = ring
            .members()
            .iter()
            .any(|member| uri(&member.address) == endpoint);
        !in_ring
            && fetch_ring(&self.inner.rpc, &self.inner.endpoint)
                .await
                .is_ok()
    }

    /// Adopts `ring` unless the one in use is newer; returns the ring in use.
    fn adopt(&self, ring: Ring) -> Arc<Ring> {
        let mut current = self
            .inner
            .ring
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if ring.epoch() >= current.epoch() {
            *current = Arc::new(ring);
        }
        Arc::clone(&current)
    }
}

/// Asks the node at `address` for its ring.
async fn fetch_ring(rpc: &Rpc, address: &str) -> Result<Ring> {
    let response = rpc
        .call(
            address,
            pb::GetRingRequest {},
            |channel, request| async move { admin(channel).get_ring(request).await },
        )
        .await?;
    Ring::try_from(response).map_err(|source| Error::InvalidRing {
        address: address.to_owned(),
        source,
    })
}

/// The wire form of an optional quorum, refusing zero.
fn quorum(name: &str, value: Option<u32>) -> Result<u32> {
    quorum_to_proto(name, value)
}

/// The wire form of an optional context: empty when there is none.
fn wire_context(context: Option<&Context>) -> Bytes {
    context
        .map(|context| context.as_bytes().clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time check: clients can be shared and their futures spawned.
    #[allow(dead_code)]
    fn client_and_futures_are_send(client: &Client, context: &Context) {
        fn send<T: Send>(_: T) {}
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<Client>();
        send(client.get("k"));
        send(client.put("k", "v", Some(context)));
        send(client.delete("k", None));
        send(client.refresh_ring());
        send(client.status("127.0.0.1:7400"));
    }
}

/// The keys of one bucket, from [`Client::bucket`].
#[derive(Clone, Debug)]
pub struct Bucket {
    client: Client,
    name: String,
}

impl Bucket {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads `key` with the bucket's default read quorum.
    ///
    /// # Errors
    ///
    /// See [`Client::get_with`]; a bucket the cluster does not declare
    /// fails with [`Error::Status`] carrying `NOT_FOUND`.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<GetResult> {
        self.get_with(key, ReadOptions::default()).await
    }

    /// Reads `key` (see [`Client::get_with`]).
    ///
    /// # Errors
    ///
    /// See [`Client::get_with`].
    pub async fn get_with(&self, key: impl AsRef<[u8]>, options: ReadOptions) -> Result<GetResult> {
        self.client.get_in(&self.name, key.as_ref(), options).await
    }

    /// Writes `value` under `key` with the bucket's defaults.
    ///
    /// # Errors
    ///
    /// See [`Client::put_with`].
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
    ) -> Result<Context> {
        self.put_with(key, value, context, WriteOptions::default())
            .await
    }

    /// Writes `value` under `key` (see [`Client::put_with`]).
    ///
    /// # Errors
    ///
    /// See [`Client::put_with`].
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
        options: WriteOptions,
    ) -> Result<Context> {
        self.client
            .put_in(&self.name, key.as_ref(), value.into(), context, options)
            .await
    }

    /// Deletes `key` with the bucket's defaults.
    ///
    /// # Errors
    ///
    /// See [`Client::delete_with`].
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
    ) -> Result<Context> {
        self.delete_with(key, context, WriteOptions::default())
            .await
    }

    /// Deletes `key` (see [`Client::delete_with`]).
    ///
    /// # Errors
    ///
    /// See [`Client::delete_with`].
    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
        options: WriteOptions,
    ) -> Result<Context> {
        self.client
            .delete_in(&self.name, key.as_ref(), context, options)
            .await
    }
}
