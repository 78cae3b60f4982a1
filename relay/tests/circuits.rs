//! Native peers reach the relay over each of its transports, reserve
//! slots, and reach each other through circuits; limits hold.

mod common;

use common::{
    TestRelay, connect, echo, peer, relay_peer_id, reserve, serve_echo, spawn, try_reserve,
    wait_for,
};
use libp2p::{identity::Keypair, multiaddr::Protocol, ping, swarm::SwarmEvent};

#[tokio::test]
async fn peers_over_tcp_and_websocket_reserve_and_exchange_bytes_through_a_circuit() {
    let relay = TestRelay::start(&[]).await;

    // A reserves over TCP and echoes whatever arrives on ECHO streams.
    let mut a = peer(Keypair::generate_ed25519());
    let a_id = *a.local_peer_id();
    let a_circuit = reserve(&mut a, &relay.addr("tcp")).await;
    serve_echo(&a);
    spawn(a);

    // B connects over WebSocket, reserves too, and dials A through the relay.
    let mut b = peer(Keypair::generate_ed25519());
    reserve(&mut b, &relay.addr("websocket")).await;
    assert!(
        a_circuit.iter().any(|p| p == Protocol::P2pCircuit),
        "{a_circuit}"
    );
    b.dial(a_circuit.clone()).expect("dial through circuit");
    let established = wait_for(&mut b, "relayed connection to A", |event| match event {
        SwarmEvent::ConnectionEstablished {
            peer_id, endpoint, ..
        } if *peer_id == a_id => Some(endpoint.get_remote_address().clone()),
        SwarmEvent::OutgoingConnectionError { error, .. } => panic!("circuit dial failed: {error}"),
        _ => None,
    })
    .await;
    assert!(
        established.iter().any(|p| p == Protocol::P2pCircuit),
        "not relayed: {established}"
    );

    let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let echoed = echo(&mut b, a_id, &payload)
        .await
        .expect("echo through the circuit");
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "echoed bytes differ from those sent");
}

#[tokio::test]
async fn native_peer_connects_over_webrtc_direct_with_the_printed_multiaddr() {
    let relay = TestRelay::start(&[]).await;
    let addr = relay.addr("webrtc-direct");
    assert!(
        addr.iter().any(|p| matches!(p, Protocol::Certhash(_))),
        "no certhash in {addr}"
    );

    let mut a = peer(Keypair::generate_ed25519());
    // The native WebRTC transport dials from the UDP socket of a listener.
    a.listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse().expect("valid"))
        .expect("listen");
    let relay_id = connect(&mut a, &addr).await;
    assert_eq!(relay_id, relay.relay.peer_id);
    let rtt = wait_for(&mut a, "a ping over WebRTC-direct", |event| match event {
        SwarmEvent::Behaviour(common::PeerBehaviourEvent::Ping(ping::Event {
            peer,
            result: Ok(rtt),
            ..
        })) if *peer == relay_id => Some(*rtt),
        _ => None,
    })
    .await;
    assert!(rtt.as_secs() < 5, "{rtt:?}");
}

#[tokio::test]
async fn reservation_past_the_total_limit_is_denied_and_the_others_keep_working() {
    let relay = TestRelay::start(&["--max-reservations=2"]).await;
    let relay_addr = relay.addr("tcp");

    let mut a = peer(Keypair::generate_ed25519());
    let a_id = *a.local_peer_id();
    let a_circuit = reserve(&mut a, &relay_addr).await;
    spawn(a);
    let mut b = peer(Keypair::generate_ed25519());
    reserve(&mut b, &relay_addr).await;
    spawn(b);

    let mut c = peer(Keypair::generate_ed25519());
    let refused = try_reserve(&mut c, &relay_addr)
        .await
        .expect_err("a third reservation was accepted past --max-reservations=2");
    assert_resource_limit_exceeded(&refused, "a third reservation past --max-reservations=2");

    // The relay still serves: C reaches A through A's reservation.
    c.dial(a_circuit).expect("dial through circuit");
    wait_for(&mut c, "relayed connection to A", |event| match event {
        SwarmEvent::ConnectionEstablished { peer_id, .. } if *peer_id == a_id => Some(()),
        SwarmEvent::OutgoingConnectionError {
            peer_id: Some(peer),
            error,
            ..
        } if *peer == a_id => {
            panic!("circuit dial failed: {error}")
        }
        _ => None,
    })
    .await;
}

#[tokio::test]
async fn reservations_behind_one_ip_are_limited() {
    // Every test peer comes from 127.0.0.1.
    let relay = TestRelay::start(&["--max-reservations-per-ip=1"]).await;
    let relay_addr = relay.addr("websocket");
    let mut a = peer(Keypair::generate_ed25519());
    reserve(&mut a, &relay_addr).await;
    spawn(a);
    let mut b = peer(Keypair::generate_ed25519());
    let refused = try_reserve(&mut b, &relay_addr)
        .await
        .expect_err("second peer behind one IP got a slot");
    assert_resource_limit_exceeded(&refused, "a second reservation behind one IP");
}

/// A limit refuses with `RESOURCE_LIMIT_EXCEEDED` (201), which libp2p-relay's
/// client reports as `ResourceLimitExceeded`; any other failure (a dial
/// that broke, a protocol error) is not the limit at work.
fn assert_resource_limit_exceeded(error: &str, what: &str) {
    assert!(
        error.contains("ResourceLimitExceeded"),
        "{what}: expected the relay's RESOURCE_LIMIT_EXCEEDED refusal, got {error}"
    );
}

#[tokio::test]
async fn connections_behind_one_ip_are_limited() {
    let relay = TestRelay::start(&["--max-connections-per-ip=1"]).await;
    let relay_addr = relay.addr("tcp");
    let mut a = peer(Keypair::generate_ed25519());
    connect(&mut a, &relay_addr).await;
    spawn(a);

    let mut b = peer(Keypair::generate_ed25519());
    let target = relay_peer_id(&relay_addr);
    b.dial(relay_addr).expect("dial");
    wait_for(
        &mut b,
        "the relay to refuse or drop the connection",
        |event| match event {
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                ..
            } if *peer == target => Some(()),
            SwarmEvent::ConnectionClosed { peer_id, .. } if *peer_id == target => Some(()),
            _ => None,
        },
    )
    .await;
    // The dialer sees only a dropped socket, whatever the reason: the
    // relay's own count says which limit refused it.
    let refusals = refusal_counts(&relay).await;
    assert_eq!(
        refusals,
        vec![("connections-per-ip".to_owned(), 1)],
        "expected exactly one refusal, by the per-IP connection limit"
    );
}

/// `relay_refusals_total{kind}` from the relay's `/metrics`, the kinds
/// with a count above zero, sorted.
async fn refusal_counts(relay: &TestRelay) -> Vec<(String, u64)> {
    let metrics = reqwest::get(relay.http_url("/metrics"))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics body");
    let mut counts: Vec<(String, u64)> = metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("relay_refusals_total{kind=\"")?;
            let (kind, count) = rest.split_once("\"} ")?;
            Some((kind.to_owned(), count.trim().parse().ok()?))
        })
        .filter(|(_, count)| *count > 0)
        .collect();
    counts.sort();
    counts
}
