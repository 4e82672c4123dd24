//! Zones on Kubernetes: the first members' pods do not exist when the first
//! ring is made, so their zones are learnt from the Nodes the pods are bound
//! to and then planned like a membership change, until every key's replicas
//! sit in different zones.

// Shared with reconcile.rs, which uses all of it.
#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;

use dynamo_crd::{ClusterPhase, DynamoCluster, DynamoClusterStatus, ZonesSpec};
use dynamo_operator::plan::{Layout, PlanMember, preference_list};
use dynamo_proto::v1 as pb;
use serde_json::{Value, json};

use support::nodes::FakeNodes;
use support::{ApiServer, PARTITIONS, bound_pod, cluster, context, reconcile};

const NAME: &str = "zoned";
const REPLICAS: usize = 6;
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// Pods 0 and 1 run on `node-0` in zone-a, 2 and 3 on `node-1` in zone-b,
/// 4 and 5 on `node-2` in zone-c: the first ring, dealt round-robin without
/// zones, puts neighbours in the same zone.
fn node_of(index: usize) -> String {
    format!("node-{}", index / 2)
}

fn bound_pods() -> Vec<Value> {
    (0..REPLICAS)
        .map(|i| bound_pod(NAME, i, &node_of(i), true))
        .collect()
}

/// One reconcile: list the pods, read each Node once (when any pod is
/// bound), write the status, apply the objects, take `events` Events.
async fn step(
    cluster: &mut DynamoCluster,
    ctx: &std::sync::Arc<dynamo_operator::k8s::Context>,
    api: &mut ApiServer,
    pods: Vec<Value>,
    events: usize,
) -> (DynamoClusterStatus, Vec<String>) {
    let bound = !pods.is_empty();
    let current = cluster.clone();
    let (_, (status, reasons)) = reconcile(&current, ctx, api, async |api: &mut ApiServer| {
        api.list_pods(NAME, pods).await;
        if bound {
            for (index, zone) in ZONES.iter().enumerate() {
                api.get_node(
                    &format!("node-{index}"),
                    json!({"topology.kubernetes.io/zone": zone}),
                )
                .await;
            }
        }
        let status = api.status(&current).await;
        api.apply_all(NAME).await;
        let mut reasons = Vec::new();
        for _ in 0..events {
            reasons.push(api.event().await.1);
        }
        (status, reasons)
    })
    .await;
    cluster.status = Some(status.clone());
    (status, reasons)
}

/// Every partition's N=3 replicas (the preference list) span three zones.
fn spread(ring: &pb::Ring) -> Result<(), String> {
    let layout = Layout {
        members: ring
            .members
            .iter()
            .map(|m| PlanMember::new(m.id.clone(), m.zone.clone()))
            .collect(),
        owners: ring.owners.clone(),
    };
    for partition in 0..ring.owners.len() as u32 {
        let zones: BTreeSet<&str> = preference_list(&layout, partition, 3)
            .iter()
            .map(|&m| ring.members[m as usize].zone.as_str())
            .collect();
        if zones.len() != 3 {
            return Err(format!("partition {partition}: replicas in {zones:?}"));
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_first_members_get_their_nodes_zones_and_replicas_spread() {
    let nodes = FakeNodes::start().await;
    let (ctx, mut api) = context(&nodes);
    let mut cluster = cluster(NAME, REPLICAS as i32);
    cluster.spec.zones = Some(ZonesSpec::default());

    // No pod exists yet: the first ring cannot know any zone.
    let (created, _) = step(&mut cluster, &ctx, &mut api, Vec::new(), 1).await;
    assert_eq!(created.phase, Some(ClusterPhase::Creating));
    let members: Vec<pb::Member> = (0..REPLICAS)
        .map(|i| pb::Member {
            weight: 0,
            id: format!("{NAME}-{i}"),
            address: nodes.address(i),
            zone: String::new(),
        })
        .collect();
    nodes.boot(&members, PARTITIONS);
    assert!(spread(&nodes.ring(0).expect("ring")).is_err());

    // The pods are bound: the operator reads their Nodes' zones and commits
    // them; each key's replicas then sit in three zones.
    let (placed, reasons) = step(&mut cluster, &ctx, &mut api, bound_pods(), 0).await;
    assert_eq!(reasons, Vec::<String>::new());
    let ring = nodes.ring(0).expect("ring");
    assert_eq!(ring.epoch, 2);
    assert!(ring.next_owners.is_empty());
    let zones: Vec<&str> = ring.members.iter().map(|m| m.zone.as_str()).collect();
    let expected: Vec<&str> = (0..REPLICAS).map(|i| ZONES[i / 2]).collect();
    assert_eq!(zones, expected);
    spread(&ring).expect("replicas spread over the zones");
    let message = &placed.driver.as_ref().expect("driver")["driver"]["message"];
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.starts_with("zones of zoned-0")),
        "{message}"
    );

    let (converged, reasons) = step(&mut cluster, &ctx, &mut api, bound_pods(), 1).await;
    assert_eq!(reasons, ["Converged"]);
    assert_eq!(converged.phase, Some(ClusterPhase::Running));
    let member_zones: Vec<Option<&str>> = converged
        .members
        .iter()
        .map(|m| m.zone.as_deref())
        .collect();
    assert!(member_zones.iter().all(Option::is_some), "{member_zones:?}");
}

#[tokio::test]
async fn a_cluster_without_zones_ignores_the_pods_zone_labels() {
    let nodes = FakeNodes::start().await;
    let (ctx, mut api) = context(&nodes);
    let mut cluster = cluster(NAME, 3);
    step(&mut cluster, &ctx, &mut api, Vec::new(), 1).await;
    let members: Vec<pb::Member> = (0..3)
        .map(|i| pb::Member {
            weight: 0,
            id: format!("{NAME}-{i}"),
            address: nodes.address(i),
            zone: String::new(),
        })
        .collect();
    nodes.boot(&members, PARTITIONS);
    let pods: Vec<Value> = (0..3)
        .map(|i| {
            let mut pod = bound_pod(NAME, i, &node_of(i), true);
            pod["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!(ZONES[i / 2]);
            pod
        })
        .collect();
    // No Node is read, no zone change is planned: the cluster converges.
    let current = cluster.clone();
    let (_, reason) = reconcile(&current, &ctx, &mut api, async |api: &mut ApiServer| {
        api.list_pods(NAME, pods).await;
        api.status(&current).await;
        api.apply_all(NAME).await;
        api.event().await.1
    })
    .await;
    assert_eq!(reason, "Converged");
    assert_eq!(nodes.ring(0).map(|r| r.epoch), Some(1));
}
