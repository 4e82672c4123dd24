//! A mocked API server for reconcile tests: it answers the operator's
//! requests in the order a test expects and fails on any other request.

pub mod nodes;

use std::sync::Arc;
use std::time::Duration;

use dynamo_crd::{DynamoCluster, DynamoClusterSpec, DynamoClusterStatus};
use dynamo_operator::k8s::controller::{self, Context};
use dynamo_operator::k8s::metrics::Metrics;
use dynamo_operator::k8s::network::OperatorPods;
use futures::FutureExt;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

use nodes::FakeNodes;

/// Namespace of every test cluster.
pub const NS: &str = "shop";
/// Partitions of every test cluster (small rings keep the rings readable).
pub const PARTITIONS: u32 = 16;
/// Namespace of the operator's pods in every test context.
pub const OPERATOR_NS: &str = "dynamo-system";

/// A DynamoCluster as the API server returns it, finalizer in place.
pub fn cluster(name: &str, replicas: i32) -> DynamoCluster {
    let mut spec = DynamoClusterSpec::with_replicas(replicas);
    spec.partitions = PARTITIONS;
    let mut cluster = DynamoCluster::new(name, spec);
    cluster.metadata.namespace = Some(NS.into());
    cluster.metadata.uid = Some(format!("uid-{name}"));
    cluster.metadata.generation = Some(1);
    cluster.metadata.resource_version = Some("1".into());
    cluster.metadata.finalizers = Some(vec!["dynamokv.io/cleanup".into()]);
    cluster
}

/// A storage pod of `cluster`, Ready or not.
pub fn pod(cluster: &str, index: usize, ready: bool) -> Value {
    named_pod(cluster, "", &format!("{cluster}-{index}"), ready)
}

/// Storage pod `ordinal` of pool `pool` of `cluster`, Ready or not.
#[allow(dead_code)] // Only reconcile.rs runs pools.
pub fn pool_pod(cluster: &str, pool: &str, ordinal: usize, ready: bool) -> Value {
    named_pod(cluster, pool, &format!("{cluster}-{pool}-{ordinal}"), ready)
}

/// Storage pod `name` of `cluster`, of pool `pool` (empty: the implicit
/// pool, which has no pool label).
fn named_pod(cluster: &str, pool: &str, name: &str, ready: bool) -> Value {
    let mut labels = json!({
        "app.kubernetes.io/name": "dynamokv",
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/component": "node",
    });
    if !pool.is_empty() {
        labels["dynamokv.io/pool"] = json!(pool);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": labels,
        },
        "status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        },
    })
}

/// A storage pod of `cluster` bound to Node `node`, Ready or not.
#[allow(dead_code)] // Only zones.rs binds pods to Nodes.
pub fn bound_pod(cluster: &str, index: usize, node: &str, ready: bool) -> Value {
    let mut pod = pod(cluster, index, ready);
    pod["spec"] = json!({"containers": [], "nodeName": node});
    pod
}

/// A test context whose Admin calls reach `nodes`, with a fixed clock:
/// member `<cluster>-<i>` is fake node `i`.
pub fn context(nodes: &FakeNodes) -> (Arc<Context>, ApiServer) {
    context_with(nodes, &[])
}

