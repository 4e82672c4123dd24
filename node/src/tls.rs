//! Transport security for the gRPC edge and peer channels (docs/security.md).
//!
//! A node with a `tls` section serves over TLS 1.2/1.3 with rustls (the
//! `ring` provider, installed explicitly) and dials its peers the same way,
//! offering its own certificate. Certificates are identified by their
//! subject alternative DNS names; [`Names`] turns those into a [`Role`]
//! (by default `<member>.nodes.<cluster>` a node, `operator.<cluster>` the
//! operator, anything else a client), and
//! [`Authorize`] lets each role reach only its services: `Peer` only cluster
//! nodes, `Admin` changes nodes and the operator (its reads everyone), `Kv`
//! every certificate the CA signed (or none when client certificates are
//! optional).
//!
//! The CA, certificate and key files are read again when one of their
//! modification times changes: each new connection, in or out, uses what is
//! on disk then, so rotating certificates needs no restart.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::future::{Either, Ready, ready};
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::transport::Uri;
use tonic::transport::server::Connected;
use tracing::{debug, warn};

use crate::metrics::Metrics;
pub use crate::tls_settings::{ClientAuth, TlsFlags, TlsSettings};

/// How long a connection may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections whose handshake finished but that the server has not taken
/// yet.
const ACCEPT_QUEUE: usize = 64;

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("cannot read {what} from {path}: {reason}")]
    File {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the material.
    #[error("the TLS configuration is invalid: {0}")]
    Config(String),
}

/// What a certificate lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A node of this cluster.
    Node,
    /// The operator.
    Operator,
    /// Any other certificate the CA signed.
    Client,
    /// No certificate (client authentication optional).
    Anonymous,
}

/// The gRPC services a role may be allowed to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Client reads and writes.
    Kv,
    /// Status and ring changes.
    Admin,
    /// Node-to-node replication, gossip and transfers.
    Peer,
}

/// `Admin` methods that only read, which every role may call: clients
/// route with the ring and show the status.
const ADMIN_READS: [&str; 3] = ["Status", "GetRing", "TransferStatus"];

impl Role {
    /// Whether this role may call `method` of `service`.
    pub fn may_call(self, service: Api, method: &str) -> bool {
        match service {
            Api::Kv => true,
            Api::Admin => {
                ADMIN_READS.contains(&method) || matches!(self, Self::Node | Self::Operator)
            }
            Api::Peer => self == Self::Node,
        }
    }
}

/// The rules that map certificate names to roles.
#[derive(Clone, Debug)]
pub struct Names {
    nodes: Vec<String>,
    operators: Vec<String>,
}

impl Names {
    /// The rules of `settings` for `cluster`.
    pub fn new(settings: &TlsSettings, cluster: &str) -> Self {
        let lower = |names: &[String]| names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let mut nodes: Vec<String> = lower(&settings.node_names);
        if nodes.is_empty() {
            nodes.push(format!("*.nodes.{}", cluster.to_ascii_lowercase()));
        }
        let mut operators: Vec<String> = lower(&settings.operator_names);
        if operators.is_empty() {
            operators.push(format!("operator.{}", cluster.to_ascii_lowercase()));
        }
        Self { nodes, operators }
    }

    /// The role of a certificate with `names` (none: no certificate).
    pub fn role(&self, identity: Option<&PeerIdentity>) -> Role {
        let Some(identity) = identity else {
            return Role::Anonymous;
        };
        let any = |patterns: &[String]| {
            identity
                .names
                .iter()
                .any(|name| patterns.iter().any(|p| name_matches(p, name)))
        };
        if any(&self.nodes) {
            Role::Node
        } else if any(&self.operators) {
            Role::Operator
        } else {
            Role::Client
        }
    }
}

/// Whether `name` matches `pattern`: equal ignoring case, or for `*.suffix`
/// one non-empty label followed by `.suffix`.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .strip_suffix(suffix)
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => name == pattern.to_ascii_lowercase(),
    }
}

/// The verified certificate of a connection's peer, carried into each
/// request's extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The certificate's SAN DNS names.
    pub names: Vec<String>,
}

impl PeerIdentity {
    /// The identity of a DER certificate; empty names when it does not parse.
    pub fn of(cert: &CertificateDer<'_>) -> Self {
        let names = webpki::EndEntityCert::try_from(cert)
            .map(|cert| cert.valid_dns_names().map(str::to_owned).collect())
            .unwrap_or_default();
        Self { names }
    }
}

/// What a TLS connection carries into its requests' extensions; absent
/// altogether on a plaintext server.
#[derive(Clone, Debug)]
pub struct ConnectionIdentity {
    /// The caller's certificate identity, `None` for a client without one.
    pub peer: Option<PeerIdentity>,
    /// The caller's address.
    pub remote: SocketAddr,
}

