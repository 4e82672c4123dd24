//! `dynamo-operator certs`: the CA and certificates a cluster with
//! `spec.tls` needs, as Secrets in cert-manager's layout (`ca.crt`,
//! `tls.crt`, `tls.key`), for installations without cert-manager.
//!
//! The CA stays in a local directory and is reused on the next run, so
//! running the command again (for another cluster, or to add a client)
//! issues from the same CA; certificates already issued are kept.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dynamo_crd::DEFAULT_OPERATOR_NAME;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

use super::names;
use crate::local::certs::{CertError, Issued, LocalCa, read};

/// What to issue.
#[derive(Clone, Debug)]
pub struct CertsRequest {
    /// Directory of the CA and the issued files.
    pub dir: PathBuf,
    /// The DynamoCluster's name.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// Namespace of the operator's release, where its Secret goes.
    pub operator_namespace: String,
    /// Name of the operator's Secret (the chart's `tls.secretName`).
    pub operator_secret: String,
}

/// The node Secret's name for `cluster`: what `spec.tls.secretName` names.
pub fn node_secret(cluster: &str) -> String {
    format!("{cluster}-tls")
}

/// The client Secret's name for `cluster`: a certificate that reaches only
/// the Kv service.
pub fn client_secret(cluster: &str) -> String {
    format!("{cluster}-client-tls")
}

/// The names of a cluster's node certificate: every member's address
/// (which makes its holder a node), the client Service, and loopback for a
/// port-forward.
pub fn node_names(namespace: &str, cluster: &str) -> Vec<String> {
    let service = names::client_service(cluster);
    vec![
        names::node_certificate_name(namespace, cluster),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ]
}

/// Issues (or reuses) the cluster's node, operator and client certificates
/// and returns them as a multi-document YAML stream of Secrets, ready for
/// `kubectl apply -f -`. The client's files also stay in the directory for
/// `dynamoctl --ca --cert --key`.
///
/// # Errors
/// [`CertError`] when the CA or a certificate cannot be made or stored.
pub fn secrets(request: &CertsRequest) -> Result<String, CertError> {
    let ca = LocalCa::open(&request.dir, &request.cluster)?;
    let ns = &request.namespace;
    let cluster = &request.cluster;
    let node = ca.issue(&format!("{cluster}.{ns}-node"), node_names(ns, cluster))?;
    let operator = ca.issue(
        &format!("{cluster}.{ns}-operator"),
        vec![DEFAULT_OPERATOR_NAME.to_owned()],
    )?;
    let client = ca.issue(
        &format!("{cluster}.{ns}-client"),
        vec![format!("client.{cluster}.{ns}")],
    )?;
    let ca_pem = read(&ca.ca())?;
    let secrets = [
        secret(&node_secret(cluster), ns, &ca_pem, &node)?,
        secret(
            &request.operator_secret,
            &request.operator_namespace,
            &ca_pem,
            &operator,
        )?,
        secret(&client_secret(cluster), ns, &ca_pem, &client)?,
    ];
    let mut out = String::new();
    for secret in secrets {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&secret).expect("a Secret is plain data"));
    }
    Ok(out)
}

/// A `kubernetes.io/tls` Secret with the CA next to the certificate.
fn secret(name: &str, namespace: &str, ca: &str, issued: &Issued) -> Result<Secret, CertError> {
    let data = BTreeMap::from([
        ("ca.crt".to_owned(), ByteString(ca.as_bytes().to_vec())),
        (
            "tls.crt".to_owned(),
            ByteString(read(&issued.cert)?.into_bytes()),
        ),
        (
            "tls.key".to_owned(),
            ByteString(read(&issued.key)?.into_bytes()),
        ),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "dynamo-operator-certs".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use dynamo_node::tls::name_matches;

    fn request(dir: &Path) -> CertsRequest {
        CertsRequest {
            dir: dir.to_owned(),
            cluster: "demo".into(),
            namespace: "shop".into(),
            operator_namespace: "dynamo-system".into(),
            operator_secret: "dynamo-operator-tls".into(),
        }
    }

    fn parse(stream: &str) -> Vec<Secret> {
        stream
            .split("---\n")
            .filter(|doc| !doc.trim().is_empty())
            .map(|doc| serde_yaml::from_str(doc).expect("a Secret"))
            .collect()
    }

    #[test]
    fn three_secrets_in_their_namespaces_and_the_same_on_a_second_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = secrets(&request(dir.path())).expect("issued");
        let parsed = parse(&first);
        let placed: Vec<(String, String)> = parsed
            .iter()
            .map(|s| {
                (
                    s.metadata.name.clone().unwrap_or_default(),
                    s.metadata.namespace.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            placed,
            [
                ("demo-tls".into(), "shop".into()),
                ("dynamo-operator-tls".into(), "dynamo-system".into()),
                ("demo-client-tls".into(), "shop".into()),
            ]
        );
        for secret in &parsed {
            let data = secret.data.as_ref().expect("data");
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
            assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        }
        assert_eq!(secrets(&request(dir.path())).expect("reused"), first);
    }

    #[test]
    fn the_node_certificate_matches_every_member_address() {
        let pattern = names::node_certificate_name("shop", "demo");
        for member in ["demo-0", "demo-7", "demo-large-2"] {
            let address = names::member_address("shop", "demo", member);
            let host = address.rsplit_once(':').expect("host:port").0;
            assert!(name_matches(&node_names("shop", "demo")[0], host), "{host}");
            assert!(name_matches(&pattern, host), "{host}");
        }
    }
}
