//! TLS and mTLS on the authz channel (rustls).
//!
//! - `tls.cert` / `tls.key`: the server's certificate chain and key (PEM). They are re-read
//!   when they change (an SVID rotates hourly): new handshakes get the new certificate, open
//!   connections keep going. A broken new pair is refused and the old one kept (logged).
//! - `tls.client_ca`: client certificates are required and must chain to this CA bundle
//!   (re-read on change too).
//! - `tls.allowed_callers`: the client certificate must be an X.509-SVID whose SPIFFE ID
//!   matches one of these (exactly, or as a `glob` pattern: `*` within a segment, `**` any
//!   segments). Any other caller's connection is closed after the handshake, logged and
//!   counted (`warrant_tls_refused_total{reason}`): without this, anything in the cluster that
//!   can reach Warrant could probe the policy.
//!
//! Handshakes run off the accept loop (each bounded by [`HANDSHAKE_TIMEOUT`]), so a slow or
//! silent client never holds up others.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::audit::Metrics;
use crate::config::TlsConfig;
use crate::identity::X509Svid;
use crate::policy::Glob;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most TLS handshakes under way at once; a connection over it is closed at once (counted as
/// a refused handshake), so a flood of idle connections cannot hold unbounded tasks.
pub const MAX_HANDSHAKES: usize = 8192;

/// Most TLS handshakes under way at once from one peer address: a single host flooding the
/// listener with idle connections fills its own share, not everyone's.
pub const MAX_HANDSHAKES_PER_PEER: usize = 64;

/// How often the certificate, key and CA files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate, key or CA file cannot be read or used.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why: unreadable, no certificate in it, or a key that does not match the certificate.
        reason: String,
    },
    /// The TLS settings are inconsistent or rustls refuses them (e.g. `allowed_callers`
    /// without `client_ca`).
    #[error("tls: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The ring crypto provider, explicitly (no process-wide default is installed).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificate chain and key into a signing key.
fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert, e))?;
    if chain.is_empty() {
        return Err(file_error(cert, "holds no CERTIFICATE"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| file_error(key, e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| file_error(key, format!("does not match the certificate: {e}")))?;
    Ok(certified)
}

/// Builds a verifier requiring client certificates that chain to the CA bundle at `path`.
fn client_verifier(path: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
        let cert = cert.map_err(|e| file_error(path, e))?;
        roots.add(cert).map_err(|e| file_error(path, e))?;
    }
    if roots.is_empty() {
        return Err(file_error(path, "holds no CA CERTIFICATE"));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| file_error(path, e))
}

/// The server certificate, swapped whole when its files change.
#[derive(Debug)]
struct ReloadingCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The client verifier, swapped whole when the CA file changes.
#[derive(Debug)]
struct ReloadingVerifier(ArcSwap<Arc<dyn ClientCertVerifier>>);

impl ClientCertVerifier for ReloadingVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints of the verifier at hand; a reload only changes them for new handshakes.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .load()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.load().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.load().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.load().supported_verify_schemes()
    }
}

/// Who may call Check, by the client certificate's SPIFFE ID.
#[derive(Debug, Clone)]
struct AllowedCallers(Vec<Glob>);

impl AllowedCallers {
    fn allows(&self, spiffe_id: &str) -> bool {
        self.0.iter().any(|glob| glob.matches(spiffe_id))
    }
}

/// The TLS side of the gRPC listener.
pub struct Tls {
    config: TlsConfig,
    cert: Arc<ReloadingCert>,
    verifier: Option<Arc<ReloadingVerifier>>,
    acceptor: TlsAcceptor,
    allowed: Option<AllowedCallers>,
    /// Each file's (modification time, size) when last read.
    seen: std::sync::Mutex<std::collections::HashMap<PathBuf, Stamp>>,
    /// What the status page shows; written only when the files are read.
    state: std::sync::Mutex<TlsStatus>,
}

/// The state of the listener's TLS, for the status page and metrics.
#[derive(Debug, Clone)]
pub struct TlsStatus {
    /// The serving certificate's (the chain's first) `notAfter`; `None` if it cannot be read.
    pub certificate_expires: Option<SystemTime>,
    /// When the serving certificate was read.
    pub certificate_loaded: SystemTime,
    /// The last refused reload of the certificate, key or client CA: when and why (the old
    /// one kept serving). Cleared by the next successful reload of the same kind.
    pub last_error: Option<(SystemTime, String)>,
}

