//! The client's transport: listeners that hold reservations and take the
//! relays' inbound circuits, and dials that open outbound ones. The
//! swarm polls it; every exchange it starts runs in that poll.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use futures::{
    FutureExt as _, StreamExt as _,
    future::{BoxFuture, Ready, ready},
    stream::FuturesUnordered,
};
use futures_timer::Delay;
use libp2p_core::{
    Multiaddr,
    multiaddr::Protocol,
    transport::{DialOpts, ListenerId, TransportError, TransportEvent},
};
use libp2p_identity::PeerId;
use libp2p_stream::{Control, IncomingStreams};
use libp2p_swarm::{Stream, ToSwarm};
use web_time::Instant;

use crate::{
    CONNECT_TIMEOUT, Error, Event, HOP, MAX_LISTENERS, MAX_PENDING_STOPS, RENEWAL_RETRY,
    RESERVE_TIMEOUT, STOP, STOP_TIMEOUT, Shared,
    proto::Status,
    protocol::{self, ProtocolError, Reservation, within},
};

type Upgrade = Ready<Result<Stream, Error>>;

pub struct Transport {
    local: PeerId,
    control: Control,
    shared: Arc<Mutex<Shared>>,
    /// The relays' STOP streams, once a listener asked for them.
    incoming: Option<IncomingStreams>,
    listeners: Vec<Listener>,
    /// Inbound circuits in their STOP handshake.
    stops: FuturesUnordered<BoxFuture<'static, StopStep>>,
    pending: VecDeque<TransportEvent<Upgrade, Error>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("listeners", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

/// A reservation on one relay.
struct Listener {
    id: ListenerId,
    relay: PeerId,
    /// As listened on: `<relay addr>/p2p/<relay>/p2p-circuit`.
    addr: Multiaddr,
    /// The circuit addresses reported for the current reservation.
    reported: Vec<Multiaddr>,
    /// Whether a reservation was accepted (the next is a renewal).
    accepted: bool,
    /// When the accepted reservation ends, renewed or not.
    expires: Option<Instant>,
    /// The accepted reservation's HOP stream, held until the next one is:
    /// an open stream keeps the connection to the relay from closing as
    /// idle (the spec: the client keeps it alive while it holds a
    /// reservation), whatever else runs on it.
    held: Option<Stream>,
    state: State,
}

type Reserving = BoxFuture<'static, Result<(Reservation, Stream), ProtocolError>>;

enum State {
    Reserving(Reserving),
    /// Held; renewed when the timer fires (or a failed renewal tried
    /// again).
    Reserved(Delay),
}

/// Where an inbound circuit's handshake is.
enum StopStep {
    /// The relay's CONNECT was read: `source` is connecting through `relay`.
    Read {
        relay: PeerId,
        source: PeerId,
        stream: Stream,
    },
    /// OK was sent: the stream is the connection.
    Accepted {
        relay: PeerId,
        source: PeerId,
        stream: Stream,
    },
    /// Refused, failed or timed out.
    Done,
}

/// `<relay addr>/p2p/<relay>/p2p-circuit[/p2p/<destination>]` split
/// into the relay's address (without its id), the relay and the
/// destination; `None` for anything else (a `/p2p-circuit/webrtc` address
/// is another transport's).
fn parse_circuit(addr: &Multiaddr) -> Option<(Multiaddr, PeerId, Option<PeerId>)> {
    let mut relay_addr = Multiaddr::empty();
    let mut relay = None;
    let mut destination = None;
    let mut after_circuit = false;
    for protocol in addr.iter() {
        match protocol {
            Protocol::P2pCircuit if !after_circuit && relay.is_some() => after_circuit = true,
            Protocol::P2p(peer) if after_circuit && destination.is_none() => {
                destination = Some(peer)
            }
            Protocol::P2p(peer) if !after_circuit && relay.is_none() => relay = Some(peer),
            _ if after_circuit || relay.is_some() => return None,
            other => relay_addr.push(other),
        }
    }
    after_circuit.then_some((relay_addr, relay?, destination))
}

impl Transport {
    pub(crate) fn new(local: PeerId, control: Control, shared: Arc<Mutex<Shared>>) -> Self {
        Self {
            local,
            control,
            shared,
            incoming: None,
            listeners: Vec::new(),
            stops: FuturesUnordered::new(),
            pending: VecDeque::new(),
        }
    }

    /// RESERVE on a new HOP stream to `relay`, under [`RESERVE_TIMEOUT`].
    fn reserve(&self, relay: PeerId) -> Reserving {
        let mut control = self.control.clone();
        within(RESERVE_TIMEOUT, async move {
            let mut stream = control
                .open_stream(relay, HOP)
                .await
                .map_err(ProtocolError::Open)?;
            let reservation = protocol::reserve(&mut stream).await?;
            Ok((reservation, stream))
        })
        .boxed()
    }

    fn update_watched(&self) {
        let mut shared = Shared::lock(&self.shared);
        shared.watched = self.listeners.iter().map(|l| l.relay).collect();
    }

    /// Ends the listener at `index`; its addresses expire with it (the
    /// swarm's doing).
    fn close(&mut self, index: usize, reason: Result<(), Error>) {
        let listener = self.listeners.swap_remove(index);
        if listener.accepted {
            Shared::lock(&self.shared).report(ToSwarm::ExternalAddrExpired(
                listener.addr.clone().with(Protocol::P2p(self.local)),
            ));
        }
        self.pending.push_back(TransportEvent::ListenerClosed {
            listener_id: listener.id,
            reason,
        });
        self.update_watched();
    }

    /// The relay accepted a reservation for the listener at `index`, on
    /// `stream`.
    fn accepted(&mut self, index: usize, reservation: Reservation, stream: Stream) {
        let local = self.local;
        let listener = &mut self.listeners[index];
        listener.held = Some(stream);
        listener.expires = Some(Instant::now() + reservation.expires_in);
        let mut addrs: Vec<Multiaddr> = Vec::new();
        for addr in reservation.addrs {
            if let Some(addr) = circuit_addr(addr, listener.relay, local)
                && !addrs.contains(&addr)
            {
                addrs.push(addr);
            }
        }
        // A relay that advertises no address (none parsed, or none of its
        // own) is reached where we reached it.
        if addrs.is_empty() {
            addrs.push(listener.addr.clone().with(Protocol::P2p(local)));
        }
        for gone in listener.reported.iter().filter(|a| !addrs.contains(a)) {
            self.pending.push_back(TransportEvent::AddressExpired {
                listener_id: listener.id,
                listen_addr: gone.clone(),
            });
        }
        for new in addrs.iter().filter(|a| !listener.reported.contains(a)) {
            self.pending.push_back(TransportEvent::NewAddress {
                listener_id: listener.id,
                listen_addr: new.clone(),
            });
        }
        listener.reported = addrs;
        listener.state = State::Reserved(Delay::new(reservation.renew_in));
        let renewal = listener.accepted;
        listener.accepted = true;
        let mut shared = Shared::lock(&self.shared);
        if !renewal {
            shared.report(ToSwarm::ExternalAddrConfirmed(
                listener.addr.clone().with(Protocol::P2p(local)),
            ));
        }
        shared.report(ToSwarm::GenerateEvent(Event::ReservationAccepted {
            relay: listener.relay,
            renewal,
        }));
    }

    /// Relay connections that closed: a listener whose relay has none
    /// left ends (the reservation went with it); one whose relay has
    /// others renews at once, in case the closed one held it.
    fn on_closed_connections(&mut self) {
        let closed = std::mem::take(&mut Shared::lock(&self.shared).closed);
        for (relay, last) in closed {
            let mut index = 0;
            while index < self.listeners.len() {
                if self.listeners[index].relay != relay {
                    index += 1;
                } else if last {
                    self.close(index, Ok(()));
                } else {
                    self.listeners[index].state = State::Reserving(self.reserve(relay));
                    index += 1;
                }
            }
        }
    }

    /// Takes the relays' new STOP streams, up to [`MAX_PENDING_STOPS`].
    fn poll_incoming(&mut self, cx: &mut Context<'_>) {
        let Some(incoming) = &mut self.incoming else {
            return;
        };
        while let Poll::Ready(Some((relay, mut stream))) = incoming.poll_next_unpin(cx) {
            // Only a relay we listen through sends STOP: anyone else's
            // streams would only take the relays' slots.
            if !self.listeners.iter().any(|l| l.relay == relay) {
                tracing::debug!(%relay, "a STOP stream from a peer we hold no reservation with; dropped");
                continue;
            }
            if self.stops.len() >= MAX_PENDING_STOPS {
                tracing::debug!(%relay, "too many inbound circuits in their handshake; one dropped");
                continue;
            }
            self.stops.push(
                async move {
                    match within(STOP_TIMEOUT, protocol::read_stop_connect(&mut stream)).await {
                        Ok(source) => StopStep::Read {
                            relay,
                            source,
                            stream,
                        },
                        Err(error) => {
                            tracing::debug!(%relay, %error, "a STOP CONNECT could not be read");
                            StopStep::Done
                        }
                    }
                }
                .boxed(),
            );
        }
    }

    /// Moves the inbound circuits' handshakes on; an accepted one becomes
    /// an incoming connection of the listener on its relay.
    fn poll_stops(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(step)) = self.stops.poll_next_unpin(cx) {
            match step {
                StopStep::Read {
                    relay,
                    source,
                    mut stream,
                } => {
                    // The relay sends a CONNECT only for a reservation it
                    // holds: one whose answer may still be on its way here.
                    let listening = self.listeners.iter().any(|l| l.relay == relay);
                    let status = if listening {
                        Status::OK
                    } else {
                        Status::NO_RESERVATION
                    };
                    self.stops.push(
                        async move {
                            let answered =
                                within(STOP_TIMEOUT, protocol::answer_stop(&mut stream, status))
                                    .await;
                            match answered {
                                Ok(()) if status == Status::OK => StopStep::Accepted {
                                    relay,
                                    source,
                                    stream,
                                },
                                _ => StopStep::Done,
                            }
                        }
                        .boxed(),
                    );
                }
                StopStep::Accepted {
                    relay,
                    source,
                    stream,
                } => {
                    let Some(listener) = self.listeners.iter().find(|l| l.relay == relay) else {
                        continue;
                    };
                    self.pending.push_back(TransportEvent::Incoming {
                        listener_id: listener.id,
                        upgrade: ready(Ok(stream)),
                        local_addr: listener.addr.clone(),
                        send_back_addr: listener.addr.clone().with(Protocol::P2p(source)),
                    });
                }
                StopStep::Done => {}
            }
        }
    }

    /// Moves the reservations on: answers, failures, renewals.
    fn poll_listeners(&mut self, cx: &mut Context<'_>) {
        let mut index = 0;
        while index < self.listeners.len() {
            let listener = &mut self.listeners[index];
            match &mut listener.state {
                State::Reserving(reserving) => match reserving.poll_unpin(cx) {
                    Poll::Ready(Ok((reservation, stream))) => {
                        self.accepted(index, reservation, stream);
                        // Its timer is polled on the next turn.
                        continue;
                    }
                    Poll::Ready(Err(error)) => {
                        // A renewal that failed on the way (not refused)
                        // is tried again while the reservation holds.
                        let holds_long_enough = listener.expires.is_some_and(|expires| {
                            expires.saturating_duration_since(Instant::now()) > RENEWAL_RETRY
                        });
                        if holds_long_enough && !matches!(error, ProtocolError::Refused(_)) {
                            tracing::debug!(relay = %listener.relay, %error, "a renewal failed; trying again");
                            listener.state = State::Reserved(Delay::new(RENEWAL_RETRY));
                            continue;
                        }
                        self.close(index, Err(Error::Reservation(error)));
                        continue;
                    }
                    Poll::Pending => {}
                },
                State::Reserved(renew) => {
                    if renew.poll_unpin(cx).is_ready() {
                        let relay = listener.relay;
                        self.listeners[index].state = State::Reserving(self.reserve(relay));
                        continue;
                    }
                }
            }
            index += 1;
        }
    }
}

/// The circuit address through `relay_addr`, one of the addresses the
/// relay advertised: `<relay_addr>/p2p-circuit/p2p/<local>`, its
/// `/p2p/<relay>` added if missing; `None` if it names another peer.
fn circuit_addr(relay_addr: Multiaddr, relay: PeerId, local: PeerId) -> Option<Multiaddr> {
    let mut addr = match relay_addr.iter().last() {
        Some(Protocol::P2p(peer)) if peer == relay => relay_addr,
        Some(Protocol::P2p(_)) | None => return None,
        Some(_) => relay_addr.with(Protocol::P2p(relay)),
    };
    if addr.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    addr.push(Protocol::P2pCircuit);
    addr.push(Protocol::P2p(local));
    Some(addr)
}

impl libp2p_core::Transport for Transport {
    type Output = Stream;
    type Error = Error;
    type ListenerUpgrade = Upgrade;
    type Dial = BoxFuture<'static, Result<Stream, Error>>;

