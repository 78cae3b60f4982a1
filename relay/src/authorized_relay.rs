//! Circuit relay v2 for a private relay: peers not in the authorized peers
//! file are answered `PERMISSION_DENIED` (202), the status the
//! specification gives for "peer filtering using ACLs".
//!
//! `libp2p-relay` can only refuse through its rate limiters, which it
//! answers `RESOURCE_LIMIT_EXCEEDED`. So this behaviour decides, per
//! connection, who answers the hop protocol:
//!
//! - a peer listed when it connects gets `libp2p-relay`'s handler;
//! - with `--authorized-circuits-only`, an unlisted peer gets [`DenyHop`],
//!   which answers every request, reservation or circuit, with
//!   `PERMISSION_DENIED` and tells this behaviour, which logs why;
//! - without it, an unlisted peer keeps `libp2p-relay`'s handler, because
//!   it may still open circuits to listed peers, and a request is read by
//!   one handler only: its reservations are refused by the limiter
//!   (`RESOURCE_LIMIT_EXCEEDED`, see [`crate::authorized`]).
//!
//! The file can change while peers are connected. Every
//! [`RECHECK_INTERVAL`] the list is re-read if it changed, and the
//! connections whose handler no longer fits are closed, so the peer
//! reconnects and gets the right one: a removed peer loses its reservation
//! and circuits at once, and an added peer stops being denied. Between two
//! checks the limiters remain the second line of defense.
//!
//! - [`protocol`]: the hop messages a denial reads and writes;
//! - [`handler`]: [`DenyHop`], the denied peer's connection handler.

pub mod handler;
pub mod protocol;

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
        CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour,
        NotifyHandler, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
};

use crate::{
    authorized_relay::{
        handler::{Denial, DenyHop},
        protocol::Request,
    },
    behaviour::Access,
};

/// How often the file is checked for an edit that changes whose
/// connections fit their handler.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// `libp2p-relay`'s behaviour with private relay mode's access control.
pub struct AuthorizedRelay {
    relay: relay::Behaviour,
    access: Option<Access>,
    /// Connections of a private relay, with who answers their hop streams.
    /// One entry per established connection, so bounded by the swarm's
    /// connection limits.
    connections: HashMap<ConnectionId, Connection>,
    /// The list's version the connections were last checked against.
    checked_version: u64,
    recheck: Option<tokio::time::Interval>,
    /// Connections to close; at most one entry per connection.
    to_close: VecDeque<(PeerId, ConnectionId)>,
}

#[derive(Debug)]
struct Connection {
    peer: PeerId,
    remote: Multiaddr,
    /// Whether the peer was listed at the last check.
    listed: bool,
    denied: bool,
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
    pub fn new(relay: relay::Behaviour, access: Option<Access>) -> Self {
        let checked_version = access.as_ref().map_or(0, |access| access.peers.version());
        Self {
            relay,
            recheck: access.as_ref().map(|_| {
                let mut interval = tokio::time::interval(RECHECK_INTERVAL);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                interval
            }),
            access,
            connections: HashMap::new(),
            checked_version,
            to_close: VecDeque::new(),
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
        let Some(access) = &self.access else {
            return relay_handler(&mut self.relay).map(Either::Left);
        };
        // Relayed connections get no relay service from `libp2p-relay`
        // either; leave them to it.
        if remote.iter().any(|p| p == Protocol::P2pCircuit) {
            return relay_handler(&mut self.relay).map(Either::Left);
        }
        let listed = access.peers.is_authorized(&peer);
        let denied = !listed && access.circuits_too;
        self.connections.insert(
            connection,
            Connection {
                peer,
                remote: remote.clone(),
                listed,
                denied,
            },
        );
        if denied {
            Ok(Either::Right(DenyHop::default()))
        } else {
            relay_handler(&mut self.relay).map(Either::Left)
        }
    }

    fn is_denied(&self, connection: ConnectionId) -> bool {
        self.connections
            .get(&connection)
            .is_some_and(|connection| connection.denied)
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
            if listed && connection.denied {
                tracing::info!(peer = %connection.peer, remote = %connection.remote, %file, "peer added to the authorized peers file: closing its denied connection so it reconnects to a relay that serves it");
                self.to_close.push_back((connection.peer, *id));
            } else if !listed && !connection.denied {
                tracing::info!(peer = %connection.peer, remote = %connection.remote, %file, "peer removed from the authorized peers file: closing its connection, which ends its reservation and circuits");
                self.to_close.push_back((connection.peer, *id));
            }
        }
    }

    fn on_denial(&mut self, peer: PeerId, connection: ConnectionId, denial: Denial) {
        let Some(access) = self.access.clone() else {
            return;
        };
        let file = access.peers.path().display().to_string();
        let remote = self
            .connections
            .get(&connection)
            .map(|connection| connection.remote.to_string())
            .unwrap_or_default();
        match denial {
            Denial::Denied(Request::Reserve) => {
                tracing::info!(%peer, %remote, %file, "reservation denied (PERMISSION_DENIED): peer is not in the authorized peers file");
            }
            Denial::Denied(Request::Connect { dst }) => {
                let dst = dst.map(|dst| dst.to_string()).unwrap_or_default();
                tracing::info!(%peer, %dst, %remote, %file, "circuit denied (PERMISSION_DENIED): source peer is not in the authorized peers file");
            }
            Denial::Failed(reason) => {
                tracing::debug!(%peer, %remote, %reason, "hop stream of a denied peer failed");
            }
            Denial::Dropped => {
                tracing::debug!(%peer, %remote, "too many hop streams at once from a denied peer: stream dropped");
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
    type ConnectionHandler = Either<THandler<relay::Behaviour>, DenyHop>;
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
        // `libp2p-relay` never learns of denied connections: it would
        // otherwise address its handler there, which is not running.
        match &event {
            FromSwarm::ConnectionEstablished(established)
                if self.is_denied(established.connection_id) =>
            {
                return;
            }
            FromSwarm::ConnectionClosed(closed) => {
                if let Some(connection) = self.connections.remove(&closed.connection_id)
                    && connection.denied
                {
                    return;
                }
            }
            FromSwarm::AddressChange(change) if self.is_denied(change.connection_id) => return,
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
            Either::Left(event) => {
                self.relay
                    .on_connection_handler_event(peer_id, connection_id, event)
            }
            Either::Right(denial) => self.on_denial(peer_id, connection_id, denial),
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
        loop {
            let action = match self.relay.poll(cx) {
                Poll::Ready(action) => action,
                Poll::Pending => return Poll::Pending,
            };
            if let ToSwarm::NotifyHandler {
                handler: NotifyHandler::One(connection),
                ..
            } = &action
                && self.is_denied(*connection)
            {
                // Not reachable: `libp2p-relay` only addresses connections
                // it was told of. Dropped rather than sent to the wrong
                // handler, which would panic.
                tracing::warn!(?connection, "relay event for a denied connection dropped");
                continue;
            }
            return Poll::Ready(action.map_in(Either::Left));
        }
    }
}
