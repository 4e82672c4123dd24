//! A mocked API server for reconcile tests: it answers the operator's
//! requests in the order a test expects and fails on any other request.

pub mod nodes;

use std::sync::Arc;
use std::time::Duration;

use dynamo_crd::{DynamoCluster, DynamoClusterSpec, DynamoClusterStatus};
use dynamo_operator::k8s::controller::{self, Context};
use dynamo_operator::k8s::metrics::Metrics;
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
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{cluster}-{index}"),
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/name": "dynamokv",
                "app.kubernetes.io/instance": cluster,
                "app.kubernetes.io/component": "node",
            },
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

/// A test context whose Admin calls reach `nodes`, with a fixed clock.
pub fn context(nodes: &FakeNodes) -> (Arc<Context>, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let addresses: Vec<String> = (0..nodes::SLOTS + 2).map(|i| nodes.address(i)).collect();
    let context = Context {
        reporter: Reporter {
            controller: "dynamo-operator".into(),
            instance: Some("test".into()),
        },
        client,
        metrics: Arc::new(Metrics::default()),
        address: Arc::new(move |_, _, index| {
            addresses
                .get(index)
                .cloned()
                .unwrap_or_else(|| "127.0.0.1:1".into())
        }),
        admin: Arc::new(dynamo_operator::admin::GrpcAdmin::new(
            Duration::from_secs(2),
            None,
        )),
        clock: || k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("time"),
    };
    (Arc::new(context), ApiServer(handle))
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

/// The five objects applied, in order, as JSON.
pub struct Applied {
    /// The ConfigMap.
    pub config_map: Value,
    /// The StatefulSet.
    pub stateful_set: Value,
}

/// The mocked API server.
pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

fn respond(send: SendResponse<Response<Body>>, body: &Value) {
    send.send_response(
        Response::builder()
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
        let (request, send) = self
            .0
            .next_request()
            .await
            .expect("the operator sends a request");
        assert_eq!(
            (request.method(), request.uri().path()),
            (&method, path),
            "unexpected request {} {}",
            request.method(),
            request.uri()
        );
        let query = request.uri().query().unwrap_or_default().to_owned();
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        (query, body, send)
    }

    /// Fails when a request is waiting.
    pub fn assert_idle(&mut self) {
        if let Some(Some((request, _))) = self.0.next_request().now_or_never() {
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
        assert_server_side_apply(&query);
        assert_eq!(
            body["metadata"]["ownerReferences"][0]["kind"], "DynamoCluster",
            "{path} is owned by its cluster"
        );
        respond(send, &body);
        body
    }

    /// Answers the applies of every object, in their order.
    pub async fn apply_all(&mut self, name: &str) -> Applied {
        self.apply(&format!("/api/v1/namespaces/{NS}/services/{name}-peers"))
            .await;
        self.apply(&format!("/api/v1/namespaces/{NS}/services/{name}"))
            .await;
        let config_map = self
            .apply(&format!("/api/v1/namespaces/{NS}/configmaps/{name}-config"))
            .await;
        let stateful_set = self
            .apply(&format!(
                "/apis/apps/v1/namespaces/{NS}/statefulsets/{name}"
            ))
            .await;
        self.apply(&format!(
            "/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{name}"
        ))
        .await;
        Applied {
            config_map,
            stateful_set,
        }
    }

    /// Answers the creation of an Event, or the update of its series when
    /// the same Event repeats, and returns its type, reason and note.
    pub async fn event(&mut self) -> (String, String, String) {
        let (request, send) = self
            .0
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

fn assert_server_side_apply(query: &str) {
    assert!(
        query.contains("fieldManager=dynamo-operator") && query.contains("force=true"),
        "a server-side apply by dynamo-operator: {query}"
    );
}
