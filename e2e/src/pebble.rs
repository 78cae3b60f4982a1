//! Pebble, Let's Encrypt's test ACME CA (Debian's `pebble`), on loopback,
//! validating for real: for TLS-ALPN-01 it resolves the name it is asked
//! for through [`LoopbackDns`] (which answers every name with 127.0.0.1)
//! and connects to the relay's HTTPS port there.
//!
//! Pebble makes a new root at every start; [`Pebble::issuing_root`] reads
//! it from Pebble's management interface, for the browser to trust
//! ([`crate::tls_trust`]).

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, bail};
use rustls::pki_types::{CertificateDer, pem::PemObject as _};

use crate::{POLL, TIMEOUT, tls_trust};

/// A DNS server on a loopback UDP port that answers every `A` question
/// with 127.0.0.1 and every other question with no records, so that
/// Pebble reaches the relay under a test name no real resolver knows.
#[derive(Debug)]
pub struct LoopbackDns {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackDns {
    pub async fn start() -> anyhow::Result<Self> {
        let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind a UDP port for the test DNS server")?;
        let addr = socket.local_addr()?;
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
                if let Some(reply) = dns_answer(&buffer[..len]) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        Ok(Self { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoopbackDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reply to one DNS query (RFC 1035, 4.1): the question echoed, and
/// for an `A` question one answer, 127.0.0.1. `None` for what is not a
/// single-question query.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    const HEADER: usize = 12;
    const TYPE_A: u16 = 1;
    let questions = u16::from_be_bytes([*query.get(4)?, *query.get(5)?]);
    if questions != 1 || query[2] & 0x80 != 0 {
        return None;
    }
    let mut at = HEADER;
    loop {
        let label = *query.get(at)? as usize;
        at += 1;
        if label == 0 {
            break;
        }
        if label & 0xC0 != 0 {
            return None;
        }
        at += label;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question_end = at + 4;
    let question = query.get(HEADER..question_end)?;
    let answers = u16::from(qtype == TYPE_A);
    let mut reply = Vec::with_capacity(question_end + 16);
    reply.extend_from_slice(&query[..2]);
    // QR (a response) and AA (authoritative); RD as asked; no error.
    reply.push(0x84 | (query[2] & 0x01));
    reply.push(0);
    reply.extend_from_slice(&1u16.to_be_bytes());
    reply.extend_from_slice(&answers.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if answers == 1 {
        // The name by pointer to the question's, type A, class IN, TTL 0,
        // four bytes of address.
        reply.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
    }
    Some(reply)
}

/// Pebble's files, ports and process. Prepared first (so the relay can be
/// pointed at its directory), launched once the relay's HTTPS port is
/// known, killed on drop.
#[derive(Debug)]
pub struct Pebble {
    /// Pebble's config, its HTTPS certificate and key, the test CA that
    /// signed them (`https-ca.pem`), and its log.
    dir: tempfile::TempDir,
    dns: LoopbackDns,
    /// Pebble's two ports, held until the moment it starts.
    reserved: Option<(std::net::TcpListener, std::net::TcpListener)>,
    listen: SocketAddr,
    management: SocketAddr,
    child: Option<tokio::process::Child>,
}

impl Pebble {
    /// Pebble's HTTPS certificate (from a CA of the test's own), its DNS
    /// server and its ports.
    pub async fn prepare() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-pebble-")
            .tempdir()
            .context("temporary directory for Pebble")?;
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "e2e Pebble HTTPS CA");
        let https_ca = ca_params.self_signed(&ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        let cert = params.signed_by(&key, &https_ca, &ca_key)?;
        std::fs::write(dir.path().join("cert.pem"), cert.pem())?;
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem())?;
        std::fs::write(dir.path().join("https-ca.pem"), https_ca.pem())?;
        let listen = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let management = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        Ok(Self {
            listen: listen.local_addr()?,
            management: management.local_addr()?,
            reserved: Some((listen, management)),
            dns: LoopbackDns::start().await?,
            dir,
            child: None,
        })
    }

    /// The ACME directory URL (`--acme-directory`).
    pub fn directory(&self) -> String {
        format!("https://{}/dir", self.listen)
    }

    /// The root that Pebble's own HTTPS chains to (`--acme-root`).
    pub fn https_ca_path(&self) -> PathBuf {
        self.dir.path().join("https-ca.pem")
    }

    /// Starts Pebble, validating TLS-ALPN-01 on `tls_port`, issuing
    /// certificates that are valid for `validity`.
    pub fn launch(&mut self, tls_port: u16, validity: Duration) -> anyhow::Result<()> {
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": self.listen.to_string(),
                "managementListenAddress": self.management.to_string(),
                "certificate": self.dir.path().join("cert.pem"),
                "privateKey": self.dir.path().join("key.pem"),
                "httpPort": 0,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity.as_secs(),
            }
        });
        let config_path = self.dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string())?;
        let log = std::fs::File::create(self.log_path())?;
        drop(self.reserved.take());
        let child = tokio::process::Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(self.dns.addr().to_string())
            // No random sleep before validating, no nonce refused on purpose.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("run pebble (scripts/setup installs Debian's pebble)")?;
        self.child = Some(child);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pebble.log")
    }

    /// What Pebble logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Pebble's root as PEM, which the certificates it issues chain to
    /// (read from its management interface, waiting until it answers).
    pub async fn issuing_root(&self) -> anyhow::Result<String> {
        let ca = CertificateDer::from_pem_file(self.https_ca_path())?;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let (status, body) = loop {
            match tls_trust::https_get(
                self.management,
                "localhost",
                std::slice::from_ref(&ca),
                "/roots/0",
            )
            .await
            {
                Ok((_, status, body)) => break (status, body),
                Err(error) if tokio::time::Instant::now() > deadline => {
                    bail!(
                        "Pebble's management interface does not answer: {error:#}\nPebble's log:\n{}",
                        self.log()
                    )
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        };
        let pem = String::from_utf8_lossy(&body).into_owned();
        if status != 200 || !pem.contains("-----BEGIN CERTIFICATE-----") {
            bail!("Pebble's /roots/0 answered {status}: {pem}");
        }
        Ok(pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `a.test` of `qtype` with id 0x1234, recursion desired.
    fn query(qtype: u16) -> Vec<u8> {
        let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(&[1, b'a', 4, b't', b'e', b's', b't', 0]);
        query.extend_from_slice(&qtype.to_be_bytes());
        query.extend_from_slice(&[0, 1]);
        query
    }

    #[test]
    fn an_a_question_gets_loopback_and_others_get_no_records() {
        let a = dns_answer(&query(1)).expect("an answer");
        assert_eq!(&a[..2], &[0x12, 0x34], "the id is echoed");
        assert_eq!(a[2] & 0x80, 0x80, "a response");
        assert_eq!(&a[6..8], &[0, 1], "one answer");
        assert_eq!(&a[a.len() - 4..], &[127, 0, 0, 1]);
        let aaaa = dns_answer(&query(28)).expect("an answer");
        assert_eq!(&aaaa[6..8], &[0, 0], "no answer");
        assert_eq!(aaaa.len(), query(28).len());
        assert!(dns_answer(&[0; 5]).is_none());
    }
}