/// When the first certificate of `key`'s chain expires (RFC 5280 §4.1.2.5).
fn expires(key: &CertifiedKey) -> Option<SystemTime> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let seconds = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// What tells a file changed: its modification time and size (`None` when unreadable).
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("config", &self.config)
            .field("mutual", &self.mutual())
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate, key and CA named by `config`.
    pub fn new(config: &TlsConfig) -> Result<Self, TlsError> {
        // Stamped before reading, so a change made any time after is seen.
        let seen = [
            Some(&config.cert),
            Some(&config.key),
            config.client_ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|path| (path.clone(), stamp(path)))
        .collect();
        let key = certified_key(&config.cert, &config.key)?;
        let state = TlsStatus {
            certificate_expires: expires(&key),
            certificate_loaded: SystemTime::now(),
            last_error: None,
        };
        let cert = Arc::new(ReloadingCert(ArcSwap::from_pointee(key)));
        let verifier = config
            .client_ca
            .as_deref()
            .map(|ca| {
                client_verifier(ca).map(|v| Arc::new(ReloadingVerifier(ArcSwap::from_pointee(v))))
            })
            .transpose()?;
        let allowed = match (&config.allowed_callers, &verifier) {
            (callers, _) if callers.is_empty() => None,
            (_, None) => {
                return Err(TlsError::Config(
                    "allowed_callers needs client_ca: callers are known by their client certificates".into(),
                ));
            }
            (callers, Some(_)) => Some(AllowedCallers(
                callers
                    .iter()
                    .map(|pattern| {
                        Glob::new(pattern).map_err(|e| {
                            TlsError::Config(format!("allowed_callers {pattern:?}: {e}"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            )),
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &verifier {
            Some(verifier) => builder
                .with_client_cert_verifier(Arc::clone(verifier) as Arc<dyn ClientCertVerifier>),
            None => builder.with_no_client_auth(),
        };
        let mut server =
            builder.with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            config: config.clone(),
            cert,
            verifier,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            allowed,
            seen: std::sync::Mutex::new(seen),
            state: std::sync::Mutex::new(state),
        })
    }

    /// The certificate's expiry, when it was loaded, and the last refused reload.
    pub fn status(&self) -> TlsStatus {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn record(&self, update: impl FnOnce(&mut TlsStatus)) {
        update(
            &mut self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    /// Whether client certificates are required (mTLS).
    pub fn mutual(&self) -> bool {
        self.verifier.is_some()
    }

    /// Re-reads the files whose modification time or size changed since they were last read;
    /// a broken new pair or CA is refused and the old one kept.
    fn reload_changed(&self) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut changed = |path: &Path| {
            let now = stamp(path);
            let before = seen.insert(path.to_path_buf(), now);
            before != Some(now)
        };
        let (cert_changed, key_changed) = (changed(&self.config.cert), changed(&self.config.key));
        let ca_changed = self.config.client_ca.as_deref().is_some_and(&mut changed);
        drop(seen);
        if cert_changed || key_changed {
            match certified_key(&self.config.cert, &self.config.key) {
                Ok(key) => {
                    let expires = expires(&key);
                    self.cert.0.store(Arc::new(key));
                    self.record(|state| {
                        state.certificate_expires = expires;
                        state.certificate_loaded = SystemTime::now();
                        state.last_error = None;
                    });
                    tracing::info!(cert = %self.config.cert.display(), "TLS certificate reloaded");
                }
                Err(error) => {
                    tracing::error!(%error, "TLS certificate not reloaded; the previous one stays");
                    self.record(|state| {
                        state.last_error = Some((
                            SystemTime::now(),
                            format!("certificate not reloaded: {error}"),
                        ));
                    });
                }
            }
        }
        if let (Some(ca), Some(verifier)) = (&self.config.client_ca, &self.verifier)
            && ca_changed
        {
            match client_verifier(ca) {
                Ok(new) => {
                    verifier.0.store(Arc::new(new));
                    self.record(|state| state.last_error = None);
                    tracing::info!(client_ca = %ca.display(), "TLS client CA reloaded");
                }
                Err(error) => {
                    tracing::error!(%error, "TLS client CA not reloaded; the previous one stays");
                    self.record(|state| {
                        state.last_error = Some((
                            SystemTime::now(),
                            format!("client CA not reloaded: {error}"),
                        ));
                    });
                }
            }
        }
    }

    /// Accepts TCP connections on `listener`, handshakes (refusing callers not allowed) and
    /// yields the TLS streams, until the returned receiver is dropped.
    pub fn accept(
        self: Arc<Self>,
        listener: TcpListener,
        metrics: Arc<Metrics>,
    ) -> mpsc::Receiver<Result<TlsStream<TcpStream>, std::io::Error>> {
        let (tx, rx) = mpsc::channel(64);
        let reloader = Arc::clone(&self);
        let reload_tx = tx.clone();
        let expiry = Arc::clone(&metrics);
        expiry.tls_certificate_expires(self.status().certificate_expires);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_CHECK).await;
                if reload_tx.is_closed() {
                    return;
                }
                let tls = Arc::clone(&reloader);
                let _ = tokio::task::spawn_blocking(move || tls.reload_changed()).await;
                expiry.tls_certificate_expires(reloader.status().certificate_expires);
            }
        });
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let per_peer = Arc::new(PendingPerPeer::default());
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Out of file descriptors, say: back off instead of spinning.
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    () = tx.closed() => return,
                };
                let Some(peer_slot) = PendingPerPeer::admit(&per_peer, peer.ip()) else {
                    let refused = metrics.tls_refused("handshake");
                    if refused.is_power_of_two() {
                        tracing::warn!(%peer, refused, "{MAX_HANDSHAKES_PER_PEER} TLS handshakes under way from this address: connection closed");
                    }
                    continue;
                };
                let Ok(handshake_slot) = Arc::clone(&handshakes).try_acquire_owned() else {
                    let refused = metrics.tls_refused("handshake");
                    if refused.is_power_of_two() {
                        tracing::warn!(%peer, refused, "{MAX_HANDSHAKES} TLS handshakes under way: connection closed");
                    }
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let tls = Arc::clone(&self);
                let tx = tx.clone();
                let metrics = Arc::clone(&metrics);
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await;
                    drop(handshake_slot);
                    drop(peer_slot);
                    let stream = match handshake {
                        Ok(Ok(stream)) => stream,
                        // Closed before the handshake ended: a TCP health probe (a Kubernetes
                        // tcpSocket probe, a load balancer's check) or a client gone away.
                        Ok(Err(error))
                            if matches!(
                                error.kind(),
                                std::io::ErrorKind::UnexpectedEof
                                    | std::io::ErrorKind::ConnectionReset
                            ) =>
                        {
                            tracing::debug!(%peer, %error, "connection closed during the TLS handshake");
                            return;
                        }
                        // Counted; logged at debug level, so that a flood of bad connections
                        // does not flood the log too.
                        Ok(Err(error)) => {
                            metrics.tls_refused("handshake");
                            tracing::debug!(%peer, %error, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            metrics.tls_refused("handshake");
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    if let Some(allowed) = &tls.allowed {
                        let caller = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                            .map(|leaf| X509Svid::from_der(leaf.to_vec()));
                        let allowed_id = matches!(
                            &caller,
                            Some(Ok(svid)) if allowed.allows(svid.spiffe_id().as_str())
                        );
                        if !allowed_id {
                            metrics.tls_refused("caller");
                            match caller {
                                Some(Ok(svid)) => {
                                    tracing::warn!(%peer, caller = %svid.spiffe_id(), "caller not in tls.allowed_callers: connection closed")
                                }
                                Some(Err(error)) => {
                                    tracing::warn!(%peer, %error, "client certificate is not an X.509-SVID: connection closed")
                                }
                                None => {
                                    tracing::warn!(%peer, "no client certificate: connection closed")
                                }
                            }
                            return;
                        }
                    }
                    let _ = tx.send(Ok(stream)).await;
                });
            }
        });
        rx
    }
}

/// TLS handshakes under way per peer address.
#[derive(Debug, Default)]
struct PendingPerPeer(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One handshake counted against its peer address while it lives.
struct PeerSlot {
    pending: Arc<PendingPerPeer>,
    ip: std::net::IpAddr,
}

impl PendingPerPeer {
    /// A slot for one more handshake from `ip`, or `None` at [`MAX_HANDSHAKES_PER_PEER`].
    fn admit(pending: &Arc<Self>, ip: std::net::IpAddr) -> Option<PeerSlot> {
        let mut counts = pending
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= MAX_HANDSHAKES_PER_PEER {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            pending: Arc::clone(pending),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self
            .pending
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}
