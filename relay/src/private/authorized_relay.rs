//! Circuit relay v2 for a private relay: peers not in the authorized peers
//! file are refused reservations with `PERMISSION_DENIED` (202), the status
//! the specification gives for "peer filtering using ACLs".
//!
//! `libp2p-relay` can only refuse through its rate limiters, which it
//! answers `RESOURCE_LIMIT_EXCEEDED`. So this behaviour decides, per
//! connection, who answers the hop protocol:
//!
//! - a peer listed when it connects gets `libp2p-relay`'s handler;
//! - an unlisted peer, a guest, gets [`GuestHop`], which answers its
//!   reservation requests `PERMISSION_DENIED`. Its circuit requests are
//!   denied the same way with `--authorized-circuits-only`; without it, a
//!   guest may still reach a listed peer, and [`guests`] serves those
//!   circuits itself, with `libp2p-relay`'s checks and limits.
//!
//! Every refusal is counted and logged at a rate ([`crate::refusals`]).
//!
//! The file can change while peers are connected. Every
//! [`RECHECK_INTERVAL`] the list is re-read if it changed, and the
//! connections whose handler no longer fits are closed, so the peer
//! reconnects and gets the right one: a removed peer loses its reservation
//! and circuits at once, and an added peer stops being a guest. Between two
//! checks `libp2p-relay`'s limiters are the second line of defense (see
//! [`crate::private::authorized_peers`]).
//!
//! - [`protocol`]: the hop and stop messages this relay writes itself;
//! - [`handler`]: [`GuestHop`], a guest's connection handler;
//! - [`guests`], [`circuit`] and [`stop_handler`]: guests' circuits.

pub mod circuit;
pub mod guests;
pub mod handler;
pub mod protocol;
pub mod stop_handler;

/// In-memory streams for the tests of guests' circuits.
#[cfg(test)]
mod test_pipe {
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt as _};

    pub type Pipe = Compat<tokio::io::DuplexStream>;

    /// Two ends of one stream.
    pub fn pipe() -> (Pipe, Pipe) {
        let (a, b) = tokio::io::duplex(1024);
        (a.compat(), b.compat())
    }
}

use std::{
    collections::{HashMap, VecDeque},
    task::{Context, Poll},
    time::Duration,
};

use either::Either;
use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, multiaddr::Protocol, transport::PortUse},
    relay,
    swarm::{
        CloseConnection, ConnectionDenied, ConnectionHandler as _, ConnectionHandlerSelect,
        ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
    },
};

use crate::{
    private::Access,
    private::authorized_relay::{
        guests::{GuestAction, GuestCircuits},
        handler::{GuestHop, GuestRequest},
        protocol::Request,
        stop_handler::{OpenStop, StopOpener},
    },
    refusals::Refusals,
};

/// How often the file is checked for an edit that changes whose
/// connections fit their handler.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// `libp2p-relay`'s behaviour with private relay mode's access control.
pub struct AuthorizedRelay {
    relay: relay::Behaviour,
    access: Option<Access>,
    /// Guests' circuits, when guests may open circuits.
    guests: Option<GuestCircuits>,
    /// Connections of a private relay, with who answers their hop streams.
    /// One entry per established connection, so bounded by the swarm's
    /// connection limits.
    connections: HashMap<ConnectionId, Connection>,
    /// The list's version the connections were last checked against.
    checked_version: u64,
    recheck: Option<tokio::time::Interval>,
    /// Connections to close; at most one entry per connection.
    to_close: VecDeque<(PeerId, ConnectionId)>,
    /// Refusals to report; one per guest request, drained by the next poll.
    events: VecDeque<relay::Event>,
    refusals: Refusals,
}

#[derive(Debug)]
struct Connection {
    peer: PeerId,
    remote: Multiaddr,
    /// Whether the peer was listed at the last check.
    listed: bool,
    /// Whether the connection has [`GuestHop`] (the peer was not listed
    /// when it connected).
    guest: bool,
}

impl std::fmt::Debug for AuthorizedRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizedRelay")
            .field("access", &self.access)
            .field("connections", &self.connections.len())
            .finish()
    }
}

