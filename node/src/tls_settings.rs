//! The `tls` section of a node's configuration and its command-line flags
//! (the certificates themselves are loaded by `tls`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `tls` section of a node's configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA that signs every certificate of the cluster.
    pub ca: PathBuf,
    /// PEM file of this node's certificate chain.
    pub cert: PathBuf,
    /// PEM file of this node's private key.
    pub key: PathBuf,
    /// Whether clients must present a certificate.
    pub client_auth: ClientAuth,
    /// Names (or `*.suffix` patterns) of cluster node certificates; empty
    /// means `*.nodes.<cluster>`.
    pub node_names: Vec<String>,
    /// Names of the operator's certificate, allowed to call `Admin`;
    /// empty means `operator.<cluster>`.
    pub operator_names: Vec<String>,
}

/// Command-line flags (and environment) of the `tls` section; setting the
/// CA, certificate and key turns TLS on.
#[derive(Debug, Default, clap::Args)]
pub struct TlsFlags {
    /// PEM file of the cluster CA.
    #[arg(long, env = "DYNAMO_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM file of this node's certificate chain.
    #[arg(long, env = "DYNAMO_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of this node's private key.
    #[arg(long, env = "DYNAMO_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Whether clients must present a certificate.
    #[arg(long, env = "DYNAMO_TLS_CLIENT_AUTH", value_enum)]
    pub tls_client_auth: Option<ClientAuth>,
    /// Names or `*.suffix` patterns of node certificates (default
    /// `*.nodes.<cluster>`).
    #[arg(long, env = "DYNAMO_TLS_NODE_NAMES", value_delimiter = ',')]
    pub tls_node_names: Vec<String>,
    /// Names of the operator's certificate.
    #[arg(long, env = "DYNAMO_TLS_OPERATOR_NAMES", value_delimiter = ',')]
    pub tls_operator_names: Vec<String>,
}

impl TlsFlags {
    /// Applies the flags that are set over `tls` (from the file).
    pub fn apply(&self, tls: &mut Option<TlsSettings>) {
        let any = self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.tls_client_auth.is_some()
            || !self.tls_node_names.is_empty()
            || !self.tls_operator_names.is_empty();
        if !any {
            return;
        }
        let settings = tls.get_or_insert_with(TlsSettings::default);
        let set = |target: &mut PathBuf, value: &Option<PathBuf>| {
            if let Some(value) = value {
                target.clone_from(value);
            }
        };
        set(&mut settings.ca, &self.tls_ca);
        set(&mut settings.cert, &self.tls_cert);
        set(&mut settings.key, &self.tls_key);
        if let Some(mode) = self.tls_client_auth {
            settings.client_auth = mode;
        }
        if !self.tls_node_names.is_empty() {
            settings.node_names.clone_from(&self.tls_node_names);
        }
        if !self.tls_operator_names.is_empty() {
            settings.operator_names.clone_from(&self.tls_operator_names);
        }
    }
}

/// Whether a TLS server asks clients for certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Every client presents a certificate signed by the CA (mutual TLS).
    #[default]
    Required,
    /// Clients may connect without a certificate; they reach only `Kv`.
    Optional,
}
