//! `spec.tls`: mutual TLS for the cluster's gRPC traffic (docs/security.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Mutual TLS between the storage pods and for their clients. The Secret
/// holds `ca.crt`, `tls.crt` and `tls.key` (the layout cert-manager
/// writes); its certificate must name `*.<cluster>-peers.<namespace>.svc`,
/// which every pod's address matches and which makes its holder a node.
/// Rotated Secret contents are used without restarting the pods.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// The Secret in the cluster's namespace with the nodes' certificate.
    #[schemars(length(min = 1))]
    pub secret_name: String,
    /// Whether clients must present a certificate signed by the CA
    /// (`Required`, the default) or may connect without one and then reach
    /// only reads and writes (`Optional`).
    #[serde(default)]
    pub client_auth: ClientAuthMode,
    /// DNS names of the operator's certificate, which may change the ring.
    #[serde(default = "default_operator_names")]
    pub operator_names: Vec<String>,
}

/// Whether the nodes require client certificates.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// Every client presents a certificate signed by the CA.
    #[default]
    Required,
    /// Clients may connect without a certificate.
    Optional,
}

impl ClientAuthMode {
    /// The node configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
        }
    }
}

/// The name the chart gives the operator's certificate.
pub const DEFAULT_OPERATOR_NAME: &str = "dynamo-operator";

fn default_operator_names() -> Vec<String> {
    vec![DEFAULT_OPERATOR_NAME.to_owned()]
}
