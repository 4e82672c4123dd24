//! `spec.networkPolicy`: which pods and addresses may reach the storage pods.

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Network isolation of the storage pods. When set (and `enabled`), the
/// operator applies a NetworkPolicy that admits, on every port, the
/// cluster's own storage pods and the operator, and beyond them only the
/// sources listed here. It takes effect where the cluster's network plugin
/// enforces NetworkPolicies. Which gRPC service a source may call is decided
/// by its TLS certificate, not here: clients and peers share one port.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Whether the operator applies the NetworkPolicy. Turning it off
    /// deletes the policy.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Sources allowed to reach the gRPC port as clients, as NetworkPolicy
    /// peers (podSelector, namespaceSelector, ipBlock). When empty, pods in
    /// the cluster's own namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<NetworkPolicyPeer>,
    /// Sources allowed to reach the HTTP port (metrics, health, the ring
    /// page). When empty, any source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<NetworkPolicyPeer>,
}

fn enabled_by_default() -> bool {
    true
}
