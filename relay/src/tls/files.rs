//! A certificate brought by the operator (`--tls-cert`, `--tls-key`):
//! read at start, then re-read whenever either file changes, so that a
//! certificate renewed by another tool (certbot, a secrets manager) is
//! served without a restart. Connections already open keep the
//! certificate they were opened with.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::metrics::{Failure, Source, TlsMetrics};

/// How often the files are looked at for a change.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum CertificateFileError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a PEM certificate chain: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The certificate and key files, and what identifies their versions.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One version of the two files on disk.
type Stamp = [Option<(SystemTime, u64)>; 2];

impl CertificateFiles {
    /// Reads both files into a certificate rustls can serve, checking that
    /// the key matches the certificate.
    pub fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, CertificateFileError> {
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| CertificateFileError::BadCertificate {
                path: self.cert.clone(),
                reason: error.to_string(),
            })?;
        if chain.is_empty() {
            return Err(CertificateFileError::NoCertificate {
                path: self.cert.clone(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
            CertificateFileError::BadKey {
                path: self.key.clone(),
                reason: error.to_string(),
            }
        })?;
        CertifiedKey::from_der(chain, key, provider).map_err(|error| {
            CertificateFileError::Mismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
                reason: error.to_string(),
            }
        })
    }

    fn stamp(&self) -> Stamp {
        [&self.cert, &self.key].map(|path| {
            let metadata = fs::metadata(path).ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertificateFileError> {
    fs::read(path).map_err(|source| CertificateFileError::Unreadable {
        path: path.to_owned(),
        source,
    })
}

/// Serves the latest certificate that loaded; [`watch`] replaces it.
#[derive(Debug)]
pub struct ReloadingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCertificate {
    pub fn new(first: CertifiedKey) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(first)),
        })
    }

    fn replace(&self, next: CertifiedKey) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Looks at the files every [`POLL_INTERVAL`] and loads them when they
/// changed. A version that fails to load (half written, key and
/// certificate out of step) is reported once and the previous certificate
/// stays in service; the next change is tried again.
pub async fn watch(
    files: CertificateFiles,
    target: Arc<ReloadingCertificate>,
    provider: Arc<CryptoProvider>,
    metrics: TlsMetrics,
) {
    let mut seen = files.stamp();
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let stamp = files.stamp();
        if stamp == seen {
            continue;
        }
        seen = stamp;
        match files.load(&provider) {
            Ok(next) => {
                metrics.installed(Source::Files, &next.cert);
                target.replace(next);
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                metrics.failed(Failure::Files);
                tracing::warn!(
                    %error,
                    "the changed TLS certificate files do not load; still serving the previous certificate"
                );
            }
        }
    }
}
