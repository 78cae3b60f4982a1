//! The lean client against rust-libp2p's relay server (its default
//! configuration, limits changed where a test needs it) and
//! against rust-libp2p's own relay client, in-process over the memory
//! transport with Noise and yamux.

use std::{fmt::Debug, time::Duration};

use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, Transport as _,
    core::{transport::MemoryTransport, upgrade::Version},
    identity::Keypair,
    multiaddr::Protocol,
    noise, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    yamux,
};
use tokio::sync::mpsc;

const ECHO: StreamProtocol = StreamProtocol::new("/echo/1");
const WAIT: Duration = Duration::from_secs(20);

#[derive(NetworkBehaviour)]
struct RelayNode {
    relay: relay::Behaviour,
}

#[derive(NetworkBehaviour)]
struct LeanNode {
    stream: libp2p_stream::Behaviour,
    circuit: circuit_client::Behaviour,
}

#[derive(NetworkBehaviour)]
struct RustNode {
    relay: relay::client::Behaviour,
    stream: libp2p_stream::Behaviour,
}

type Command<B> = Box<dyn FnOnce(&mut Swarm<B>) + Send>;

/// A swarm running in its own task; dropping this ends it (and its
/// connections).
struct Node<B: NetworkBehaviour> {
    peer: PeerId,
    events: mpsc::UnboundedReceiver<SwarmEvent<B::ToSwarm>>,
    commands: mpsc::UnboundedSender<Command<B>>,
}

impl<B> Node<B>
where
    B: NetworkBehaviour + Send + 'static,
    B::ToSwarm: Send + Debug,
{
    fn spawn(mut swarm: Swarm<B>) -> Self {
        let peer = *swarm.local_peer_id();
        let (event_tx, events) = mpsc::unbounded_channel();
        let (commands, mut command_rx) = mpsc::unbounded_channel::<Command<B>>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => {
                        if event_tx.send(event).is_err() {
                            return;
                        }
                    }
                    command = command_rx.recv() => match command {
                        Some(command) => command(&mut swarm),
                        None => return,
                    },
                }
            }
        });
        Self {
            peer,
            events,
            commands,
        }
    }

    fn run(&self, command: impl FnOnce(&mut Swarm<B>) + Send + 'static) {
        self.commands
            .send(Box::new(command))
            .expect("the swarm task runs");
    }

    /// The first event `pick` takes, within [`WAIT`]; `what` says what was
    /// waited for when it does not come.
    async fn wait<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(SwarmEvent<B::ToSwarm>) -> Option<T>,
    ) -> T {
        let found = async {
            loop {
                let event = self.events.recv().await.expect("the swarm task runs");
                if let Some(found) = pick(event) {
                    return found;
                }
            }
        };
        tokio::time::timeout(WAIT, found)
            .await
            .unwrap_or_else(|_| panic!("expected {what} within {WAIT:?}; it did not come"))
    }
}

fn memory_addr() -> Multiaddr {
    Multiaddr::empty().with(Protocol::Memory(rand_port()))
}

fn rand_port() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Distinct across the tests of this binary, which share the memory
    // transport's registry.
    u64::from(std::process::id()) << 20 | (NEXT.fetch_add(1, Ordering::Relaxed) + 1)
}

/// rust-libp2p's relay server, with `config`, listening on a memory
/// address it also advertises (the server reserves only once it has an
/// external address).
async fn start_relay(config: relay::Config) -> (Node<RelayNode>, Multiaddr) {
    start_relay_advertising(config, &[]).await
}

/// [`start_relay`], advertising `others` too (addresses it does not
/// listen on, as a relay behind a load balancer would).
async fn start_relay_advertising(
    config: relay::Config,
    others: &[Multiaddr],
) -> (Node<RelayNode>, Multiaddr) {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise"))
                .multiplex(yamux::Config::default())
        })
        .expect("transport")
        .with_behaviour(|key| RelayNode {
            relay: relay::Behaviour::new(key.public().to_peer_id(), config),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let addr = memory_addr();
    swarm.listen_on(addr.clone()).expect("listening");
    swarm.add_external_address(addr.clone());
    for other in others {
        swarm.add_external_address(other.clone());
    }
    let relay = *swarm.local_peer_id();
    (Node::spawn(swarm), addr.with(Protocol::P2p(relay)))
}

/// A peer with the lean client, as the page runs it: its streams through
/// one libp2p-stream behaviour, the circuit transport before the memory
/// transport, one upgrade for both.
fn start_lean() -> (Node<LeanNode>, libp2p_stream::Control) {
    start_lean_idling(Duration::from_secs(60))
}

/// [`start_lean`], closing connections idle for `idle`.
fn start_lean_idling(idle: Duration) -> (Node<LeanNode>, libp2p_stream::Control) {
    let key = Keypair::generate_ed25519();
    let local = key.public().to_peer_id();
    let stream = libp2p_stream::Behaviour::new();
    let control = stream.new_control();
    let (circuit_transport, circuit) = circuit_client::new(local, stream.new_control());
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            circuit_transport
                .or_transport(MemoryTransport::default())
                .upgrade(Version::V1Lazy)
                .authenticate(noise::Config::new(key).expect("noise"))
                .multiplex(yamux::Config::default())
        })
        .expect("transport")
        .with_behaviour(|_| LeanNode { stream, circuit })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build();
    (Node::spawn(swarm), control)
}

