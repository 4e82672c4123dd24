//! The reconciler: one `reconcile` per DynamoCluster event, inside kube's
//! `finalizer` helper. Apply reads the pods, takes one membership driver
//! step through a [`KubePlatform`], writes the status (the driver's state
//! included) and then applies the objects that state implies (and deletes
//! the NetworkPolicy when the spec asks for none). Cleanup handles the data
//! volumes according to the PVC policy.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_crd::{DynamoCluster, DynamoClusterStatus, PvcPolicy};
use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use super::builders;
use super::cluster::{ValidatedCluster, selector_string};
use super::metrics::{ErrorLabels, Metrics, StepLabels};
use super::names;
use super::network::{self, OperatorPods};
use super::platform::{AddressFn, KubePlatform, PodView};
use super::pools;
use super::state::ClusterState;
use super::status::{Observation, Problem, build_status, step_reason};
use super::zones;
use crate::admin::GrpcAdmin;
use crate::driver::{Driver, DriverError, Shape, Step};

/// Requeue delay while a change is in flight.
const BUSY_REQUEUE: Duration = Duration::from_secs(5);
/// Requeue delay of a converged cluster (a safety net; watches trigger the
/// real work).
const IDLE_REQUEUE: Duration = Duration::from_secs(60);
/// Requeue delay of a refused spec; an edit triggers a reconcile at once.
const REFUSED_REQUEUE: Duration = Duration::from_secs(300);
/// Requeue delay after an error.
const ERROR_REQUEUE: Duration = Duration::from_secs(15);
/// Container waiting reasons that mean a pod will not become ready by itself.
const STUCK_REASONS: [&str; 6] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Why a reconciliation failed; the controller retries it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{action}: {source}")]
    Kube {
        /// What the operator was doing.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The resource lacks metadata the API server always sets.
    #[error("{0}")]
    Incomplete(String),
    /// Adding or removing the finalizer, or the cleanup, failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Incomplete(_) => "incomplete",
            Self::Finalizer(_) => "finalizer",
        }
    }
}

fn kube_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// What `reconcile` and `error_policy` share.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Who publishes Events about DynamoClusters. Each Event is its own
    /// object: kube's `Recorder` would fold Events of one reason into a
    /// series that keeps the first note ("starting demo-3 (x2)" for demo-3
    /// and demo-4), and the reconciler already publishes a repeated warning
    /// only once.
    pub reporter: Reporter,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// How the operator reaches a member's Admin endpoint.
    pub address: AddressFn,
    /// Admin calls to the nodes, shared by every reconciliation (one
    /// channel per node, one deadline per call).
    pub admin: Arc<GrpcAdmin>,
    /// Admin calls to the nodes of clusters with `spec.tls`, presenting
    /// the operator's certificate; `None` when the operator has none
    /// (its calls to TLS clusters then fail and say so).
    pub admin_tls: Option<Arc<GrpcAdmin>>,
    /// The clock of condition transition times.
    pub clock: fn() -> Timestamp,
    /// The operator's own pods, which the storage pods' NetworkPolicy
    /// admits; `None` when unknown (the operator then needs a namespace or
    /// pod the policy admits anyway).
    pub operator_pods: Option<OperatorPods>,
}

/// Reconciles one DynamoCluster.
///
/// # Errors
/// When the API server cannot be reached or refuses a request; invalid specs
/// are not errors but a Degraded condition and an Event.
pub async fn reconcile(cluster: Arc<DynamoCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = cluster
        .namespace()
        .ok_or_else(|| Error::Incomplete("the DynamoCluster has no namespace".into()))?;
    let name = cluster.name_any();
    let api: Api<DynamoCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, names::FINALIZER, cluster, |event| async {
        match event {
            Finalizer::Apply(cluster) => apply(&cluster, &ctx).await,
            Finalizer::Cleanup(cluster) => cleanup(&cluster, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)));
    ctx.metrics.reconciled(&namespace, &name, started.elapsed());
    result
}

/// Retries a failed reconciliation after a pause.
pub fn error_policy(cluster: Arc<DynamoCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(cluster = cluster.name_any(), "reconcile failed: {error}");
    ctx.metrics
        .errors
        .get_or_create(&ErrorLabels {
            kind: error.kind().into(),
        })
        .inc();
    Action::requeue(ERROR_REQUEUE)
}

