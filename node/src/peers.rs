//! Long-lived gRPC channels to other nodes, one per address, and what the
//! last calls to each taught us about its health.

use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;
use std::time::Duration;

use dynamo_proto::v1::kv_client::KvClient;
use dynamo_proto::v1::peer_client::PeerClient;
use tonic::transport::{Channel, Endpoint};

/// Largest message accepted from a peer: a sibling set of large values.
pub const MAX_PEER_MESSAGE: usize = 1 << 30;

/// What the most recent call to a peer showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Never called yet.
    Unknown,
    /// The last call succeeded.
    Up,
    /// The last call failed to reach it.
    Down,
}

struct Entry {
    channel: Channel,
    health: Health,
}

/// The channel pool.
pub struct Peers {
    entries: RwLock<HashMap<String, Entry>>,
    connect_timeout: Duration,
}

impl Peers {
    /// An empty pool whose connections time out after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            connect_timeout,
        }
    }

    /// The channel to `address`, created lazily on first use.
    ///
    /// # Errors
    /// A message when the address is not a valid URI authority.
    pub fn channel(&self, address: &str) -> Result<Channel, String> {
        if let Some(entry) = self.read().get(address) {
            return Ok(entry.channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("peer address {address:?} is invalid: {e}"))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let entry = entries.entry(address.to_owned()).or_insert(Entry {
            channel,
            health: Health::Unknown,
        });
        Ok(entry.channel.clone())
    }

    /// A `Peer` client for `address`.
    ///
    /// # Errors
    /// As [`Peers::channel`].
    pub fn peer(&self, address: &str) -> Result<PeerClient<Channel>, String> {
        Ok(PeerClient::new(self.channel(address)?)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    /// A `Kv` client for `address`, used to forward requests.
    ///
    /// # Errors
    /// As [`Peers::channel`].
    pub fn kv(&self, address: &str) -> Result<KvClient<Channel>, String> {
        Ok(KvClient::new(self.channel(address)?)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    /// Records the outcome of a call to `address`.
    pub fn record(&self, address: &str, reached: bool) {
        let health = if reached { Health::Up } else { Health::Down };
        if self.read().get(address).map(|e| e.health) == Some(health) {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get_mut(address) {
            entry.health = health;
        }
    }

    /// What the last call to `address` showed.
    pub fn health(&self, address: &str) -> Health {
        self.read()
            .get(address)
            .map_or(Health::Unknown, |entry| entry.health)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// True when a failed call means the peer was not reached in time (as
/// opposed to the peer refusing the request).
pub fn is_unreachable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    ) || status.code() == tonic::Code::Unknown && status.message().contains("transport")
}

/// One call on the `Peer` service with a deadline, recording the peer's
/// health. Errors come back as a sentence.
pub async fn peer_call<T, F, Fut>(
    peers: &Peers,
    address: &str,
    timeout: Duration,
    call: F,
) -> Result<T, String>
where
    F: FnOnce(PeerClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let client = peers.peer(address)?;
    let outcome = with_deadline(timeout, call(client)).await;
    peers.record(address, reached(&outcome));
    outcome
        .map(tonic::Response::into_inner)
        .map_err(|status| status.message().to_owned())
}

/// Runs a gRPC call with a deadline; running out gives `DEADLINE_EXCEEDED`.
pub async fn with_deadline<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(timeout, call).await {
        Ok(outcome) => outcome,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// True when the call reached the peer (even if it refused the request).
pub fn reached<T>(outcome: &Result<T, tonic::Status>) -> bool {
    outcome
        .as_ref()
        .map_or_else(|status| !is_unreachable(status), |_| true)
}
