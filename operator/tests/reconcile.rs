//! Reconcile tests against a mocked API server and fake nodes: create, scale
//! up, scale down, an operator restart in the middle of a join, the
//! NetworkPolicy turned on and off, delete with each volume policy, a
//! refused spec, and a cluster of two node pools of different weights. Each reconcile asserts the exact
//! requests in order and the status it writes.

mod support;

use dynamo_crd::{
    ClusterPhase, DynamoCluster, DynamoClusterStatus, MemberState, NetworkPolicySpec, PvcPolicy,
};
use dynamo_proto::v1 as pb;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use support::nodes::FakeNodes;
use support::{
    ApiServer, Applied, OPERATOR_NS, PARTITIONS, PolicyChange, StatefulSets, cluster, context,
    context_with, pod, pool_pod, reconcile,
};

const NAME: &str = "demo";

/// What one reconcile of the happy path wrote.
struct Outcome {
    status: DynamoClusterStatus,
    applied: Applied,
    events: Vec<(String, String, String)>,
    action: Action,
}

/// A cluster, its fake nodes and one operator instance.
struct Sim {
    cluster: DynamoCluster,
    /// The cluster's StatefulSets the next reconcile changes.
    sets: StatefulSets,
    nodes: FakeNodes,
    ctx: Arc<dynamo_operator::k8s::Context>,
    api: ApiServer,
}

impl Sim {
    async fn new(replicas: i32) -> Self {
        let nodes = FakeNodes::start().await;
        let (ctx, api) = context(&nodes);
        Self {
            cluster: cluster(NAME, replicas),
            sets: StatefulSets {
                applied: vec![NAME.into()],
                ..StatefulSets::default()
            },
            nodes,
            ctx,
            api,
        }
    }

    /// The operator restarts: a new context; only the stored resource remains.
    fn restart(&mut self) {
        let (ctx, api) = context(&self.nodes);
        self.ctx = ctx;
        self.api = api;
    }

    fn ready_pods(&self, count: usize) -> Vec<Value> {
        (0..count).map(|i| pod(NAME, i, true)).collect()
    }

    /// One reconcile that lists `pods`, writes the status, applies every
    /// object and publishes `events` Events.
    async fn step(&mut self, pods: Vec<Value>, events: usize) -> Outcome {
        let cluster = self.cluster.clone();
        let sets = self.sets.clone();
        let (action, (status, applied, events)) = reconcile(
            &cluster,
            &self.ctx,
            &mut self.api,
            async |api: &mut ApiServer| {
                api.list_pods(NAME, pods).await;
                let status = api.status(&cluster).await;
                let applied = api.apply_with_sets(NAME, &sets).await;
                let mut published = Vec::new();
                for _ in 0..events {
                    published.push(api.event().await);
                }
                (status, applied, published)
            },
        )
        .await;
        self.cluster.status = Some(status.clone());
        Outcome {
            status,
            applied,
            events,
            action,
        }
    }

    /// One reconcile that finds nothing to change: it lists `ready` ready
    /// pods and applies every object, with no status write and no Event.
    async fn unchanged(&mut self, ready: usize) -> Applied {
        let cluster = self.cluster.clone();
        let pods = self.ready_pods(ready);
        let (_, applied) = reconcile(
            &cluster,
            &self.ctx,
            &mut self.api,
            async |api: &mut ApiServer| {
                api.list_pods(NAME, pods).await;
                api.apply_all(NAME).await
            },
        )
        .await;
        applied
    }

    fn members(&self, count: usize) -> Vec<pb::Member> {
        (0..count)
            .map(|i| pb::Member {
                weight: 0,
                id: format!("{NAME}-{i}"),
                address: self.nodes.address(i),
                zone: String::new(),
            })
            .collect()
    }

    fn scale(&mut self, replicas: i32) {
        self.cluster.spec.replicas = replicas;
        self.edited();
    }

    /// The spec was edited: the API server raised the generation.
    fn edited(&mut self) {
        let generation = self.cluster.metadata.generation.unwrap_or(1);
        self.cluster.metadata.generation = Some(generation + 1);
    }

