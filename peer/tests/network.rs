//! Native peers on loopback through the real relay: they reserve, find
//! each other on the discovery topic, ping through the circuit, chat, and
//! DCUtR turns their relayed connection into a direct one.

mod common;

use chat_peer::{Event, Path};
use common::{TestRelay, config, discovered, reserved, start, wait_for};
use libp2p::multiaddr::Protocol;

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
async fn dcutr_upgrades_the_relayed_connection(transport: &str) {
    let relay = TestRelay::start(&[]).await;
    let mut a = start(config(relay.addr(transport), true)).await;
    let mut b = start(config(relay.addr(transport), true)).await;
    reserved(&mut a).await;
    reserved(&mut b).await;
    discovered(&mut a, b.peer_id).await;

    let b_id = b.peer_id;
    // b runs on its own, reporting its hole punches.
    let (b_punches, mut b_punch) = tokio::sync::mpsc::channel(8);
    let (stop_b, stopped) = tokio::sync::oneshot::channel::<()>();
    let b_task = tokio::spawn(async move {
        let mut stopped = stopped;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                event = b.next_event() => match event {
                    Some(Event::HolePunch { result, .. }) => {
                        let _ = b_punches.try_send(result);
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        b
    });

    let mut saw_relayed = false;
    let mut hole_punch = None;
    let mut pings = 0;
    a.ping(b_id).await.expect("running");
    loop {
        let event = wait_for(&mut a, "a direct ping", |event| match event {
            Event::Ping { peer, .. } | Event::PingFailed { peer, .. } if *peer == b_id => {
                Some(event.clone())
            }
            Event::Connected { peer, path, .. } if *peer == b_id => {
                if *path == Path::Relayed {
                    saw_relayed = true;
                }
                None
            }
            Event::HolePunch { peer, result } if *peer == b_id => {
                hole_punch = Some(result.clone());
                None
            }
            _ => None,
        })
        .await;
        match event {
            Event::Ping {
                path: Path::Direct,
                rtt,
                ..
            } => {
                assert!(rtt.as_secs() < 5, "{rtt:?}");
                break;
            }
            Event::Ping { .. } => {}
            other => panic!("ping failed: {other:?}"),
        }
        pings += 1;
        assert!(
            pings < 40,
            "still relayed after {pings} pings; hole punch: {hole_punch:?}"
        );
        a.ping(b_id).await.expect("running");
    }
    assert!(saw_relayed, "the first connection went through the relay");
    let b_result = match hole_punch {
        Some(Ok(())) => None,
        _ => tokio::time::timeout(common::TIMEOUT, b_punch.recv())
            .await
            .ok()
            .flatten(),
    };
    assert!(
        matches!(hole_punch, Some(Ok(()))) || matches!(b_result, Some(Ok(()))),
        "no side reported a successful DCUtR hole punch: a {hole_punch:?}, b {b_result:?}"
    );
    let _ = stop_b.send(());
    let b = b_task.await.expect("b's task");
    a.shutdown().await;
    b.shutdown().await;
    relay.relay.shutdown().await;
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
