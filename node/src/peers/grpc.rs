//! The gRPC [`Transport`]: one long-lived HTTP/2 channel per peer address,
//! with keepalive pings so a peer that stops answering without closing its
//! connection (a paused process, a dropped link) is noticed within about
//! `keepalive_interval_ms + keepalive_timeout_ms`, and its calls fail
//! instead of waiting.
//!
//! Replica reads, writes and hints go over each peer's [`Link`] (frames on
//! one `Peer.Exchange` stream) unless `peer_calls.batching` is off, or the
//! peer does not serve `Exchange` (a node of an older release during a
//! rolling upgrade): then they are unary calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_proto::v1::frame_item::Call;
use dynamo_proto::v1::item_reply::Outcome;
use dynamo_proto::v1::kv_client::KvClient;
use dynamo_proto::v1::peer_client::PeerClient;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::tls::{Tls, TlsConnector};

use super::link::{Link, LinkSettings};
use super::{ChunkStream, Forward, Forwarded, PeerError, PeerFuture, Transport};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::ring::Member;

/// Largest message accepted from a peer: a sibling set of large values.
pub const MAX_PEER_MESSAGE: usize = 1 << 30;

/// Encoded bytes per frame, at most; a larger lone item still goes alone.
pub const FRAME_BYTES: usize = 1 << 20;

/// How channels to peers are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChannelSettings {
    connect_timeout: Duration,
    keepalive_interval: Duration,
    keepalive_timeout: Duration,
}

/// Channels to peers, one per address, created on first use.
pub struct GrpcTransport {
    channels: RwLock<HashMap<String, Peer>>,
    settings: ChannelSettings,
    /// `None` when batching is off.
    links: Option<LinkSettings>,
    metrics: Option<Arc<Metrics>>,
    /// Dials over TLS when set.
    tls: Option<Arc<Tls>>,
}

/// What this node keeps per peer address.
#[derive(Clone)]
struct Peer {
    channel: Channel,
    link: Option<Link>,
    /// Set when the peer answered `Exchange` with UNIMPLEMENTED.
    unary_only: Arc<AtomicBool>,
}