    /// Creates a 3-member cluster up to its first converged reconcile.
    async fn created(&mut self) -> Outcome {
        let first = self.step(Vec::new(), 1).await;
        self.nodes.boot(&self.members(3), PARTITIONS);
        let _ = first;
        self.step(self.ready_pods(3), 1).await
    }
}

fn replicas(applied: &Applied) -> i64 {
    applied.stateful_set["spec"]["replicas"]
        .as_i64()
        .expect("replicas")
}

fn config_keys(applied: &Applied) -> Vec<String> {
    applied.config_map["data"]
        .as_object()
        .expect("data")
        .keys()
        .cloned()
        .collect()
}

fn condition<'a>(status: &'a DynamoClusterStatus, type_: &str) -> (&'a str, &'a str) {
    let condition = status.condition(type_).expect("condition");
    (condition.status.as_str(), condition.reason.as_str())
}

fn states(status: &DynamoClusterStatus) -> Vec<(String, MemberState)> {
    status
        .members
        .iter()
        .map(|m| (m.name.clone(), m.state))
        .collect()
}

fn event(type_: &str, reason: &str, outcome: &Outcome, index: usize) {
    let (t, r, note) = &outcome.events[index];
    assert_eq!(
        (t.as_str(), r.as_str()),
        (type_, reason),
        "event {index}: {note}"
    );
}

#[tokio::test]
async fn create_adds_the_finalizer_then_bootstraps_and_converges() {
    let mut sim = Sim::new(3).await;
    let mut fresh = sim.cluster.clone();
    fresh.metadata.finalizers = None;
    let finalized = sim.cluster.clone();
    let (action, patch) = reconcile(
        &fresh,
        &sim.ctx,
        &mut sim.api,
        async |api: &mut ApiServer| api.finalizer_patch(&finalized).await,
    )
    .await;
    assert_eq!(action, Action::await_change());
    assert_eq!(
        patch,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["dynamokv.io/cleanup"]},
        ])
    );

    let created = sim.step(Vec::new(), 1).await;
    assert_eq!(created.status.phase, Some(ClusterPhase::Creating));
    assert_eq!(
        condition(&created.status, "Progressing"),
        ("True", "Bootstrapping")
    );
    assert_eq!(
        condition(&created.status, "Available"),
        ("False", "NotCreated")
    );
    let driver = created.status.driver.as_ref().expect("driver state");
    assert_eq!(driver["pods"], 3);
    assert_eq!(driver["partitions"], PARTITIONS);
    assert_eq!(driver["launches"]["0"]["kind"], "bootstrap");
    assert_eq!(replicas(&created.applied), 3);
    assert_eq!(
        config_keys(&created.applied),
        ["demo-0.yaml", "demo-1.yaml", "demo-2.yaml", "node.yaml"]
    );
    let bootstrap = created.applied.config_map["data"]["demo-1.yaml"]
        .as_str()
        .expect("file");
    assert!(bootstrap.contains(&sim.nodes.address(2)), "{bootstrap}");
    event("Normal", "Bootstrapping", &created, 0);
    assert_eq!(created.action, Action::requeue(Duration::from_secs(5)));

    sim.nodes.boot(&sim.members(3), PARTITIONS);
    let running = sim.step(sim.ready_pods(3), 1).await;
    assert_eq!(running.status.phase, Some(ClusterPhase::Running));
    assert_eq!(
        (running.status.replicas, running.status.ready_replicas),
        (3, 3)
    );
    assert_eq!(running.status.epoch, 1);
    assert_eq!(running.status.observed_generation, Some(1));
    assert_eq!(
        running.status.selector.as_deref(),
        Some(
            "app.kubernetes.io/component=node,app.kubernetes.io/instance=demo,app.kubernetes.io/name=dynamokv"
        )
    );
    assert!(
        running
            .status
            .members
            .iter()
            .all(|m| m.state == MemberState::Normal && m.partitions >= 5)
    );
    assert_eq!(
        condition(&running.status, "Available"),
        ("True", "QuorumsMet")
    );
    assert_eq!(
        condition(&running.status, "Degraded"),
        ("False", "AsExpected")
    );
    assert_eq!(
        running
            .status
            .condition("Available")
            .map(|c| c.last_transition_time.clone()),
        Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("t")
        ))
    );
    event("Normal", "Converged", &running, 0);
    assert_eq!(running.action, Action::requeue(Duration::from_secs(60)));

    // Nothing changed: no status write, the same applies, no Event.
    sim.unchanged(3).await;
}

