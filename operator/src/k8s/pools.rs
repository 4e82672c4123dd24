//! The pools of a cluster as Kubernetes runs them: one StatefulSet per
//! pool, the pool's own scheduling and sizing with the top-level fields as
//! fallbacks, and the pod of every member index, including members of a
//! pool that was removed from the spec and still drains.

use std::collections::BTreeMap;

use dynamo_crd::{DEFAULT_POOL_WEIGHT, DynamoClusterSpec, StorageSpec};
use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};

use super::cluster::ValidatedCluster;
use super::names;
use crate::pools::{self, Pool};

/// The pools of `cluster` that still run members but that its spec no
/// longer declares: they drain (every member leaves), and their
/// StatefulSets are scaled down, then deleted. The implicit pool is one of
/// them once a cluster without pools declares some.
pub fn removed(cluster: &ValidatedCluster) -> Vec<Pool<'_>> {
    let declared = pools::pools(&cluster.spec);
    let implicit = (!cluster.spec.pools.is_empty() && cluster.state.pods > 0).then_some("");
    implicit
        .into_iter()
        .chain(cluster.state.pool_pods.keys().map(String::as_str))
        .filter(|name| declared.iter().all(|pool| pool.name != *name))
        .map(|name| Pool {
            name,
            replicas: 0,
            weight: DEFAULT_POOL_WEIGHT,
            zone: None,
            spec: None,
        })
        .collect()
}

/// Every pool with a StatefulSet: the spec's pools, then the removed ones.
pub fn running(cluster: &ValidatedCluster) -> Vec<Pool<'_>> {
    let mut running = pools::pools(&cluster.spec);
    running.extend(removed(cluster));
    running
}

/// The name of the pool (empty: the implicit pool) that member `index`
/// belongs to, when `cluster` runs it.
pub fn pool_name(cluster: &ValidatedCluster, index: usize) -> Option<&str> {
    let (slot, _) = pools::split(index);
    running(cluster)
        .into_iter()
        .find(|pool| pool.slot() == slot)
        .map(|pool| pool.name)
}

/// The member id (pod name) of member `index`, when `cluster` runs its pool.
pub fn member_id(cluster: &ValidatedCluster, index: usize) -> Option<String> {
    let (_, ordinal) = pools::split(index);
    let pool = pool_name(cluster, index)?;
    Some(pools::member_name(&cluster.name, pool, ordinal))
}

/// The pod labels that select the pods of `pool`: the cluster's selector,
/// plus [`names::LABEL_POOL`] for a declared pool. The implicit pool's
/// selector is the cluster's, exactly as before pools (a StatefulSet's
/// selector cannot change).
pub fn selector_labels(cluster: &ValidatedCluster, pool: &str) -> BTreeMap<String, String> {
    let mut labels = cluster.selector_labels();
    if !pool.is_empty() {
        labels.insert(names::LABEL_POOL.to_owned(), pool.to_owned());
    }
    labels
}

/// How the pods of one pool are sized and scheduled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings<'a> {
    /// CPU and memory of the node container.
    pub resources: Option<&'a ResourceRequirements>,
    /// The data volume of each pod.
    pub storage: &'a StorageSpec,
    /// Labels the pods' machines must have.
    pub node_selector: &'a BTreeMap<String, String>,
    /// Taints the pods tolerate.
    pub tolerations: &'a [Toleration],
    /// Affinity rules; `None` for the operator's default anti-affinity.
    pub affinity: Option<&'a Affinity>,
}

/// The settings of `pool`: each of its own fields, else the top-level one
/// of `spec`.
pub fn settings<'a>(spec: &'a DynamoClusterSpec, pool: &Pool<'a>) -> Settings<'a> {
    let top = Settings {
        resources: spec.resources.as_ref(),
        storage: &spec.storage,
        node_selector: &spec.node_selector,
        tolerations: &spec.tolerations,
        affinity: spec.affinity.as_ref(),
    };
    let Some(own) = pool.spec else {
        return top;
    };
    Settings {
        resources: own.resources.as_ref().or(top.resources),
        storage: own.storage.as_ref().unwrap_or(top.storage),
        node_selector: if own.node_selector.is_empty() {
            top.node_selector
        } else {
            &own.node_selector
        },
        tolerations: if own.tolerations.is_empty() {
            top.tolerations
        } else {
            &own.tolerations
        },
        affinity: own.affinity.as_ref().or(top.affinity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::k8s::cluster::fixture as cluster;

    const POOLED: &str = "  replicas: 3\n  resources: {limits: {cpu: '1'}}\n  storage: {size: 5Gi}\n  nodeSelector: {disk: any}\n  pools:\n  - {name: small, replicas: 2}\n  - name: large\n    replicas: 1\n    weight: 2\n    storage: {size: 50Gi, storageClassName: ssd}\n    nodeSelector: {disk: ssd}\n";

    #[test]
    fn a_pool_falls_back_to_the_top_level_fields() {
        let cluster = cluster(POOLED);
        let pools = pools::pools(&cluster.spec);
        let small = settings(&cluster.spec, &pools[0]);
        assert_eq!(small.storage.size, "5Gi");
        assert_eq!(
            small.node_selector.get("disk").map(String::as_str),
            Some("any")
        );
        assert!(small.resources.is_some());
        let large = settings(&cluster.spec, &pools[1]);
        assert_eq!(large.storage.size, "50Gi");
        assert_eq!(
            large.node_selector.get("disk").map(String::as_str),
            Some("ssd")
        );
        assert_eq!(large.resources, small.resources, "resources fall back");
    }

    #[test]
    fn a_removed_pool_keeps_running_until_its_members_left() {
        let mut cluster = cluster(POOLED);
        cluster.state.set_pods("small", 2);
        cluster.state.set_pods("gone", 2);
        let removed = removed(&cluster);
        assert_eq!(removed.iter().map(|p| p.name).collect::<Vec<_>>(), ["gone"]);
        assert_eq!(removed[0].replicas, 0);
        let gone = pools::index(pools::slot("gone"), 1);
        assert_eq!(pool_name(&cluster, gone), Some("gone"));
        assert_eq!(member_id(&cluster, gone).as_deref(), Some("demo-gone-1"));
        let unknown = pools::index(pools::slot("never"), 0);
        assert_eq!(member_id(&cluster, unknown), None);
    }

    #[test]
    fn the_implicit_pool_drains_once_pools_are_declared() {
        let mut cluster = cluster(POOLED);
        assert!(removed(&cluster).is_empty());
        cluster.state.pods = 3;
        assert_eq!(member_id(&cluster, 2).as_deref(), Some("demo-2"));
        assert_eq!(running(&cluster).len(), 3);
    }

    #[test]
    fn only_a_declared_pool_adds_its_label_to_the_selector() {
        let cluster = cluster("  replicas: 3\n");
        assert_eq!(selector_labels(&cluster, ""), cluster.selector_labels());
        let large = selector_labels(&cluster, "large");
        assert_eq!(
            large.get(names::LABEL_POOL).map(String::as_str),
            Some("large")
        );
        assert_eq!(large.len(), cluster.selector_labels().len() + 1);
    }
}