impl AuthorizedRelay {
    /// `access`: `None` for an open relay, which is `relay` unchanged.
    /// `guests`: who serves guests' circuits, when they may open any.
    pub fn new(
        relay: relay::Behaviour,
        access: Option<Access>,
        guests: Option<GuestCircuits>,
        refusals: Refusals,
    ) -> Self {
        let checked_version = access.as_ref().map_or(0, |access| access.peers.version());
        Self {
            relay,
            guests,
            recheck: access.as_ref().map(|_| {
                let mut interval = tokio::time::interval(RECHECK_INTERVAL);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                interval
            }),
            access,
            connections: HashMap::new(),
            checked_version,
            to_close: VecDeque::new(),
            events: VecDeque::new(),
            refusals,
        }
    }

    /// Picks the handler for a new connection and remembers the choice.
    fn handler_for(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        remote: &Multiaddr,
        relay_handler: impl FnOnce(
            &mut relay::Behaviour,
        ) -> Result<THandler<relay::Behaviour>, ConnectionDenied>,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let served = |handler: THandler<relay::Behaviour>| {
            Either::Left(handler.select(StopOpener::default()))
        };
        let Some(access) = &self.access else {
            return relay_handler(&mut self.relay).map(served);
        };
        // Relayed connections get no relay service from `libp2p-relay`
        // either; leave them to it.
        if remote.iter().any(|p| p == Protocol::P2pCircuit) {
            return relay_handler(&mut self.relay).map(served);
        }
        let listed = access.peers.is_authorized(&peer);
        self.connections.insert(
            connection,
            Connection {
                peer,
                remote: remote.clone(),
                listed,
                guest: !listed,
            },
        );
        if listed {
            relay_handler(&mut self.relay).map(served)
        } else {
            Ok(Either::Right(GuestHop::new(self.guests.is_some())))
        }
    }

    fn is_guest(&self, connection: ConnectionId) -> bool {
        self.connections
            .get(&connection)
            .is_some_and(|connection| connection.guest)
    }

    /// After the list changed: close the connections whose handler no
    /// longer fits, so their peers reconnect and get the right one.
    fn recheck_connections(&mut self) {
        let Some(access) = &self.access else { return };
        let version = access.peers.version();
        if version == self.checked_version {
            return;
        }
        self.checked_version = version;
        let file = access.peers.path().display().to_string();
        for (id, connection) in &mut self.connections {
            let listed = access.peers.contains(&connection.peer);
            let was_listed = std::mem::replace(&mut connection.listed, listed);
            if listed == was_listed {
                continue;
            }
            if listed && connection.guest {
                tracing::info!(peer = %connection.peer, remote = %connection.remote, %file, "peer added to the authorized peers file: closing its guest connection so it reconnects to a relay that lets it reserve");
                self.to_close.push_back((connection.peer, *id));
            } else if !listed && !connection.guest {
                tracing::info!(peer = %connection.peer, remote = %connection.remote, %file, "peer removed from the authorized peers file: closing its connection, which ends its reservation and circuits");
                self.to_close.push_back((connection.peer, *id));
            }
        }
    }

    fn on_guest_request(&mut self, peer: PeerId, connection: ConnectionId, request: GuestRequest) {
        let Some(access) = self.access.clone() else {
            return;
        };
        let file = access.peers.path().display().to_string();
        let remote = self
            .connections
            .get(&connection)
            .map(|connection| connection.remote.clone())
            .unwrap_or_else(Multiaddr::empty);
        match request {
            GuestRequest::Circuit { dst, stream } => match &mut self.guests {
                Some(guests) => {
                    let dst_connections = self
                        .connections
                        .iter()
                        .filter(|(_, connection)| connection.peer == dst && !connection.guest)
                        .map(|(id, _)| *id)
                        .collect();
                    guests.on_request(peer, &remote, dst, stream, dst_connections);
                }
                // Not reachable: `GuestHop` hands circuits over only when
                // there is someone to serve them. Dropping resets it.
                None => drop(stream),
            },
            GuestRequest::Denied(Request::Reserve) => {
                self.refusals.refused("reservation-not-authorized", || {
                    format!("reservation of {peer} ({remote}) denied (PERMISSION_DENIED): not in the authorized peers file {file}")
                });
                self.events.push_back(relay::Event::ReservationReqDenied {
                    src_peer_id: peer,
                    status: relay::StatusCode::PermissionDenied,
                });
            }
            GuestRequest::Denied(Request::Connect { dst }) => {
                let dst_text = dst.map(|dst| dst.to_string()).unwrap_or_default();
                self.refusals.refused("circuit-not-authorized", || {
                    format!("circuit from {peer} ({remote}) to {dst_text} denied (PERMISSION_DENIED): not in the authorized peers file {file}")
                });
                if let Some(dst) = dst {
                    self.events.push_back(relay::Event::CircuitReqDenied {
                        src_peer_id: peer,
                        dst_peer_id: dst,
                        status: relay::StatusCode::PermissionDenied,
                    });
                }
            }
            GuestRequest::Failed(reason) => {
                tracing::debug!(%peer, %remote, %reason, "hop stream of a guest failed");
            }
            GuestRequest::Dropped => {
                tracing::debug!(%peer, %remote, "too many hop streams at once from a guest: stream dropped");
            }
        }
        // Listed since it connected: the next check closes the connection;
        // look now, so its next attempt need not wait for the timer.
        if access.peers.is_authorized(&peer) {
            self.recheck_connections();
        }
    }
}