/// Scale up 3 -> 4: start the pod, propose the join once it is ready,
/// commit once it streamed, converge.
async fn join_fourth(sim: &mut Sim) {
    sim.scale(4);
    let starting = sim.step(sim.ready_pods(3), 1).await;
    assert_eq!(starting.status.phase, Some(ClusterPhase::Scaling));
    assert_eq!(replicas(&starting.applied), 4);
    let joiner = starting.applied.config_map["data"]["demo-3.yaml"]
        .as_str()
        .expect("the joiner's file");
    assert!(
        joiner.contains("seeds:") && !joiner.contains("members:"),
        "{joiner}"
    );
    event("Normal", "StartingMember", &starting, 0);

    sim.nodes.join(3);
    let joining = sim.step(sim.ready_pods(4), 1).await;
    assert_eq!(joining.status.epoch, 2);
    assert_eq!(
        states(&joining.status)[3],
        ("demo-3".into(), MemberState::Joining)
    );
    let transfer = joining.status.transfer.as_ref().expect("transfer");
    assert_eq!(transfer.step, "join demo-3: streaming");
    event("Normal", "Joining", &joining, 0);
}

#[tokio::test]
async fn scale_up_joins_one_member_after_its_pod_is_ready() {
    let mut sim = Sim::new(3).await;
    sim.created().await;
    join_fourth(&mut sim).await;

    // Streaming: the status reports what is left and nothing is committed.
    let cluster = sim.cluster.clone();
    let (_, status) = reconcile(
        &cluster,
        &sim.ctx,
        &mut sim.api,
        async |api: &mut ApiServer| {
            api.list_pods(NAME, (0..4).map(|i| pod(NAME, i, true)).collect())
                .await;
            let status = api.status(&cluster).await;
            api.apply_all(NAME).await;
            status
        },
    )
    .await;
    let transfer = status.transfer.as_ref().expect("transfer");
    assert_eq!((transfer.partitions_left, transfer.bytes_left), (4, 4000));
    assert_eq!(status.epoch, 2);
    sim.cluster.status = Some(status);

    sim.nodes.set_transfers_done(true);
    let committed = sim.step(sim.ready_pods(4), 1).await;
    assert_eq!(committed.status.epoch, 3);
    assert!(
        states(&committed.status)
            .iter()
            .all(|(_, s)| *s == MemberState::Normal)
    );
    assert_eq!(committed.status.members[3].partitions, 4);
    event("Normal", "RingCommitted", &committed, 0);
    assert_eq!(sim.nodes.ring(0).map(|r| r.epoch), Some(3));

    let converged = sim.step(sim.ready_pods(4), 1).await;
    assert_eq!(converged.status.phase, Some(ClusterPhase::Running));
    assert_eq!(converged.status.transfer, None);
    event("Normal", "Converged", &converged, 0);
}