    /// Reserves a slot on the relay `addr` names
    /// (`<relay addr>/p2p/<relay>/p2p-circuit`).
    fn listen_on(&mut self, id: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Error>> {
        let Some((relay_addr, relay, None)) = parse_circuit(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        if self.listeners.len() >= MAX_LISTENERS {
            return Err(TransportError::Other(Error::TooManyListeners));
        }
        if self.incoming.is_none() {
            let incoming = self
                .control
                .accept(STOP)
                .map_err(|_| TransportError::Other(Error::StopTaken))?;
            self.incoming = Some(incoming);
        }
        Shared::lock(&self.shared).hint(relay, relay_addr);
        let state = State::Reserving(self.reserve(relay));
        self.listeners.push(Listener {
            id,
            relay,
            addr,
            reported: Vec::new(),
            accepted: false,
            expires: None,
            held: None,
            state,
        });
        self.update_watched();
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        match self.listeners.iter().position(|l| l.id == id) {
            Some(index) => {
                self.close(index, Ok(()));
                true
            }
            None => false,
        }
    }

    /// Opens a circuit: HOP CONNECT to the destination `addr` names
    /// (`<relay addr>/p2p/<relay>/p2p-circuit/p2p/<destination>`).
    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Error>> {
        // A dial as listener is a hole punch's, never a circuit's.
        if opts.role.is_listener() {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        let Some((relay_addr, relay, Some(destination))) = parse_circuit(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        Shared::lock(&self.shared).hint(relay, relay_addr);
        let mut control = self.control.clone();
        Ok(async move {
            within(CONNECT_TIMEOUT, async move {
                let mut stream = control
                    .open_stream(relay, HOP)
                    .await
                    .map_err(ProtocolError::Open)?;
                protocol::connect(&mut stream, destination).await?;
                Ok(stream)
            })
            .await
            .map_err(Error::Connect)
        }
        .boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Upgrade, Error>> {
        let this = &mut *self;
        Shared::lock(&this.shared).transport_waker = Some(cx.waker().clone());
        this.on_closed_connections();
        this.poll_listeners(cx);
        this.poll_incoming(cx);
        this.poll_stops(cx);
        // The swarm polls again after an event: the rest of the queue
        // goes out then.
        match this.pending.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("valid multiaddr")
    }

    #[test]
    fn circuit_addresses_split_into_relay_and_destination() {
        let (relay, destination) = (PeerId::random(), PeerId::random());
        assert_eq!(
            parse_circuit(&addr(&format!(
                "/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}/p2p-circuit"
            ))),
            Some((addr("/ip4/1.2.3.4/tcp/1/ws"), relay, None))
        );
        assert_eq!(
            parse_circuit(&addr(&format!(
                "/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}/p2p-circuit/p2p/{destination}"
            ))),
            Some((addr("/ip4/1.2.3.4/tcp/1/ws"), relay, Some(destination)))
        );
        for other in [
            format!("/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}/p2p-circuit/webrtc/p2p/{destination}"),
            format!("/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}/p2p-circuit/webrtc"),
            format!("/ip4/1.2.3.4/tcp/1/ws/p2p-circuit/p2p/{destination}"),
            format!("/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}"),
            format!("/p2p/{relay}/p2p-circuit/p2p/{destination}/p2p-circuit"),
            format!("/p2p/{relay}/ip4/1.2.3.4/p2p-circuit"),
        ] {
            assert_eq!(parse_circuit(&addr(&other)), None, "{other}");
        }
    }

    #[test]
    fn advertised_relay_addresses_become_circuit_addresses() {
        let (relay, local) = (PeerId::random(), PeerId::random());
        let expected = addr(&format!(
            "/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}/p2p-circuit/p2p/{local}"
        ));
        assert_eq!(
            circuit_addr(
                addr(&format!("/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}")),
                relay,
                local
            ),
            Some(expected.clone())
        );
        assert_eq!(
            circuit_addr(addr("/ip4/1.2.3.4/tcp/1/ws"), relay, local),
            Some(expected)
        );
        let other = PeerId::random();
        assert_eq!(
            circuit_addr(
                addr(&format!("/ip4/1.2.3.4/tcp/1/p2p/{other}")),
                relay,
                local
            ),
            None
        );
    }
}