/// The storage pods of cluster `name`, by member index, with the zones of
/// their Nodes under `topology_key` (none when the cluster ignores zones).
async fn pods(
    ctx: &Context,
    namespace: &str,
    name: &str,
    topology_key: Option<&str>,
) -> Result<BTreeMap<usize, PodView>, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&selector_string(name)))
        .await
        .map_err(kube_error(format!("list the pods of {name}")))?;
    let zones = zones::pod_zones(&ctx.client, &list.items, topology_key)
        .await
        .map_err(|error| Error::Kube {
            action: format!("read Node {} (the zone of a pod of {name})", error.node),
            source: error.source,
        })?;
    Ok(list
        .items
        .iter()
        .zip(zones)
        .filter_map(|(pod, zone)| {
            Some((
                crate::pools::index_of(name, &pod.name_any())?,
                pod_view(pod, zone),
            ))
        })
        .collect())
}

/// Readiness and trouble of one pod, in `zone` (see [`zones::zone_of`]).
pub fn pod_view(pod: &Pod, zone: Option<String>) -> PodView {
    let status = pod.status.as_ref();
    let ready = pod.metadata.deletion_timestamp.is_none()
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
    let problem = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|container| {
            let waiting = container.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            STUCK_REASONS
                .contains(&reason)
                .then(|| match &waiting.message {
                    Some(message) => format!("{reason}: {message}"),
                    None => reason.to_owned(),
                })
        });
    PodView {
        name: pod.name_any(),
        ready,
        zone,
        problem,
    }
}

async fn apply_object<K>(ctx: &Context, namespace: &str, object: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(names::MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(kube_error(format!("apply {} {name}", K::kind(&()))))?;
    Ok(())
}

/// Deletes object `name` of kind `K`; one that is already gone is no error.
async fn delete_object<K>(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            action: format!("delete {} {name}", K::kind(&())),
            source,
        }),
    }
}

/// Sets the `replicas` of StatefulSet `name` and nothing else (a merge
/// patch, so the pods of a draining pool are not rolled by a new template);
/// one that is already gone is no error.
async fn scale_stateful_set(
    ctx: &Context,
    namespace: &str,
    name: &str,
    replicas: i32,
) -> Result<(), Error> {
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            action: format!("scale StatefulSet {name} to {replicas}"),
            source,
        }),
    }
}

/// Applies every object, in order: Services and the ConfigMap before the
/// StatefulSets that use them (one per declared pool; a removed pool's
/// only has its pod count lowered), then the PodDisruptionBudget and the
/// NetworkPolicy, which is deleted instead when the spec asks for none (a
/// delete of a policy that does not exist is answered 404 and costs one
/// request). The StatefulSets of `retired` pools are deleted.
async fn apply_objects(
    ctx: &Context,
    cluster: &ValidatedCluster,
    retired: &[String],
) -> Result<(), Error> {
    let namespace = &cluster.namespace;
    apply_object(ctx, namespace, &builders::build_peer_service(cluster)).await?;
    apply_object(ctx, namespace, &builders::build_client_service(cluster)).await?;
    apply_object(ctx, namespace, &builders::build_config_map(cluster)).await?;
    for set in builders::build_statefulsets(cluster) {
        apply_object(ctx, namespace, &set).await?;
    }
    for pool in pools::removed(cluster) {
        let name = names::stateful_set(&cluster.name, pool.name);
        scale_stateful_set(ctx, namespace, &name, cluster.state.pods_of(pool.name)).await?;
    }
    for name in retired {
        delete_object::<StatefulSet>(ctx, namespace, name).await?;
    }
    apply_object(ctx, namespace, &builders::build_pdb(cluster)).await?;
    match network::build_network_policy(cluster, ctx.operator_pods.as_ref()) {
        Some(policy) => apply_object(ctx, namespace, &policy).await,
        None => {
            delete_object::<NetworkPolicy>(ctx, namespace, &names::network_policy(&cluster.name))
                .await
        }
    }
}