impl NetworkBehaviour for AuthorizedRelay {
    /// A listed peer's connection: `libp2p-relay`'s handler, and beside it
    /// the opener of guests' stop streams. A guest's: [`GuestHop`].
    type ConnectionHandler =
        Either<ConnectionHandlerSelect<THandler<relay::Behaviour>, StopOpener>, GuestHop>;
    type ToSwarm = relay::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.relay
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.handler_for(connection_id, peer, remote_addr, |relay| {
            relay.handle_established_inbound_connection(
                connection_id,
                peer,
                local_addr,
                remote_addr,
            )
        })
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.relay.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // The relay dials peers too (AutoNAT's dial-backs), and a peer may
        // send hop requests on any connection.
        self.handler_for(connection_id, peer, addr, |relay| {
            relay.handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
        })
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // `libp2p-relay` never learns of guests' connections: it would
        // otherwise address its handler there, which is not running.
        match &event {
            FromSwarm::ConnectionEstablished(established)
                if self.is_guest(established.connection_id) =>
            {
                return;
            }
            FromSwarm::ConnectionClosed(closed) => {
                if let Some(guests) = &mut self.guests {
                    guests.on_connection_closed(closed.connection_id);
                }
                if let Some(connection) = self.connections.remove(&closed.connection_id)
                    && connection.guest
                {
                    return;
                }
            }
            FromSwarm::AddressChange(change) if self.is_guest(change.connection_id) => return,
            _ => {}
        }
        self.relay.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(Either::Left(event)) => {
                self.relay
                    .on_connection_handler_event(peer_id, connection_id, event)
            }
            Either::Left(Either::Right(stop)) => {
                if let Some(guests) = &mut self.guests {
                    guests.on_stop_stream(stop);
                }
            }
            Either::Right(request) => self.on_guest_request(peer_id, connection_id, request),
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        let mut due = false;
        if let Some(recheck) = &mut self.recheck {
            while recheck.poll_tick(cx).is_ready() {
                due = true;
            }
        }
        if due {
            self.recheck_connections();
        }
        if let Some((peer_id, connection)) = self.to_close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(connection),
            });
        }
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(ToSwarm::GenerateEvent(event));
        }
        if let Some(guests) = &mut self.guests
            && let Poll::Ready(action) = guests.poll(cx)
        {
            return Poll::Ready(match action {
                GuestAction::Event(event) => ToSwarm::GenerateEvent(event),
                GuestAction::OpenStop {
                    peer,
                    connection,
                    id,
                } => ToSwarm::NotifyHandler {
                    peer_id: peer,
                    handler: NotifyHandler::One(connection),
                    event: Either::Left(Either::Right(OpenStop(id))),
                },
            });
        }
        loop {
            let action = match self.relay.poll(cx) {
                Poll::Ready(action) => action,
                Poll::Pending => return Poll::Pending,
            };
            if let (ToSwarm::GenerateEvent(event), Some(guests)) = (&action, &mut self.guests) {
                guests.on_relay_event(event);
            }
            if let ToSwarm::NotifyHandler {
                handler: NotifyHandler::One(connection),
                ..
            } = &action
                && self.is_guest(*connection)
            {
                // Not reachable: `libp2p-relay` only addresses connections
                // it was told of. Dropped rather than sent to the wrong
                // handler, which would panic.
                tracing::warn!(?connection, "relay event for a guest's connection dropped");
                continue;
            }
            return Poll::Ready(action.map_in(|event| Either::Left(Either::Left(event))));
        }
    }
}
