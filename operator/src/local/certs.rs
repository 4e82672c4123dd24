//! A certificate authority for local TLS clusters (`dynamo-operator local
//! --tls`): one CA per cluster, kept under the data directory and reused on
//! the next start, which issues each member's certificate, the operator's
//! and a client's.
//!
//! Names follow the node's defaults (docs/security.md): a member's
//! certificate names `<member>.nodes.<cluster>` (matched by the node's
//! default `*.nodes.<cluster>`), plus `127.0.0.1` and `localhost` so that peers and
//! clients can check it against the addresses they dial; the operator's
//! names `operator.<cluster>`; a client's names `client.<cluster>`, which
//! lets it reach only the Kv service.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use thiserror::Error;

/// Why certificates could not be made or stored.
#[derive(Debug, Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}", path = path.display())]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// rcgen refused to make or parse a key or certificate.
    #[error("{what}: {source}")]
    Generate {
        /// What was being made.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
}

/// The files of one issued certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (readable by its owner only).
    pub key: PathBuf,
}

/// A cluster's local CA, its files in one directory.
pub struct LocalCa {
    dir: PathBuf,
    cluster: String,
    issuer: Issuer<'static, KeyPair>,
}

impl LocalCa {
    /// The CA of `cluster` in `dir`: the one stored there, or a new one.
    ///
    /// # Errors
    /// [`CertError`] when the directory or its files cannot be used.
    pub fn open(dir: &Path, cluster: &str) -> Result<Self, CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::File {
            action: "create",
            path: dir.to_owned(),
            source,
        })?;
        let key_path = dir.join("ca-key.pem");
        let cert_path = dir.join("ca.pem");
        let params = ca_params(cluster);
        let key = if key_path.exists() && cert_path.exists() {
            let pem = read(&key_path)?;
            KeyPair::from_pem(&pem).map_err(generate(format!("parse {}", key_path.display())))?
        } else {
            let key = KeyPair::generate().map_err(generate("the CA key"))?;
            let cert = params
                .self_signed(&key)
                .map_err(generate("the CA certificate"))?;
            write(&key_path, &key.serialize_pem(), true)?;
            write(&cert_path, &cert.pem(), false)?;
            key
        };
        // The issuer is rebuilt from the same parameters and key, so what it
        // signs chains to the stored CA certificate.
        Ok(Self {
            dir: dir.to_owned(),
            cluster: cluster.to_owned(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate's file, which every party trusts.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The certificate of member `id`, issued when missing.
    ///
    /// # Errors
    /// [`CertError`] when it cannot be made or stored.
    pub fn member(&self, id: &str) -> Result<Issued, CertError> {
        let names = vec![
            format!("{id}.nodes.{}", self.cluster),
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ];
        self.issue(id, names)
    }

    /// The operator's certificate (`operator.<cluster>`), issued when
    /// missing.
    ///
    /// # Errors
    /// [`CertError`] when it cannot be made or stored.
    pub fn operator(&self) -> Result<Issued, CertError> {
        self.issue("operator", vec![format!("operator.{}", self.cluster)])
    }

    /// A client's certificate (`client.<cluster>`: Kv only), issued when
    /// missing.
    ///
    /// # Errors
    /// [`CertError`] when it cannot be made or stored.
    pub fn client(&self) -> Result<Issued, CertError> {
        self.issue("client", vec![format!("client.{}", self.cluster)])
    }

    /// A certificate for `names` stored as `<file>.pem` and
    /// `<file>-key.pem`; an existing pair is kept.
    ///
    /// # Errors
    /// [`CertError`] when it cannot be made or stored.
    pub fn issue(&self, file: &str, names: Vec<String>) -> Result<Issued, CertError> {
        let issued = Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}-key.pem")),
        };
        if issued.cert.exists() && issued.key.exists() {
            return Ok(issued);
        }
        let what = format!("the certificate for {names:?}");
        let mut params = CertificateParams::new(names).map_err(generate(what.clone()))?;
        params.distinguished_name = name(file);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(generate(what.clone()))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(generate(what))?;
        write(&issued.key, &key.serialize_pem(), true)?;
        write(&issued.cert, &cert.pem(), false)?;
        Ok(issued)
    }
}

/// The CA's parameters, the same on every start.
fn ca_params(cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("DynamoKV local CA {cluster}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A distinguished name with only a common name.
fn name(common: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common);
    name
}

/// The error of generating `what`.
fn generate(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> CertError {
    let what = what.into();
    move |source| CertError::Generate { what, source }
}

/// The text of `path`, a PEM file this CA wrote.
pub(crate) fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::File {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// Writes `text` to `path`; `secret` files are readable by their owner only.
fn write(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let error = |source| CertError::File {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_ca_signs_for_the_stored_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = LocalCa::open(dir.path(), "demo").expect("new CA");
        let ca_pem = std::fs::read(first.ca()).expect("CA file");
        let member = first.member("demo-0").expect("member cert");
        drop(first);
        let again = LocalCa::open(dir.path(), "demo").expect("stored CA");
        assert_eq!(
            std::fs::read(again.ca()).expect("CA file"),
            ca_pem,
            "CA kept"
        );
        assert_eq!(again.member("demo-0").expect("kept"), member);
        let client = again.client().expect("client cert");
        let mode = std::fs::metadata(&client.key).expect("key").permissions();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }
}