#[tokio::test]
async fn scale_down_lowers_the_statefulset_only_after_the_leave_committed() {
    let mut sim = Sim::new(3).await;
    sim.created().await;
    sim.nodes.set_transfers_done(true);
    join_fourth(&mut sim).await;
    sim.step(sim.ready_pods(4), 1).await; // committed
    sim.step(sim.ready_pods(4), 1).await; // converged

    sim.scale(3);
    let leaving = sim.step(sim.ready_pods(4), 1).await;
    assert_eq!(
        states(&leaving.status)[3],
        ("demo-3".into(), MemberState::Leaving)
    );
    assert_eq!(
        replicas(&leaving.applied),
        4,
        "the leaver's pod stays while it streams"
    );
    event("Normal", "Leaving", &leaving, 0);

    let committed = sim.step(sim.ready_pods(4), 1).await;
    assert_eq!(
        states(&committed.status)[3],
        ("demo-3".into(), MemberState::Left)
    );
    assert_eq!(committed.status.members[3].partitions, 0);
    assert_eq!(
        replicas(&committed.applied),
        4,
        "not before the commit is seen"
    );
    event("Normal", "RingCommitted", &committed, 0);

    let stopping = sim.step(sim.ready_pods(4), 1).await;
    assert_eq!(replicas(&stopping.applied), 3);
    assert_eq!(
        config_keys(&stopping.applied),
        ["demo-0.yaml", "demo-1.yaml", "demo-2.yaml", "node.yaml"]
    );
    assert_eq!(sim.nodes.ring(0).map(|r| r.members.len()), Some(3));
    event("Normal", "StoppingMember", &stopping, 0);

    sim.nodes.stop(3);
    let converged = sim.step(sim.ready_pods(3), 1).await;
    assert_eq!(converged.status.phase, Some(ClusterPhase::Running));
    assert_eq!(converged.status.members.len(), 3);
    assert_eq!(replicas(&converged.applied), 3);
    event("Normal", "Converged", &converged, 0);
}

#[tokio::test]
async fn a_restarted_operator_finishes_the_join_from_the_status() {
    let mut sim = Sim::new(3).await;
    sim.created().await;
    join_fourth(&mut sim).await;
    sim.nodes.set_transfers_done(true);

    sim.restart();
    let committed = sim.step(sim.ready_pods(4), 1).await;
    assert_eq!(committed.status.epoch, 3);
    assert_eq!(replicas(&committed.applied), 4);
    event("Normal", "RingCommitted", &committed, 0);
    sim.restart();
    let converged = sim.step(sim.ready_pods(4), 1).await;
    assert_eq!(converged.status.phase, Some(ClusterPhase::Running));
    assert_eq!(converged.status.members.len(), 4);
    event("Normal", "Converged", &converged, 0);
}

#[tokio::test]
async fn the_network_policy_is_applied_when_enabled_and_deleted_when_disabled() {
    let mut sim = Sim::new(3).await;
    let created = sim.created().await;
    assert_eq!(
        created.applied.network_policy,
        PolicyChange::Deleted { existed: false },
        "no policy without spec.networkPolicy"
    );

    sim.cluster.spec.network_policy = Some(NetworkPolicySpec {
        enabled: true,
        ..NetworkPolicySpec::default()
    });
    sim.edited();
    let on = sim.step(sim.ready_pods(3), 0).await;
    let PolicyChange::Applied(policy) = &on.applied.network_policy else {
        panic!(
            "expected an applied policy, got {:?}",
            on.applied.network_policy
        );
    };
    assert_eq!(policy["kind"], "NetworkPolicy");
    assert_eq!(policy["metadata"]["ownerReferences"][0]["name"], NAME);
    assert_eq!(policy["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
        NAME
    );
    let trusted = &policy["spec"]["ingress"][0]["from"];
    assert_eq!(
        trusted[1]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], OPERATOR_NS,
        "the operator's pods are admitted: {trusted}"
    );
    assert_eq!(on.status.observed_generation, Some(2));

    // Unchanged: applied again, the same body.
    let again = sim.unchanged(3).await;
    assert_eq!(again.network_policy, on.applied.network_policy);

    if let Some(spec) = sim.cluster.spec.network_policy.as_mut() {
        spec.enabled = false;
    }
    sim.edited();
    let off = sim.step(sim.ready_pods(3), 0).await;
    assert_eq!(
        off.applied.network_policy,
        PolicyChange::Deleted { existed: true }
    );
    // Gone: a delete answered 404 is no error.
    let gone = sim.unchanged(3).await;
    assert_eq!(
        gone.network_policy,
        PolicyChange::Deleted { existed: false }
    );
}