async fn patch_status(
    ctx: &Context,
    cluster: &DynamoCluster,
    status: &DynamoClusterStatus,
) -> Result<(), Error> {
    let api: Api<DynamoCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": "dynamokv.io/v1alpha1",
        "kind": "DynamoCluster",
        "status": status,
    });
    api.patch_status(
        &cluster.name_any(),
        &PatchParams::apply(names::MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(kube_error(format!(
        "write the status of {}",
        cluster.name_any()
    )))?;
    Ok(())
}

async fn publish(
    ctx: &Context,
    cluster: &DynamoCluster,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = KubeEvent {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: reason.to_owned(),
        secondary: None,
    };
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(error) = recorder.publish(&event, &cluster.object_ref(&())).await {
        warn!(
            cluster = cluster.name_any(),
            reason, "cannot publish an Event: {error}"
        );
    }
}

fn refused(ctx: &Context, reason: &str) {
    ctx.metrics
        .refusals
        .get_or_create(&ErrorLabels {
            kind: reason.to_owned(),
        })
        .inc();
}

/// Records a Warning Event for `problem` unless the Degraded condition in
/// `previous` already says the same. Returns true when it is new.
async fn warn_if_new(
    ctx: &Context,
    cluster: &DynamoCluster,
    previous: Option<&DynamoClusterStatus>,
    problem: &Problem,
) -> bool {
    if degraded_message(previous) == Some(problem.message.as_str()) {
        return false;
    }
    publish(
        ctx,
        cluster,
        EventType::Warning,
        &problem.reason,
        problem.message.clone(),
    )
    .await;
    true
}

/// The Degraded condition's message in `status`, if it is true.
fn degraded_message(status: Option<&DynamoClusterStatus>) -> Option<&str> {
    status
        .and_then(|s| s.condition(dynamo_crd::CONDITION_DEGRADED))
        .filter(|c| c.status == "True")
        .map(|c| c.message.as_str())
}

/// A pod that will not become ready by itself: the first one, in index order.
fn stuck_member(pods: &BTreeMap<usize, PodView>) -> Option<Problem> {
    pods.values().find_map(|pod| {
        let problem = pod.problem.as_ref()?;
        Some(Problem {
            reason: "MemberNotReady".into(),
            message: format!(
                "pod {} is not ready: {problem}; check spec.image and the pod's events, or lower the replicas (of its pool) to cancel a join that cannot start",
                pod.name
            ),
        })
    })
}

/// The StatefulSets of the pools `before` ran that `after` no longer runs:
/// removed pools whose last member left.
fn retired(before: &ValidatedCluster, after: &ValidatedCluster) -> Vec<String> {
    let running = pools::running(after);
    pools::running(before)
        .iter()
        .filter(|old| running.iter().all(|pool| pool.name != old.name))
        .map(|old| names::stateful_set(&before.name, old.name))
        .collect()
}

async fn apply(cluster: &DynamoCluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let previous = cluster.status.as_ref();
    let pods = pods(ctx, &namespace, &name, cluster.spec.topology_key()).await?;
    let validated = match ValidatedCluster::new(cluster) {
        Ok(validated) => validated,
        Err(refusal) => {
            let state = ClusterState::from_status(previous.and_then(|s| s.driver.as_ref()));
            let problem = Problem {
                reason: refusal.reason().into(),
                message: refusal.to_string(),
            };
            let status = build_status(
                &Observation {
                    name: &name,
                    generation: cluster.metadata.generation,
                    spec: &cluster.spec,
                    state: &state,
                    pods: &pods,
                    ring: None,
                    problem: Some(problem.clone()),
                },
                previous,
                (ctx.clock)(),
            );
            if previous != Some(&status) {
                patch_status(ctx, cluster, &status).await?;
            }
            if warn_if_new(ctx, cluster, previous, &problem).await {
                refused(ctx, &problem.reason);
                warn!(cluster = name, "{}", problem.message);
            }
            return Ok(Action::requeue(REFUSED_REQUEUE));
        }
    };
    let old_state = validated.state.clone();
    let spec = validated.spec.clone();
    let shape = Shape::from_spec(&name, &spec, crate::pools::members(&spec));
    let admin = match (&spec.tls, &ctx.admin_tls) {
        (Some(_), Some(admin_tls)) => Arc::clone(admin_tls),
        _ => Arc::clone(&ctx.admin),
    };
    let platform = KubePlatform::new(
        &validated,
        Arc::clone(&ctx.address),
        pods.clone(),
        Arc::clone(&admin),
    );
    let mut driver = Driver::new(platform, admin, shape, old_state.driver.clone());
    let without_certificate = spec.tls.is_some() && ctx.admin_tls.is_none();
    let (converged, mut problem) = match driver.step().await {
        Ok(converged) => (converged, None),
        Err(error) => (false, Some(driver_problem(&error, without_certificate))),
    };
    if converged && let Some(ring) = driver.ring() {
        let members = ring
            .members
            .iter()
            .filter_map(|member| crate::pools::index_of(&name, &member.id))
            .collect();
        driver.platform().settle(&members);
    }
    let mut state = driver.platform().state();
    state.driver = driver.state().clone();
    if state.partitions == 0 && state.total_pods() > 0 {
        state.partitions = spec.partitions;
    }
    problem = problem.or_else(|| stuck_member(&pods));
    let status = build_status(
        &Observation {
            name: &name,
            generation: cluster.metadata.generation,
            spec: &spec,
            state: &state,
            pods: &pods,
            ring: driver.ring(),
            problem: problem.clone(),
        },
        previous,
        (ctx.clock)(),
    );
    // The intent is persisted before any object changes.
    if previous != Some(&status) {
        patch_status(ctx, cluster, &status).await?;
    }
    let before = validated;
    let validated = ValidatedCluster {
        state: state.clone(),
        ..before.clone()
    };
    apply_objects(ctx, &validated, &retired(&before, &validated)).await?;

    let (step, epoch) = (&state.driver.step, state.driver.epoch);
    if *step != old_state.driver.step {
        let reason = step_reason(step);
        ctx.metrics
            .driver_steps
            .get_or_create(&StepLabels {
                step: reason.into(),
            })
            .inc();
        info!(cluster = name, reason, "{}", state.driver.message);
        publish(
            ctx,
            cluster,
            EventType::Normal,
            reason,
            state.driver.message.clone(),
        )
        .await;
    } else if epoch > old_state.driver.epoch && matches!(step, Step::Stream { .. }) {
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "RingCommitted",
            state.driver.message.clone(),
        )
        .await;
    }
    if let Some(refusal) = driver.refusal()
        && old_state.driver.message != state.driver.message
    {
        refused(ctx, "ScaleDeferred");
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "ScaleDeferred",
            refusal.to_owned(),
        )
        .await;
    }
    if let Some(problem) = &problem {
        warn_if_new(ctx, cluster, previous, problem).await;
    }
    let edited = previous.and_then(|s| s.observed_generation) != cluster.metadata.generation;
    let (_, relaxed) = builders::disruption_allowance(&spec.replication);
    if relaxed && edited {
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "DisruptionBudgetRelaxed",
            format!(
                "replication.factor equals replication.writeQuorum ({}), so any voluntary disruption makes some writes fail; the PodDisruptionBudget still allows 1 pod down so nodes can be drained: lower spec.replication.writeQuorum or raise spec.replication.factor",
                spec.replication.write_quorum
            ),
        )
        .await;
    }
    if edited && ctx.operator_pods.is_none() && network::wants_network_policy(&validated) {
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "NetworkPolicyOmitsOperator",
            format!(
                "the NetworkPolicy {} admits no operator pod: the operator runs without --operator-pod-labels (DYNAMO_OPERATOR_POD_LABELS), so where a network plugin enforces the policy its Admin calls to the nodes are blocked unless spec.networkPolicy.clients admits it; set the labels (the chart does) or list the operator's pods in spec.networkPolicy.clients",
                names::network_policy(&name)
            ),
        )
        .await;
    }
    Ok(Action::requeue(if converged {
        IDLE_REQUEUE
    } else {
        BUSY_REQUEUE
    }))
}

