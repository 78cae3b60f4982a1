//! One host tries to keep everyone else out, against the real relay binary
//! with its defaults (only the ports, the state and page directories and
//! the loopback listen IP are set). Each attack comes from 127.0.0.2 (one
//! host; the legitimate peers are 127.0.0.1), is bounded in count and
//! time, and stops by itself.
//!
//! `ABUSE_RELAY_BIN=/path/to/relay` runs the same attacks against another
//! build (e.g. main's, to see them succeed there), and `ABUSE_RELAY_ARGS`
//! adds flags (e.g. `--max-pending-per-ip=100000`, to see an attack
//! succeed with one bound lifted).

mod common;

use std::{
    io::{BufRead as _, BufReader},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{TIMEOUT, connect, peer, reserve};
use libp2p::{Multiaddr, identity::Keypair, multiaddr::Protocol};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
    sync::watch,
    task::JoinSet,
};

/// The attacker's address: another host, as far as the relay can tell.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// How long an attacker socket waits before reopening once the relay has
/// closed it. With 2 x the pending bound of sockets per listener and only
/// 8 slots per address, a slot the relay frees is taken back within a few
/// milliseconds by one of the others even at one reopen per second each;
/// a shorter pause only adds refusals per second (200 ms gave 2,500 a
/// second), which on a 2-core machine starved the legitimate peer's
/// WebRTC-direct handshake in this process (2 runs in 8) rather than
/// testing the relay's bounds.
const REOPEN_PAUSE: Duration = Duration::from_secs(1);
/// The same for the thousands of HTTP sockets: about 5,000 new connections
/// a second in all.
const HTTP_REOPEN_PAUSE: Duration = Duration::from_secs(1);

/// The relay binary under test, running until dropped.
struct RelayProcess {
    child: Child,
    addrs: Vec<Multiaddr>,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

impl RelayProcess {
    /// Starts the relay with at most `nofile` file descriptors (as
    /// `LimitNOFILE` in deploy/relay.service would), plus `extra` flags.
    fn start(nofile: u64, extra: &[&str]) -> Self {
        common::init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let page_dir = dir.path().join("page");
        std::fs::create_dir(&page_dir).expect("page dir");
        std::fs::write(
            page_dir.join("index.html"),
            "<!doctype html><title>chat page</title>",
        )
        .expect("index.html");
        let binary =
            std::env::var("ABUSE_RELAY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_relay").into());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(binary)
            .args([
                "--listen-ip=127.0.0.1",
                "--port=0",
                "--quic-port=0",
                "--websocket-port=0",
                "--webrtc-port=0",
                "--stun-port=0",
                "--http-port=0",
            ])
            .arg(format!(
                "--state-dir={}",
                dir.path().join("state").display()
            ))
            .arg(format!("--page-dir={}", page_dir.display()))
            .args(extra)
            .args(
                std::env::var("ABUSE_RELAY_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the relay starts");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = stdout.lines();
        let mut addrs = Vec::new();
        let http = loop {
            let line = lines
                .next()
                .expect("the relay prints its page URL")
                .expect("utf-8 output");
            if line.starts_with('/') {
                addrs.push(line.parse().expect("a multiaddr"));
            } else if let Some(url) = line.strip_prefix("Page: http://") {
                break url
                    .trim_end_matches('/')
                    .parse()
                    .expect("the page URL names an IP and port");
            }
        };
        // Drain the rest, so that the relay never blocks on its stdout.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            addrs,
            http,
            _dir: dir,
        }
    }

