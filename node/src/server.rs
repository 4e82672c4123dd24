//! The gRPC edge: `Kv`, `Admin` and `Peer` services over one listener, error
//! mapping to `tonic::Status`, and a handle that stops the server gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_server::{Admin, AdminServer};
use dynamo_proto::v1::kv_server::{Kv, KvServer};
use dynamo_proto::v1::peer_server::{Peer, PeerServer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::config::Config;
use crate::coordinator::KvError;
use crate::node::{Node, StartError};
use crate::peers::{Health, MAX_PEER_MESSAGE};
use crate::storage::{Durability, StorageError};
use crate::wire;

/// The services of one node.
#[derive(Clone)]
struct Services {
    node: Arc<Node>,
}

impl From<KvError> for Status {
    fn from(error: KvError) -> Self {
        let message = error.to_string();
        match error {
            KvError::InvalidArgument(_) | KvError::Context(_) => Status::invalid_argument(message),
            KvError::Unavailable { .. } => Status::unavailable(message),
            KvError::Storage(StorageError::TooManySiblings { .. }) => {
                Status::failed_precondition(message)
            }
            KvError::Storage(_) => Status::internal(message),
            KvError::Forwarded(status) => status,
        }
    }
}

#[tonic::async_trait]
impl Kv for Services {
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        Ok(Response::new(self.node.get(request.into_inner()).await?))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        Ok(Response::new(self.node.put(request.into_inner()).await?))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        Ok(Response::new(self.node.delete(request.into_inner()).await?))
    }
}

#[tonic::async_trait]
impl Admin for Services {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let node = &self.node;
        let ring = node.ring();
        let members = ring
            .members()
            .iter()
            .enumerate()
            .map(|(index, member)| {
                let state = if member.id == node.id() {
                    "self"
                } else {
                    match node.peers().health(&member.address) {
                        Health::Up => "up",
                        Health::Down => "down",
                        Health::Unknown => "unknown",
                    }
                };
                pb::MemberStatus {
                    member: Some(pb::Member {
                        id: member.id.clone(),
                        address: member.address.clone(),
                        zone: member.zone.clone(),
                    }),
                    state: state.into(),
                    partitions: ring.owned_by(index as u32),
                }
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            id: node.id().to_owned(),
            incarnation: format!("{:016x}", node.storage().incarnation()),
            epoch: ring.epoch(),
            members,
            keys: node.storage().approximate_keys(),
            uptime_seconds: node.started().elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn get_ring(
        &self,
        _request: Request<pb::GetRingRequest>,
    ) -> Result<Response<pb::GetRingResponse>, Status> {
        let ring = self.node.ring();
        Ok(Response::new(pb::GetRingResponse {
            ring: Some(ring.to_pb()),
            preferences: ring.preferences_pb(),
        }))
    }
}

#[tonic::async_trait]
impl Peer for Services {
    async fn replica_read(
        &self,
        request: Request<pb::ReplicaReadRequest>,
    ) -> Result<Response<pb::ReplicaReadResponse>, Status> {
        let request = request.into_inner();
        let partition = self.node.ring().partition_of(&request.key);
        let set = self
            .node
            .storage()
            .read(partition, &request.key)
            .map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(pb::ReplicaReadResponse {
            siblings: Some(wire::set_to_pb(&set)),
        }))
    }

    async fn replica_write(
        &self,
        request: Request<pb::ReplicaWriteRequest>,
    ) -> Result<Response<pb::ReplicaWriteResponse>, Status> {
        let request = request.into_inner();
        let incoming = wire::set_from_pb(request.siblings)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        let partition = self.node.ring().partition_of(&request.key);
        let durability = if request.sync {
            Durability::Sync
        } else {
            Durability::Buffer
        };
        let node = Arc::clone(&self.node);
        let merged = tokio::task::spawn_blocking(move || {
            node.storage()
                .merge(partition, &request.key, &incoming, durability)
        })
        .await
        .map_err(|error| Status::internal(error.to_string()))?;
        merged.map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(pb::ReplicaWriteResponse {}))
    }
}

/// A running node: its address, its shared state, and the means to stop it.
pub struct RunningNode {
    node: Arc<Node>,
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningNode {
    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The node's shared state.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Stops accepting requests, finishes the ones in flight, and fsyncs.
    ///
    /// # Errors
    /// The server's or the final fsync's failure.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        self.node.storage().sync()?;
        info!(id = self.node.id(), "stopped");
        Ok(())
    }

    /// Waits until the server ends by itself (it only does on error).
    ///
    /// # Errors
    /// The server's failure.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }
}

/// Opens the node described by `config` and serves it on `listener`.
///
/// # Errors
/// [`StartError`] when the configuration, ring or storage is unusable.
pub async fn start(config: Config, listener: TcpListener) -> Result<RunningNode, StartError> {
    let limits = config.limits;
    let node = Node::open(config)?;
    let address = listener.local_addr().map_err(|source| {
        StartError::Config(crate::config::ConfigError::Invalid(format!(
            "listener has no address: {source}"
        )))
    })?;
    let services = Services {
        node: Arc::clone(&node),
    };
    // Large enough that an oversized value reaches the coordinator and gets a
    // clear INVALID_ARGUMENT instead of a transport error.
    let client_message = limits
        .max_value_bytes
        .saturating_mul(2)
        .saturating_add(limits.max_key_bytes)
        .saturating_add(1 << 20);
    let kv = KvServer::new(services.clone())
        .max_decoding_message_size(client_message)
        .max_encoding_message_size(MAX_PEER_MESSAGE);
    let peer = PeerServer::new(services.clone())
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE);
    let admin = AdminServer::new(services);
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = TcpListenerStream::new(listener);
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(kv)
            .add_service(admin)
            .add_service(peer)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
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
        stop: Some(stop),
        task,
    })
}
