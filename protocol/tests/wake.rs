//! gossipsub on a peer's second connection, once the first is closed: the
//! situation of two pages after their relayed connection gives way to the
//! direct one. Without [`chat_protocol::wake`], the message sits in the queue
//! until something else happens on the connection (nothing does here).
#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;

use chat_protocol::wake;
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, Swarm, Transport as _,
    core::{transport::MemoryTransport, upgrade::Version},
    gossipsub::{self, IdentTopic},
    identity::Keypair,
    multiaddr::Protocol,
    noise,
    swarm::{
        ConnectionId, NetworkBehaviour, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
    yamux,
};

const TOPIC: &str = "test-chat";
/// A bound on each step; a delivered message takes milliseconds.
const STEP: Duration = Duration::from_secs(10);

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    wake: wake::Behaviour,
}

fn swarm() -> Swarm<Behaviour> {
    libp2p::SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise config"))
                .multiplex(yamux::Config::default())
        })
        .expect("transport")
        .with_behaviour(|key| Behaviour {
            gossipsub: gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossipsub::Config::default(),
            )
            .expect("gossipsub"),
            wake: wake::Behaviour::default(),
        })
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Polls both swarms until `done` returns a value from one of `b`'s
/// events, or fails after [`STEP`].
async fn drive<T>(
    a: &mut Swarm<Behaviour>,
    b: &mut Swarm<Behaviour>,
    what: &str,
    mut done: impl FnMut(SwarmEvent<BehaviourEvent>) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            tokio::select! {
                _ = a.select_next_some() => {}
                event = b.select_next_some() => {
                    if let Some(value) = done(event) {
                        return value;
                    }
                }
            }
        }
    };
    tokio::time::timeout(STEP, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out after {STEP:?} waiting until {what}"))
}

/// Like [`drive`], with `a`'s events observed instead.
async fn drive_a<T>(
    a: &mut Swarm<Behaviour>,
    b: &mut Swarm<Behaviour>,
    what: &str,
    done: impl FnMut(SwarmEvent<BehaviourEvent>) -> Option<T>,
) -> T {
    drive(b, a, what, done).await
}

async fn connect(
    a: &mut Swarm<Behaviour>,
    b: &mut Swarm<Behaviour>,
    a_peer: PeerId,
    a_addr: &Multiaddr,
) -> ConnectionId {
    b.dial(
        DialOpts::peer_id(a_peer)
            .addresses(vec![a_addr.clone()])
            .condition(PeerCondition::Always)
            .build(),
    )
    .expect("dial");
    drive(a, b, "b connects to a", |event| match event {
        SwarmEvent::ConnectionEstablished { connection_id, .. } => Some(connection_id),
        _ => None,
    })
    .await
}

/// The scenario, with or without waking the connections after publishing;
/// returns whether `a` received the message within `wait`.
async fn publish_on_second_connection(wake_after_publish: bool, wait: Duration) -> bool {
    let (mut a, mut b) = (swarm(), swarm());
    let topic = IdentTopic::new(TOPIC);
    for swarm in [&mut a, &mut b] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .expect("subscribe");
    }
    let a_addr: Multiaddr = Protocol::Memory(rand_port()).into();
    a.listen_on(a_addr.clone()).expect("listen");
    drive_a(&mut a, &mut b, "a listens", |event| {
        matches!(event, SwarmEvent::NewListenAddr { .. }).then_some(())
    })
    .await;
    let a_peer = *a.local_peer_id();

    // The first connection carries the subscriptions, both ways.
    let first = connect(&mut a, &mut b, a_peer, &a_addr).await;
    drive(&mut a, &mut b, "b learns that a subscribes", |event| {
        matches!(
            event,
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
                gossipsub::Event::Subscribed { .. }
            ))
        )
        .then_some(())
    })
    .await;
    // A second connection; then the first goes away.
    connect(&mut a, &mut b, a_peer, &a_addr).await;
    assert!(b.close_connection(first), "the first connection is open");
    drive(&mut a, &mut b, "the first connection closes", |event| {
        matches!(event, SwarmEvent::ConnectionClosed { connection_id, .. } if connection_id == first)
            .then_some(())
    })
    .await;
    // What the closing set off (gossipsub tells the remaining connection
    // that it is in the mesh) runs its course, as it does in the page,
    // where a chat message comes seconds later.
    settle(&mut a, &mut b, Duration::from_millis(500)).await;

    b.behaviour_mut()
        .gossipsub
        .publish(topic, b"over the second connection".to_vec())
        .expect("publish: a is subscribed");
    if wake_after_publish {
        b.behaviour_mut().wake.wake_all();
    }
    let received = async {
        loop {
            tokio::select! {
                event = a.select_next_some() => {
                    if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
                        gossipsub::Event::Message { message, .. },
                    )) = event
                    {
                        assert_eq!(message.data, b"over the second connection");
                        return;
                    }
                }
                _ = b.select_next_some() => {}
            }
        }
    };
    tokio::time::timeout(wait, received).await.is_ok()
}

/// Polls both swarms for `period`, ignoring their events.
async fn settle(a: &mut Swarm<Behaviour>, b: &mut Swarm<Behaviour>, period: Duration) {
    let poll_both = async {
        loop {
            tokio::select! {
                _ = a.select_next_some() => {}
                _ = b.select_next_some() => {}
            }
        }
    };
    let _ = tokio::time::timeout(period, poll_both).await;
}

fn rand_port() -> u64 {
    // Memory addresses are process-wide; tests in one binary run in
    // parallel threads, so each takes its own.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    0x5eed_0000 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn waking_the_connections_sends_a_publish_on_the_second_connection_at_once() {
    assert!(
        publish_on_second_connection(true, STEP).await,
        "a did not receive the message within {STEP:?}"
    );
}

/// The reason the module exists: if gossipsub ever fixes this, the test
/// fails, and [`wake`] can go.
#[tokio::test]
async fn without_waking_the_publish_waits_on_the_second_connection() {
    // Nothing else happens on the connection: 3 s is as good as forever.
    let wait = Duration::from_secs(3);
    assert!(
        !publish_on_second_connection(false, wait).await,
        "a received the message within {wait:?} without a wake-up: \
         gossipsub no longer needs chat_protocol::wake"
    );
}