/// A peer with rust-libp2p's relay client.
fn start_rust_client() -> (Node<RustNode>, libp2p_stream::Control) {
    let key = Keypair::generate_ed25519();
    let (relay_transport, relay) = relay::client::new(key.public().to_peer_id());
    let stream = libp2p_stream::Behaviour::new();
    let control = stream.new_control();
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            relay_transport
                .or_transport(MemoryTransport::default())
                .upgrade(Version::V1Lazy)
                .authenticate(noise::Config::new(key).expect("noise"))
                .multiplex(yamux::Config::default())
        })
        .expect("transport")
        .with_behaviour(|_| RustNode { relay, stream })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    (Node::spawn(swarm), control)
}

fn circuit(relay: &Multiaddr) -> Multiaddr {
    relay.clone().with(Protocol::P2pCircuit)
}

/// Echoes what arrives on `/echo/1` streams.
fn serve_echo(mut control: libp2p_stream::Control) {
    let mut incoming = control.accept(ECHO).expect("echo not yet accepted");
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 5];
                if stream.read_exact(&mut buf).await.is_ok() {
                    let _ = stream.write_all(&buf).await;
                    let _ = stream.close().await;
                }
            });
        }
    });
}

/// Opens an `/echo/1` stream to `peer` and checks its echo.
async fn echo_through(mut control: libp2p_stream::Control, peer: PeerId) {
    let exchange = async {
        let mut stream = control
            .open_stream(peer, ECHO)
            .await
            .expect("an echo stream");
        stream.write_all(b"hello").await.expect("sent");
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.expect("echoed");
        buf
    };
    let echoed = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the echo within the wait");
    assert_eq!(&echoed, b"hello");
}

/// The error and its sources, as the page describes them.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Listens through the relay and waits for the first reservation; the
/// circuit address it reported.
async fn reserve(lean: &mut Node<LeanNode>, relay: &Multiaddr, relay_id: PeerId) -> Multiaddr {
    reserve_and_confirm(lean, relay, relay_id).await.0
}

/// [`reserve`], and the address confirmed as external before the
/// acceptance was reported, if any.
async fn reserve_and_confirm(
    lean: &mut Node<LeanNode>,
    relay: &Multiaddr,
    relay_id: PeerId,
) -> (Multiaddr, Option<Multiaddr>) {
    let listen = circuit(relay);
    lean.run(move |swarm| {
        swarm.listen_on(listen).expect("listening");
    });
    let mut address = None;
    let mut confirmed = None;
    lean.wait("the reservation accepted", |event| match event {
        SwarmEvent::NewListenAddr { address: a, .. } => {
            address = Some(a);
            None
        }
        SwarmEvent::ExternalAddrConfirmed { address: a } => {
            confirmed = Some(a);
            None
        }
        SwarmEvent::Behaviour(LeanNodeEvent::Circuit(
            circuit_client::Event::ReservationAccepted {
                relay,
                renewal: false,
            },
        )) => {
            assert_eq!(relay, relay_id);
            Some(())
        }
        SwarmEvent::ListenerClosed { reason, .. } => panic!("the listener closed: {reason:?}"),
        _ => None,
    })
    .await;
    (
        address.expect("the circuit address reported before the acceptance"),
        confirmed,
    )
}

