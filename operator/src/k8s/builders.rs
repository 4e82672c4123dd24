//! Pure builders: a [`ValidatedCluster`] in, the Kubernetes objects the
//! operator applies out. No client, no I/O; tested from fixtures.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use dynamo_crd::{PvcPolicy, ReplicationSpec};

use super::cluster::ValidatedCluster;
use super::names;
use super::nodeconfig;
use super::pools::{self, Settings};
use crate::pools::Pool;

/// Node label that names a host, for spreading pods over machines.
const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
/// Seconds a stopping node gets to flush and hand off.
const TERMINATION_GRACE_SECONDS: i64 = 60;

/// Metadata of a cluster's object `name`: namespace, labels, owner.
pub(super) fn metadata(cluster: &ValidatedCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(cluster.namespace.clone()),
        labels: Some(cluster.labels()),
        owner_references: Some(vec![cluster.owner.clone()]),
        ..ObjectMeta::default()
    }
}

fn service_port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".into()),
        app_protocol: (name == names::PORT_GRPC).then(|| "kubernetes.io/h2c".to_owned()),
        ..ServicePort::default()
    }
}

fn service_ports() -> Vec<ServicePort> {
    vec![
        service_port(names::PORT_GRPC, names::GRPC_PORT),
        service_port(names::PORT_HTTP, names::HTTP_PORT),
    ]
}