/// The cluster is being deleted: its objects go with it through their owner
/// references; its volumes are deleted or kept according to the PVC policy.
async fn cleanup(cluster: &DynamoCluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    let claims = api
        .list(&ListParams::default().labels(&selector_string(&name)))
        .await
        .map_err(kube_error(format!("list the volumes of {name}")))?;
    let claim_names: Vec<String> = claims.items.iter().map(ResourceExt::name_any).collect();
    match cluster.spec.pvc_policy_on_scale_down {
        PvcPolicy::Delete => {
            for claim in &claim_names {
                delete_object::<PersistentVolumeClaim>(ctx, &namespace, claim).await?;
            }
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "VolumesDeleted",
                format!(
                    "deleted {} volume claims: [{}]",
                    claim_names.len(),
                    claim_names.join(", ")
                ),
            )
            .await;
        }
        PvcPolicy::Retain => {
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "VolumesRetained",
                format!(
                    "kept {} volume claims (pvcPolicyOnScaleDown: Retain): [{}]; delete them with kubectl delete pvc -l {}",
                    claim_names.len(),
                    claim_names.join(", "),
                    selector_string(&name)
                ),
            )
            .await;
        }
    }
    info!(cluster = name, "cleaned up");
    Ok(Action::await_change())
}

/// Runs the controller over DynamoClusters of `namespace` (all namespaces
/// when `None`) until `shutdown` completes; reconciliations in progress
/// finish first.
///
/// # Errors
/// When the DynamoCluster CRD is not installed or cannot be listed.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let client = ctx.client.clone();
    fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        }
    }
    let clusters: Api<DynamoCluster> = scoped(&client, namespace);
    clusters
        .list(&ListParams::default().limit(1))
        .await
        .map_err(kube_error(
            "cannot list DynamoClusters: is the CRD installed (crdgen | kubectl apply -f -) and does the operator's role allow it?",
        ))?;
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGER
    ));
    let node_pods = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        names::LABEL_NAME,
        names::APP_NAME,
        names::LABEL_COMPONENT,
        names::COMPONENT_NODE
    ));
    Controller::new(clusters, watcher::Config::default().any_semantic())
        .owns(scoped::<StatefulSet>(&client, namespace), owned.clone())
        .owns(scoped::<Service>(&client, namespace), owned.clone())
        .owns(scoped::<ConfigMap>(&client, namespace), owned.clone())
        .owns(
            scoped::<PodDisruptionBudget>(&client, namespace),
            owned.clone(),
        )
        .owns(scoped::<NetworkPolicy>(&client, namespace), owned)
        .watches(scoped::<Pod>(&client, namespace), node_pods, |pod| {
            let cluster = pod.labels().get(names::LABEL_INSTANCE)?.clone();
            Some(ObjectRef::<DynamoCluster>::new(&cluster).within(&pod.namespace()?))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Err(error) if is_expected(&error) => debug!("reconcile: {error}"),
                Err(error) => warn!("reconcile: {error}"),
                Ok(_) => {}
            }
        })
        .await;
    Ok(())
}

