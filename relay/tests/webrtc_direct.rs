//! The relay's own WebRTC-direct listener (`--webrtc-direct-listener
//! str0m`), dialed by a native peer over libp2p-webrtc 0.10 (a dialer that
//! never sends FIN_ACK: ping and reservations must not need one).
//!
//! - a peer reserves and pings over it;
//! - its certhash is the one the libp2p listener announced, across
//!   restarts and the switch of listener;
//! - a flood of STUN binding requests from one source address, well
//!   formed or not, is refused before any session is kept for it beyond
//!   the per-address bound, and another address still connects.

mod common;

use std::{net::SocketAddr, time::Duration};

use ::relay::{Relay, addresses::transport_of};
use common::{TIMEOUT, TestRelay, connect, peer, relay_options, reserve, wait_for};
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

/// A STUN binding request as a WebRTC-direct dialer sends it: username
/// `ufrag:ufrag`, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY keyed with
/// the ufrag.
fn binding_request(ufrag: &str, transaction: [u8; 12]) -> Vec<u8> {
    let username = format!("{ufrag}:{ufrag}");
    let mut attributes = Vec::new();
    attributes.extend(0x0006u16.to_be_bytes());
    attributes.extend((username.len() as u16).to_be_bytes());
    attributes.extend(username.as_bytes());
    while attributes.len() % 4 != 0 {
        attributes.push(0);
    }
    // PRIORITY, which ICE requires in a binding request.
    attributes.extend(0x0024u16.to_be_bytes());
    attributes.extend(4u16.to_be_bytes());
    attributes.extend(0x6e00_1effu32.to_be_bytes());
    // ICE-CONTROLLING, as a browser dialing an ICE-lite server sends.
    attributes.extend(0x802Au16.to_be_bytes());
    attributes.extend(8u16.to_be_bytes());
    attributes.extend(transaction[..8].iter());
    let mut message = Vec::new();
    message.extend(0x0001u16.to_be_bytes());
    // The length counts MESSAGE-INTEGRITY (4 + 20 bytes) already, as its
    // HMAC requires.
    message.extend(((attributes.len() + 24) as u16).to_be_bytes());
    message.extend(0x2112_A442u32.to_be_bytes());
    message.extend(transaction);
    message.extend(&attributes);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, ufrag.as_bytes());
    let tag = ring::hmac::sign(&key, &message);
    message.extend(0x0008u16.to_be_bytes());
    message.extend(20u16.to_be_bytes());
    message.extend(tag.as_ref());
    message
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
