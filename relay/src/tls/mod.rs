//! HTTPS for the page and secure WebSocket (`/tls/ws`) for browsers, for a
//! relay given a domain name (`--domain`).
//!
//! One certificate resolver serves every TLS listener: either
//! [`files::ReloadingCertificate`] (`--tls-cert`/`--tls-key`, re-read on
//! change) or rustls-acme's (`acme`, obtained and renewed automatically).
//! Swapping the certificate inside the resolver is what lets it change
//! without a restart and without touching open connections.
//!
//! - [`files`]: a certificate brought by the operator;
//! - [`acme`]: certificates from an ACME CA, cached in the state directory;
//! - [`transport`]: the libp2p listener that terminates TLS for `/tls/ws`;
//! - [`redirect`]: the plain HTTP listener's answer once TLS is on;
//! - [`metrics`]: the certificate's expiry, installations and failures in
//!   `/metrics`.

pub mod acme;
pub mod files;
pub mod metrics;
pub mod redirect;
pub mod transport;

use std::{path::Path, sync::Arc};

use libp2p::{Multiaddr, multiaddr::Protocol};
use rustls::{ServerConfig, crypto::CryptoProvider, server::ResolvesServerCert};
use tokio::task::JoinHandle;

use crate::config::TlsOptions;
use metrics::TlsMetrics;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert/--tls-key: {0}")]
    Files(#[from] files::CertificateFileError),
    #[error(transparent)]
    Acme(#[from] acme::AcmeSetupError),
    #[error("cannot set up TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// TLS for a relay with a domain: the names it serves and the certificate
/// source every listener shares.
pub struct Tls {
    pub domains: Vec<String>,
    resolver: Arc<dyn ResolvesServerCert>,
    /// Whether the HTTPS listener must answer TLS-ALPN-01 challenges.
    acme: bool,
    provider: Arc<CryptoProvider>,
    metrics: TlsMetrics,
    /// The ACME driver or the certificate files' watcher.
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("domains", &self.domains)
            .field("acme", &self.acme)
            .finish_non_exhaustive()
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tls {
    /// `None` without `--domain`. With it, loads the certificate files
    /// (failing the start if they do not load) or starts ACME.
    pub fn start(options: &TlsOptions, state_dir: &Path) -> Result<Option<Self>, TlsError> {
        if options.domains.is_empty() {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let domains = options.domains.clone();
        let metrics = TlsMetrics::new(&domains);
        let (resolver, acme, task): (Arc<dyn ResolvesServerCert>, bool, JoinHandle<()>) =
            match (&options.tls_cert, &options.tls_key) {
                (Some(cert), Some(key)) => {
                    let files = files::CertificateFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                    };
                    let first = files.load(&provider)?;
                    metrics.installed(metrics::Source::Files, &first.cert);
                    let reloading = files::ReloadingCertificate::new(first);
                    let task = tokio::spawn(files::watch(
                        files,
                        reloading.clone(),
                        provider.clone(),
                        metrics.clone(),
                    ));
                    (reloading, false, task)
                }
                _ => {
                    let (resolver, task) = acme::start(
                        acme::AcmeSettings {
                            domains: domains.clone(),
                            contacts: options.acme_contacts.clone(),
                            directory: options.acme_directory.clone(),
                            extra_root: options.acme_root.clone(),
                            cache_dir: state_dir.join("acme"),
                        },
                        provider.clone(),
                        metrics.clone(),
                    )?;
                    (resolver, true, task)
                }
            };
        Ok(Some(Self {
            domains,
            resolver,
            acme,
            provider,
            metrics,
            task,
        }))
    }

    /// Registers the certificate's metrics ([`metrics`]) in `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let (sources, failure): (&[metrics::Source], _) = if self.acme {
            (
                &[metrics::Source::AcmeOrder, metrics::Source::AcmeCache],
                metrics::Failure::Acme,
            )
        } else {
            (&[metrics::Source::Files], metrics::Failure::Files)
        };
        self.metrics.register(registry, sources, failure);
    }

    /// The HTTPS listener's config: HTTP/1.1, and the ACME challenge's
    /// protocol when certificates come from ACME.
    pub fn https_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut alpn = vec![b"http/1.1".to_vec()];
        if self.acme {
            alpn.push(rustls_acme::acme::ACME_TLS_ALPN_NAME.to_vec());
        }
        self.server_config(alpn)
    }

    /// The secure WebSocket listener's config (a WebSocket starts as an
    /// HTTP/1.1 request).
    pub fn websocket_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.server_config(vec![b"http/1.1".to_vec()])
    }

    fn server_config(&self, alpn: Vec<Vec<u8>>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = alpn;
        Ok(Arc::new(config))
    }

    /// The addresses browsers dial for a secure WebSocket listen address:
    /// the same port under each domain name (a browser checks the
    /// certificate against the name, so the IP form is of no use to it).
    pub fn advertised(&self, listen_addr: &Multiaddr) -> Vec<Multiaddr> {
        let mut parts = listen_addr.iter();
        let dns = match parts.next() {
            Some(Protocol::Ip4(_)) => Protocol::Dns4,
            Some(Protocol::Ip6(_)) => Protocol::Dns6,
            _ => return Vec::new(),
        };
        let rest: Vec<Protocol<'_>> = parts.collect();
        self.domains
            .iter()
            .map(|domain| {
                std::iter::once(dns(domain.clone().into()))
                    .chain(rest.iter().cloned())
                    .collect()
            })
            .collect()
    }
}

/// Whether `addr` is a secure WebSocket address (`…/tls/ws`).
pub fn is_secure_websocket(addr: &Multiaddr) -> bool {
    let protocols: Vec<Protocol<'_>> = addr.iter().collect();
    protocols
        .windows(2)
        .any(|pair| matches!(pair, [Protocol::Tls, Protocol::Ws(_)]))
}
