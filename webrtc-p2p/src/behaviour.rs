//! The behaviour that runs the signaling over relayed connections.
//!
//! It wraps `libp2p-stream` for the `/webrtc-signaling/0.0.1` streams (they
//! run on limited, relayed connections), runs each exchange as a task of
//! the page, and talks to the [`crate::Transport`] over channels: dials come
//! in, finished connections and our `/webrtc` addresses go out.

use std::{
    collections::VecDeque,
    rc::Rc,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use futures::{StreamExt as _, channel::mpsc};
use libp2p_core::{Endpoint, Multiaddr, PeerId, multiaddr::Protocol, transport::PortUse};
use libp2p_swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, StreamProtocol, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
    dial_opts::{DialOpts, PeerCondition},
};

use crate::{
    Error,
    addr::{is_plain_circuit, webrtc_twin},
    exchange,
    prepared::PreparedOffers,
    signaling,
    small_map::SmallMap,
    transport::{DIAL_QUEUE, DialRequest, ListenerEvent, Transport},
    upgrade,
};

/// Inbound signaling exchanges running at once; more are refused, so
/// that peers cannot make us create peer connections without bound.
pub const MAX_CONCURRENT_ANSWERS: usize = 8;
/// Dial address hints kept for peers being dialed.
const MAX_ADDRESS_HINTS: usize = 64;
/// The behaviour's own circuit dials not yet seen by the swarm (each
/// leaves the set when the swarm takes or refuses it); cleared past this,
/// as a backstop.
const MAX_OWN_DIALS: usize = 16;
const SIGNALING: StreamProtocol = StreamProtocol::new(signaling::PROTOCOL);

/// The ICE servers (`stun:`/`turn:` URLs) for new peer connections;
/// clones share the list, which may change at any time (say, once the
/// relay has told the page its STUN address).
#[derive(Debug, Clone, Default)]
pub struct IceServers(Arc<Mutex<Vec<String>>>);

impl IceServers {
    pub fn new(urls: Vec<String>) -> Self {
        Self(Arc::new(Mutex::new(urls)))
    }

    pub fn set(&self, urls: Vec<String>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = urls;
    }

