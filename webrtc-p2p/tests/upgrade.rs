//! The upgrade policy in real swarms over the memory transport. The
//! `/webrtc` dial cannot succeed there (the memory transport has no
//! `/webrtc`), which is what an attempt that fails (ICE finds no path)
//! looks like to the policy.

#![cfg(not(target_arch = "wasm32"))]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use libp2p_core::{
    Multiaddr, PeerId, Transport as _,
    multiaddr::Protocol,
    transport::{MemoryTransport, upgrade::Version},
};
use libp2p_identity::Keypair;
use libp2p_swarm::{Swarm, SwarmEvent};
use libp2p_webrtc_p2p::upgrade::{Behaviour, Config, Event};

const CONFIG: Config = Config {
    max_attempts: 3,
    first_retry: Duration::from_millis(50),
};
/// How long any one step may take.
const STEP: Duration = Duration::from_secs(10);

fn swarm(key: &Keypair) -> Swarm<Behaviour> {
    let id = key.public().to_peer_id();
    let transport = MemoryTransport::default()
        .upgrade(Version::V1)
        .authenticate(libp2p_noise::Config::new(key).expect("noise keys"))
        .multiplex(libp2p_yamux::Config::default())
        .boxed();
    Swarm::new(
        transport,
        Behaviour::new(id, CONFIG),
        id,
        libp2p_swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(Duration::from_secs(60)),
    )
}

/// Two keys, the smaller peer id first.
fn ordered_keys() -> (Keypair, Keypair) {
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    if a.public().to_peer_id() < b.public().to_peer_id() {
        (a, b)
    } else {
        (b, a)
    }
}

/// A `/webrtc` address of `peer` (a circuit through some relay).
fn webrtc_addr(peer: PeerId) -> Multiaddr {
    let relay = PeerId::random();
    format!("/memory/1/p2p/{relay}/p2p-circuit/webrtc/p2p/{peer}")
        .parse()
        .expect("valid multiaddr")
}

/// The policy's events in order until `count` have come.
async fn events(swarm: &mut Swarm<Behaviour>, count: usize) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + STEP;
    while seen.len() < count {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::Behaviour(event)) => seen.push(event),
            Ok(_) => {}
            Err(_) => panic!("only {seen:?} within {STEP:?}, {count} expected"),
        }
    }
    seen
}

fn attempts_and_retries(events: &[Event]) -> Vec<(u32, Option<Duration>)> {
    let mut out = Vec::new();
    let mut attempt = 0;
    for event in events {
        match event {
            Event::Attempt { attempt: n, .. } => attempt = *n,
            Event::Failed { retry_in, .. } => out.push((attempt, *retry_in)),
        }
    }
    out
}

#[tokio::test]
async fn the_smaller_id_tries_within_its_budget_and_a_peer_that_comes_back_gets_a_fresh_one() {
    let (small, large) = ordered_keys();
    let (a_id, b_id) = (small.public().to_peer_id(), large.public().to_peer_id());
    let mut a = swarm(&small);
    let mut b = swarm(&large);
    let b_addr = Multiaddr::empty().with(Protocol::Memory(u64::from(std::process::id()) << 8 | 1));
    b.listen_on(b_addr.clone()).expect("B listens");
    // B knows A's `/webrtc` address too, but the larger id never dials.
    b.behaviour_mut()
        .set_webrtc_addr(a_id, Some(webrtc_addr(a_id)));
    let b_attempts = Arc::new(AtomicUsize::new(0));
    let counter = b_attempts.clone();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(Event::Attempt { .. }) = b.select_next_some().await {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    a.behaviour_mut()
        .set_webrtc_addr(b_id, Some(webrtc_addr(b_id)));
    for incarnation in 0..2 {
        a.dial(b_addr.clone().with(Protocol::P2p(b_id)))
            .expect("dial starts");
        // Three attempts, waits doubling from 50 ms, then none.
        let seen = events(&mut a, 6).await;
        assert_eq!(
            attempts_and_retries(&seen),
            vec![
                (1, Some(Duration::from_millis(50))),
                (2, Some(Duration::from_millis(100))),
                (3, None),
            ],
            "incarnation {incarnation}: {seen:?}"
        );
        assert!(a.behaviour().given_up(&b_id).is_some());
        // No fourth attempt while the budget is spent (four times the
        // last wait).
        let late = tokio::time::timeout(Duration::from_millis(800), async {
            loop {
                if let SwarmEvent::Behaviour(event) = a.select_next_some().await {
                    return event;
                }
            }
        })
        .await;
        assert!(late.is_err(), "an attempt beyond the budget: {late:?}");
        // B goes away and comes back: a new incarnation.
        a.disconnect_peer_id(b_id).expect("connected");
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let event = tokio::time::timeout_at(deadline, a.select_next_some())
                .await
                .expect("the connection closes");
            if let SwarmEvent::ConnectionClosed { peer_id, .. } = event
                && peer_id == b_id
            {
                break;
            }
        }
    }
    assert_eq!(
        b_attempts.load(Ordering::Relaxed),
        0,
        "the larger peer id dialed"
    );
}

#[test]
fn a_circuit_gives_its_webrtc_twin_whichever_side_opened_it() {
    use libp2p_core::{ConnectedPoint, Endpoint, transport::PortUse};
    use libp2p_webrtc_p2p::upgrade::circuit_webrtc_addr;

    let (relay, peer) = (PeerId::random(), PeerId::random());
    let circuit: Multiaddr = format!("/ip4/192.0.2.1/tcp/4002/ws/p2p/{relay}/p2p-circuit")
        .parse()
        .expect("valid multiaddr");
    let twin = circuit
        .clone()
        .with(Protocol::WebRTC)
        .with(Protocol::P2p(peer));

    let dialed = ConnectedPoint::Dialer {
        address: circuit.clone().with(Protocol::P2p(peer)),
        role_override: Endpoint::Dialer,
        port_use: PortUse::Reuse,
    };
    assert_eq!(circuit_webrtc_addr(&dialed, peer), Some(twin.clone()));
    // Accepted over our reservation: the relay is in the local address.
    let accepted = ConnectedPoint::Listener {
        local_addr: circuit.clone(),
        send_back_addr: Multiaddr::empty().with(Protocol::P2p(peer)),
    };
    assert_eq!(circuit_webrtc_addr(&accepted, peer), Some(twin));

    // Neither a direct `/webrtc` connection nor one to the relay itself.
    let direct = ConnectedPoint::Dialer {
        address: webrtc_addr(peer),
        role_override: Endpoint::Dialer,
        port_use: PortUse::Reuse,
    };
    assert_eq!(circuit_webrtc_addr(&direct, peer), None);
    let to_relay = ConnectedPoint::Dialer {
        address: format!("/ip4/192.0.2.1/tcp/4002/ws/p2p/{relay}")
            .parse()
            .expect("valid multiaddr"),
        role_override: Endpoint::Dialer,
        port_use: PortUse::Reuse,
    };
    assert_eq!(circuit_webrtc_addr(&to_relay, relay), None);
}