#[tokio::test]
async fn a_reservation_is_accepted_and_the_circuit_address_reported() {
    let (relay, relay_addr) = start_relay(relay::Config::default()).await;
    let (mut lean, _) = start_lean();
    // Not connected to the relay yet: the client's stream dials it at the
    // address listened on.
    let (address, confirmed) = reserve_and_confirm(&mut lean, &relay_addr, relay.peer).await;
    assert_eq!(
        address,
        circuit(&relay_addr).with(Protocol::P2p(lean.peer)),
        "the relay's advertised address, then /p2p-circuit/p2p/<us>"
    );
    assert_eq!(
        confirmed,
        Some(address),
        "the circuit address confirmed as external"
    );
}

#[tokio::test]
async fn a_reservation_is_renewed_before_it_expires() {
    let config = relay::Config {
        reservation_duration: Duration::from_secs(3),
        ..relay::Config::default()
    };
    let (relay, relay_addr) = start_relay(config).await;
    let (mut lean, _) = start_lean();
    reserve(&mut lean, &relay_addr, relay.peer).await;
    let mut last = tokio::time::Instant::now();
    for _ in 0..2 {
        lean.wait("a renewal", |event| match event {
            SwarmEvent::Behaviour(LeanNodeEvent::Circuit(
                circuit_client::Event::ReservationAccepted { renewal: true, .. },
            )) => Some(()),
            SwarmEvent::NewListenAddr { address, .. } => {
                panic!("a renewal with the same addresses reported {address} again")
            }
            SwarmEvent::ListenerClosed { reason, .. } => panic!("the listener closed: {reason:?}"),
            _ => None,
        })
        .await;
        // The relay's expiry is in whole seconds, 2 to 3 s away: three
        // quarters of it, not at (or after) the expiry, which rust-libp2p's
        // relay would take as a fresh reservation.
        let gap = last.elapsed();
        assert!(
            gap < Duration::from_millis(2600),
            "renewed {gap:?} after the last acceptance: not before the 3 s expiry"
        );
        last = tokio::time::Instant::now();
    }
}

#[tokio::test]
async fn the_relay_connection_stays_open_while_the_reservation_holds() {
    // Nothing else runs on the connection: without the reservation's
    // stream held, the swarm would close it after a second idle, and the
    // reservation with it.
    let idle = Duration::from_secs(1);
    let (relay, relay_addr) = start_relay(relay::Config::default()).await;
    let (mut lean, _) = start_lean_idling(idle);
    reserve(&mut lean, &relay_addr, relay.peer).await;
    let quiet = tokio::time::timeout(
        idle * 4,
        lean.wait("nothing", |event| match event {
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                panic!("the connection to {peer_id} closed ({cause:?}) while the reservation held")
            }
            SwarmEvent::ListenerClosed { reason, .. } => panic!("the listener closed: {reason:?}"),
            _ => None::<()>,
        }),
    )
    .await;
    assert!(quiet.is_err(), "nothing was expected to happen");
}

#[tokio::test]
async fn the_circuit_addresses_are_the_relays_advertised_ones() {
    let advertised = memory_addr();
    let (relay, relay_addr) =
        start_relay_advertising(relay::Config::default(), std::slice::from_ref(&advertised)).await;
    let (mut lean, _) = start_lean();
    let listen = circuit(&relay_addr);
    lean.run(move |swarm| {
        swarm.listen_on(listen).expect("listening");
    });
    let through = |addr: &Multiaddr| {
        addr.clone()
            .with(Protocol::P2p(relay.peer))
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(lean.peer))
    };
    // Both addresses the relay advertises, the one it was not dialed at
    // too (the swarm may report the acceptance between them).
    let expected = [
        through(&advertised),
        circuit(&relay_addr).with(Protocol::P2p(lean.peer)),
    ];
    let mut addresses = Vec::new();
    lean.wait("both circuit addresses", |event| {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => addresses.push(address),
            SwarmEvent::ListenerClosed { reason, .. } => panic!("the listener closed: {reason:?}"),
            _ => {}
        }
        expected.iter().all(|a| addresses.contains(a)).then_some(())
    })
    .await;
    assert_eq!(addresses.len(), 2, "no other address: {addresses:?}");
}

#[tokio::test]
async fn a_refused_reservation_is_reported_with_the_relays_status() {
    let config = relay::Config {
        max_reservations: 0,
        ..relay::Config::default()
    };
    let (_relay, relay_addr) = start_relay(config).await;
    let (mut lean, _) = start_lean();
    let listen = circuit(&relay_addr);
    lean.run(move |swarm| {
        swarm.listen_on(listen).expect("listening");
    });
    let error = lean
        .wait("the listener closed with an error", |event| match event {
            SwarmEvent::ListenerClosed {
                reason: Err(error), ..
            } => Some(error),
            SwarmEvent::ListenerClosed { reason: Ok(()), .. } => {
                panic!("the listener closed without an error")
            }
            SwarmEvent::NewListenAddr { address, .. } => panic!("listening on {address}"),
            _ => None,
        })
        .await;
    let description = describe(&error);
    assert!(
        description.contains("RESOURCE_LIMIT_EXCEEDED"),
        "expected the relay's status in {description:?}"
    );
}

