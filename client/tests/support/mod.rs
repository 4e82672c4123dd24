//! An in-process stand-in for a DynamoKV cluster: nodes that share one
//! ring with a single partition and answer `Kv` calls as each test tells
//! them to. Replication is faked by one register all nodes share.

#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dynamo_proto::v1 as pb;
use dynamo_proto::v1::admin_server::{Admin, AdminServer};
use dynamo_proto::v1::kv_server::{Kv, KvServer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// How one mock node answers `Kv` calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Reads and writes the shared register.
    Serve,
    /// Answers `Unavailable` (too few replicas).
    Unavailable,
    /// Answers `InvalidArgument`.
    Reject,
    /// Nothing listens on its address.
    Down,
}

/// A running mock cluster.
pub struct MockCluster {
    /// Address every node listens on, in ring order.
    pub addresses: Vec<String>,
    calls: Vec<Arc<AtomicUsize>>,
}

impl MockCluster {
    /// Starts one node per behaviour. The ring has one partition whose
    /// preference list is the first `n` nodes; the others are fallbacks.
    pub async fn start(behaviours: &[Behaviour], n: u32) -> Self {
        Self::start_advertising(behaviours, n, |_, address| address.to_owned()).await
    }

    /// Like [`start`](Self::start), but the ring names node `i` by
    /// `advertise(i, its address)` instead of the address it listens on:
    /// what a client outside Kubernetes sees through a port-forward.
    pub async fn start_advertising(
        behaviours: &[Behaviour],
        n: u32,
        advertise: impl Fn(usize, &str) -> String,
    ) -> Self {
        let mut listeners = Vec::new();
        let mut addresses = Vec::new();
        for _ in behaviours {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a free port");
            let address: SocketAddr = listener.local_addr().expect("bound listener");
            addresses.push(address.to_string());
            listeners.push(listener);
        }
        let advertised: Vec<String> = addresses
            .iter()
            .enumerate()
            .map(|(i, address)| advertise(i, address))
            .collect();
        let ring = ring(&advertised, n);
        let register = Arc::new(Mutex::new(Register::default()));
        let mut calls = Vec::new();
        for (listener, behaviour) in listeners.into_iter().zip(behaviours) {
            let node = Node {
                ring: ring.clone(),
                behaviour: *behaviour,
                calls: Arc::new(AtomicUsize::new(0)),
                register: Arc::clone(&register),
            };
            calls.push(Arc::clone(&node.calls));
            if *behaviour == Behaviour::Down {
                drop(listener);
                continue;
            }
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(KvServer::new(node.clone()))
                    .add_service(AdminServer::new(node))
                    .serve_with_incoming(TcpListenerStream::new(listener)),
            );
        }
        Self { addresses, calls }
    }

    /// How many `Kv` calls each node received.
    pub fn calls(&self) -> Vec<usize> {
        self.calls
            .iter()
            .map(|calls| calls.load(Ordering::SeqCst))
            .collect()
    }
}

fn ring(addresses: &[String], n: u32) -> pb::GetRingResponse {
    let members = (0u32..).zip(addresses);
    pb::GetRingResponse {
        ring: Some(pb::Ring {
            buckets: Vec::new(),
            epoch: 1,
            members: members
                .clone()
                .map(|(i, address)| pb::Member {
                    weight: 0,
                    id: format!("mock-{i}"),
                    address: address.clone(),
                    zone: "z".into(),
                })
                .collect(),
            owners: vec![0],
            n,
            r: 1,
            w: 1,
            cluster: "mock".into(),
            next_owners: Vec::new(),
        }),
        preferences: vec![pb::Preference {
            members: members.map(|(i, _)| i).collect(),
        }],
    }
}

/// The single key-independent register the cluster stores: a write with a
/// context replaces every sibling, a blind write adds one.
#[derive(Default)]
struct Register {
    version: u64,
    siblings: Vec<pb::Sibling>,
}

impl Register {
    fn write(&mut self, context: &Bytes, sibling: pb::Sibling) -> Bytes {
        if !context.is_empty() {
            self.siblings.clear();
        }
        self.siblings.push(sibling);
        self.version += 1;
        self.context()
    }

    fn context(&self) -> Bytes {
        if self.version == 0 {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(&self.version.to_be_bytes())
        }
    }
}

#[derive(Clone)]
struct Node {
    ring: pb::GetRingResponse,
    behaviour: Behaviour,
    calls: Arc<AtomicUsize>,
    register: Arc<Mutex<Register>>,
}

impl Node {
    /// Counts the call and answers the way this node misbehaves, if it does.
    fn admit(&self) -> Result<std::sync::MutexGuard<'_, Register>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.behaviour {
            Behaviour::Serve => Ok(self.register.lock().expect("register lock")),
            Behaviour::Unavailable => Err(Status::unavailable("only 0 of 1 replicas answered")),
            Behaviour::Reject => Err(Status::invalid_argument(
                "the key is longer than 4096 bytes",
            )),
            Behaviour::Down => unreachable!("a down node serves nothing"),
        }
    }
}

fn sibling(value: Bytes, tombstone: bool, timestamp_ms: u64) -> pb::Sibling {
    pb::Sibling {
        value,
        tombstone,
        timestamp_ms,
    }
}

#[tonic::async_trait]
impl Kv for Node {
    async fn get(
        &self,
        _request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let register = self.admit()?;
        Ok(Response::new(pb::GetResponse {
            siblings: register.siblings.clone(),
            context: register.context(),
            replies: 1,
        }))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let mut register = self.admit()?;
        let request = request.into_inner();
        let timestamp = 1000 + register.version;
        let context = register.write(&request.context, sibling(request.value, false, timestamp));
        Ok(Response::new(pb::PutResponse { context, acks: 1 }))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let mut register = self.admit()?;
        let request = request.into_inner();
        let timestamp = 1000 + register.version;
        let context = register.write(&request.context, sibling(Bytes::new(), true, timestamp));
        Ok(Response::new(pb::DeleteResponse { context, acks: 1 }))
    }
}

#[tonic::async_trait]
impl Admin for Node {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let register = self.register.lock().expect("register lock");
        Ok(Response::new(pb::StatusResponse {
            id: "mock".into(),
            incarnation: "00".into(),
            epoch: 1,
            members: Vec::new(),
            keys: u64::from(!register.siblings.is_empty()),
            uptime_seconds: 1,
            version: "mock".into(),
            ..Default::default()
        }))
    }

    async fn anti_entropy(
        &self,
        _request: Request<pb::AntiEntropyRequest>,
    ) -> Result<Response<pb::AntiEntropyResponse>, Status> {
        Err(Status::unimplemented("the mock has no replicas to compare"))
    }

    async fn propose_ring(
        &self,
        _request: Request<pb::RingChange>,
    ) -> Result<Response<pb::RingChangeResponse>, Status> {
        Err(Status::unimplemented("the mock's ring is fixed"))
    }

    async fn commit_ring(
        &self,
        _request: Request<pb::RingChange>,
    ) -> Result<Response<pb::RingChangeResponse>, Status> {
        Err(Status::unimplemented("the mock's ring is fixed"))
    }

    async fn transfer_status(
        &self,
        _request: Request<pb::TransferStatusRequest>,
    ) -> Result<Response<pb::TransferStatusResponse>, Status> {
        Ok(Response::new(pb::TransferStatusResponse::default()))
    }

    async fn get_ring(
        &self,
        _request: Request<pb::GetRingRequest>,
    ) -> Result<Response<pb::GetRingResponse>, Status> {
        Ok(Response::new(self.ring.clone()))
    }
}