#[tokio::test]
async fn a_policy_that_cannot_admit_the_operator_is_a_warning_once() {
    let mut sim = Sim::new(3).await;
    Arc::get_mut(&mut sim.ctx)
        .expect("no reconcile holds the context")
        .operator_pods = None;
    sim.created().await;
    sim.cluster.spec.network_policy = Some(NetworkPolicySpec {
        enabled: true,
        ..NetworkPolicySpec::default()
    });
    sim.edited();
    let on = sim.step(sim.ready_pods(3), 1).await;
    event("Warning", "NetworkPolicyOmitsOperator", &on, 0);
    assert!(
        on.events[0].2.contains("--operator-pod-labels"),
        "{}",
        on.events[0].2
    );
    let PolicyChange::Applied(policy) = &on.applied.network_policy else {
        panic!(
            "expected an applied policy, got {:?}",
            on.applied.network_policy
        );
    };
    let trusted = policy["spec"]["ingress"][0]["from"]
        .as_array()
        .expect("trusted sources");
    assert_eq!(trusted.len(), 1, "members only: {trusted:?}");
    // The same spec again: no second Warning.
    sim.unchanged(3).await;
}

fn deleting(policy: PvcPolicy) -> DynamoCluster {
    let mut cluster = cluster(NAME, 3);
    cluster.spec.pvc_policy_on_scale_down = policy;
    cluster.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    cluster
}

fn finalizer_removal() -> Value {
    json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "dynamokv.io/cleanup"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ])
}

#[tokio::test]
async fn delete_removes_the_volumes_under_the_delete_policy() {
    let mut sim = Sim::new(3).await;
    let cluster = deleting(PvcPolicy::Delete);
    let (action, (event, patch)) = reconcile(
        &cluster,
        &sim.ctx,
        &mut sim.api,
        async |api: &mut ApiServer| {
            api.list_claims(&["data-demo-0", "data-demo-1"]).await;
            api.delete_claim("data-demo-0").await;
            api.delete_claim("data-demo-1").await;
            let event = api.event().await;
            (event, api.finalizer_patch(&cluster).await)
        },
    )
    .await;
    assert_eq!(action, Action::await_change());
    assert_eq!(
        (event.0.as_str(), event.1.as_str()),
        ("Normal", "VolumesDeleted")
    );
    assert!(event.2.contains("data-demo-1"), "{}", event.2);
    assert_eq!(patch, finalizer_removal());
}

#[tokio::test]
async fn delete_keeps_the_volumes_under_the_retain_policy() {
    let mut sim = Sim::new(3).await;
    let cluster = deleting(PvcPolicy::Retain);
    let (_, (event, patch)) = reconcile(
        &cluster,
        &sim.ctx,
        &mut sim.api,
        async |api: &mut ApiServer| {
            api.list_claims(&["data-demo-0"]).await;
            let event = api.event().await;
            (event, api.finalizer_patch(&cluster).await)
        },
    )
    .await;
    assert_eq!(
        (event.0.as_str(), event.1.as_str()),
        ("Normal", "VolumesRetained")
    );
    assert!(event.2.contains("kubectl delete pvc"), "{}", event.2);
    assert_eq!(patch, finalizer_removal());
}

#[tokio::test]
async fn a_refused_spec_reports_what_to_fix_once_and_touches_nothing() {
    let mut sim = Sim::new(2).await;
    let cluster = sim.cluster.clone();
    let (action, (status, event)) = reconcile(
        &cluster,
        &sim.ctx,
        &mut sim.api,
        async |api: &mut ApiServer| {
            api.list_pods(NAME, Vec::new()).await;
            let status = api.status(&cluster).await;
            (status, api.event().await)
        },
    )
    .await;
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_eq!(status.phase, Some(ClusterPhase::Failed));
    assert_eq!(
        condition(&status, "Degraded"),
        ("True", "ReplicationExceedsReplicas")
    );
    assert_eq!(
        condition(&status, "Progressing"),
        ("False", "ReplicationExceedsReplicas")
    );
    let progressing = status.condition("Progressing").expect("progressing");
    assert!(
        progressing
            .message
            .contains("set spec.replicas to at least 3"),
        "{}",
        progressing.message
    );
    assert_eq!(
        (event.0.as_str(), event.1.as_str()),
        ("Warning", "ReplicationExceedsReplicas")
    );
    assert!(
        event.2.contains("set spec.replicas to at least 3"),
        "{}",
        event.2
    );

    // The same refusal again: no status write and no second Event.
    sim.cluster.status = Some(status);
    let cluster = sim.cluster.clone();
    reconcile(
        &cluster,
        &sim.ctx,
        &mut sim.api,
        async |api: &mut ApiServer| {
            api.list_pods(NAME, Vec::new()).await;
        },
    )
    .await;
}

