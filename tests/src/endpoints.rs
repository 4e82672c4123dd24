//! gRPC clients of a process cluster's nodes, dialled at each node's real
//! address (never through the link proxies), with one cached channel per
//! address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dynamo_proto::v1::admin_client::AdminClient;
use dynamo_proto::v1::kv_client::KvClient;
use dynamo_proto::v1::peer_client::PeerClient;
use tonic::transport::{Channel, Endpoint};

/// Deadline of one client call unless said otherwise.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadline of a call that does a lot of work, such as an anti-entropy pass.
pub const SLOW_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the nodes of a cluster listen; cheap to clone and share with tasks.
#[derive(Clone)]
pub struct Endpoints {
    addresses: Arc<RwLock<Vec<SocketAddr>>>,
    channels: Arc<Mutex<HashMap<(SocketAddr, Duration), Channel>>>,
}

impl Endpoints {
    /// Endpoints of nodes listening at `addresses`.
    pub fn new(addresses: Vec<SocketAddr>) -> Self {
        Self {
            addresses: Arc::new(RwLock::new(addresses)),
            channels: Arc::default(),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The real address of node `i`.
    pub fn address(&self, i: usize) -> SocketAddr {
        self.read()[i]
    }

    /// Records that node `i` now listens at `address`.
    pub fn set_address(&self, i: usize, address: SocketAddr) {
        self.addresses.write().unwrap_or_else(|e| e.into_inner())[i] = address;
    }

    /// A channel to node `i` whose calls time out after `timeout`; it
    /// connects on first use and reconnects after failures.
    pub fn channel(&self, i: usize, timeout: Duration) -> Channel {
        let address = self.address(i);
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry((address, timeout))
            .or_insert_with(|| {
                Endpoint::from_shared(format!("http://{address}"))
                    .expect("a socket address is a valid URI authority")
                    .connect_timeout(Duration::from_secs(1))
                    .timeout(timeout)
                    .tcp_nodelay(true)
                    .connect_lazy()
            })
            .clone()
    }

    /// A `Kv` client of node `i`.
    pub fn kv(&self, i: usize) -> KvClient<Channel> {
        KvClient::new(self.channel(i, CALL_TIMEOUT))
    }

    /// An `Admin` client of node `i`.
    pub fn admin(&self, i: usize) -> AdminClient<Channel> {
        AdminClient::new(self.channel(i, CALL_TIMEOUT))
    }

    /// An `Admin` client of node `i` for calls that take long.
    pub fn slow_admin(&self, i: usize) -> AdminClient<Channel> {
        AdminClient::new(self.channel(i, SLOW_CALL_TIMEOUT))
    }

    /// A `Peer` client of node `i`, for inspecting its local copies.
    pub fn peer(&self, i: usize) -> PeerClient<Channel> {
        PeerClient::new(self.channel(i, CALL_TIMEOUT))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<SocketAddr>> {
        self.addresses.read().unwrap_or_else(|e| e.into_inner())
    }
}
