//! The etcd backend: etcd's v3 KV service over gRPC, with the slice of its
//! API compiled from `bench/proto`. Gets are etcd's default linearizable
//! Range of one key; puts are plain Puts. Operations go to the members'
//! endpoints in turn, one HTTP/2 connection each, as etcd's own client
//! balances them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tonic::transport::{Channel, Endpoint};

use crate::backend::Backend;
use crate::workload::key;

/// Code generated from `bench/proto` (etcd's packages and names).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// etcd's `etcdserverpb` package: the KV service, Range and Put.
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    /// etcd's `mvccpb` package: the stored key-value pair.
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
}

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::{PutRequest, RangeRequest};

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint was given.
    #[error("no etcd endpoint given")]
    NoEndpoints,
    /// An endpoint is not a valid `host:port` or URL.
    #[error("invalid etcd endpoint {endpoint:?}: {source}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it does not parse.
        source: tonic::transport::Error,
    },
    /// A member could not be reached.
    #[error("cannot connect to etcd at {endpoint}: {source}")]
    Connect {
        /// The member's endpoint.
        endpoint: String,
        /// The transport's error.
        source: tonic::transport::Error,
    },
    /// A member answered a call with an error status (or the call timed
    /// out or its connection broke).
    #[error("etcd at {endpoint}: {source}")]
    Status {
        /// The member's endpoint.
        endpoint: String,
        /// The status.
        source: tonic::Status,
    },
}

/// A connection to every member of an etcd cluster.
#[derive(Debug)]
pub struct EtcdBackend {
    members: Vec<Member>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Member {
    endpoint: String,
    kv: KvClient<Channel>,
}

impl EtcdBackend {
    /// Connects to every endpoint (`host:port`, `http://` optional); each
    /// call then has `timeout` to answer.
    ///
    /// # Errors
    ///
    /// [`EtcdError::NoEndpoints`], [`EtcdError::InvalidEndpoint`], and
    /// [`EtcdError::Connect`] for the first member that cannot be reached.
    pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Self, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let endpoint = endpoint.trim().to_owned();
            let uri = if endpoint.contains("://") {
                endpoint.clone()
            } else {
                format!("http://{endpoint}")
            };
            let channel = Endpoint::from_shared(uri)
                .map_err(|source| EtcdError::InvalidEndpoint {
                    endpoint: endpoint.clone(),
                    source,
                })?
                .timeout(timeout)
                .connect_timeout(timeout)
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(|source| EtcdError::Connect {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            members.push(Member {
                endpoint,
                kv: KvClient::new(channel),
            });
        }
        Ok(Self {
            members,
            next: AtomicUsize::new(0),
        })
    }

    /// The member the next call goes to.
    fn member(&self) -> &Member {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.members[turn % self.members.len()]
    }
}

impl Backend for EtcdBackend {
    type Error = EtcdError;

    async fn get(&self, record: u64) -> Result<(), EtcdError> {
        let request = RangeRequest {
            key: Bytes::from(key(record)),
            serializable: false,
        };
        self.call(|mut kv| async move { kv.range(request).await.map(drop) })
            .await
    }

    async fn put(&self, record: u64, value: &Bytes) -> Result<(), EtcdError> {
        let request = PutRequest {
            key: Bytes::from(key(record)),
            value: value.clone(),
        };
        self.call(|mut kv| async move { kv.put(request).await.map(drop) })
            .await
    }
}

impl EtcdBackend {
    /// Runs one call on the next member's client, naming the member in
    /// its error.
    async fn call<F, Fut>(&self, call: F) -> Result<(), EtcdError>
    where
        F: FnOnce(KvClient<Channel>) -> Fut,
        Fut: Future<Output = Result<(), tonic::Status>>,
    {
        let member = self.member();
        call(member.kv.clone())
            .await
            .map_err(|source| EtcdError::Status {
                endpoint: member.endpoint.clone(),
                source,
            })
    }
}
