//! A relay with `--domain`: the page and API over HTTPS, plain HTTP
//! redirected, browsers' WebSocket over TLS (`/tls/ws`), and the
//! certificate replaced while connections stay open.
//!
//! The certificates come from a CA the test makes (rcgen), for the name
//! `localhost`, which resolves to loopback without touching any resolver.

mod common;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use common::{TIMEOUT, TestRelay};
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, Swarm, Transport as _, core::upgrade::Version, dns, identity::Keypair,
    multiaddr::Protocol, noise, ping, swarm::SwarmEvent, tcp, websocket, yamux,
};
use rustls::RootCertStore;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const NAME: &str = "localhost";

/// A CA and what it signs.
struct TestCa {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

/// A leaf certificate and its key, as PEM files are written.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl TestCa {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "relay tls test CA");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { key, cert }
    }

    fn leaf(&self, name: &str) -> Leaf {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .expect("leaf params")
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("CA is a root");
        roots
    }
}

fn write_leaf(dir: &Path, leaf: &Leaf) {
    // Written beside and renamed, as certbot and friends do.
    for (name, contents) in [("cert.pem", &leaf.cert_pem), ("key.pem", &leaf.key_pem)] {
        let temporary = dir.join(format!("{name}.new"));
        std::fs::write(&temporary, contents).expect("write");
        std::fs::rename(&temporary, dir.join(name)).expect("rename");
    }
}

/// One HTTPS request on a new connection: the certificate the server
/// showed, and the whole response.
async fn https_get(
    addr: SocketAddr,
    roots: &RootCertStore,
    path: &str,
) -> anyhow::Result<(Vec<u8>, String)> {
    https_get_from(addr, NAME, roots, path).await
}

async fn https_get_from(
    addr: SocketAddr,
    name: &str,
    roots: &RootCertStore,
    path: &str,
) -> anyhow::Result<(Vec<u8>, String)> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots.clone())
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from(name.to_owned())?,
            tcp,
        )
        .await?;
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
    tls.read_to_end(&mut response).await?;
    Ok((shown, String::from_utf8_lossy(&response).into_owned()))
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("plain HTTP connects");
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("request sent");
    let mut response = String::new();
    tcp.read_to_string(&mut response)
        .await
        .expect("response read");
    response
}

/// A native peer that reaches the relay the way a browser does: WebSocket
/// over TLS, trusting only `ca`.
fn secure_websocket_peer(ca: &TestCa) -> Swarm<ping::Behaviour> {
    secure_websocket_peer_trusting(&[ca.cert.der().to_vec()])
}

/// The same, trusting the roots given as DER.
fn secure_websocket_peer_trusting(roots: &[Vec<u8>]) -> Swarm<ping::Behaviour> {
    let keypair = Keypair::generate_ed25519();
    let noise = noise::Config::new(&keypair).expect("noise");
    let mut tls = websocket::tls::Config::builder();
    for root in roots {
        tls.add_trust(&websocket::tls::Certificate::new(root.clone()))
            .expect("a root to trust");
    }
    let mut transport = websocket::Config::new(
        dns::tokio::Transport::system(tcp::tokio::Transport::new(tcp::Config::default()))
            .expect("system resolver"),
    );
    transport.set_tls_config(tls.finish());
    let transport = transport
        .upgrade(Version::V1Lazy)
        .authenticate(noise)
        .multiplex(yamux::Config::default());
    libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|_| transport)
        .expect("transport")
        .with_behaviour(|_| {
            ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_millis(200)))
        })
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(120)))
        .build()
}

/// Dials `addr` and waits until the connection is up and a ping made the
/// round trip over it.
async fn connect_and_ping(swarm: &mut Swarm<ping::Behaviour>, addr: &Multiaddr) -> PeerId {
    swarm.dial(addr.clone()).expect("dial starts");
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(ping::Event {
                    peer,
                    result: Ok(_),
                    ..
                }) => return peer,
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    panic!("cannot reach the relay over {addr}: {error}")
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no ping over {addr} within {TIMEOUT:?}"))
}

/// Runs the swarm until `done`, failing if its connection closes meanwhile.
async fn keep_connected<T>(
    swarm: &mut Swarm<ping::Behaviour>,
    done: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(done);
    loop {
        tokio::select! {
            value = &mut done => return value,
            event = swarm.select_next_some() => {
                if let SwarmEvent::ConnectionClosed { cause, .. } = event {
                    panic!("the secure WebSocket connection closed: {cause:?}");
                }
            }
        }
    }
}

