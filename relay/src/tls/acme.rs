//! Certificates from an ACME CA (Let's Encrypt by default), obtained and
//! renewed by rustls-acme with the TLS-ALPN-01 challenge, which the HTTPS
//! listener answers itself (its rustls config offers `acme-tls/1`).
//! rustls-acme renews once two thirds of a certificate's validity have
//! passed and swaps it into the resolver every listener shares: open
//! connections are untouched, new handshakes get the new certificate.
//!
//! The account key and the certificate are kept in the state directory
//! (`acme/`, mode 0700, files 0600, replaced atomically), so that a restart
//! neither orders a new certificate nor creates a new account.

use std::{
    fs, io,
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use futures::StreamExt as _;
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer};
use rustls_acme::{AcmeConfig, EventOk, ResolvesServerCertAcme, UseChallenge};

use super::metrics::{Failure, Source, TlsMetrics};
use crate::state::replace_atomically;

#[derive(Debug, thiserror::Error)]
pub enum AcmeSetupError {
    #[error("--acme-root {path}: {reason}")]
    Root { path: PathBuf, reason: String },
}

/// What to ask the CA for, and where to keep what it gives.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub domains: Vec<String>,
    /// Contact addresses, `mailto:` added where missing.
    pub contacts: Vec<String>,
    pub directory: String,
    /// Extra roots to trust for the directory's own HTTPS (a test CA).
    pub extra_root: Option<PathBuf>,
    /// `<state dir>/acme`.
    pub cache_dir: PathBuf,
}

/// Starts obtaining (or loading) the certificate; the returned resolver
/// serves it once there is one, and the task keeps it renewed.
pub fn start(
    settings: AcmeSettings,
    provider: Arc<rustls::crypto::CryptoProvider>,
    metrics: TlsMetrics,
) -> Result<(Arc<ResolvesServerCertAcme>, tokio::task::JoinHandle<()>), AcmeSetupError> {
    let client = client_config(settings.extra_root.as_deref(), provider)?;
    let contacts = settings.contacts.iter().map(|contact| {
        if contact.contains(':') {
            contact.clone()
        } else {
            format!("mailto:{contact}")
        }
    });
    let mut state = AcmeConfig::new_with_client_config(&settings.domains, client)
        .directory(&settings.directory)
        .contact(contacts)
        .challenge_type(UseChallenge::TlsAlpn01)
        .cache(StateDirCache {
            dir: settings.cache_dir.clone(),
            metrics: metrics.clone(),
        })
        .state();
    let resolver = state.resolver();
    let domains = settings.domains.join(",");
    let task = tokio::spawn(async move {
        // rustls-acme retries failed orders itself, with a backoff; each
        // event is one step taken or one failure.
        while let Some(event) = state.next().await {
            match event {
                Ok(ok) => {
                    match ok {
                        EventOk::DeployedNewCert => metrics.count_installed(Source::AcmeOrder),
                        EventOk::DeployedCachedCert => metrics.count_installed(Source::AcmeCache),
                        EventOk::CertCacheStore | EventOk::AccountCacheStore => {}
                    }
                    tracing::info!(%domains, event = ?ok, "ACME");
                }
                Err(error) => {
                    metrics.failed(Failure::Acme);
                    tracing::warn!(%domains, %error, "ACME: will retry");
                }
            }
        }
    });
    Ok((resolver, task))
}

/// The web PKI roots, plus `extra_root` when given.
fn client_config(
    extra_root: Option<&Path>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<ClientConfig>, AcmeSetupError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_root {
        let error = |reason: String| AcmeSetupError::Root {
            path: path.to_owned(),
            reason,
        };
        use rustls::pki_types::pem::PemObject as _;
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(e.to_string()))?;
        if certs.is_empty() {
            return Err(error("no PEM certificate in it".to_owned()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| error(e.to_string()))?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeSetupError::Root {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// rustls-acme's cache, in the relay's state directory. File names carry a
/// hash of what they depend on (directory and domains, or directory and
/// contacts), so that another CA or another name never reuses them.
///
/// Every certificate rustls-acme deploys passes through here (loaded at
/// start, or stored when issued), which is where its expiry is read for
/// the metrics: rustls-acme's events do not carry the certificate.
#[derive(Debug)]
struct StateDirCache {
    dir: PathBuf,
    metrics: TlsMetrics,
}

impl StateDirCache {
    fn path(&self, kind: &str, parts: &[&str]) -> PathBuf {
        let mut hasher = crc32fast::Hasher::new();
        for part in parts {
            hasher.update(part.as_bytes());
            hasher.update(&[0]);
        }
        self.dir
            .join(format!("{kind}-{:08x}.pem", hasher.finalize()))
    }

    async fn load(path: PathBuf) -> io::Result<Option<Vec<u8>>> {
        tokio::task::spawn_blocking(move || match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn store(&self, path: PathBuf, contents: Vec<u8>) -> io::Result<()> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            replace_atomically(&path, &contents)
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[async_trait::async_trait]
impl rustls_acme::CertCache for StateDirCache {
    type EC = io::Error;

    async fn load_cert(&self, domains: &[String], directory: &str) -> io::Result<Option<Vec<u8>>> {
        let loaded = Self::load(self.path("certificate", &key_parts(directory, domains))).await?;
        if let Some(pem) = &loaded {
            self.metrics.observe_pem(pem);
        }
        Ok(loaded)
    }

    async fn store_cert(&self, domains: &[String], directory: &str, cert: &[u8]) -> io::Result<()> {
        self.metrics.observe_pem(cert);
        let path = self.path("certificate", &key_parts(directory, domains));
        self.store(path, cert.to_vec()).await
    }
}

#[async_trait::async_trait]
impl rustls_acme::AccountCache for StateDirCache {
    type EA = io::Error;

    async fn load_account(
        &self,
        contacts: &[String],
        directory: &str,
    ) -> io::Result<Option<Vec<u8>>> {
        Self::load(self.path("account", &key_parts(directory, contacts))).await
    }

    async fn store_account(
        &self,
        contacts: &[String],
        directory: &str,
        account: &[u8],
    ) -> io::Result<()> {
        let path = self.path("account", &key_parts(directory, contacts));
        self.store(path, account.to_vec()).await
    }
}

fn key_parts<'a>(directory: &'a str, rest: &'a [String]) -> Vec<&'a str> {
    std::iter::once(directory)
        .chain(rest.iter().map(String::as_str))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_directory_or_name_gets_another_file() {
        let cache = StateDirCache {
            dir: PathBuf::from("/state/acme"),
            metrics: TlsMetrics::new(&[]),
        };
        let names = ["relay.example.org".to_owned()];
        let other = ["chat.example.org".to_owned()];
        let a = cache.path("certificate", &key_parts("https://ca/dir", &names));
        assert_eq!(
            a,
            cache.path("certificate", &key_parts("https://ca/dir", &names))
        );
        assert_ne!(
            a,
            cache.path("certificate", &key_parts("https://other/dir", &names))
        );
        assert_ne!(
            a,
            cache.path("certificate", &key_parts("https://ca/dir", &other))
        );
    }
}