    pub fn get(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// What the behaviour reports.
#[derive(Debug)]
pub enum Event {
    /// A `/webrtc` connection attempt with `peer` failed, in either role;
    /// the relayed connection, if any, is left as it is.
    Failed {
        peer: PeerId,
        dialer: bool,
        error: String,
    },
}

/// The transport and the behaviour, wired to each other; `local` is this
/// peer's id, which tells whether it dials a peer's `/webrtc` address or
/// waits for the peer to dial (the smaller id dials, as in `upgrade`).
pub fn new(local: PeerId, ice_servers: IceServers) -> (Transport, Behaviour) {
    let (dial_tx, dial_rx) = mpsc::channel(DIAL_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(DIAL_QUEUE);
    let (failure_tx, failure_rx) = mpsc::channel(DIAL_QUEUE);
    let stream = libp2p_stream::Behaviour::new();
    let control = stream.new_control();
    let behaviour = Behaviour {
        local,
        stream,
        control,
        ice_servers,
        dials: dial_rx,
        to_transport: event_tx,
        failures: failure_rx,
        failure_tx,
        address_hints: SmallMap::new(),
        relayed_dials: VecDeque::new(),
        own_dials: SmallMap::new(),
        prepared: PreparedOffers::default(),
        accepting: false,
    };
    (Transport::new(dial_tx, event_rx), behaviour)
}

pub struct Behaviour {
    local: PeerId,
    stream: libp2p_stream::Behaviour,
    control: libp2p_stream::Control,
    ice_servers: IceServers,
    dials: mpsc::Receiver<DialRequest>,
    to_transport: mpsc::Sender<ListenerEvent>,
    failures: mpsc::Receiver<Event>,
    failure_tx: mpsc::Sender<Event>,
    /// Where to reach a peer being dialed: its relayed address.
    address_hints: SmallMap<PeerId, Multiaddr>,
    /// Relayed connections to open for signaling; at most one per dial
    /// request taken from the bounded queue in the same poll.
    relayed_dials: VecDeque<DialOpts>,
    /// Those of `relayed_dials` handed to the swarm: they serve a
    /// `/webrtc` dial that has its offer already.
    own_dials: SmallMap<ConnectionId, ()>,
    /// Offers made while a circuit to their peer is dialed.
    prepared: PreparedOffers,
    accepting: bool,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour").finish_non_exhaustive()
    }
}

impl Behaviour {
    /// A handle on this behaviour's raw streams, for the application's own
    /// protocols: one `libp2p-stream` handler per connection serves them
    /// and the signaling, where a second `libp2p-stream` behaviour would put
    /// a second handler in every connection's chain, and the swarm's
    /// generic code once more in the wasm (BENCHMARKS.md, "sixth weight
    /// round").
    pub fn new_control(&self) -> libp2p_stream::Control {
        self.stream.new_control()
    }

    fn start_dial(
        &mut self,
        DialRequest {
            peer,
            relayed_addr,
            reply,
        }: DialRequest,
    ) {
        if self.address_hints.len() >= MAX_ADDRESS_HINTS {
            self.address_hints.clear();
        }
        self.address_hints.insert(peer, relayed_addr.clone());
        // The signaling needs a relayed connection. libp2p-stream would dial
        // one, but only if the peer is not being dialed, and it is: by the
        // very `/webrtc` dial this serves. So dial the circuit here; if a
        // connection exists already, the swarm refuses this one.
        let circuit = DialOpts::peer_id(peer)
            .addresses(vec![relayed_addr])
            .condition(PeerCondition::Disconnected)
            .build();
        if self.own_dials.len() >= MAX_OWN_DIALS {
            self.own_dials.clear();
        }
        self.own_dials.insert(circuit.connection_id(), ());
        self.relayed_dials.push_back(circuit);
        let (mut control, mut failures) = (self.control.clone(), self.failure_tx.clone());
        let made = self.prepared.take(peer, self.ice_servers.get());
        wasm_bindgen_futures::spawn_local(async move {
            let open = async {
                control
                    .open_stream(peer, SIGNALING)
                    .await
                    .map_err(|error| Error::Js {
                        doing: "open the signaling stream",
                        message: error.to_string(),
                    })
            };
            let result = exchange::dial_with(open, made, peer).await;
            if let Err(error) = &result {
                let _ = failures.try_send(Event::Failed {
                    peer,
                    dialer: true,
                    error: error.to_string(),
                });
            }
            let _ = reply.send(result);
        });
    }

    fn start_accepting(&mut self) {
        self.accepting = true;
        let mut incoming = match self.control.accept(SIGNALING) {
            Ok(incoming) => incoming,
            Err(error) => {
                tracing::error!(%error, "cannot accept signaling streams");
                return;
            }
        };
        let (ice_servers, to_transport, failures, answering) = (
            self.ice_servers.clone(),
            self.to_transport.clone(),
            self.failure_tx.clone(),
            // One clone here, and one per running answer: counts them.
            Rc::new(()),
        );
        wasm_bindgen_futures::spawn_local(async move {
            while let Some((peer, stream)) = incoming.next().await {
                // The count is this loop's own handle plus one per answer.
                if Rc::strong_count(&answering) > MAX_CONCURRENT_ANSWERS {
                    tracing::warn!(%peer, "too many WebRTC handshakes at once; refusing one");
                    continue;
                }
                let (ice_servers, mut to_transport, mut failures, running) = (
                    ice_servers.get(),
                    to_transport.clone(),
                    failures.clone(),
                    answering.clone(),
                );
                wasm_bindgen_futures::spawn_local(async move {
                    let _running = running;
                    tracing::debug!(%peer, "answering a WebRTC connection request");
                    match exchange::answer(stream, &ice_servers, peer).await {
                        Ok(connection) => {
                            tracing::debug!(%peer, "WebRTC connection answered");
                            let send_back_addr = Multiaddr::empty()
                                .with(Protocol::P2pCircuit)
                                .with(Protocol::WebRTC)
                                .with(Protocol::P2p(peer));
                            let _ = to_transport.try_send(ListenerEvent::Incoming {
                                peer,
                                connection,
                                send_back_addr,
                            });
                        }
                        Err(error) => {
                            let _ = failures.try_send(Event::Failed {
                                peer,
                                dialer: false,
                                error: error.to_string(),
                            });
                        }
                    }
                });
            }
        });
    }

    fn report_address(&mut self, event: ListenerEvent) {
        if self.to_transport.try_send(event).is_err() {
            tracing::warn!("the /webrtc listener is not taking address updates");
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = <libp2p_stream::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.stream.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let mut hints = self.stream.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?;
        if let Some(hint) = maybe_peer.and_then(|peer| self.address_hints.get(&peer)) {
            hints.push(hint.clone());
        }
        // A circuit to a peer this one will dial `/webrtc` over as soon as
        // it is up: the offer is made meanwhile (`prepared`).
        if self.own_dials.remove(&connection_id).is_none()
            && let Some(peer) = maybe_peer
            && upgrade::dials_webrtc(&self.local, &peer)
            && addresses.iter().any(|addr| is_plain_circuit(addr, &peer))
        {
            self.prepared
                .prepare(peer, self.ice_servers.get(), connection_id);
        }
        Ok(hints)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.address_hints.remove(&peer);
        self.stream.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::NewListenAddr(new) => {
                if let Some(twin) = webrtc_twin(new.addr) {
                    self.report_address(ListenerEvent::NewAddress(twin));
                }
            }
            FromSwarm::ExpiredListenAddr(expired) => {
                if let Some(twin) = webrtc_twin(expired.addr) {
                    self.report_address(ListenerEvent::ExpiredAddress(twin));
                }
            }
            // Refused (the peer is connected: the usual fate of our own
            // circuit dials) or failed: nothing more will come of it.
            FromSwarm::DialFailure(failure) => {
                self.own_dials.remove(&failure.connection_id);
                self.prepared.circuit_failed(failure.connection_id);
            }
            _ => {}
        }
        self.stream.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.stream
            .on_connection_handler_event(peer, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        if !self.accepting {
            self.start_accepting();
        }
        self.prepared.poll_expiry(cx);
        while let Poll::Ready(Some(request)) = self.dials.poll_next_unpin(cx) {
            self.start_dial(request);
        }
        if let Some(opts) = self.relayed_dials.pop_front() {
            return Poll::Ready(ToSwarm::Dial { opts });
        }
        if let Poll::Ready(Some(event)) = self.failures.poll_next_unpin(cx) {
            return Poll::Ready(ToSwarm::GenerateEvent(event));
        }
        loop {
            return match self.stream.poll(cx) {
                // libp2p-stream's events carry nothing; skip them.
                Poll::Ready(ToSwarm::GenerateEvent(())) => continue,
                Poll::Ready(action) => {
                    Poll::Ready(action.map_out(|()| unreachable!("matched above")))
                }
                Poll::Pending => Poll::Pending,
            };
        }
    }
}