/// The last-loaded material and what it was loaded from.
struct Loaded {
    stamps: [Option<SystemTime>; 3],
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

/// A node's TLS material, reloaded when the files change.
pub struct Tls {
    settings: TlsSettings,
    names: Names,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    loaded: Mutex<Loaded>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the material `settings` names for a node of `cluster`.
    ///
    /// # Errors
    /// [`TlsError`] when a file is missing or invalid.
    pub fn load(
        settings: &TlsSettings,
        cluster: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let names = Names::new(settings, cluster);
        let loaded = build(settings, &provider, &metrics)?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            names,
            provider,
            metrics,
            loaded: Mutex::new(loaded),
        }))
    }

    /// The role rules.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The current configs, reloaded first if a file changed. A reload that
    /// fails keeps the previous material and logs why.
    fn current(&self) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if stamps(&self.settings) != loaded.stamps {
            match build(&self.settings, &self.provider, &self.metrics) {
                Ok(fresh) => {
                    debug!("reloaded TLS certificates");
                    *loaded = fresh;
                }
                Err(error) => {
                    warn!(%error, "TLS files changed but do not load; keeping the previous ones");
                    loaded.stamps = stamps(&self.settings);
                }
            }
        }
        (Arc::clone(&loaded.server), Arc::clone(&loaded.client))
    }

    /// The server config for a new connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current().0
    }

    /// The client config for a new peer connection.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current().1
    }

    /// Accepts connections on `listener` and completes their handshakes,
    /// each on its own task; the stream ends when the server drops it.
    pub fn incoming(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> ReceiverStream<Result<TlsConnection, io::Error>> {
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = tx.closed() => return,
                };
                let (stream, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        debug!(%error, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let identity = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .map(PeerIdentity::of);
                            let _ = tx
                                .send(Ok(TlsConnection {
                                    stream,
                                    identity: ConnectionIdentity {
                                        peer: identity,
                                        remote,
                                    },
                                }))
                                .await;
                        }
                        Ok(Err(error)) => debug!(%remote, %error, "TLS handshake failed"),
                        Err(_) => debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }

    /// The interceptor admitting callers of `service`.
    pub fn authorize(self: &Arc<Self>, service: Api) -> Authorize {
        Authorize {
            tls: Some(Arc::clone(self)),
            service,
        }
    }

    /// Dials `uri` over TLS, verifying the server's certificate against the
    /// CA and the URI's host.
    async fn connect(
        &self,
        uri: Uri,
    ) -> io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.clone())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let connector = tokio_rustls::TlsConnector::from(self.client_config());
        Ok(TokioIo::new(connector.connect(name, tcp).await?))
    }
}

/// The TLS material of a node's config, `None` (with a warning) for a
/// plaintext node.
///
/// # Errors
/// [`TlsError`] when the configured files do not load.
pub fn from_config(
    settings: Option<&TlsSettings>,
    cluster: &str,
    id: &str,
    metrics: &Arc<Metrics>,
) -> Result<Option<Arc<Tls>>, TlsError> {
    match settings {
        Some(settings) => Tls::load(settings, cluster, Arc::clone(metrics)).map(Some),
        None => {
            warn!(
                %id,
                "no tls section: gRPC is plaintext and unauthenticated; anyone who can reach the port can read, write and change the ring"
            );
            Ok(None)
        }
    }
}

/// Modification times of the three files (`None` when unreadable).
fn stamps(settings: &TlsSettings) -> [Option<SystemTime>; 3] {
    [&settings.ca, &settings.cert, &settings.key]
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
}

/// Reads every certificate of a PEM file.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::File {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no certificate in the file".into()));
    }
    Ok(certs)
}

/// Builds both configs from the files of `settings`.
fn build(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
    metrics: &Arc<Metrics>,
) -> Result<Loaded, TlsError> {
    let stamps = stamps(settings);
    let mut roots = RootCertStore::empty();
    for cert in certificates("the CA certificate", &settings.ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(format!("the CA certificate: {e}")))?;
    }
    let roots = Arc::new(roots);
    let chain = certificates("the certificate chain", &settings.cert)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| TlsError::File {
        what: "the private key",
        path: settings.key.clone(),
        reason: e.to_string(),
    })?;
    let config = |e: rustls::Error| TlsError::Config(e.to_string());
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(provider));
    if settings.client_auth == ClientAuth::Optional {
        verifier = verifier.allow_unauthenticated();
    }
    let verifier = verifier
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = Arc::new(LoggingVerifier {
        inner: verifier,
        metrics: Arc::clone(metrics),
    });
    let mut server = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(config)?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(provider))
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut client = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(config)?
        .with_webpki_verifier(server_verifier)
        .with_client_auth_cert(chain, key)
        .map_err(config)?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        stamps,
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// The CA's client verifier, logging and counting the certificates it
/// refuses with the names they present.
struct LoggingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for LoggingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggingVerifier")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for LoggingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|error| {
                let names = PeerIdentity::of(end_entity).names;
                warn!(?names, %error, "refused a client certificate");
                self.metrics.tls_refused();
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server-side TLS connection with its peer's identity.
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    identity: ConnectionIdentity,
}