/// Whether an error from the controller's stream is part of normal work. A
/// cluster being deleted still gets reconciles scheduled by its owned
/// objects and pods as they go, and kube reports each as "not found in local
/// store": expected, so it is logged at debug, not as a warning.
fn is_expected<R, Q>(error: &kube::runtime::controller::Error<R, Q>) -> bool {
    matches!(error, kube::runtime::controller::Error::ObjectNotFound(_))
}

/// The Degraded condition of a driver step that failed; `without_certificate`
/// when the cluster serves TLS and this operator has no certificate, the
/// likely cause and what to change.
fn driver_problem(error: &DriverError, without_certificate: bool) -> Problem {
    if without_certificate {
        Problem {
            reason: "OperatorWithoutCertificate".into(),
            message: format!(
                "spec.tls is set but this operator has no certificate to call the nodes with: \
                 install the chart with tls.secretName, or run it with \
                 --tls-ca/--tls-cert/--tls-key ({error})"
            ),
        }
    } else {
        Problem {
            reason: "DriverError".into(),
            message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::controller::Error as ControllerError;

    #[test]
    fn a_tls_cluster_without_an_operator_certificate_says_how_to_give_one() {
        let error = DriverError::PlannedOwner { id: "m9".into() };
        let plain = driver_problem(&error, false);
        assert_eq!(plain.reason, "DriverError");
        let unarmed = driver_problem(&error, true);
        assert_eq!(unarmed.reason, "OperatorWithoutCertificate");
        assert!(
            unarmed.message.contains("tls.secretName"),
            "{}",
            unarmed.message
        );
        assert!(
            unarmed.message.contains(&error.to_string()),
            "{}",
            unarmed.message
        );
    }

    #[test]
    fn a_reconcile_of_a_deleted_cluster_is_expected_and_a_failure_is_not() {
        let gone = ObjectRef::<DynamoCluster>::new("demo")
            .within("default")
            .erase();
        let not_found: ControllerError<Error, std::io::Error> =
            ControllerError::ObjectNotFound(Box::new(gone.clone()));
        assert!(is_expected(&not_found));
        let queue: ControllerError<Error, std::io::Error> =
            ControllerError::QueueError(std::io::Error::other("watch failed"));
        assert!(!is_expected(&queue));
    }
}
