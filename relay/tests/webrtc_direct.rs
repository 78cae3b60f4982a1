//! The relay's own WebRTC-direct listener (`--webrtc-direct-listener
//! str0m`), dialed by a native peer over libp2p-webrtc 0.10 (a dialer that
//! never sends FIN_ACK: ping and reservations must not need one).
//!
//! - a peer reserves and pings over it, over IPv4 and over IPv6;
//! - its certhash is the one the libp2p listener announced, across
//!   restarts and the switch of listener;
//! - a flood of STUN binding requests from one source address, well
//!   formed or not, is refused before any session is kept for it beyond
//!   the per-address bound, and another address still connects;
//! - a stranger that sends one binding request and stops holds its
//!   pending slot only until the handshake deadline;
//! - a client whose address changes mid-connection (a NAT rebinding,
//!   made by a UDP proxy in the test) keeps its connection;
//! - a client whose checks never carry USE-CANDIDATE (as Chromium's do
//!   not for up to 2.5 s when the relay's first answer is slow) connects:
//!   the listener answers its DTLS without waiting for a nomination.

mod common;

use std::{net::SocketAddr, time::Duration};

use futures::StreamExt as _;

use ::relay::{Relay, addresses::transport_of};
use common::{
    TIMEOUT, TestRelay, binding_request, connect, peer, relay_options, reserve,
    signed_binding_request, wait_for,
};
use libp2p::{Multiaddr, identity::Keypair, multiaddr::Protocol, ping, swarm::SwarmEvent};

const STR0M: &[&str] = &["--webrtc-direct-listener=str0m"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_peer_reserves_and_pings_over_the_str0m_listener() {
    let relay = TestRelay::start(STR0M).await;
    let addr = relay.addr("webrtc-direct");
    let mut a = peer(Keypair::generate_ed25519());
    // libp2p-webrtc dials from the UDP socket of a listener.
    a.listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse().expect("valid"))
        .expect("listen");
    let circuit = reserve(&mut a, &addr).await;
    assert!(
        circuit.iter().any(|p| p == Protocol::P2pCircuit),
        "{circuit}"
    );
    let relay_id = relay.relay.peer_id;
    let rtt = wait_for(&mut a, "a ping over WebRTC-direct", |event| match event {
        SwarmEvent::Behaviour(common::PeerBehaviourEvent::Ping(ping::Event {
            peer,
            result: Ok(rtt),
            ..
        })) if *peer == relay_id => Some(*rtt),
        _ => None,
    })
    .await;
    eprintln!("ping over the str0m listener: {rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_peer_reserves_over_ipv6() {
    let relay = TestRelay::start(&[STR0M[0], "--listen-ip=::1"]).await;
    let addr = relay
        .relay
        .multiaddrs
        .iter()
        .find(|addr| {
            transport_of(addr) == "webrtc-direct"
                && matches!(addr.iter().next(), Some(Protocol::Ip6(_)))
        })
        .unwrap_or_else(|| {
            panic!(
                "no IPv6 WebRTC-direct address in {:?}",
                relay.relay.multiaddrs
            )
        })
        .clone();
    let mut a = peer(Keypair::generate_ed25519());
    a.listen_on("/ip6/::1/udp/0/webrtc-direct".parse().expect("valid"))
        .expect("listen");
    let circuit = reserve(&mut a, &addr).await;
    assert!(
        circuit.iter().any(|p| p == Protocol::P2pCircuit),
        "{circuit}"
    );
}

fn webrtc_direct_addr(relay: &Relay) -> Multiaddr {
    relay
        .multiaddrs
        .iter()
        .find(|addr| transport_of(addr) == "webrtc-direct")
        .expect("a WebRTC-direct address")
        .clone()
}

fn certhash(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| matches!(p, Protocol::Certhash(_)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certhash_stays_across_restarts_and_the_switch_of_listener() {
    common::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let page_dir = dir.path().join("page");
    std::fs::create_dir(&page_dir).expect("page dir");
    std::fs::write(
        page_dir.join("index.html"),
        "<!doctype html><title>t</title>",
    )
    .expect("index.html");
    let state = dir.path().join("state");

    let mut hashes = Vec::new();
    for extra in [
        &[][..],
        STR0M,
        STR0M,
        &["--webrtc-direct-listener=libp2p"][..],
    ] {
        let relay = Relay::start(relay_options(&state, &page_dir, extra))
            .await
            .expect("relay starts");
        let addr = webrtc_direct_addr(&relay);
        if extra == STR0M {
            // The announced certhash is the one the listener serves: a
            // dialer that checks it gets through.
            let mut a = peer(Keypair::generate_ed25519());
            a.listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse().expect("valid"))
                .expect("listen");
            assert_eq!(connect(&mut a, &addr).await, relay.peer_id);
        }
        hashes.push((extra, certhash(&addr)));
        relay.shutdown().await;
    }
    let first = &hashes[0].1;
    for (extra, hash) in &hashes {
        assert_eq!(
            hash, first,
            "the certhash changed with {extra:?}: every pasted address would break"
        );
    }
}

fn udp_target(addr: &Multiaddr) -> SocketAddr {
    let mut ip = None;
    let mut port = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::from(v4)),
            Protocol::Udp(p) => port = Some(p),
            _ => {}
        }
    }
    SocketAddr::new(ip.expect("an IPv4 address"), port.expect("a UDP port"))
}