impl Connected for TlsConnection {
    type ConnectInfo = ConnectionIdentity;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.identity.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Admits a call to one service by its caller's role; a plaintext server
/// (no TLS) admits everything.
#[derive(Clone, Debug)]
pub struct Authorize {
    tls: Option<Arc<Tls>>,
    service: Api,
}

impl Authorize {
    /// The interceptor of a plaintext server: admits every call.
    pub fn open(service: Api) -> Self {
        Self { tls: None, service }
    }
}

impl Authorize {
    /// Wraps `inner`, a generated service, so that it answers refused
    /// callers with `PERMISSION_DENIED` before any handler runs.
    pub fn wrap<S>(self, inner: S) -> Authorized<S> {
        Authorized {
            inner,
            authorize: self,
        }
    }

    /// Admits or refuses a call of `path` (`/package.Service/Method`)
    /// carrying `extensions`.
    fn check(&self, path: &str, extensions: &http::Extensions) -> Result<(), Status> {
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        let method = path.rsplit('/').next().unwrap_or_default();
        let identity = extensions
            .get::<ConnectionIdentity>()
            .and_then(|identity| identity.peer.as_ref());
        let role = tls.names.role(identity);
        if role.may_call(self.service, method) {
            return Ok(());
        }
        let names = identity.map(|i| i.names.clone()).unwrap_or_default();
        warn!(?names, ?role, %path, "refused a call for its certificate");
        tls.metrics.tls_refused();
        Err(Status::permission_denied(format!(
            "the certificate {names:?} ({role:?}) may not call {path}"
        )))
    }
}

/// A generated service behind an [`Authorize`] check.
#[derive(Clone, Debug)]
pub struct Authorized<S> {
    inner: S,
    authorize: Authorize,
}

impl<S: NamedService> NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tonic::codegen::Service<http::Request<B>> for Authorized<S>
where
    S: tonic::codegen::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        >,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Self::Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self
            .authorize
            .check(request.uri().path(), request.extensions())
        {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(status) => Either::Right(ready(Ok(status.into_http()))),
        }
    }
}

/// A connector for tonic channels that dials over TLS.
#[derive(Clone, Debug)]
pub struct TlsConnector(pub Arc<Tls>);

impl tonic::codegen::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = Arc::clone(&self.0);
        Box::pin(async move { tls.connect(uri).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(nodes: &[&str], operators: &[&str]) -> Names {
        let settings = TlsSettings {
            node_names: nodes.iter().map(|s| (*s).to_owned()).collect(),
            operator_names: operators.iter().map(|s| (*s).to_owned()).collect(),
            ..TlsSettings::default()
        };
        Names::new(&settings, "prod")
    }

    fn identity(names: &[&str]) -> PeerIdentity {
        PeerIdentity {
            names: names.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn wildcard_matches_one_label() {
        assert!(name_matches("*.prod", "node-1.prod"));
        assert!(name_matches("*.prod", "Node-1.PROD"));
        assert!(!name_matches("*.prod", "prod"));
        assert!(!name_matches("*.prod", ".prod"));
        assert!(!name_matches("*.prod", "a.b.prod"));
        assert!(!name_matches("*.prod", "node-1.prod.evil"));
        assert!(!name_matches("*.prod", "node-1xprod"));
        assert!(name_matches("operator", "OPERATOR"));
        assert!(!name_matches("operator", "operator2"));
    }

    #[test]
    fn default_patterns_are_under_the_cluster() {
        let rules = names(&[], &["dynamo-operator"]);
        assert_eq!(rules.role(Some(&identity(&["n1.nodes.prod"]))), Role::Node);
        assert_eq!(rules.role(Some(&identity(&["n1.prod"]))), Role::Client);
        assert_eq!(
            rules.role(Some(&identity(&["n1.nodes.staging"]))),
            Role::Client
        );
        let defaults = names(&[], &[]);
        assert_eq!(
            defaults.role(Some(&identity(&["operator.prod"]))),
            Role::Operator
        );
        assert_eq!(
            defaults.role(Some(&identity(&["client.prod"]))),
            Role::Client
        );
        assert_eq!(
            rules.role(Some(&identity(&["dynamo-operator"]))),
            Role::Operator
        );
        assert_eq!(rules.role(Some(&identity(&[]))), Role::Client);
        assert_eq!(rules.role(None), Role::Anonymous);
    }

    #[test]
    fn configured_node_names_replace_the_default() {
        let rules = names(&["*.dynamo.ns.svc"], &[]);
        assert_eq!(rules.role(Some(&identity(&["n1.prod"]))), Role::Client);
        assert_eq!(
            rules.role(Some(&identity(&["x", "dynamo-0.dynamo.ns.svc"]))),
            Role::Node
        );
    }

    #[test]
    fn roles_reach_only_their_services() {
        use Api::*;
        let table = [
            (Role::Node, [true, true, true]),
            (Role::Operator, [true, true, false]),
            (Role::Client, [true, false, false]),
            (Role::Anonymous, [true, false, false]),
        ];
        for (role, allowed) in table {
            for (service, want) in [Kv, Admin, Peer].into_iter().zip(allowed) {
                assert_eq!(
                    role.may_call(service, "CommitRing"),
                    want,
                    "{role:?} {service:?}"
                );
            }
            assert!(role.may_call(Admin, "GetRing"), "{role:?} reads the ring");
            assert!(role.may_call(Admin, "Status"), "{role:?} reads the status");
        }
    }
}