/// A test context whose Admin calls reach `nodes`: member `members[k]` is
/// fake node `k`, and any other member `<cluster>-<i>` is fake node `i`.
pub fn context_with(nodes: &FakeNodes, members: &[&str]) -> (Arc<Context>, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let addresses: Vec<String> = (0..nodes::SLOTS + 2).map(|i| nodes.address(i)).collect();
    let members: Vec<String> = members.iter().map(|&id| id.to_owned()).collect();
    let context = Context {
        reporter: Reporter {
            controller: "dynamo-operator".into(),
            instance: Some("test".into()),
        },
        client,
        metrics: Arc::new(Metrics::default()),
        address: Arc::new(move |_, cluster, member| {
            let index = members.iter().position(|id| id == member).or_else(|| {
                member
                    .strip_prefix(cluster)?
                    .strip_prefix('-')?
                    .parse()
                    .ok()
            });
            index
                .and_then(|index| addresses.get(index))
                .cloned()
                .unwrap_or_else(|| "127.0.0.1:1".into())
        }),
        admin: Arc::new(dynamo_operator::admin::GrpcAdmin::new(
            Duration::from_secs(2),
            None,
        )),
        admin_tls: None,
        clock: || k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("time"),
        operator_pods: Some(
            OperatorPods::parse(OPERATOR_NS, "app.kubernetes.io/component=operator")
                .expect("operator labels"),
        ),
    };
    let api = ApiServer {
        handle,
        network_policy: None,
    };
    (Arc::new(context), api)
}

/// Runs one reconcile of `cluster` while `script` answers the API server.
/// Returns what the script returns; fails on any request after the script.
pub async fn reconcile<T>(
    cluster: &DynamoCluster,
    ctx: &Arc<Context>,
    api: &mut ApiServer,
    script: impl AsyncFnOnce(&mut ApiServer) -> T,
) -> (kube::runtime::controller::Action, T) {
    let run = controller::reconcile(Arc::new(cluster.clone()), Arc::clone(ctx));
    let (action, value) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(run, script(api))
    })
    .await
    .expect("reconcile and script finish (an unexpected request blocks them)");
    let action = action.expect("reconcile succeeds");
    api.assert_idle();
    (action, value)
}

/// What one reconcile applied, as JSON, and what it did to the
/// NetworkPolicy.
pub struct Applied {
    /// The ConfigMap.
    pub config_map: Value,
    /// The first StatefulSet.
    pub stateful_set: Value,
    /// Every StatefulSet, in the order applied.
    #[allow(dead_code)] // Only reconcile.rs runs pools.
    pub stateful_sets: Vec<Value>,
    /// The merge patches that scaled StatefulSets of removed pools.
    #[allow(dead_code)] // Only reconcile.rs runs pools.
    pub scaled: Vec<Value>,
    /// The NetworkPolicy request.
    pub network_policy: PolicyChange,
}

/// The StatefulSets a reconcile changes: applied (the spec's pools),
/// scaled by a merge patch (removed pools that drain) and deleted (removed
/// pools whose last member left).
#[derive(Clone, Debug, Default)]
pub struct StatefulSets {
    /// Applied, in order.
    pub applied: Vec<String>,
    /// Scaled, in order.
    pub scaled: Vec<String>,
    /// Deleted, in order.
    pub deleted: Vec<String>,
}

/// What a reconcile did to the storage pods' NetworkPolicy.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyChange {
    /// Applied this body.
    Applied(Value),
    /// Deleted it; `existed` says whether the mock held one (404 if not).
    Deleted {
        /// Whether a policy was applied before.
        existed: bool,
    },
}

/// The mocked API server, holding the NetworkPolicy last applied so that a
/// delete is answered as a real API server would.
pub struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
    network_policy: Option<Value>,
}

fn respond(send: SendResponse<Response<Body>>, body: &Value) {
    respond_with(send, http::StatusCode::OK, body);
}

fn respond_with(send: SendResponse<Response<Body>>, code: http::StatusCode, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("response"),
    );
}

impl ApiServer {
    /// The next request, which must have `method` and `path`; returns its
    /// query, its JSON body and the response slot.
    pub async fn next(
        &mut self,
        method: Method,
        path: &str,
    ) -> (String, Value, SendResponse<Response<Body>>) {
        let (_, query, body, send) = self.next_of(&[method], path).await;
        (query, body, send)
    }

