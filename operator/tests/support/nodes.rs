//! Fake storage nodes: an Admin gRPC endpoint per member index on 127.0.0.1
//! that keeps a ring like a node does (propose, commit, transfer progress).
//! The test plays the kubelet: it boots, joins and stops them.

use std::sync::{Arc, Mutex};

use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_server::{Admin, AdminServer};
use tonic::{Request, Response, Status};

/// How many member indexes get an endpoint.
pub const SLOTS: usize = 6;

#[derive(Clone, Default)]
struct Node {
    up: bool,
    ring: Option<pb::Ring>,
}

#[derive(Default)]
struct Shared {
    nodes: Vec<Node>,
    /// Incoming transfers report complete.
    transfers_done: bool,
}

/// The fake cluster.
pub struct FakeNodes {
    addresses: Vec<String>,
    shared: Arc<Mutex<Shared>>,
}

struct Endpoint {
    index: usize,
    shared: Arc<Mutex<Shared>>,
}

impl Endpoint {
    fn node(&self) -> Result<Node, Status> {
        let shared = self.shared.lock().expect("lock");
        let node = shared.nodes[self.index].clone();
        if node.up {
            Ok(node)
        } else {
            Err(Status::unavailable("down"))
        }
    }

    fn install(&self, ring: Option<pb::Ring>) -> Result<Response<pb::RingChangeResponse>, Status> {
        self.node()?;
        let ring = ring.ok_or_else(|| Status::invalid_argument("no ring"))?;
        let epoch = ring.epoch;
        let mut shared = self.shared.lock().expect("lock");
        let node = &mut shared.nodes[self.index];
        if node.ring.as_ref().is_none_or(|r| r.epoch <= epoch) {
            node.ring = Some(ring);
        }
        Ok(Response::new(pb::RingChangeResponse { epoch }))
    }
}

#[tonic::async_trait]
impl Admin for Endpoint {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let node = self.node()?;
        Ok(Response::new(pb::StatusResponse {
            id: format!("member-{}", self.index),
            epoch: node.ring.map(|r| r.epoch).unwrap_or_default(),
            ..pb::StatusResponse::default()
        }))
    }

    async fn get_ring(
        &self,
        _: Request<pb::GetRingRequest>,
    ) -> Result<Response<pb::GetRingResponse>, Status> {
        let ring = self
            .node()?
            .ring
            .ok_or_else(|| Status::unavailable("no ring yet"))?;
        Ok(Response::new(pb::GetRingResponse {
            ring: Some(ring),
            preferences: Vec::new(),
        }))
    }

    async fn anti_entropy(
        &self,
        _: Request<pb::AntiEntropyRequest>,
    ) -> Result<Response<pb::AntiEntropyResponse>, Status> {
        Err(Status::unimplemented("not faked"))
    }

    async fn propose_ring(
        &self,
        request: Request<pb::RingChange>,
    ) -> Result<Response<pb::RingChangeResponse>, Status> {
        self.install(request.into_inner().ring)
    }

    async fn commit_ring(
        &self,
        request: Request<pb::RingChange>,
    ) -> Result<Response<pb::RingChangeResponse>, Status> {
        self.install(request.into_inner().ring)
    }

    async fn transfer_status(
        &self,
        _: Request<pb::TransferStatusRequest>,
    ) -> Result<Response<pb::TransferStatusResponse>, Status> {
        let ring = self.node()?.ring.unwrap_or_default();
        let me = ring
            .members
            .iter()
            .position(|m| m.id.ends_with(&format!("-{}", self.index)));
        let gains = me.map_or(0, |me| {
            ring.next_owners
                .iter()
                .zip(&ring.owners)
                .filter(|&(&next, &now)| next as usize == me && now as usize != me)
                .count() as u32
        });
        let done = self.shared.lock().expect("lock").transfers_done;
        Ok(Response::new(pb::TransferStatusResponse {
            epoch: ring.epoch,
            partitions_total: gains,
            partitions_done: if done { gains } else { 0 },
            bytes_left: if done { 0 } else { u64::from(gains) * 1000 },
            ..pb::TransferStatusResponse::default()
        }))
    }
}

impl FakeNodes {
    /// Binds an endpoint per slot; every node starts down.
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            nodes: vec![Node::default(); SLOTS],
            transfers_done: false,
        }));
        let mut addresses = Vec::new();
        for index in 0..SLOTS {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addresses.push(listener.local_addr().expect("address").to_string());
            let service = AdminServer::new(Endpoint {
                index,
                shared: Arc::clone(&shared),
            });
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
            );
        }
        Self { addresses, shared }
    }

    /// The address of member `index` (a closed port beyond the slots).
    pub fn address(&self, index: usize) -> String {
        self.addresses
            .get(index)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:1".to_owned())
    }

    /// The first members start from the bootstrap list: each computes the
    /// same first ring (epoch 1, partitions round-robin).
    pub fn boot(&self, members: &[pb::Member], partitions: u32) {
        let ring = pb::Ring {
            epoch: 1,
            members: members.to_vec(),
            owners: (0..partitions).map(|p| p % members.len() as u32).collect(),
            ..pb::Ring::default()
        };
        let mut shared = self.shared.lock().expect("lock");
        for index in 0..members.len() {
            shared.nodes[index] = Node {
                up: true,
                ring: Some(ring.clone()),
            };
        }
    }

    /// Member `index` starts with `--seed`: it fetches member 0's ring.
    pub fn join(&self, index: usize) {
        let mut shared = self.shared.lock().expect("lock");
        let ring = shared.nodes[0].ring.clone();
        shared.nodes[index] = Node { up: true, ring };
    }

    /// Member `index`'s pod is gone.
    pub fn stop(&self, index: usize) {
        self.shared.lock().expect("lock").nodes[index] = Node::default();
    }

    /// Incoming partition transfers report complete (or not).
    pub fn set_transfers_done(&self, done: bool) {
        self.shared.lock().expect("lock").transfers_done = done;
    }

    /// The ring member `index` uses.
    pub fn ring(&self, index: usize) -> Option<pb::Ring> {
        self.shared.lock().expect("lock").nodes[index].ring.clone()
    }
}