/// Waits until a new ping succeeds on the existing connection.
async fn ping_again(swarm: &mut Swarm<ping::Behaviour>) {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(ping::Event { result: Ok(_), .. }) => return,
                SwarmEvent::ConnectionClosed { cause, .. } => {
                    panic!("the secure WebSocket connection closed: {cause:?}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("a ping over the open connection");
}

/// The value of the sample `series` (name and labels, as printed) in
/// the relay's `/metrics`, read over HTTPS.
async fn metric(https: SocketAddr, roots: &RootCertStore, series: &str) -> Option<f64> {
    let (_, metrics) = https_get(https, roots, "/metrics")
        .await
        .expect("/metrics over HTTPS");
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn secure_websocket_addr(relay: &TestRelay) -> Multiaddr {
    relay
        .relay
        .multiaddrs
        .first()
        .filter(|addr| relay::tls::is_secure_websocket(addr))
        .unwrap_or_else(|| {
            panic!(
                "the first address is not the secure WebSocket one: {:?}",
                relay.relay.multiaddrs
            )
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_certificate_serves_https_and_wss_and_a_replaced_one_is_taken_without_dropping_connections()
 {
    let ca = TestCa::new();
    let certs = tempfile::tempdir().expect("temporary directory");
    let first = ca.leaf(NAME);
    write_leaf(certs.path(), &first);
    let cert = format!("--tls-cert={}", certs.path().join("cert.pem").display());
    let key = format!("--tls-key={}", certs.path().join("key.pem").display());
    let relay = TestRelay::start(&[
        &format!("--domain={NAME}"),
        &cert,
        &key,
        "--https-port=0",
        "--wss-port=0",
    ])
    .await;
    let https = relay.relay.https_addrs[0];
    let roots = ca.roots();

    // Browsers get the secure WebSocket address, under the name, first.
    let wss = secure_websocket_addr(&relay);
    let mut parts = wss.iter();
    assert_eq!(parts.next(), Some(Protocol::Dns4(NAME.into())), "{wss}");
    assert_eq!(
        parts.nth(1),
        Some(Protocol::Tls),
        "{wss} is not …/tcp/PORT/tls/ws"
    );

    // The page and the API over HTTPS, with the operator's certificate.
    let (shown, page) = https_get(https, &roots, "/").await.expect("HTTPS works");
    assert_eq!(shown, first.der, "HTTPS shows another certificate");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("chat page"), "{page}");
    for header in [
        "strict-transport-security: max-age=31536000",
        "x-content-type-options: nosniff",
        "x-frame-options: DENY",
        "content-security-policy: default-src 'none'; script-src 'self' 'wasm-unsafe-eval'",
        "connect-src 'self' wss:;",
    ] {
        assert!(page.contains(header), "no {header:?} in {page}");
    }
    let (_, api) = https_get(https, &roots, "/api/relay")
        .await
        .expect("HTTPS API");
    assert!(
        api.contains(&wss.to_string()),
        "/api/relay does not list {wss}: {api}"
    );

    // Plain HTTP only redirects, to the same path on the name.
    let redirect = http_get(relay.relay.http_addr, "/api/relay?x=1").await;
    assert!(redirect.starts_with("HTTP/1.1 308"), "{redirect}");
    assert!(
        redirect.contains(&format!(
            "location: https://{NAME}:{}/api/relay?x=1",
            https.port()
        )),
        "{redirect}"
    );

    // A peer connects over wss:// as a browser would.
    let mut peer = secure_websocket_peer(&ca);
    let relay_id = connect_and_ping(&mut peer, &wss).await;
    assert_eq!(relay_id, relay.relay.peer_id);

    // The files are replaced: new handshakes get the new certificate
    // without a restart, and the open connection is not touched.
    let second = ca.leaf(NAME);
    write_leaf(certs.path(), &second);
    keep_connected(&mut peer, async {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Ok((shown, _)) = https_get(https, &roots, "/health").await
                    && shown == second.der
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("the replaced certificate is served within the deadline");
    })
    .await;
    ping_again(&mut peer).await;
    let mut newcomer = secure_websocket_peer(&ca);
    connect_and_ping(&mut newcomer, &wss).await;

    // /metrics counts the start and the reload, and shows the expiry
    // (rcgen's default validity runs to 4096).
    let installed = "relay_tls_certificates_installed_total{source=\"files\"}";
    assert_eq!(
        metric(https, &roots, installed).await,
        Some(2.0),
        "{installed}"
    );
    let expiry = format!("relay_tls_certificate_expiry_seconds{{domain=\"{NAME}\"}}");
    let left = metric(https, &roots, &expiry).await;
    assert!(
        left.is_some_and(|seconds| seconds > 365.0 * 86_400.0),
        "{expiry} is {left:?}"
    );
    // Files that do not load are counted, and the last good certificate
    // stays in service.
    std::fs::write(certs.path().join("key.pem"), "not a key").expect("write");
    let failures = "relay_tls_certificate_failures_total{source=\"files\"}";
    tokio::time::timeout(TIMEOUT, async {
        while metric(https, &roots, failures).await != Some(1.0) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{failures} did not become 1"));
    let (shown, _) = https_get(https, &roots, "/health").await.expect("HTTPS");
    assert_eq!(
        shown, second.der,
        "a broken key file replaced the certificate"
    );
    relay.relay.shutdown().await;
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_fails_the_start_and_says_so() {
    let ca = TestCa::new();
    let certs = tempfile::tempdir().expect("temporary directory");
    let one = ca.leaf(NAME);
    let other = ca.leaf(NAME);
    std::fs::write(certs.path().join("cert.pem"), &one.cert_pem).expect("write");
    std::fs::write(certs.path().join("key.pem"), &other.key_pem).expect("write");
    let state = tempfile::tempdir().expect("temporary directory");
    let options = common::relay_options(
        &state.path().join("state"),
        state.path(),
        &[
            &format!("--domain={NAME}"),
            &format!("--tls-cert={}", certs.path().join("cert.pem").display()),
            &format!("--tls-key={}", certs.path().join("key.pem").display()),
            "--https-port=0",
            "--wss-port=0",
        ],
    );
    let error = relay::Relay::start(options)
        .await
        .expect_err("a mismatched key is refused");
    let message = error.to_string();
    assert!(
        message.contains("--tls-cert") && message.contains("does not belong"),
        "{message}"
    );
}

/// Pebble, Let's Encrypt's test CA, on loopback, validating for real: it
/// connects to the relay's HTTPS port for the TLS-ALPN-01 challenge.
struct Pebble {
    dir: tempfile::TempDir,
    /// The test CA that signed Pebble's own HTTPS certificate.
    https_ca: TestCa,
    /// Pebble's two ports, held until the moment it starts.
    reserved: Option<(std::net::TcpListener, std::net::TcpListener)>,
    listen: SocketAddr,
    management: SocketAddr,
    child: Option<tokio::process::Child>,
}

impl Pebble {
    /// Pebble's files and ports, so that the relay can be pointed at it
    /// before it runs.
    fn prepare() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let https_ca = TestCa::new();
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params
            .signed_by(&key, &https_ca.cert, &https_ca.key)
            .expect("Pebble's certificate");
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("write");
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("write");
        std::fs::write(dir.path().join("ca.pem"), https_ca.cert.pem()).expect("write");
        let listen = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for Pebble");
        let management = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for Pebble");
        Self {
            listen: listen.local_addr().expect("address"),
            management: management.local_addr().expect("address"),
            reserved: Some((listen, management)),
            dir,
            https_ca,
            child: None,
        }
    }

    fn directory(&self) -> String {
        format!("https://{}/dir", self.listen)
    }

    fn https_ca_path(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Starts Pebble, validating on `tls_port`, issuing certificates that
    /// live `validity_secs`.
    fn launch(&mut self, tls_port: u16, validity_secs: u64) {
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
                "certificateValidityPeriod": validity_secs,
            }
        });
        let config_path = self.dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("write");
        drop(self.reserved.take());
        let log = std::fs::File::create(self.dir.path().join("pebble.log")).expect("log");
        let child = tokio::process::Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            // No random sleep before validating, no nonce refused on purpose.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("pebble runs (scripts/setup installs Debian's pebble)");
        self.child = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// Pebble's root, which the certificates it issues chain to (made anew
    /// on each start, so read from its management interface).
    async fn issuing_root(&self) -> Vec<Vec<u8>> {
        let roots = self.https_ca.roots();
        let (_, response) = tokio::time::timeout(TIMEOUT, async {
            loop {
                match https_get_from(self.management, "127.0.0.1", &roots, "/roots/0").await {
                    Ok(answer) if answer.1.starts_with("HTTP/1.1 200") => return answer,
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "Pebble's management interface does not answer: {}",
                self.log()
            )
        });
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .expect("a body");
        use rustls::pki_types::{CertificateDer, pem::PemObject as _};
        let issuing: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(body.as_bytes())
            .map(|cert| cert.expect("PEM root").to_vec())
            .collect();
        assert!(!issuing.is_empty(), "no root in {response}");
        issuing
    }
}

/// Waits until HTTPS shows a certificate that `roots` vouch for and that
/// is not `previous`; returns it.
async fn wait_for_certificate(
    https: SocketAddr,
    roots: &RootCertStore,
    previous: Option<&[u8]>,
    deadline: Duration,
    pebble: &Pebble,
) -> Vec<u8> {
    tokio::time::timeout(deadline, async {
        loop {
            if let Ok((shown, response)) = https_get(https, roots, "/health").await
                && previous != Some(shown.as_slice())
            {
                assert!(response.starts_with("HTTP/1.1 200"), "{response}");
                return shown;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no {} certificate from Pebble within {deadline:?}; Pebble said:\n{}",
            if previous.is_some() {
                "renewed"
            } else {
                "first"
            },
            pebble.log()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_certificate_from_pebble_is_served_then_renewed_without_dropping_a_wss_connection() {
    // rustls-acme renews at two thirds of a certificate's life: 16 s here.
    const VALIDITY_SECS: u64 = 24;
    let mut pebble = Pebble::prepare();
    let relay = TestRelay::start(&[
        &format!("--domain={NAME}"),
        "--https-port=0",
        "--wss-port=0",
        "--acme-contact=ops@example.org",
        &format!("--acme-directory={}", pebble.directory()),
        &format!("--acme-root={}", pebble.https_ca_path().display()),
    ])
    .await;
    let https = relay.relay.https_addrs[0];
    // The relay's first order finds no CA yet and is retried (after 1 s).
    pebble.launch(https.port(), VALIDITY_SECS);
    let issuing = pebble.issuing_root().await;
    let mut roots = RootCertStore::empty();
    for root in &issuing {
        roots
            .add(root.clone().into())
            .expect("Pebble's root is a root");
    }

    let first = wait_for_certificate(https, &roots, None, TIMEOUT, &pebble).await;
    // The account key and the certificate are kept, private.
    let acme_dir = relay.dir.path().join("state").join("acme");
    let kept: Vec<(String, u32)> = std::fs::read_dir(&acme_dir)
        .expect("the ACME directory in the state directory")
        .map(|entry| {
            use std::os::unix::fs::PermissionsExt as _;
            let entry = entry.expect("entry");
            let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
            (entry.file_name().to_string_lossy().into_owned(), mode)
        })
        .collect();
    assert!(
        kept.iter().any(|(name, _)| name.starts_with("account-"))
            && kept
                .iter()
                .any(|(name, _)| name.starts_with("certificate-"))
            && kept.iter().all(|(_, mode)| *mode == 0o600),
        "expected an account and a certificate, mode 600, in {}: {kept:?}",
        acme_dir.display()
    );

    // A browser-like peer connects over wss:// with that certificate and
    // stays connected while the certificate is renewed.
    let wss = secure_websocket_addr(&relay);
    let mut peer = secure_websocket_peer_trusting(&issuing);
    connect_and_ping(&mut peer, &wss).await;
    let renewal_deadline = Duration::from_secs(VALIDITY_SECS) + TIMEOUT;
    let second = keep_connected(
        &mut peer,
        wait_for_certificate(https, &roots, Some(&first), renewal_deadline, &pebble),
    )
    .await;
    assert_ne!(first, second);
    ping_again(&mut peer).await;
    let mut newcomer = secure_websocket_peer_trusting(&issuing);
    connect_and_ping(&mut newcomer, &wss).await;

    // /metrics: two certificates from the CA, the orders tried before
    // Pebble ran counted as failures, and the renewed one's expiry, which
    // is under its validity.
    let ordered = "relay_tls_certificates_installed_total{source=\"acme-order\"}";
    let count = metric(https, &roots, ordered).await;
    assert!(
        count.is_some_and(|count| count >= 2.0),
        "{ordered} is {count:?}"
    );
    let failures = "relay_tls_certificate_failures_total{source=\"acme\"}";
    let count = metric(https, &roots, failures).await;
    assert!(
        count.is_some_and(|count| count >= 1.0),
        "{failures} is {count:?}"
    );
    let expiry = format!("relay_tls_certificate_expiry_seconds{{domain=\"{NAME}\"}}");
    let left = metric(https, &roots, &expiry).await;
    #[allow(clippy::cast_precision_loss)]
    let validity = VALIDITY_SECS as f64;
    assert!(
        left.is_some_and(|seconds| seconds > 0.0 && seconds <= validity),
        "{expiry} is {left:?}, expected within (0, {validity}]"
    );
    relay.relay.shutdown().await;
}

#[tokio::test]
async fn without_a_domain_the_page_has_the_same_headers_but_no_hsts() {
    let relay = TestRelay::start(&[]).await;
    assert!(relay.relay.https_addrs.is_empty());
    let page = http_get(relay.relay.http_addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    for header in [
        "x-content-type-options: nosniff",
        "x-frame-options: DENY",
        "content-security-policy: default-src 'none'",
        "connect-src 'self' wss: ws:;",
    ] {
        assert!(page.contains(header), "no {header:?} in {page}");
    }
    assert!(
        !page
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "HSTS over plain HTTP: {page}"
    );
    relay.relay.shutdown().await;
}