/// Members of the pooled cluster, in the order of their fake nodes.
const POOLED: [&str; 4] = [
    "demo-small-0",
    "demo-small-1",
    "demo-large-0",
    "demo-small-2",
];

/// A cluster of pools `small` (2 nodes, weight 1) and `large` (1 node,
/// weight 2), its fake nodes in the order of [`POOLED`].
async fn pooled() -> Sim {
    let nodes = FakeNodes::start().await;
    let (ctx, api) = context_with(&nodes, &POOLED);
    let mut cluster = cluster(NAME, 3);
    cluster.spec.pools = serde_json::from_value(json!([
        {"name": "small", "replicas": 2},
        {"name": "large", "replicas": 1, "weight": 2},
    ]))
    .expect("pools");
    Sim {
        cluster,
        sets: StatefulSets {
            applied: vec!["demo-small".into(), "demo-large".into()],
            ..StatefulSets::default()
        },
        nodes,
        ctx,
        api,
    }
}

fn pool_pods(small: usize, large: usize) -> Vec<Value> {
    (0..small)
        .map(|i| pool_pod(NAME, "small", i, true))
        .chain((0..large).map(|i| pool_pod(NAME, "large", i, true)))
        .collect()
}

/// (name, replicas, members, ready members, weight, partitions) of each pool.
fn pools(status: &DynamoClusterStatus) -> Vec<(String, i32, i32, i32, u32, u32)> {
    status
        .pools
        .iter()
        .map(|p| {
            let counts = (p.replicas, p.members, p.ready_members);
            (
                p.name.clone(),
                counts.0,
                counts.1,
                counts.2,
                p.weight,
                p.partitions,
            )
        })
        .collect()
}

/// Creates the pooled cluster up to its first converged reconcile: the
/// first ring deals partitions evenly, then the weight-2 node streams its
/// share.
async fn created_pooled(sim: &mut Sim) {
    let created = sim.step(Vec::new(), 1).await;
    let driver = created.status.driver.as_ref().expect("driver state");
    assert_eq!(driver["poolPods"], json!({"small": 2, "large": 1}));
    let replicas: Vec<_> = created
        .applied
        .stateful_sets
        .iter()
        .map(|set| set["spec"]["replicas"].as_i64())
        .collect();
    assert_eq!(replicas, [Some(2), Some(1)]);
    assert_eq!(
        created.applied.stateful_sets[1]["spec"]["selector"]["matchLabels"]["dynamokv.io/pool"],
        "large"
    );
    assert_eq!(
        config_keys(&created.applied),
        [
            "demo-large-0.yaml",
            "demo-small-0.yaml",
            "demo-small-1.yaml",
            "node.yaml"
        ]
    );
    event("Normal", "Bootstrapping", &created, 0);

    // The nodes compute the first ring from the bootstrap list: even shares.
    let members: Vec<pb::Member> = POOLED[..3]
        .iter()
        .enumerate()
        .map(|(i, id)| pb::Member {
            id: (*id).into(),
            address: sim.nodes.address(i),
            ..pb::Member::default()
        })
        .collect();
    sim.nodes.boot(&members, PARTITIONS);
    let reweighing = sim.step(pool_pods(2, 1), 1).await;
    assert_eq!(reweighing.status.epoch, 2);
    assert!(
        reweighing.status.transfer.is_some(),
        "the large node streams its share"
    );
    sim.nodes.set_transfers_done(true);
    let committed = sim.step(pool_pods(2, 1), 1).await;
    assert_eq!(committed.status.epoch, 3);
    event("Normal", "RingCommitted", &committed, 0);
    let converged = sim.step(pool_pods(2, 1), 1).await;
    event("Normal", "Converged", &converged, 0);
    assert_eq!(converged.status.phase, Some(ClusterPhase::Running));
    let expected_shares = [
        ("small".to_owned(), 2, 2, 2, 1, 8),
        ("large".to_owned(), 1, 1, 1, 2, 8),
    ];
    assert_eq!(pools(&converged.status), expected_shares);
}