#[tokio::test]
async fn two_lean_clients_connect_through_the_relay_and_open_a_stream() {
    let (relay, relay_addr) = start_relay(relay::Config::default()).await;
    let (mut listener, listener_control) = start_lean();
    let (mut dialer, dialer_control) = start_lean();
    serve_echo(listener_control);
    let address = reserve(&mut listener, &relay_addr, relay.peer).await;

    let listener_id = listener.peer;
    dialer.run(move |swarm| swarm.dial(address).expect("dialing"));
    let endpoint = dialer
        .wait("the circuit to the listener", |event| match event {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } if peer_id == listener_id => Some(endpoint),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if peer == listener_id => panic!("the circuit failed: {}", describe(&error)),
            _ => None,
        })
        .await;
    assert!(endpoint.is_relayed());

    let dialer_id = dialer.peer;
    let endpoint = listener
        .wait("the circuit from the dialer", |event| match event {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } if peer_id == dialer_id => Some(endpoint),
            _ => None,
        })
        .await;
    assert!(endpoint.is_relayed(), "an accepted circuit is relayed");
    assert_eq!(
        endpoint.get_remote_address(),
        &circuit(&relay_addr).with(Protocol::P2p(dialer_id)),
        "the send-back address names the relay and the source"
    );
    echo_through(dialer_control, listener_id).await;
}

#[tokio::test]
async fn a_lean_client_is_reached_by_rust_libp2ps_client() {
    let (relay, relay_addr) = start_relay(relay::Config::default()).await;
    let (mut lean, lean_control) = start_lean();
    let (mut rust, rust_control) = start_rust_client();
    serve_echo(lean_control);
    let address = reserve(&mut lean, &relay_addr, relay.peer).await;

    let lean_id = lean.peer;
    rust.run(move |swarm| swarm.dial(address).expect("dialing"));
    rust.wait("the circuit to the lean client", |event| match event {
        SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == lean_id => Some(()),
        SwarmEvent::OutgoingConnectionError {
            peer_id: Some(peer),
            error,
            ..
        } if peer == lean_id => panic!("the circuit failed: {}", describe(&error)),
        _ => None,
    })
    .await;
    echo_through(rust_control, lean_id).await;
}

#[tokio::test]
async fn a_lean_client_reaches_rust_libp2ps_client() {
    let (relay, relay_addr) = start_relay(relay::Config::default()).await;
    let (mut lean, lean_control) = start_lean();
    let (mut rust, rust_control) = start_rust_client();
    serve_echo(rust_control);
    let listen = circuit(&relay_addr);
    rust.run(move |swarm| {
        swarm.listen_on(listen).expect("listening");
    });
    let relay_id = relay.peer;
    rust.wait("rust-libp2p's reservation", |event| match event {
        SwarmEvent::Behaviour(RustNodeEvent::Relay(
            relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
        )) if relay_peer_id == relay_id => Some(()),
        _ => None,
    })
    .await;

    let rust_id = rust.peer;
    let address = circuit(&relay_addr).with(Protocol::P2p(rust_id));
    lean.run(move |swarm| swarm.dial(address).expect("dialing"));
    lean.wait("the circuit to rust-libp2p's client", |event| match event {
        SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == rust_id => Some(()),
        SwarmEvent::OutgoingConnectionError {
            peer_id: Some(peer),
            error,
            ..
        } if peer == rust_id => panic!("the circuit failed: {}", describe(&error)),
        _ => None,
    })
    .await;
    echo_through(lean_control, rust_id).await;
}

#[tokio::test]
async fn a_dial_through_a_relay_without_a_reservation_fails_with_its_status() {
    let (_relay, relay_addr) = start_relay(relay::Config::default()).await;
    let (mut lean, _) = start_lean();
    let nobody = PeerId::random();
    let address = circuit(&relay_addr).with(Protocol::P2p(nobody));
    lean.run(move |swarm| swarm.dial(address).expect("dialing"));
    let error = lean
        .wait("the dial's failure", |event| match event {
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if peer == nobody => Some(error),
            _ => None,
        })
        .await;
    let description = describe(&error);
    assert!(
        description.contains("NO_RESERVATION"),
        "expected the relay's status in {description:?}"
    );
}

