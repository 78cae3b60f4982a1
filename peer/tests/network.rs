//! Native peers on loopback through the real relay: they reserve, find
//! each other on the discovery topic, ping through the circuit, chat, and
//! DCUtR turns their relayed connection into a direct one.

mod common;

use chat_peer::{Event, Path, PeerHandle};
use common::{TestRelay, config, discovered, reserved, start, wait_for};
use libp2p::{PeerId, multiaddr::Protocol};

#[tokio::test]
async fn two_peers_reserve_discover_each_other_ping_through_the_circuit_and_chat() {
    let relay = TestRelay::start(&[]).await;
    let mut a = start(config(relay.addr("tcp"), false)).await;
    let mut b = start(config(relay.addr("tcp"), false)).await;
    let a_circuit = reserved(&mut a).await;
    reserved(&mut b).await;
    assert!(
        a_circuit.iter().any(|p| p == Protocol::P2pCircuit),
        "not a circuit address: {a_circuit}"
    );

    let b_addrs = discovered(&mut a, b.peer_id).await;
    discovered(&mut b, a.peer_id).await;
    assert!(
        !b_addrs.is_empty()
            && b_addrs
                .iter()
                .all(|addr| addr.iter().any(|p| p == Protocol::P2pCircuit)),
        "a private peer announces circuit addresses only: {b_addrs:?}"
    );

    a.ping(b.peer_id).await.expect("running");
    let b_id = b.peer_id;
    let (path, rtt) = wait_for(&mut a, "a ping answer", |event| match event {
        Event::Ping { peer, path, rtt } if *peer == b_id => Some((*path, *rtt)),
        Event::PingFailed { reason, .. } => panic!("ping failed: {reason}"),
        _ => None,
    })
    .await;
    assert_eq!(
        path,
        Path::Relayed,
        "hole punching is off: the circuit carries the ping"
    );
    assert!(rtt.as_secs() < 5, "{rtt:?}");

    a.send_chat("hello from a").await.expect("running");
    let a_id = a.peer_id;
    let text = wait_for(&mut b, "a's chat message", |event| match event {
        Event::Chat {
            from,
            text,
            own: false,
        } if *from == a_id => Some(text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(text, "hello from a");

    b.send_chat("hi a, b here").await.expect("running");
    let text = wait_for(&mut a, "b's chat message", |event| match event {
        Event::Chat {
            from,
            text,
            own: false,
        } if *from == b_id => Some(text.clone()),
        Event::ChatNotSent { reason, .. } => panic!("not sent: {reason}"),
        _ => None,
    })
    .await;
    assert_eq!(text, "hi a, b here");

    a.shutdown().await;
    b.shutdown().await;
    relay.relay.shutdown().await;
}

/// Both peers are private (`--force-private`) and announce only circuit
/// addresses, and nothing but DCUtR dials a direct address: a direct
/// connection between them is the hole punch's doing.
///
/// Then the relayed connections close, a grace after the direct one came
/// up (`chat_peer::RELAYED_GRACE`), and the relay goes away: chat must
/// still flow both ways, over the direct connection alone. That needs each
/// peer to know the other's subscriptions, which travel once, when the
/// peers meet, on whichever connection takes them from gossipsub's queue
/// for the peer; a connection closed right after taking them loses them
/// (the page lost them so, and then had "nobody to send it to").
async fn dcutr_upgrades_the_relayed_connection(transport: &str) {
    let relay = TestRelay::start(&[]).await;
    let mut a = start(config(relay.addr(transport), true)).await;
    let mut b = start(config(relay.addr(transport), true)).await;
    reserved(&mut a).await;
    reserved(&mut b).await;
    discovered(&mut a, b.peer_id).await;

    let (a_id, b_id) = (a.peer_id, b.peer_id);
    // What a's and b's events tell of their connections to each other.
    let (mut seen, mut b_seen) = (Seen::default(), Seen::default());
    // Pings are answered on the best path: relayed until a direct
    // connection is up, direct from then on.
    let mut pings = 0;
    loop {
        a.ping(b_id).await.expect("running");
        let (path, rtt) = wait_for(&mut a, "a ping answer", |event| {
            seen.note(b_id, event);
            match event {
                Event::Ping { peer, path, rtt } if *peer == b_id => Some((*path, *rtt)),
                Event::PingFailed { peer, reason } if *peer == b_id => {
                    panic!("ping failed: {reason}")
                }
                _ => None,
            }
        })
        .await;
        pings += 1;
        if path == Path::Direct {
            assert!(rtt.as_secs() < 5, "{rtt:?}");
            break;
        }
        assert!(
            pings < 40,
            "expected a ping over a direct connection, got {pings} over the relay; {seen}"
        );
    }
    assert!(
        seen.relayed.opened > 0,
        "the first connection went through the relay"
    );

    // The relayed connections close after their grace; a direct one stays.
    wait_for(&mut a, "the relayed connections to close", |event| {
        seen.note(b_id, event);
        assert!(seen.direct.open() > 0, "no direct connection left: {seen}");
        (seen.relayed.open() == 0).then_some(())
    })
    .await;
    assert_eq!(path_to(&a, b_id).await, Some(Path::Direct));
    assert_eq!(path_to(&b, a_id).await, Some(Path::Direct));

    // Without the relay, chat has the direct connection only.
    relay.relay.shutdown().await;
    for (peer, seen, other) in [(&mut a, &mut seen, b_id), (&mut b, &mut b_seen, a_id)] {
        wait_for(peer, "the relay to be gone", |event| {
            seen.note(other, event);
            matches!(event, Event::RelayLost { .. }).then_some(())
        })
        .await;
    }
    chat(&mut a, &mut b, "hello b, directly").await;
    chat(&mut b, &mut a, "hi a, directly too").await;

    assert!(
        seen.punched() || b_seen.punched(),
        "no side reported a successful DCUtR hole punch: a {:?}, b {:?}",
        seen.punches,
        b_seen.punches
    );
    // On loopback no hole punch fails; one did when the per-peer limit
    // denied the direct connections of a second hole punch (two relayed
    // connections, each upgraded).
    assert!(
        seen.punches
            .iter()
            .chain(&b_seen.punches)
            .all(Result::is_ok),
        "a hole punch failed: a {:?}, b {:?}",
        seen.punches,
        b_seen.punches
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// `from` publishes `text`; `to` receives it.
async fn chat(from: &mut PeerHandle, to: &mut PeerHandle, text: &str) {
    let from_id = from.peer_id;
    from.send_chat(text).await.expect("running");
    wait_for(from, "its own message published", |event| match event {
        Event::Chat { own: true, .. } => Some(()),
        Event::ChatNotSent { reason, .. } => panic!("{from_id} did not send {text:?}: {reason}"),
        _ => None,
    })
    .await;
    let received = wait_for(to, "the chat message", |event| match event {
        Event::Chat {
            from,
            text,
            own: false,
        } if *from == from_id => Some(text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(received, text);
}

async fn path_to(peer: &PeerHandle, other: PeerId) -> Option<Path> {
    let peers = peer.peers().await.expect("running");
    peers
        .into_iter()
        .find(|info| info.peer == other)
        .and_then(|info| info.path)
}

/// What a peer's events told of its connections to another peer.
#[derive(Debug, Default)]
struct Seen {
    relayed: Count,
    direct: Count,
    punches: Vec<Result<(), String>>,
}

impl Seen {
    fn note(&mut self, other: PeerId, event: &Event) {
        match event {
            Event::Connected { peer, path, .. } if *peer == other => self.count(*path).opened += 1,
            Event::Disconnected { peer, path } if *peer == other => self.count(*path).closed += 1,
            Event::HolePunch { peer, result } if *peer == other => {
                self.punches.push(result.clone());
            }
            _ => {}
        }
    }

    fn punched(&self) -> bool {
        self.punches.iter().any(Result::is_ok)
    }

    fn count(&mut self, path: Path) -> &mut Count {
        match path {
            Path::Direct => &mut self.direct,
            Path::Relayed => &mut self.relayed,
        }
    }
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            relayed,
            direct,
            punches,
        } = self;
        write!(
            f,
            "relayed connections opened {}, closed {}; direct opened {}, closed {}; \
             hole punches {punches:?}",
            relayed.opened, relayed.closed, direct.opened, direct.closed
        )
    }
}

/// Connections opened and closed.
#[derive(Debug, Default)]
struct Count {
    opened: usize,
    closed: usize,
}

impl Count {
    fn open(&self) -> usize {
        self.opened.saturating_sub(self.closed)
    }
}

#[tokio::test]
async fn relay_addresses_for_browsers_or_without_a_peer_id_are_refused_with_a_reason() {
    let relay = TestRelay::start(&[]).await;
    let websocket = relay
        .relay
        .multiaddrs
        .iter()
        .find(|addr| relay::addresses::transport_of(addr) == "websocket")
        .expect("a WebSocket address")
        .clone();
    let error = chat_peer::Peer::start(config(websocket, false))
        .await
        .expect_err("WebSocket is the browsers' transport");
    assert!(error.to_string().contains("TCP or QUIC"), "{error}");
    let mut bare = relay.addr("tcp");
    bare.pop();
    let error = chat_peer::Peer::start(config(bare, false))
        .await
        .expect_err("no peer id");
    assert!(error.to_string().contains("/p2p/<peer id>"), "{error}");
}

#[tokio::test]
async fn dcutr_upgrades_a_relayed_tcp_connection_to_a_direct_one() {
    dcutr_upgrades_the_relayed_connection("tcp").await;
}

#[tokio::test]
async fn dcutr_upgrades_a_relayed_quic_connection_to_a_direct_one() {
    dcutr_upgrades_the_relayed_connection("quic").await;
}