/// The headless Service that gives each pod a stable DNS name
/// (`NAME-i.NAME-peers.NAMESPACE.svc`). It publishes pods before they are
/// ready: nodes must reach each other to become ready.
pub fn build_peer_service(cluster: &ValidatedCluster) -> Service {
    Service {
        metadata: metadata(cluster, names::peer_service(&cluster.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(cluster.selector_labels()),
            ports: Some(service_ports()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service clients connect to: ready pods only.
pub fn build_client_service(cluster: &ValidatedCluster) -> Service {
    Service {
        metadata: metadata(cluster, names::client_service(&cluster.name)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(cluster.selector_labels()),
            ports: Some(service_ports()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The ConfigMap: `node.yaml` with the shared settings, and one file per
/// launched member (`<pod>.yaml`) that its pod mounts as its config.
pub fn build_config_map(cluster: &ValidatedCluster) -> ConfigMap {
    let mut data = BTreeMap::from([("node.yaml".to_owned(), nodeconfig::shared(cluster))]);
    for &index in cluster.state.launches.keys() {
        let member = pools::member_id(cluster, index);
        if let (Some(member), Some(file)) = (member, nodeconfig::member(cluster, index)) {
            data.insert(names::config_key(&member), file);
        }
    }
    ConfigMap {
        metadata: metadata(cluster, names::config_map(&cluster.name)),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// How many pods may be disrupted at once: N-W, so that every key keeps W
/// live replicas. When N equals W no pod could ever be drained, so one is
/// allowed and the second value is true (the operator warns about it).
pub fn disruption_allowance(replication: &ReplicationSpec) -> (i32, bool) {
    let spare = replication.factor.saturating_sub(replication.write_quorum);
    if spare == 0 {
        (1, true)
    } else {
        (i32::try_from(spare).unwrap_or(i32::MAX), false)
    }
}

/// The PodDisruptionBudget: at most N-W storage pods unavailable (at least 1).
pub fn build_pdb(cluster: &ValidatedCluster) -> PodDisruptionBudget {
    let (allowed, _) = disruption_allowance(&cluster.spec.replication);
    PodDisruptionBudget {
        metadata: metadata(cluster, names::disruption_budget(&cluster.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(allowed)),
            selector: Some(LabelSelector {
                match_labels: Some(cluster.selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(names::PORT_HTTP.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        ..VolumeMount::default()
    }
}

fn node_container(cluster: &ValidatedCluster, settings: &Settings<'_>) -> Container {
    let spec = &cluster.spec;
    let advertise = format!(
        "$({pod}).{peers}.$({namespace}).svc:{port}",
        pod = names::ENV_POD_NAME,
        peers = names::peer_service(&cluster.name),
        namespace = names::ENV_POD_NAMESPACE,
        port = names::GRPC_PORT
    );
    Container {
        name: names::CONTAINER_NODE.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        command: Some(vec![names::NODE_BINARY.into()]),
        args: Some(vec![
            format!("--config={}", names::CONFIG_PATH),
            format!("--id=$({})", names::ENV_POD_NAME),
            format!("--advertise={advertise}"),
            "--log-format=json".into(),
        ]),
        env: Some(vec![
            field_env(names::ENV_POD_NAME, "metadata.name"),
            field_env(names::ENV_POD_NAMESPACE, "metadata.namespace"),
        ]),
        ports: Some(vec![
            container_port(names::PORT_GRPC, names::GRPC_PORT),
            container_port(names::PORT_HTTP, names::HTTP_PORT),
        ]),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(10),
            ..http_probe("/healthz", 10, 6)
        }),
        resources: settings.resources.cloned(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(names::RUN_AS),
            run_as_group: Some(names::RUN_AS),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(
            vec![
                mount(names::VOLUME_DATA, names::DATA_MOUNT),
                VolumeMount {
                    read_only: Some(true),
                    sub_path_expr: Some(format!("$({}).yaml", names::ENV_POD_NAME)),
                    ..mount(names::VOLUME_CONFIG, names::CONFIG_PATH)
                },
                mount(names::VOLUME_TMP, names::TMP_MOUNT),
            ]
            .into_iter()
            .chain(spec.tls.as_ref().map(|_| VolumeMount {
                read_only: Some(true),
                ..mount(names::VOLUME_TLS, names::TLS_MOUNT)
            }))
            .collect(),
        ),
        ..Container::default()
    }
}

/// Prefer one storage pod per machine, unless the spec brings its own
/// affinity.
fn default_affinity(cluster: &ValidatedCluster) -> k8s_openapi::api::core::v1::Affinity {
    k8s_openapi::api::core::v1::Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: HOSTNAME_KEY.into(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(cluster.selector_labels()),
                            ..LabelSelector::default()
                        }),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..k8s_openapi::api::core::v1::Affinity::default()
    }
}

fn pod_spec(cluster: &ValidatedCluster, settings: &Settings<'_>) -> PodSpec {
    let spec = &cluster.spec;
    let spread = spec.topology_key().map(|key| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.to_owned(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(cluster.selector_labels()),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        }]
    });
    PodSpec {
        containers: vec![node_container(cluster, settings)],
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(names::RUN_AS),
            run_as_group: Some(names::RUN_AS),
            fs_group: Some(names::RUN_AS),
            fs_group_change_policy: Some("OnRootMismatch".into()),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        volumes: Some(
            vec![
                Volume {
                    name: names::VOLUME_CONFIG.into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: names::config_map(&cluster.name),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: names::VOLUME_TMP.into(),
                    empty_dir: Some(Default::default()),
                    ..Volume::default()
                },
            ]
            .into_iter()
            .chain(spec.tls.as_ref().map(|tls| Volume {
                name: names::VOLUME_TLS.into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(tls.secret_name.clone()),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            }))
            .collect(),
        ),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        enable_service_links: Some(false),
        automount_service_account_token: Some(false),
        node_selector: (!settings.node_selector.is_empty()).then(|| settings.node_selector.clone()),
        tolerations: (!settings.tolerations.is_empty()).then(|| settings.tolerations.to_vec()),
        affinity: Some(
            settings
                .affinity
                .cloned()
                .unwrap_or_else(|| default_affinity(cluster)),
        ),
        topology_spread_constraints: spread,
        ..PodSpec::default()
    }
}

fn claim_template(
    cluster: &ValidatedCluster,
    pool: &str,
    settings: &Settings<'_>,
) -> PersistentVolumeClaim {
    let storage = settings.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(names::VOLUME_DATA.into()),
            labels: Some(pools::selector_labels(cluster, pool)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The StatefulSets of the pools the spec declares (one, named after the
/// cluster, without `spec.pools`), in the spec's order.
pub fn build_statefulsets(cluster: &ValidatedCluster) -> Vec<StatefulSet> {
    crate::pools::pools(&cluster.spec)
        .iter()
        .map(|pool| build_statefulset(cluster, pool))
        .collect()
}

/// The StatefulSet of the storage pods of `pool`. Its `replicas` is the
/// operator's pod count of the pool, not the pool's `replicas`: pods come
/// and go only through the membership driver. Pods start in parallel; a
/// scale down removes the pod with the highest ordinal, the one the driver
/// made leave. Its pods and volumes carry the pool label, and its selector
/// adds the pool to the cluster's (the implicit pool keeps the cluster's
/// selector, which a StatefulSet cannot change).
pub fn build_statefulset(cluster: &ValidatedCluster, pool: &Pool<'_>) -> StatefulSet {
    let settings = pools::settings(&cluster.spec, pool);
    let selector = pools::selector_labels(cluster, pool.name);
    let mut template_labels = cluster.labels();
    template_labels.remove(names::LABEL_MANAGED_BY);
    template_labels.extend(selector.clone());
    let policy = match cluster.spec.pvc_policy_on_scale_down {
        PvcPolicy::Retain => "Retain",
        PvcPolicy::Delete => "Delete",
    };
    StatefulSet {
        metadata: metadata(cluster, names::stateful_set(&cluster.name, pool.name)),
        spec: StatefulSetSpec {
            replicas: Some(cluster.state.pods_of(pool.name)),
            service_name: Some(names::peer_service(&cluster.name)),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some(policy.into()),
                    when_deleted: Some(policy.into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(template_labels),
                    annotations: Some(BTreeMap::from([(
                        names::ANNOTATION_CONFIG_HASH.to_owned(),
                        nodeconfig::stable_hash(&nodeconfig::shared(cluster)),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(cluster, &settings)),
            },
            volume_claim_templates: Some(vec![claim_template(cluster, pool.name, &settings)]),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests;