    /// The directory the relay serves the page from.
    fn page_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("page")
    }

    fn addr(&self, transport: &str) -> Multiaddr {
        self.addrs
            .iter()
            .find(|addr| relay::addresses::transport_of(addr) == transport)
            .unwrap_or_else(|| panic!("no {transport} address in {:?}", self.addrs))
            .clone()
    }

    /// The socket address of a listener: TCP (TCP, WebSocket) or UDP
    /// (QUIC, WebRTC-direct).
    fn socket_addr(&self, transport: &str) -> SocketAddr {
        let addr = self.addr(transport);
        let mut parts = addr.iter();
        match (parts.next(), parts.next()) {
            (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port) | Protocol::Udp(port))) => {
                (ip, port).into()
            }
            _ => panic!("{addr} is not an IPv4 TCP or UDP address"),
        }
    }

    /// `VmRSS` and `VmHWM` (the peak) of the relay, in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the relay's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} in {status}"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn get(&self, path: &str) -> Result<(u16, String), reqwest::Error> {
        let response = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?
            .get(format!("http://{}{path}", self.http))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// One limit the relay reports in `/metrics` (`relay_limit{limit=..}`).
    async fn limit(&self, name: &str, default: u64) -> u64 {
        let (_, metrics) = self.get("/metrics").await.expect("/metrics answers");
        let prefix = format!("relay_limit{{limit=\"{name}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or(default)
    }

    /// `relay_refusals_total{kind="..."}`, 0 when absent.
    async fn refusals(&self, kind: &str) -> u64 {
        let prefix = format!("relay_refusals_total{{kind=\"{kind}\"}} ");
        self.metrics_lines(&prefix)
            .await
            .iter()
            .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn metrics_lines(&self, prefix: &str) -> Vec<String> {
        let (_, metrics) = self.get("/metrics").await.expect("/metrics answers");
        metrics
            .lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What an attack did, for the test's output.
#[derive(Debug, Default)]
struct AttackStats {
    opened: AtomicUsize,
    closed_by_relay: AtomicUsize,
    failed: AtomicUsize,
}

/// Keeps `count` sockets from [`ATTACKER`] to `target` open, each sending
/// `payload` (nothing: idle) and never more, reopening each when the relay
/// closes it, until `stop` turns true.
fn hold_sockets(
    target: SocketAddr,
    count: usize,
    payload: &'static [u8],
    reopen_pause: Duration,
    stop: &watch::Receiver<bool>,
    stats: &Arc<AttackStats>,
    tasks: &mut JoinSet<()>,
) {
    for _ in 0..count {
        let mut stop = stop.clone();
        let stats = stats.clone();
        tasks.spawn(async move {
            while !*stop.borrow() {
                match open(target).await {
                    Ok(mut stream) => {
                        stats.opened.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.write_all(payload).await;
                        let mut buf = [0u8; 1024];
                        let closed = async {
                            loop {
                                match stream.read(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(_) => {}
                                }
                            }
                        };
                        tokio::select! {
                            _ = closed => {
                                stats.closed_by_relay.fetch_add(1, Ordering::Relaxed);
                            }
                            _ = stop.wait_for(|stop| *stop) => break,
                        }
                    }
                    Err(_) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(reopen_pause) => {}
                    _ = stop.wait_for(|stop| *stop) => break,
                }
            }
        });
    }
}

async fn open(target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((ATTACKER, 0).into())?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(target))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// A fresh native peer connects to `addr` and reserves a slot; returns how
/// long that took. Panics (the test fails) if it cannot within [`TIMEOUT`].
async fn connect_and_reserve(addr: &Multiaddr) -> Duration {
    // libp2p-webrtc's DTLS needs a process-wide rustls provider, which
    // the relay picks in its own process (`Relay::start`); do the same here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = Instant::now();
    let mut swarm = peer(Keypair::generate_ed25519());
    if relay::addresses::transport_of(addr) == "webrtc-direct" {
        // libp2p-webrtc dials from the UDP socket it listens on.
        swarm
            .listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse().expect("valid"))
            .expect("listen");
    }
    connect(&mut swarm, addr).await;
    reserve(&mut swarm, addr).await;
    started.elapsed()
}

/// The soft file descriptor limit of the test itself, raised as far as it
/// goes (the attacks hold thousands of sockets).
fn raise_own_nofile() -> u64 {
    relay::fd_budget::raise_nofile_limit()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_on_every_tcp_listener_do_not_keep_a_peer_from_reserving() {
    raise_own_nofile();
    let relay = RelayProcess::start(4096, &[]);
    let pending_bound = relay.limit("max_pending_connections", 128).await as usize;
    let count = 2 * pending_bound;

    let (stop_tx, stop) = watch::channel(false);
    let stats = Arc::new(AttackStats::default());
    let mut attack = JoinSet::new();
    for listener in ["tcp", "websocket"] {
        hold_sockets(
            relay.socket_addr(listener),
            count,
            b"",
            REOPEN_PAUSE,
            &stop,
            &stats,
            &mut attack,
        );
    }
    // Let the attack fill whatever it can.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "attack: {count} idle sockets on each TCP listener; during it: {:?}",
        relay.metrics_lines("relay_pending_connections").await
    );

    for transport in ["tcp", "websocket", "webrtc-direct"] {
        let took = connect_and_reserve(&relay.addr(transport)).await;
        println!("a peer connected over {transport} and reserved in {took:?} during the attack");
    }
    let _ = stop_tx.send(true);
    while attack.join_next().await.is_some() {}
    println!(
        "attack sockets: {} opened, {} closed by the relay, {} failed to connect",
        stats.opened.load(Ordering::Relaxed),
        stats.closed_by_relay.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed)
    );
    println!(
        "refusals: {:?}",
        relay.metrics_lines("relay_refusals").await
    );
    assert!(
        stats.opened.load(Ordering::Relaxed) >= 2 * count,
        "the attack did not open its sockets: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_http_connections_leave_the_page_health_and_libp2p_answering() {
    let own_nofile = raise_own_nofile();
    // LimitNOFILE in deploy/relay.service.
    let relay_nofile = 4096;
    let relay = RelayProcess::start(relay_nofile, &[]);
    // Thousands: more than the relay's whole descriptor budget, as far as
    // the test's own limit allows.
    let count =
        usize::try_from(own_nofile.saturating_sub(512).min(relay_nofile + 1024)).expect("fits") / 2;
    assert!(
        count >= 1000,
        "the test may open only {own_nofile} descriptors"
    );

    let (stop_tx, stop) = watch::channel(false);
    let stats = Arc::new(AttackStats::default());
    let mut attack = JoinSet::new();
    hold_sockets(
        relay.http,
        count,
        b"",
        HTTP_REOPEN_PAUSE,
        &stop,
        &stats,
        &mut attack,
    );
    hold_sockets(
        relay.http,
        count,
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        HTTP_REOPEN_PAUSE,
        &stop,
        &stats,
        &mut attack,
    );
    // One more idle connection, from a third address, to time the deadline.
    let http = relay.http;
    let watched = tokio::spawn(async move {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind((Ipv4Addr::new(127, 0, 0, 3), 0).into())
            .expect("bind");
        let mut stream = socket.connect(http).await.expect("connect");
        let opened = Instant::now();
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await;
        (closed.is_ok(), opened.elapsed())
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let (status, body) = relay
        .get("/")
        .await
        .expect("the page answers during the attack");
    assert_eq!(status, 200);
    assert!(body.contains("chat page"), "{body}");
    let (status, body) = relay
        .get("/health")
        .await
        .expect("/health answers during the attack");
    assert_eq!(status, 200, "{body}");
    println!(
        "page and /health answered in {:?} during the attack",
        started.elapsed()
    );
    println!(
        "attack: {count} idle and {count} half-sent HTTP connections; open now: {:?}",
        relay.metrics_lines("relay_http_connections").await
    );
    for transport in ["tcp", "websocket"] {
        let took = connect_and_reserve(&relay.addr(transport)).await;
        println!("a peer connected over {transport} and reserved in {took:?} during the attack");
    }

    let (closed, after) = watched.await.expect("watcher");
    assert!(
        closed,
        "an idle HTTP connection was still open after {after:?}"
    );
    println!("an idle HTTP connection was closed after {after:?}");
    let _ = stop_tx.send(true);
    while attack.join_next().await.is_some() {}
    println!(
        "attack sockets: {} opened, {} closed by the relay, {} failed to connect",
        stats.opened.load(Ordering::Relaxed),
        stats.closed_by_relay.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed)
    );
    println!(
        "refusals: {:?}",
        relay.metrics_lines("relay_refusals").await
    );
    assert!(
        stats.opened.load(Ordering::Relaxed) >= 2 * count,
        "the attack did not open its sockets: {stats:?}"
    );
}

#[tokio::test]
async fn a_10_mib_websocket_frame_is_refused_without_the_relay_growing_by_it() {
    const FRAME: usize = 10 << 20;
    let relay = RelayProcess::start(4096, &[]);
    let target = relay.socket_addr("websocket");
    // Let start-up allocations settle before taking the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_before, peak_before) = relay.memory_kib();

    let mut stream = open(target).await.expect("connect");
    stream
        .write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: {target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("send the upgrade");
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(TIMEOUT, stream.read(&mut byte))
            .await
            .expect("the upgrade is answered")
            .expect("read");
        assert_eq!(n, 1, "closed during the upgrade: {response:?}");
        response.push(byte[0]);
    }
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");

    // One binary frame, FIN set, masked (as from a client) with a zero key,
    // announcing 10 MiB.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(FRAME as u64).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    let mut sent = 0;
    let chunk = vec![0u8; 64 * 1024];
    let send = async {
        stream.write_all(&header).await?;
        while sent < FRAME {
            stream.write_all(&chunk).await?;
            sent += chunk.len();
        }
        std::io::Result::Ok(())
    };
    let outcome = tokio::time::timeout(TIMEOUT, send).await;
    // Refused: the relay closes the connection (a write fails, or it is
    // read as closed) rather than taking the frame in.
    let closed = match outcome {
        Ok(Err(_)) => true,
        Ok(Ok(())) | Err(_) => {
            let mut buf = [0u8; 1024];
            let read = async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return true,
                        Ok(_) => {}
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .unwrap_or(false)
        }
    };
    let (rss_after, peak_after) = relay.memory_kib();
    println!(
        "10 MiB frame: {sent} bytes written before the relay closed; RSS {rss_before} -> {rss_after} KiB, peak {peak_before} -> {peak_after} KiB"
    );
    assert!(
        closed,
        "the relay kept the connection with a 10 MiB frame open"
    );
    let grew = peak_after.saturating_sub(peak_before);
    assert!(
        grew < (FRAME as u64 / 1024) / 2,
        "the relay's peak memory grew by {grew} KiB taking a {} KiB frame",
        FRAME / 1024
    );
    // The relay still serves.
    let (status, _) = relay.get("/health").await.expect("/health");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn stun_answers_one_address_within_its_budget_while_another_floods() {
    let relay = RelayProcess::start(4096, &[]);
    // The default, not what the relay reports: a relay started with the
    // bound lifted (ABUSE_RELAY_ARGS) must fail this test.
    let per_ip = relay::stun::DEFAULT_MAX_RESPONSES_PER_PREFIX as usize;
    let (_, metrics) = relay.get("/api/relay").await.expect("/api/relay");
    let stun_port: u16 = metrics
        .split("stun:127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("a STUN URL in {metrics}"));
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, stun_port));

    let request = |tx: u8| {
        let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        m.extend_from_slice(&[tx; 12]);
        m
    };
    let attacker = Arc::new(
        tokio::net::UdpSocket::bind((ATTACKER, 0))
            .await
            .expect("bind"),
    );
    // The flood: 10,000 requests a second for 2 s, five times the global
    // budget, with every answer counted and measured as it comes.
    let answered = Arc::new(AtomicUsize::new(0));
    let receiver = tokio::spawn({
        let attacker = attacker.clone();
        let answered = answered.clone();
        async move {
            let mut buf = [0u8; 1500];
            while let Ok(received) =
                tokio::time::timeout(Duration::from_millis(500), attacker.recv_from(&mut buf)).await
            {
                let (len, _) = received.expect("recv");
                assert!(len <= 20 + 12, "a {len}-byte answer to a 20-byte request");
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let flood_time = Duration::from_secs(2);
    let flood = tokio::spawn({
        let attacker = attacker.clone();
        async move {
            let started = Instant::now();
            let mut sent = 0usize;
            let mut ticks = tokio::time::interval(Duration::from_millis(10));
            while started.elapsed() < flood_time {
                ticks.tick().await;
                for _ in 0..100 {
                    let _ = attacker.send_to(&request(sent as u8), server).await;
                    sent += 1;
                }
            }
            sent
        }
    });

    // Meanwhile another address asks, retransmitting as an ICE agent does,
    // and must be answered while the flood lasts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = tokio::net::UdpSocket::bind((IpAddr::from(Ipv4Addr::LOCALHOST), 0))
        .await
        .expect("bind");
    let mut buf = [0u8; 1500];
    let asked = Instant::now();
    let len = loop {
        assert!(
            asked.elapsed() < flood_time,
            "another address got no answer during the flood"
        );
        client.send_to(&request(7), server).await.expect("send");
        if let Ok(received) =
            tokio::time::timeout(Duration::from_millis(100), client.recv_from(&mut buf)).await
        {
            break received.expect("recv").0;
        }
    };
    assert!(len <= 20 + 12, "a {len}-byte answer to a 20-byte request");
    println!(
        "another address was answered {:?} into the flood",
        asked.elapsed()
    );

    let sent = flood.await.expect("flood");
    receiver
        .await
        .expect("the answers are no larger than allowed");
    let answered = answered.load(Ordering::Relaxed);
    println!("STUN flood: {sent} requests from one address in {flood_time:?}, {answered} answered");
    // Its burst, what refilled during the flood, and a little slack.
    let budget = per_ip + per_ip * flood_time.as_secs() as usize;
    assert!(
        answered <= budget + per_ip / 2,
        "one address got {answered} answers for {sent} requests (budget {per_ip}/s)"
    );
}

#[tokio::test]
async fn a_client_that_never_reads_a_large_response_is_dropped_after_the_write_deadline() {
    // Larger than what loopback's socket buffers take in, so the relay's
    // writes stall once they are full.
    const ASSET: usize = 64 << 20;
    let relay = RelayProcess::start(4096, &[]);
    std::fs::write(relay.page_dir().join("large.bin"), vec![7u8; ASSET]).expect("asset");
    // The default, not what the relay reports: a relay started with the
    // deadline lifted (ABUSE_RELAY_ARGS=--http-write-timeout=1000) must
    // fail this test.
    let write_timeout = Duration::from_secs(10);
    let bound = write_timeout + Duration::from_secs(20);

    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind((ATTACKER, 0).into()).expect("bind");
    // A small receive window, as a reader that never reads would offer.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(relay.http).await.expect("connect");
    stream
        .write_all(b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send the request");
    let asked = Instant::now();
    // Read nothing; watch the relay's count of connections it gave up on.
    while relay.refusals("http-write-stalled").await == 0 {
        assert!(
            asked.elapsed() < bound,
            "a client that read nothing of a {} MiB response was still served after {:?}",
            ASSET >> 20,
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let dropped_after = asked.elapsed();
    // What the kernel had buffered arrives, then the end: the response
    // was cut, not completed.
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(TIMEOUT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the connection stayed open after the relay gave up on it"
    );
    println!(
        "a client that read nothing was dropped {dropped_after:?} after its request; {received} of {ASSET} bytes had been sent"
    );
    assert!(
        received < ASSET,
        "the whole {ASSET}-byte response arrived: nothing stalled"
    );
}

/// QUIC Initial packets, each the first flight of a new connection (a new
/// connection id, a TLS ClientHello), from a client that never sends a
/// second: the relay holds a handshake for each until it gives up.
struct QuicInitials {
    endpoint: quinn_proto::Endpoint,
    config: quinn_proto::ClientConfig,
    made: usize,
}

impl QuicInitials {
    fn new() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // The server's certificate is never read (the client never reads
        // an answer), so no roots are needed.
        let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        crypto.alpn_protocols = vec![b"libp2p".to_vec()];
        let config = quinn_proto::ClientConfig::new(Arc::new(
            quinn_proto::crypto::rustls::QuicClientConfig::try_from(crypto).expect("QUIC TLS"),
        ));
        Self {
            endpoint: Self::endpoint(),
            config,
            made: 0,
        }
    }

    fn endpoint() -> quinn_proto::Endpoint {
        quinn_proto::Endpoint::new(
            Arc::new(quinn_proto::EndpointConfig::default()),
            None,
            false,
            None,
        )
    }

    /// The Initial datagram of a new connection to `server`.
    fn next(&mut self, server: SocketAddr) -> Vec<u8> {
        // The endpoint remembers every connection it made; start afresh
        // now and then so the attacker's own memory stays small.
        self.made += 1;
        if self.made.is_multiple_of(1000) {
            self.endpoint = Self::endpoint();
        }
        let now = std::time::Instant::now();
        let (_, mut connection) = self
            .endpoint
            .connect(now, self.config.clone(), server, "l")
            .expect("a client connection");
        let mut datagram = Vec::new();
        let transmit = connection
            .poll_transmit(now, 1, &mut datagram)
            .expect("an Initial packet");
        datagram.truncate(transmit.size);
        datagram
    }
}

#[derive(libp2p::swarm::NetworkBehaviour)]
struct QuicPeer {
    relay_client: libp2p::relay::client::Behaviour,
}

/// A fresh native peer connects to the relay over QUIC and reserves;
/// returns how long that took.
async fn connect_and_reserve_over_quic(addr: &Multiaddr) -> Duration {
    use futures::StreamExt as _;
    let started = Instant::now();
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .expect("relay client")
        .with_behaviour(|_, relay_client| QuicPeer { relay_client })
        .expect("behaviour")
        .build();
    swarm
        .listen_on(addr.clone().with(Protocol::P2pCircuit))
        .expect("circuit listen address");
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match swarm.select_next_some().await {
                libp2p::swarm::SwarmEvent::Behaviour(QuicPeerEvent::RelayClient(
                    libp2p::relay::client::Event::ReservationReqAccepted { .. },
                )) => return,
                libp2p::swarm::SwarmEvent::ListenerClosed {
                    reason: Err(error), ..
                } => panic!("reservation over QUIC refused: {error}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no reservation over QUIC within {TIMEOUT:?}"));
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_handshake_flood_from_one_address_is_bounded_and_leaves_others_a_way_in() {
    // Bounded: 2,000 new connections a second for 5 s.
    const PER_SECOND: usize = 2000;
    const FLOOD: Duration = Duration::from_secs(5);
    let relay = RelayProcess::start(4096, &[]);
    // The default, not what the relay reports (see the STUN test).
    let per_ip = 8;
    let quic = relay.addr("quic");
    let server = relay.socket_addr("quic");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_before, peak_before) = relay.memory_kib();

    let attacker = tokio::net::UdpSocket::bind((ATTACKER, 0))
        .await
        .expect("bind");
    let flood = tokio::spawn(async move {
        let mut initials = QuicInitials::new();
        let started = Instant::now();
        let mut sent = 0usize;
        let mut ticks = tokio::time::interval(Duration::from_millis(10));
        while started.elapsed() < FLOOD {
            ticks.tick().await;
            for _ in 0..PER_SECOND / 100 {
                let datagram = initials.next(server);
                if attacker.send_to(&datagram, server).await.is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    });
    // The attacker's handshakes in flight, as the relay counts them.
    let watch_pending = async {
        let mut most = 0u64;
        let started = Instant::now();
        while started.elapsed() < FLOOD {
            let lines = relay
                .metrics_lines("relay_pending_connections{listener=\"quic\"}")
                .await;
            let now = lines
                .first()
                .and_then(|line| line.rsplit(' ').next()?.parse().ok())
                .unwrap_or(0);
            most = most.max(now);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        most
    };
    let reserve = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        connect_and_reserve_over_quic(&quic).await
    };
    let (most_pending, took) = tokio::join!(watch_pending, reserve);
    let sent = flood.await.expect("flood");
    println!("a peer connected over QUIC and reserved in {took:?} during the flood");
    // Let the relay's closed handshakes drain before reading the memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss_after, peak_after) = relay.memory_kib();
    println!(
        "QUIC flood: {sent} Initial packets (one connection each) from one address in {FLOOD:?}; \
         at most {most_pending} QUIC handshakes pending; RSS {rss_before} -> {rss_after} KiB, \
         peak {peak_before} -> {peak_after} KiB"
    );
    println!(
        "refusals: {:?}",
        relay.metrics_lines("relay_refusals").await
    );
    // A debug build of the attacker makes a few hundred ClientHellos a
    // second, less on a busy machine: still many times the relay's
    // per-address handshake bound.
    assert!(sent >= 100, "the flood sent only {sent} packets");
    // The attacker's share and the legitimate peer's one.
    assert!(
        most_pending <= per_ip + 1,
        "{most_pending} QUIC handshakes pending at once, more than one address may hold ({per_ip})"
    );
    assert!(
        relay.refusals("handshakes-per-ip").await > 0,
        "the flood was never refused by the per-address handshake bound"
    );
}

/// A STUN binding request as an ICE agent sends it to a WebRTC-direct
/// listener: a USERNAME of `<ufrag>:<ufrag>` (libp2p's WebRTC-direct uses
/// one ufrag for both sides), no integrity (the listener reads the
/// username before it checks anything).
fn ice_binding_request(n: u32) -> Vec<u8> {
    let username = format!("attacker{n:08}:attacker{n:08}");
    let padded = username.len().div_ceil(4) * 4;
    let mut message = vec![0x00, 0x01];
    message.extend_from_slice(&u16::try_from(4 + padded).expect("short").to_be_bytes());
    message.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    message.extend_from_slice(&n.to_be_bytes());
    message.extend_from_slice(&[0; 8]);
    message.extend_from_slice(&[0x00, 0x06]);
    message.extend_from_slice(&u16::try_from(username.len()).expect("short").to_be_bytes());
    message.extend_from_slice(username.as_bytes());
    message.resize(20 + 4 + padded, 0);
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_requests_from_many_source_ports_leave_the_webrtc_direct_listener_bounded_and_open()
{
    // The default bound is a million addresses; a small one shows the
    // mechanism with a bounded attack.
    const BOUND: usize = 300;
    const SOURCES: usize = 1200;
    raise_own_nofile();
    let relay = RelayProcess::start(
        4096,
        &[
            "--webrtc-direct-listener=libp2p",
            &format!("--max-webrtc-unfinished-addresses={BOUND}"),
        ],
    );
    let webrtc = relay.addr("webrtc-direct");
    let server = relay.socket_addr("webrtc-direct");
    // One request from each of SOURCES ports of one host: each is a new
    // source address to libp2p-webrtc's mux, which remembers it.
    let mut sockets = Vec::with_capacity(SOURCES);
    for n in 0..SOURCES {
        let socket = tokio::net::UdpSocket::bind((ATTACKER, 0))
            .await
            .expect("bind");
        socket
            .send_to(&ice_binding_request(n as u32), server)
            .await
            .expect("send");
        sockets.push(socket);
        // About 1,000 a second: requests that arrive while the listener
        // is being opened again are lost, as they would be for anyone.
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let metric = |lines: Vec<String>| -> u64 {
        lines
            .first()
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let expected_restarts = 2;
    let started = Instant::now();
    let restarts = loop {
        let restarts = metric(
            relay
                .metrics_lines("relay_webrtc_direct_listener_restarts_total")
                .await,
        );
        if restarts >= expected_restarts {
            break restarts;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "{SOURCES} source addresses sent binding requests but the WebRTC-direct listener \
             was opened again {restarts} times, not {expected_restarts}: its mux still \
             remembers them all"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let remembered = metric(
        relay
            .metrics_lines("relay_webrtc_direct_unfinished_addresses")
            .await,
    );
    println!(
        "{SOURCES} source addresses: the listener was opened again {restarts} times; it now \
         remembers about {remembered} (bound {BOUND})"
    );
    assert!(
        remembered <= BOUND as u64,
        "the listener remembers {remembered} addresses, over its bound of {BOUND}"
    );
    drop(sockets);
    // Opened again on the same port with the same certificate: the
    // address the relay printed at start still works.
    let took = connect_and_reserve(&webrtc).await;
    println!("a peer connected over WebRTC-direct and reserved in {took:?} after the restarts");
}

/// The same flood against the str0m listener (the default), each request
/// signed as a dialer's is, so that it passes every check but the
/// budgets: the listener needs no restart, keeps at most
/// `--max-pending-per-ip` sessions for the flooding address, and a peer
/// from another address connects and reserves meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_binding_requests_from_many_source_ports_leave_the_str0m_listener_bounded_and_open()
{
    const SOURCES: usize = 1200;
    const PENDING_PER_IP: u64 = 8;
    raise_own_nofile();
    let relay = RelayProcess::start(4096, &["--webrtc-direct-listener=str0m"]);
    let webrtc = relay.addr("webrtc-direct");
    let server = relay.socket_addr("webrtc-direct");
    let mut sockets = Vec::with_capacity(SOURCES);
    for n in 0..SOURCES {
        let socket = tokio::net::UdpSocket::bind((ATTACKER, 0))
            .await
            .expect("bind");
        let mut transaction = [0u8; 12];
        transaction[..8].copy_from_slice(&(n as u64).to_be_bytes());
        socket
            .send_to(
                &common::binding_request(&format!("libp2p+webrtc+v1/attacker{n}"), transaction),
                server,
            )
            .await
            .expect("send");
        sockets.push(socket);
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let number = |lines: Vec<String>| -> u64 {
        lines
            .iter()
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    // Most were refused by the budgets (the kernel may drop some first).
    let started = Instant::now();
    let refused = loop {
        let refused = number(
            relay
                .metrics_lines(
                    "relay_webrtc_direct_datagrams_dropped_total{reason=\"prefix-rate\"}",
                )
                .await,
        ) + number(
            relay
                .metrics_lines(
                    "relay_webrtc_direct_datagrams_dropped_total{reason=\"pending-per-ip\"}",
                )
                .await,
        );
        if refused >= (SOURCES / 2) as u64 {
            break refused;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "{SOURCES} signed binding requests, only {refused} refused by the per-address budgets"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let opening = number(
        relay
            .metrics_lines("relay_webrtc_direct_sessions_opening ")
            .await,
    );
    println!(
        "{SOURCES} signed binding requests from one address: {refused} refused, {opening} sessions opening"
    );
    assert!(
        opening <= PENDING_PER_IP,
        "one address holds {opening} sessions in their handshake, over --max-pending-per-ip={PENDING_PER_IP}"
    );
    assert_eq!(
        number(
            relay
                .metrics_lines("relay_webrtc_direct_listener_restarts_total")
                .await
        ),
        0,
        "the str0m listener was opened again: the libp2p listener's guard ran on it"
    );
    // Another address, while the flood's sessions still wait for their
    // handshake deadline.
    let took = connect_and_reserve(&webrtc).await;
    println!("a peer connected over WebRTC-direct and reserved in {took:?} during the flood");
    drop(sockets);
}