    /// The next request, which must have one of `methods` and `path`;
    /// returns its method, query, JSON body and the response slot.
    async fn next_of(
        &mut self,
        methods: &[Method],
        path: &str,
    ) -> (Method, String, Value, SendResponse<Response<Body>>) {
        let (request, send) = self
            .handle
            .next_request()
            .await
            .expect("the operator sends a request");
        assert!(
            methods.contains(request.method()) && request.uri().path() == path,
            "unexpected request {} {}, expected {methods:?} {path}",
            request.method(),
            request.uri()
        );
        let method = request.method().clone();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        (method, query, body, send)
    }

    /// Fails when a request is waiting.
    pub fn assert_idle(&mut self) {
        if let Some(Some((request, _))) = self.handle.next_request().now_or_never() {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }

    /// Answers the list of the cluster's pods.
    pub async fn list_pods(&mut self, cluster: &str, pods: Vec<Value>) {
        let (query, _, send) = self
            .next(Method::GET, &format!("/api/v1/namespaces/{NS}/pods"))
            .await;
        assert!(
            query.contains(&format!("app.kubernetes.io%2Finstance%3D{cluster}")),
            "{query}"
        );
        respond(
            send,
            &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}),
        );
    }

    /// Answers the read of Node `name` with its labels.
    #[allow(dead_code)] // Only zones.rs reads Nodes.
    pub async fn get_node(&mut self, name: &str, labels: Value) {
        let (_, _, send) = self
            .next(Method::GET, &format!("/api/v1/nodes/{name}"))
            .await;
        respond(
            send,
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}),
        );
    }

    /// Answers the server-side apply of the status and returns the status.
    pub async fn status(&mut self, cluster: &DynamoCluster) -> DynamoClusterStatus {
        let name = cluster.metadata.name.clone().expect("name");
        let (query, body, send) = self
            .next(
                Method::PATCH,
                &format!("/apis/dynamokv.io/v1alpha1/namespaces/{NS}/dynamoclusters/{name}/status"),
            )
            .await;
        assert_server_side_apply(&query);
        let status: DynamoClusterStatus =
            serde_json::from_value(body["status"].clone()).expect("a status");
        let mut updated = cluster.clone();
        updated.status = Some(status.clone());
        respond(send, &serde_json::to_value(&updated).expect("json"));
        status
    }

    /// Answers one server-side apply of an object and returns its body.
    pub async fn apply(&mut self, path: &str) -> Value {
        let (query, body, send) = self.next(Method::PATCH, path).await;
        answer_apply(path, &query, send, body)
    }

    /// Answers the applies of every object of a cluster without pools, in
    /// their order.
    pub async fn apply_all(&mut self, name: &str) -> Applied {
        let sets = StatefulSets {
            applied: vec![name.to_owned()],
            ..StatefulSets::default()
        };
        self.apply_with_sets(name, &sets).await
    }

    /// Answers the applies of every object, in their order, with the
    /// StatefulSets `sets` applied, scaled and deleted.
    pub async fn apply_with_sets(&mut self, name: &str, sets: &StatefulSets) -> Applied {
        self.apply(&format!("/api/v1/namespaces/{NS}/services/{name}-peers"))
            .await;
        self.apply(&format!("/api/v1/namespaces/{NS}/services/{name}"))
            .await;
        let config_map = self
            .apply(&format!("/api/v1/namespaces/{NS}/configmaps/{name}-config"))
            .await;
        let mut stateful_sets = Vec::new();
        let path = |set: &str| format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{set}");
        for set in &sets.applied {
            stateful_sets.push(self.apply(&path(set)).await);
        }
        let mut scaled = Vec::new();
        for set in &sets.scaled {
            let (query, body, send) = self.next(Method::PATCH, &path(set)).await;
            assert!(!query.contains("fieldManager"), "a merge patch: {query}");
            respond(
                send,
                &json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": set}}),
            );
            scaled.push(body);
        }
        for set in &sets.deleted {
            let (_, _, send) = self.next(Method::DELETE, &path(set)).await;
            respond(
                send,
                &json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": set}}),
            );
        }
        let stateful_set = stateful_sets.first().cloned().unwrap_or_default();
        self.apply(&format!(
            "/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{name}"
        ))
        .await;
        let network_policy = self.network_policy(name).await;
        Applied {
            config_map,
            stateful_set,
            stateful_sets,
            scaled,
            network_policy,
        }
    }

    /// Answers the server-side apply or the delete of the cluster's
    /// NetworkPolicy, whichever the operator sends.
    pub async fn network_policy(&mut self, name: &str) -> PolicyChange {
        let path =
            format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{name}-nodes");
        let (method, query, body, send) =
            self.next_of(&[Method::PATCH, Method::DELETE], &path).await;
        if method == Method::PATCH {
            let body = answer_apply(&path, &query, send, body);
            self.network_policy = Some(body.clone());
            return PolicyChange::Applied(body);
        }
        let existed = self.network_policy.take();
        match &existed {
            Some(policy) => respond(send, policy),
            None => respond_with(
                send,
                http::StatusCode::NOT_FOUND,
                &json!({
                    "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                    "reason": "NotFound", "code": 404,
                    "message": format!("networkpolicies.networking.k8s.io \"{name}-nodes\" not found"),
                }),
            ),
        }
        PolicyChange::Deleted {
            existed: existed.is_some(),
        }
    }

    /// Answers the creation of an Event, or the update of its series when
    /// the same Event repeats, and returns its type, reason and note.
    pub async fn event(&mut self) -> (String, String, String) {
        let (request, send) = self
            .handle
            .next_request()
            .await
            .expect("the operator sends an Event");
        let events = format!("/apis/events.k8s.io/v1/namespaces/{NS}/events");
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        // Every Event is created, never patched into a series: a series
        // keeps its first note and would hide what happened since.
        assert!(
            method == Method::POST && path == events,
            "unexpected request {method} {path}, expected a new Event"
        );
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("an Event");
        respond(send, &body);
        let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
        (text("type"), text("reason"), text("note"))
    }

    /// Answers a JSON patch of the cluster's finalizers with `cluster`.
    pub async fn finalizer_patch(&mut self, cluster: &DynamoCluster) -> Value {
        let name = cluster.metadata.name.clone().expect("name");
        let (_, body, send) = self
            .next(
                Method::PATCH,
                &format!("/apis/dynamokv.io/v1alpha1/namespaces/{NS}/dynamoclusters/{name}"),
            )
            .await;
        respond(send, &serde_json::to_value(cluster).expect("json"));
        body
    }

    /// Answers a list of the cluster's volume claims.
    pub async fn list_claims(&mut self, names: &[&str]) {
        let (_, _, send) = self
            .next(
                Method::GET,
                &format!("/api/v1/namespaces/{NS}/persistentvolumeclaims"),
            )
            .await;
        let items: Vec<Value> = names
            .iter()
            .map(|name| json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS}}))
            .collect();
        respond(
            send,
            &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": items}),
        );
    }

    /// Answers the deletion of a volume claim.
    pub async fn delete_claim(&mut self, name: &str) {
        let (_, _, send) = self
            .next(
                Method::DELETE,
                &format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/{name}"),
            )
            .await;
        respond(
            send,
            &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS}}),
        );
    }
}

/// Checks a server-side apply of an owned object at `path` and answers it
/// with the applied `body`, which it returns.
fn answer_apply(path: &str, query: &str, send: SendResponse<Response<Body>>, body: Value) -> Value {
    assert_server_side_apply(query);
    assert_eq!(
        body["metadata"]["ownerReferences"][0]["kind"], "DynamoCluster",
        "{path} is owned by its cluster"
    );
    respond(send, &body);
    body
}

fn assert_server_side_apply(query: &str) {
    assert!(
        query.contains("fieldManager=dynamo-operator") && query.contains("force=true"),
        "a server-side apply by dynamo-operator: {query}"
    );
}