impl GrpcTransport {
    /// A transport with the connect timeout (`peer_timeout_ms`) and
    /// keepalive settings of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            channels: RwLock::new(HashMap::new()),
            links: config.peer_calls.batching.then_some(LinkSettings {
                queue: config.peer_calls.max_in_flight.max(1),
                frame_items: config.peer_calls.frame_items.max(1),
                frame_bytes: FRAME_BYTES,
                max_message: MAX_PEER_MESSAGE,
            }),
            metrics: None,
            tls: None,
            settings: ChannelSettings {
                connect_timeout: config.peer_timeout(),
                keepalive_interval: Duration::from_millis(
                    config.peer_calls.keepalive_interval_ms.max(1),
                ),
                keepalive_timeout: Duration::from_millis(
                    config.peer_calls.keepalive_timeout_ms.max(1),
                ),
            },
        }
    }

    /// The same transport, dialling peers over `tls` when set.
    pub fn with_tls(mut self, tls: Option<Arc<Tls>>) -> Self {
        self.tls = tls;
        self
    }

    /// The same transport, counting frames in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The channel to `to`.
    fn channel(&self, to: &Member) -> Result<Channel, PeerError> {
        Ok(self.peer_of(to)?.channel)
    }

    /// What is kept for `to`, made on first use.
    fn peer_of(&self, to: &Member) -> Result<Peer, PeerError> {
        let address = &to.address;
        if let Some(peer) = self
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(address)
        {
            return Ok(peer.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|error| PeerError::Address {
                address: address.clone(),
                reason: error.to_string(),
            })?
            .connect_timeout(self.settings.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(self.settings.keepalive_interval)
            .keep_alive_timeout(self.settings.keepalive_timeout)
            .keep_alive_while_idle(true);
        let mut channels = self.channels.write().unwrap_or_else(|e| e.into_inner());
        let peer = channels.entry(address.clone()).or_insert_with(|| {
            let channel = match &self.tls {
                Some(tls) => endpoint.connect_with_connector_lazy(TlsConnector(Arc::clone(tls))),
                None => endpoint.connect_lazy(),
            };
            Peer {
                link: self.links.map(|settings| {
                    Link::open(
                        to.id.clone(),
                        channel.clone(),
                        settings,
                        self.metrics.clone(),
                    )
                }),
                channel,
                unary_only: Arc::default(),
            }
        });
        Ok(peer.clone())
    }

    /// `to`'s link, unless batching is off or the peer does not serve
    /// `Exchange`.
    fn link(&self, to: &Member) -> Option<(Link, Arc<AtomicBool>)> {
        let peer = self.peer_of(to).ok()?;
        let link = peer
            .link
            .filter(|_| !peer.unary_only.load(Ordering::Relaxed))?;
        Some((link, peer.unary_only))
    }

    /// Sends `call` as an item of `link`; `answer` takes the expected
    /// outcome out of the reply. A peer that does not serve `Exchange` gets
    /// unary calls from then on (this call fails as unreachable).
    fn item<R: Send + 'static>(
        to: &Member,
        (link, unary_only): (Link, Arc<AtomicBool>),
        call: Call,
        deadline: Instant,
        answer: fn(Outcome) -> Option<R>,
    ) -> PeerFuture<R> {
        let id = to.id.clone();
        async move {
            match link.call(call, deadline).await {
                Ok(outcome) => answer(outcome).ok_or_else(|| PeerError::Refused {
                    peer: id,
                    status: Box::new(tonic::Status::internal(
                        "the answer does not match the call",
                    )),
                }),
                Err(PeerError::Refused { status, .. })
                    if status.code() == tonic::Code::Unimplemented =>
                {
                    unary_only.store(true, Ordering::Relaxed);
                    Err(PeerError::Unreachable {
                        peer: id,
                        reason: "the peer does not serve Exchange; unary calls from now on"
                            .to_owned(),
                    })
                }
                Err(error) => Err(error),
            }
        }
        .boxed()
    }

    fn peer(&self, to: &Member) -> Result<PeerClient<Channel>, PeerError> {
        Ok(PeerClient::new(self.channel(to)?)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    fn kv(&self, to: &Member) -> Result<KvClient<Channel>, PeerError> {
        Ok(KvClient::new(self.channel(to)?)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    fn admin(&self, to: &Member) -> Result<AdminClient<Channel>, PeerError> {
        Ok(AdminClient::new(self.channel(to)?))
    }
}

/// Runs one unary call made from a client, mapping its status.
fn unary<C, T, R, F, Fut>(client: Result<C, PeerError>, to: &Member, call: F) -> PeerFuture<R>
where
    C: Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
    F: FnOnce(C) -> Fut + Send + 'static,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send,
    T: Into<R>,
{
    let peer = to.id.clone();
    async move {
        let client = client?;
        call(client)
            .await
            .map(|response| response.into_inner().into())
            .map_err(|status| PeerError::from_status(&peer, status))
    }
    .boxed()
}

/// A response whose content the caller does not use.
struct Ack;

impl From<pb::ReplicaWriteResponse> for Ack {
    fn from(_: pb::ReplicaWriteResponse) -> Self {
        Self
    }
}

fn ack(future: PeerFuture<Ack>) -> PeerFuture<()> {
    future.map(|outcome| outcome.map(|Ack| ())).boxed()
}

/// The answer to a write or hint item.
fn written(outcome: Outcome) -> Option<()> {
    matches!(outcome, Outcome::Written(_)).then_some(())
}

impl Transport for GrpcTransport {
    fn replica_read(
        &self,
        to: &Member,
        request: pb::ReplicaReadRequest,
        deadline: Instant,
    ) -> PeerFuture<pb::ReplicaReadResponse> {
        match self.link(to) {
            Some(link) => {
                Self::item(
                    to,
                    link,
                    Call::Read(request),
                    deadline,
                    |outcome| match outcome {
                        Outcome::Read(response) => Some(response),
                        _ => None,
                    },
                )
            }
            None => unary(self.peer(to), to, |mut c| async move {
                c.replica_read(request).await
            }),
        }
    }

    fn replica_write(
        &self,
        to: &Member,
        request: pb::ReplicaWriteRequest,
        deadline: Instant,
    ) -> PeerFuture<()> {
        match self.link(to) {
            Some(link) => Self::item(to, link, Call::Write(request), deadline, written),
            None => ack(unary(self.peer(to), to, |mut c| async move {
                c.replica_write(request).await
            })),
        }
    }

    fn hint_write(
        &self,
        to: &Member,
        request: pb::HintWriteRequest,
        deadline: Instant,
    ) -> PeerFuture<()> {
        match self.link(to) {
            Some(link) => Self::item(to, link, Call::Hint(request), deadline, written),
            None => ack(unary(self.peer(to), to, |mut c| async move {
                c.hint_write(request).await
            })),
        }
    }

    fn gossip(&self, to: &Member, message: pb::GossipMessage) -> PeerFuture<pb::GossipMessage> {
        unary(
            self.peer(to),
            to,
            |mut c| async move { c.gossip(message).await },
        )
    }

    fn merkle_level(
        &self,
        to: &Member,
        request: pb::MerkleLevelRequest,
    ) -> PeerFuture<pb::MerkleLevelResponse> {
        unary(self.peer(to), to, |mut c| async move {
            c.merkle_level(request).await
        })
    }

    fn segment_keys(
        &self,
        to: &Member,
        request: pb::SegmentKeysRequest,
    ) -> PeerFuture<pb::SegmentKeysResponse> {
        unary(self.peer(to), to, |mut c| async move {
            c.segment_keys(request).await
        })
    }

    fn holds_hint(&self, to: &Member, request: pb::HoldsHintRequest) -> PeerFuture<bool> {
        let call: PeerFuture<pb::HoldsHintResponse> =
            unary(self.peer(to), to, |mut c| async move {
                c.holds_hint(request).await
            });
        call.map(|outcome| outcome.map(|response| response.held))
            .boxed()
    }

    fn forget_tombstone(
        &self,
        to: &Member,
        request: pb::ForgetTombstoneRequest,
    ) -> PeerFuture<bool> {
        let call: PeerFuture<pb::ForgetTombstoneResponse> =
            unary(self.peer(to), to, |mut c| async move {
                c.forget_tombstone(request).await
            });
        call.map(|outcome| outcome.map(|response| response.forgotten))
            .boxed()
    }

    fn stream_partition(
        &self,
        to: &Member,
        request: pb::StreamPartitionRequest,
    ) -> PeerFuture<ChunkStream> {
        let client = self.peer(to);
        let peer = to.id.clone();
        async move {
            let mut client = client?;
            let stream = client
                .stream_partition(request)
                .await
                .map_err(|status| PeerError::from_status(&peer, status))?
                .into_inner();
            let chunks: ChunkStream = stream
                .map(move |chunk| chunk.map_err(|status| PeerError::from_status(&peer, status)))
                .boxed();
            Ok(chunks)
        }
        .boxed()
    }

    fn forward(&self, to: &Member, request: Forward) -> PeerFuture<Forwarded> {
        let client = self.kv(to);
        let peer = to.id.clone();
        async move {
            let mut client = client?;
            let outcome = match request {
                Forward::Get(request) => client
                    .get(request)
                    .await
                    .map(|r| Forwarded::Get(r.into_inner())),
                Forward::Put(request) => client
                    .put(request)
                    .await
                    .map(|r| Forwarded::Put(r.into_inner())),
                Forward::Delete(request) => client
                    .delete(request)
                    .await
                    .map(|r| Forwarded::Delete(r.into_inner())),
            };
            outcome.map_err(|status| PeerError::from_status(&peer, status))
        }
        .boxed()
    }

    fn ring(&self, to: &Member) -> PeerFuture<pb::GetRingResponse> {
        unary(self.admin(to), to, |mut c| async move {
            c.get_ring(pb::GetRingRequest {}).await
        })
    }

    fn status(&self, to: &Member) -> PeerFuture<pb::StatusResponse> {
        unary(self.admin(to), to, |mut c| async move {
            c.status(pb::StatusRequest {}).await
        })
    }
}