/// The value of the metric line starting with `prefix`, 0 if absent.
fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stun_flood_from_one_address_is_bounded_and_another_address_still_connects() {
    const SOCKETS: usize = 32;
    const ROUNDS: usize = 5;
    let relay = TestRelay::start(STR0M).await;
    let addr = relay.addr("webrtc-direct");
    let target = udp_target(&addr);

    // From 127.0.0.2 (its own prefix): valid requests from many ports,
    // each a new session to the relay, plus garbage and requests signed
    // with the wrong key.
    let junk = tokio::net::UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(
            tokio::net::UdpSocket::bind("127.0.0.2:0")
                .await
                .expect("bind 127.0.0.2"),
        );
    }
    for round in 0..ROUNDS {
        for (i, socket) in sockets.iter().enumerate() {
            let ufrag = format!("libp2p+webrtc+v1/flood{round}x{i}");
            let mut transaction = [0u8; 12];
            transaction[..8].copy_from_slice(&((round * SOCKETS + i) as u64).to_be_bytes());
            let _ = socket
                .send_to(&binding_request(&ufrag, transaction), target)
                .await;
            // From a source with no session: counted by the listener.
            let _ = junk.send_to(b"not stun at all", target).await;
            let mut forged = binding_request(&ufrag, transaction);
            let last = forged.len() - 1;
            forged[last] ^= 0xff;
            let _ = junk.send_to(&forged, target).await;
        }
        // Paced a little, so that the socket's receive buffer (not the
        // listener) does not drop most of it.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let metrics_url = relay.http_url("/metrics");
    let read_metrics = || async {
        reqwest::get(&metrics_url)
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    };
    // Wait until each kind of datagram has been seen and refused (the
    // kernel may drop some of the flood before the listener reads it).
    let dropped = |metrics: &str, reason: &str| {
        metric(
            metrics,
            &format!("relay_webrtc_direct_datagrams_dropped_total{{reason=\"{reason}\"}}"),
        )
    };
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let metrics = loop {
        let metrics = read_metrics().await;
        let refused_new = dropped(&metrics, "prefix-rate") + dropped(&metrics, "pending-per-ip");
        if dropped(&metrics, "not-stun") > 0.0
            && dropped(&metrics, "bad-integrity") > 0.0
            && refused_new > 0.0
        {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood was not refused within {TIMEOUT:?}:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let opening = metric(&metrics, "relay_webrtc_direct_sessions_opening ");
    assert!(
        opening <= 8.0,
        "one address holds {opening} sessions in their handshake, past --max-pending-per-ip=8:\n{metrics}"
    );
    // 127.0.0.1 is another address: it connects and pings.
    let mut a = peer(Keypair::generate_ed25519());
    a.listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse().expect("valid"))
        .expect("listen");
    assert_eq!(connect(&mut a, &addr).await, relay.relay.peer_id);
}

/// The relay's Prometheus text.
async fn read_metrics(relay: &TestRelay) -> String {
    reqwest::get(relay.http_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// Reads the metrics until `done` holds for them; panics after `within`.
async fn wait_for_metrics(
    relay: &TestRelay,
    what: &str,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let metrics = read_metrics(relay).await;
        if done(&metrics) {
            return metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const OPENING: &str = "relay_webrtc_direct_sessions_opening ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_that_sends_one_binding_request_and_stops_is_dropped_at_the_handshake_deadline()
{
    const DEADLINE_SECS: u64 = 2;
    let handshake_timeout = format!("--handshake-timeout={DEADLINE_SECS}");
    let relay = TestRelay::start(&[STR0M[0], &handshake_timeout]).await;
    let target = udp_target(&relay.addr("webrtc-direct"));
    let stranger = tokio::net::UdpSocket::bind("127.0.0.3:0")
        .await
        .expect("bind 127.0.0.3");
    stranger
        .send_to(
            &binding_request("libp2p+webrtc+v1/stranger", [7; 12]),
            target,
        )
        .await
        .expect("send");
    // The relay takes it as a dialer's first check: it answers, and the
    // session holds a pending slot.
    let mut answer = [0u8; 1500];
    let (len, _) = tokio::time::timeout(TIMEOUT, stranger.recv_from(&mut answer))
        .await
        .expect("the relay answers a signed binding request")
        .expect("recv");
    assert_eq!(
        &answer[..2],
        &[0x01, 0x01],
        "not a binding success response: {:02x?}",
        &answer[..len]
    );
    wait_for_metrics(&relay, "the session counted as opening", TIMEOUT, |m| {
        metric(m, OPENING) == 1.0
    })
    .await;
    // Nothing more comes: the handshake deadline ends the session (str0m's
    // ICE would only after 15 s without a check).
    wait_for_metrics(
        &relay,
        "the silent session freed by --handshake-timeout",
        Duration::from_secs(DEADLINE_SECS + 5),
        |m| metric(m, OPENING) == 0.0,
    )
    .await;
}

/// A UDP proxy between a dialer and the relay that plays a NAT: the
/// relay sees the dialer at the proxy's relay-facing socket, and
/// [`Nat::rebind`] replaces that socket (a new source port, the old
/// mapping gone). After the rebinding each binding request of the dialer
/// is followed by one with USE-CANDIDATE, as a browser's checks of its
/// selected connection to an ICE-lite server carry (webrtc-rs's consent
/// checks do not), and the
/// answers to those are kept from the dialer.
struct Nat {
    /// Where the dialer sends.
    outside: SocketAddr,
    rebind: tokio::sync::mpsc::UnboundedSender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Nat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The USERNAME's local part of a STUN binding request, if `data` is one.
fn stun_ufrag(data: &[u8]) -> Option<String> {
    if data.len() < 20 || data[..2] != [0x00, 0x01] || data[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let mut at = 20;
    while at + 4 <= data.len() {
        let kind = u16::from_be_bytes([data[at], data[at + 1]]);
        let len = u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize;
        let value = data.get(at + 4..at + 4 + len)?;
        if kind == 0x0006 {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().map(str::to_owned);
        }
        at += 4 + len.next_multiple_of(4);
    }
    None
}

async fn bind_loopback() -> tokio::net::UdpSocket {
    tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1")
}

impl Nat {
    async fn start(relay: SocketAddr) -> Self {
        let outside = bind_loopback().await;
        let addr = outside.local_addr().expect("addr");
        let (rebind, mut rebinds) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut inside = bind_loopback().await;
            let mut rebound = false;
            let mut injected = std::collections::HashSet::new();
            let mut dialer: Option<SocketAddr> = None;
            let (mut from_outside, mut from_inside) = ([0u8; 2048], [0u8; 2048]);
            loop {
                tokio::select! {
                    read = outside.recv_from(&mut from_outside) => {
                        let Ok((len, source)) = read else { continue };
                        dialer = Some(source);
                        let datagram = &from_outside[..len];
                        let _ = inside.send_to(datagram, relay).await;
                        if rebound && let Some(ufrag) = stun_ufrag(datagram) {
                            let mut transaction = [0u8; 12];
                            transaction[..8]
                                .copy_from_slice(&(injected.len() as u64 + 1).to_be_bytes());
                            injected.insert(transaction);
                            let check = signed_binding_request(&ufrag, transaction, true);
                            let _ = inside.send_to(&check, relay).await;
                        }
                    }
                    read = inside.recv_from(&mut from_inside) => {
                        let Ok((len, _)) = read else { continue };
                        let datagram = &from_inside[..len];
                        let ours = len >= 20
                            && datagram[..2] == [0x01, 0x01]
                            && injected.contains(&datagram[8..20]);
                        if let (Some(dialer), false) = (dialer, ours) {
                            let _ = outside.send_to(datagram, dialer).await;
                        }
                    }
                    Some(()) = rebinds.recv() => {
                        // The old mapping is gone: what the relay still
                        // sends to it is lost.
                        inside = bind_loopback().await;
                        rebound = true;
                    }
                }
            }
        });
        Self {
            outside: addr,
            rebind,
            task,
        }
    }

    fn rebind(&self) {
        self.rebind.send(()).expect("the NAT runs");
    }
}

/// `addr` with its UDP port replaced by `port` (the relay reached through
/// a proxy in front of it).
fn with_udp_port(addr: &Multiaddr, port: u16) -> Multiaddr {
    addr.iter()
        .map(|protocol| match protocol {
            Protocol::Udp(_) => Protocol::Udp(port),
            other => other,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_address_changes_keeps_its_connection() {
    // str0m's ICE drops a pair 15 s after its last check; the relay moves
    // its sending to the new address then.
    const OLD_PAIR_EXPIRES: Duration = Duration::from_secs(16);
    let relay = TestRelay::start(STR0M).await;
    let addr = relay.addr("webrtc-direct");
    let nat = Nat::start(udp_target(&addr)).await;
    let through_nat = with_udp_port(&addr, nat.outside.port());
    let mut a = peer(Keypair::generate_ed25519());
    a.listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse().expect("valid"))
        .expect("listen");
    let relay_id = relay.relay.peer_id;
    assert_eq!(connect(&mut a, &through_nat).await, relay_id);

    nat.rebind();
    // Past the old pair's life, the connection stays up...
    let quiet = tokio::time::sleep(OLD_PAIR_EXPIRES);
    tokio::pin!(quiet);
    loop {
        tokio::select! {
            () = &mut quiet => break,
            event = a.select_next_some() => {
                if let SwarmEvent::ConnectionClosed { peer_id, cause, .. } = event
                    && peer_id == relay_id
                {
                    panic!("the connection closed after the rebinding: {cause:?}");
                }
            }
        }
    }
    // ...and carries new streams both ways: a reservation.
    let circuit = reserve(&mut a, &through_nat).await;
    assert!(
        circuit.iter().any(|p| p == Protocol::P2pCircuit),
        "{circuit}"
    );
    let metrics = read_metrics(&relay).await;
    assert_eq!(
        metric(&metrics, "relay_webrtc_direct_rebinds_total "),
        1.0,
        "the new address did not join the session:\n{metrics}"
    );
    assert_eq!(
        metric(&metrics, OPENING),
        0.0,
        "the new address opened a second session:\n{metrics}"
    );
}

/// A UDP proxy that takes USE-CANDIDATE off every binding request of the
/// dialer (each sent on as the same check without it, signed again): a
/// client that never nominates, as Chromium does not until its next
/// check on a writable connection, 0.9-2.5 s after the first answer when
/// that answer came after its third check.
struct NoNomination {
    /// Where the dialer sends.
    outside: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NoNomination {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NoNomination {
    async fn start(relay: SocketAddr) -> Self {
        let outside = bind_loopback().await;
        let addr = outside.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let inside = bind_loopback().await;
            let mut dialer: Option<SocketAddr> = None;
            let (mut from_outside, mut from_inside) = ([0u8; 2048], [0u8; 2048]);
            loop {
                tokio::select! {
                    read = outside.recv_from(&mut from_outside) => {
                        let Ok((len, source)) = read else { continue };
                        dialer = Some(source);
                        let datagram = &from_outside[..len];
                        let check = stun_ufrag(datagram).map(|ufrag| {
                            let transaction: [u8; 12] =
                                datagram[8..20].try_into().expect("a STUN header");
                            signed_binding_request(&ufrag, transaction, false)
                        });
                        let _ = inside.send_to(check.as_deref().unwrap_or(datagram), relay).await;
                    }
                    read = inside.recv_from(&mut from_inside) => {
                        let Ok((len, _)) = read else { continue };
                        if let Some(dialer) = dialer {
                            let _ = outside.send_to(&from_inside[..len], dialer).await;
                        }
                    }
                }
            }
        });
        Self {
            outside: addr,
            task,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_nominates_connects() {
    let relay = TestRelay::start(STR0M).await;
    let addr = relay.addr("webrtc-direct");
    let proxy = NoNomination::start(udp_target(&addr)).await;
    let through_proxy = with_udp_port(&addr, proxy.outside.port());
    let mut a = peer(Keypair::generate_ed25519());
    a.listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse().expect("valid"))
        .expect("listen");
    // Within `connect`'s deadline: without the listener's own nomination
    // the relay would answer the dialer's DTLS never.
    assert_eq!(connect(&mut a, &through_proxy).await, relay.relay.peer_id);
}