#[tokio::test]
async fn pools_run_one_statefulset_each_and_the_heavier_node_gets_its_share() {
    let mut sim = pooled().await;
    created_pooled(&mut sim).await;

    // Scale the small pool by one: its third pod starts and joins.
    sim.cluster.spec.replicas = 4;
    sim.cluster.spec.pools[0].replicas = 3;
    sim.edited();
    let starting = sim.step(pool_pods(2, 1), 1).await;
    assert_eq!(replicas_of(&starting.applied, 0), 3);
    assert_eq!(replicas_of(&starting.applied, 1), 1);
    event("Normal", "StartingMember", &starting, 0);
    sim.nodes.join(3);
    let joining = sim.step(pool_pods(3, 1), 1).await;
    assert!(
        states(&joining.status).contains(&("demo-small-2".into(), MemberState::Joining)),
        "{:?}",
        states(&joining.status)
    );
}

fn replicas_of(applied: &Applied, set: usize) -> i64 {
    applied.stateful_sets[set]["spec"]["replicas"]
        .as_i64()
        .expect("replicas")
}

#[tokio::test]
async fn a_removed_pool_drains_then_its_statefulset_is_deleted() {
    let mut sim = pooled().await;
    created_pooled(&mut sim).await;

    // The large pool is removed; the small pool grows to keep three nodes.
    sim.cluster.spec.pools =
        serde_json::from_value(json!([{"name": "small", "replicas": 3}])).expect("pools");
    sim.edited();
    sim.sets = StatefulSets {
        applied: vec!["demo-small".into()],
        scaled: vec!["demo-large".into()],
        deleted: Vec::new(),
    };
    let starting = sim.step(pool_pods(2, 1), 1).await;
    event("Normal", "StartingMember", &starting, 0);
    assert_eq!(replicas_of(&starting.applied, 0), 3);
    assert_eq!(starting.applied.scaled, [json!({"spec": {"replicas": 1}})]);
    let draining = pools(&starting.status);
    assert_eq!(
        draining[1],
        ("large".into(), 0, 1, 1, 2, 8),
        "still listed while it drains"
    );

    sim.nodes.join(3);
    let joining = sim.step(pool_pods(3, 1), 1).await;
    event("Normal", "Joining", &joining, 0);
    let committed = sim.step(pool_pods(3, 1), 1).await;
    event("Normal", "RingCommitted", &committed, 0);
    let leaving = sim.step(pool_pods(3, 1), 1).await;
    event("Normal", "Leaving", &leaving, 0);
    assert!(
        states(&leaving.status).contains(&("demo-large-0".into(), MemberState::Leaving)),
        "{:?}",
        states(&leaving.status)
    );
    let left = sim.step(pool_pods(3, 1), 1).await;
    event("Normal", "RingCommitted", &left, 0);
    let stopping = sim.step(pool_pods(3, 1), 1).await;
    event("Normal", "StoppingMember", &stopping, 0);
    assert_eq!(stopping.applied.scaled, [json!({"spec": {"replicas": 0}})]);

    sim.nodes.stop(2);
    sim.sets.scaled.clear();
    sim.sets.deleted = vec!["demo-large".into()];
    let converged = sim.step(pool_pods(3, 0), 1).await;
    event("Normal", "Converged", &converged, 0);
    let driver = converged.status.driver.as_ref().expect("driver state");
    assert_eq!(driver["poolPods"], json!({"small": 3}));
    assert_eq!(pools(&converged.status), [("small".into(), 3, 3, 3, 1, 16)]);
}
