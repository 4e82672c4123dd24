//! TLS for the client's connections: the cluster's CA, and the client's own
//! certificate when the cluster asks for one (docs/security.md).

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::Error;

/// The PEM material a client verifies nodes with and presents to them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM certificates of the CA that signed the nodes' certificates.
    pub ca: Vec<u8>,
    /// The client's PEM certificate chain and private key, for clusters
    /// that require client certificates (mutual TLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name the nodes' certificates are checked against instead of
    /// each address's host.
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Reads the CA and, when both are given, the client certificate and
    /// key from PEM files.
    ///
    /// # Errors
    /// [`Error::Tls`] naming a file that cannot be read, holds no PEM
    /// block, or when only one of `cert` and `key` is given.
    pub fn from_files(ca: &Path, cert: Option<&Path>, key: Option<&Path>) -> Result<Self, Error> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((read_pem(cert)?, read_pem(key)?)),
            (None, None) => None,
            _ => {
                return Err(Error::Tls {
                    message: "a client certificate needs both --cert and --key".into(),
                });
            }
        };
        Ok(Self {
            ca: read_pem(ca)?,
            identity,
            server_name: None,
        })
    }

    /// The tonic configuration for a connection to `host`.
    pub(crate) fn config(&self, host: &str) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .domain_name(self.server_name.as_deref().unwrap_or(host));
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        config
    }
}

/// The contents of a PEM file, refused when it holds no PEM block.
fn read_pem(path: &Path) -> Result<Vec<u8>, Error> {
    let error = |reason: String| Error::Tls {
        message: format!("cannot read {}: {reason}", PathBuf::from(path).display()),
    };
    let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(error("no PEM block in the file".into()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_pem_or_half_an_identity_are_refused() {
        let dir = std::env::temp_dir().join(format!("dynamo-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pem = dir.join("ca.pem");
        let junk = dir.join("junk.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        std::fs::write(&junk, "not a certificate").expect("write");

        let ok = TlsOptions::from_files(&pem, None, None).expect("a PEM file loads");
        assert!(ok.identity.is_none());
        let err = TlsOptions::from_files(&junk, None, None).expect_err("no PEM");
        assert!(err.to_string().contains("no PEM block"), "{err}");
        let err =
            TlsOptions::from_files(&dir.join("missing.pem"), None, None).expect_err("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = TlsOptions::from_files(&pem, Some(&pem), None).expect_err("no key");
        assert!(err.to_string().contains("--key"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
