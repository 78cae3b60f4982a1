//! Trusting a test CA the way a user's machine does, and looking at what
//! a server presents.
//!
//! - [`NssHome`]: a home directory whose NSS database (`~/.pki/nssdb`, where
//!   Chromium on Linux keeps the roots a user added) trusts one root, made
//!   with `certutil` (Debian's `libnss3-tools`, installed by
//!   `scripts/setup`). A chromedriver started with this `HOME`
//!   ([`NssHome::driver_wrapper`]) runs Chromiums that accept that CA's
//!   certificates and nothing else new: no `--ignore-certificate-errors`.
//! - [`https_get`]: one HTTPS request that trusts only the given roots,
//!   returning the certificate the server showed.
//! - [`CertificateFacts`]: a certificate's serial and validity, to tell a
//!   renewed certificate from the one before.

use std::{net::SocketAddr, path::Path, process::Command, sync::Arc, time::SystemTime};

use anyhow::{Context as _, anyhow, bail};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A temporary `HOME` with an NSS database that trusts one root to issue
/// server certificates. Removed on drop.
#[derive(Debug)]
pub struct NssHome {
    dir: tempfile::TempDir,
}

impl NssHome {
    /// Makes the database and adds `root_pem` to it as a trusted CA for
    /// TLS servers (`certutil -t C,,`), then checks that it is listed.
    pub fn trusting(root_pem: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-nss-home-")
            .tempdir()
            .context("temporary HOME for the NSS database")?;
        let db = dir.path().join(".pki").join("nssdb");
        std::fs::create_dir_all(&db).with_context(|| format!("create {}", db.display()))?;
        let db_arg = format!("sql:{}", db.display());
        let root = dir.path().join("root.pem");
        std::fs::write(&root, root_pem)?;
        certutil(&["-N", "-d", &db_arg, "--empty-password"])?;
        certutil(&[
            "-A",
            "-d",
            &db_arg,
            "-n",
            "e2e test root",
            "-t",
            "C,,",
            "-i",
            &root.display().to_string(),
        ])?;
        let listed = certutil(&["-L", "-d", &db_arg])?;
        if !listed.contains("e2e test root") {
            bail!("certutil -L does not list the added root:\n{listed}");
        }
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The wrapper for [`crate::Driver::start_wrapped`] that runs
    /// chromedriver, and so its Chromiums, with this `HOME`.
    pub fn driver_wrapper(&self) -> Vec<String> {
        vec!["env".to_owned(), format!("HOME={}", self.path().display())]
    }
}

fn certutil(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("certutil")
        .args(args)
        .output()
        .context("run certutil (scripts/setup installs Debian's libnss3-tools)")?;
    if !output.status.success() {
        bail!(
            "certutil {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The certificates in a PEM text, as DER.
pub fn pem_certificates(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject as _;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow!("not PEM certificates: {error}"))?;
    if certs.is_empty() {
        bail!("no PEM certificate in {pem:?}");
    }
    Ok(certs)
}

/// `GET path` over a new TLS connection to `addr` for the name `name`,
/// trusting only `roots`: the server's certificate (DER), the status and
/// the body.
pub async fn https_get(
    addr: SocketAddr,
    name: &str,
    roots: &[CertificateDer<'static>],
    path: &str,
) -> anyhow::Result<(Vec<u8>, u16, Vec<u8>)> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).context("a root to trust")?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(store)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    let mut tls = connector
        .connect(ServerName::try_from(name.to_owned())?, tcp)
        .await
        .with_context(|| format!("TLS handshake with {name} at {addr}"))?;
    let shown = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.to_vec())
        .unwrap_or_default();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut response = Vec::new();
    // A server may close without close_notify after `Connection: close`.
    if let Err(error) = tls.read_to_end(&mut response).await
        && response.is_empty()
    {
        return Err(error).context("read the response");
    }
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {text}"))?;
    let body = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| response[at + 4..].to_vec())
        .unwrap_or_default();
    Ok((shown, status, body))
}

/// What tells one certificate from its renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The serial number, in hex.
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl CertificateFacts {
    pub fn of(der: &[u8]) -> anyhow::Result<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|error| anyhow!("not an X.509 certificate: {error}"))?;
        let time = |t: x509_parser::time::ASN1Time| {
            let secs = u64::try_from(t.timestamp()).unwrap_or_default();
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
        };
        Ok(Self {
            serial: cert.raw_serial_as_string(),
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
        })
    }
}
