//! gossipsub on a peer's second connection, once the first is closed: the
//! situation of two pages after their relayed connection gives way to the
//! direct one. Without [`chat_protocol::wake`], the message sits in the queue
//! until something else happens on the connection (nothing does here).
//!
//! Both tests hold the same bound, [`WAKE_BOUND`]: the wake meets it, a
//! no-op in its place does not. Nothing sleeps: the moment to publish is
//! found with a [`Barrier`] through the second connection's task.
#![cfg(not(target_arch = "wasm32"))]

use std::{
    collections::VecDeque,
    task::{Context, Poll, Waker},
    time::Duration,
};

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
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, NotifyHandler, SubstreamProtocol, SwarmEvent, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
        dial_opts::{DialOpts, PeerCondition},
        handler::ConnectionEvent,
    },
    yamux,
};

const TOPIC: &str = "test-chat";
/// A bound on each step of setting up; a step takes milliseconds.
const STEP: Duration = Duration::from_secs(10);
/// How soon the published message must arrive. In memory it takes
/// milliseconds with the wake; without one it waits for the next unrelated
/// event on the connection, and in this test none ever comes (the page's
/// was a ping, up to 5 s later). A second is far from both.
const WAKE_BOUND: Duration = Duration::from_secs(1);

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    wake: wake::Behaviour,
    barrier: Barrier,
}

/// A round trip through one connection's task: the behaviour sends a mark
/// to the connection's handler, which sends it back. Events reach a
/// connection in order, and its task polls every handler after each, so
/// when the mark is back, everything sent to that connection before it
/// (gossipsub's notice that the connection now stands for the peer in the
/// mesh) has been handled. The test publishes only then, instead of
/// sleeping and hoping.
#[derive(Default)]
struct Barrier {
    to_send: VecDeque<(PeerId, ConnectionId, u64)>,
    returned: VecDeque<u64>,
    waker: Option<Waker>,
}

impl Barrier {
    fn send(&mut self, peer: PeerId, connection: ConnectionId, mark: u64) {
        self.to_send.push_back((peer, connection, mark));
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl NetworkBehaviour for Barrier {
    type ConnectionHandler = BarrierHandler;
    type ToSwarm = u64;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(BarrierHandler::default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: libp2p::core::Endpoint,
        _: libp2p::core::transport::PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(BarrierHandler::default())
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        mark: THandlerOutEvent<Self>,
    ) {
        self.returned.push_back(mark);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<u64, THandlerInEvent<Self>>> {
        if let Some(mark) = self.returned.pop_front() {
            return Poll::Ready(ToSwarm::GenerateEvent(mark));
        }
        if let Some((peer_id, connection, mark)) = self.to_send.pop_front() {
            return Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: mark,
            });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Sends every mark it receives back to the behaviour.
#[derive(Default)]
struct BarrierHandler {
    marks: VecDeque<u64>,
}

impl ConnectionHandler for BarrierHandler {
    type FromBehaviour = u64;
    type ToBehaviour = u64;
    type InboundProtocol = libp2p::core::upgrade::DeniedUpgrade;
    type OutboundProtocol = libp2p::core::upgrade::DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(libp2p::core::upgrade::DeniedUpgrade, ())
    }

    fn on_behaviour_event(&mut self, mark: u64) {
        self.marks.push_back(mark);
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), u64>> {
        // Polled right after `on_behaviour_event`: no waker needed.
        match self.marks.pop_front() {
            Some(mark) => Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(mark)),
            None => Poll::Pending,
        }
    }

    fn on_connection_event(
        &mut self,
        _: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
    }
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
            barrier: Barrier::default(),
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

/// What `b` does right after publishing.
#[derive(Debug, Clone, Copy)]
enum WakeAfterPublish {
    /// [`wake::Behaviour::wake_all`], as the page and `chat-peer` do.
    Wake,
    /// Nothing: a wake that does not wake.
    NoOp,
}

/// The scenario; returns whether `a` received the message within `wait`
/// of the publish.
async fn publish_on_second_connection(wake: WakeAfterPublish, wait: Duration) -> bool {
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
    let second = connect(&mut a, &mut b, a_peer, &a_addr).await;
    assert!(b.close_connection(first), "the first connection is open");
    drive(&mut a, &mut b, "the first connection closes", |event| {
        matches!(event, SwarmEvent::ConnectionClosed { connection_id, .. } if connection_id == first)
            .then_some(())
    })
    .await;
    // What the closing set off (gossipsub tells the remaining connection
    // that it now carries the peer's mesh membership) reaches the second
    // connection's handler before the publish, as it does in the page,
    // where a chat message comes seconds later.
    b.behaviour_mut().barrier.send(a_peer, second, 1);
    drive(
        &mut a,
        &mut b,
        "the second connection's task has handled what the closing sent it",
        |event| matches!(event, SwarmEvent::Behaviour(BehaviourEvent::Barrier(1))).then_some(()),
    )
    .await;

    b.behaviour_mut()
        .gossipsub
        .publish(topic, b"over the second connection".to_vec())
        .expect("publish: a is subscribed");
    match wake {
        WakeAfterPublish::Wake => b.behaviour_mut().wake.wake_all(),
        WakeAfterPublish::NoOp => {}
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

fn rand_port() -> u64 {
    // Memory addresses are process-wide; tests in one binary run in
    // parallel threads, so each takes its own.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    0x5eed_0000 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn waking_the_connections_delivers_a_publish_on_the_second_connection_within_a_second() {
    assert!(
        publish_on_second_connection(WakeAfterPublish::Wake, WAKE_BOUND).await,
        "with the wake, a did not receive the message within {WAKE_BOUND:?}"
    );
}

/// The bound above means something: a no-op in the wake's place misses
/// it. If gossipsub ever sends without a wake, this test fails, and
/// [`wake`] can go.
#[tokio::test]
async fn a_no_op_wake_misses_that_bound() {
    assert!(
        !publish_on_second_connection(WakeAfterPublish::NoOp, WAKE_BOUND).await,
        "a received the message within {WAKE_BOUND:?} without a wake-up: \
         gossipsub no longer needs chat_protocol::wake"
    );
}