#[tokio::test]
async fn the_listener_closes_when_the_relay_goes_away() {
    let (relay, relay_addr) = start_relay(relay::Config::default()).await;
    let (mut lean, _) = start_lean();
    let address = reserve(&mut lean, &relay_addr, relay.peer).await;
    drop(relay);
    let (mut closed, mut expired) = (false, false);
    lean.wait(
        "the listener closed without an error, its external address expired",
        |event| {
            match event {
                SwarmEvent::ListenerClosed { reason, .. } => {
                    assert!(reason.is_ok(), "a lost relay is no refusal: {reason:?}");
                    closed = true;
                }
                SwarmEvent::ExternalAddrExpired { address: a } if a == address => expired = true,
                _ => {}
            }
            (closed && expired).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn circuits_through_two_unconnected_relays_are_dialed_at_once() {
    // libp2p-stream dials one unconnected peer a turn and drops a second
    // request: the client dials each relay itself.
    let (relay_a, relay_a_addr) = start_relay(relay::Config::default()).await;
    let (relay_b, relay_b_addr) = start_relay(relay::Config::default()).await;
    let (mut listener_a, _) = start_lean();
    let (mut listener_b, _) = start_lean();
    let address_a = reserve(&mut listener_a, &relay_a_addr, relay_a.peer).await;
    let address_b = reserve(&mut listener_b, &relay_b_addr, relay_b.peer).await;

    let (mut dialer, _) = start_lean();
    dialer.run(move |swarm| {
        swarm.dial(address_a).expect("dialing through relay A");
        swarm.dial(address_b).expect("dialing through relay B");
    });
    let (a, b) = (listener_a.peer, listener_b.peer);
    let mut reached = Vec::new();
    dialer
        .wait("both circuits", |event| {
            match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. }
                    if peer_id == a || peer_id == b =>
                {
                    reached.push(peer_id)
                }
                SwarmEvent::OutgoingConnectionError {
                    peer_id: Some(peer),
                    error,
                    ..
                } if peer == a || peer == b => {
                    panic!("the circuit to {peer} failed: {}", describe(&error))
                }
                _ => {}
            }
            (reached.contains(&a) && reached.contains(&b)).then_some(())
        })
        .await;
}

#[tokio::test]
async fn a_stop_stream_from_a_peer_that_is_not_our_relay_is_dropped_unanswered() {
    // Any connected peer can open a STOP stream; only the relays listened
    // through may use the handshake slots.
    let (relay, relay_addr) = start_relay(relay::Config::default()).await;
    let (mut lean, _) = start_lean();
    reserve(&mut lean, &relay_addr, relay.peer).await;
    let direct = memory_addr();
    let listen = direct.clone();
    lean.run(move |swarm| {
        swarm.listen_on(listen).expect("listening");
    });
    lean.wait("the direct listen address", |event| match event {
        SwarmEvent::NewListenAddr { address, .. } if address == direct => Some(()),
        _ => None,
    })
    .await;

    let (mut stranger, mut stranger_control) = start_rust_client();
    let lean_id = lean.peer;
    let to_lean = direct.with(Protocol::P2p(lean_id));
    stranger.run(move |swarm| swarm.dial(to_lean).expect("dialing"));
    stranger
        .wait(
            "a direct connection to the lean peer",
            |event| match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == lean_id => Some(()),
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    panic!("the dial failed: {}", describe(&error))
                }
                _ => None,
            },
        )
        .await;
    let exchange = async {
        let mut stream = stranger_control
            .open_stream(lean_id, circuit_client::STOP)
            .await
            .expect("a STOP stream");
        // StopMessage { type: CONNECT, peer: { id: <stranger> } }
        let id = stranger.peer.to_bytes();
        let mut peer = vec![0x0a, id.len() as u8];
        peer.extend(&id);
        let mut message = vec![0x08, 0x00, 0x12, peer.len() as u8];
        message.extend(peer);
        let mut framed = vec![message.len() as u8];
        framed.extend(message);
        // Dropped, the stream is reset: the write may fail already.
        stream.write_all(&framed).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.map(|_| answer)
    };
    let answer = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the stream ends within the wait");
    assert!(
        answer.as_ref().is_ok_and(Vec::is_empty) || answer.is_err(),
        "expected no answer, got {answer:?}"
    );
}
