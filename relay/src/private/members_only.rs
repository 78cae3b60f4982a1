//! Private relay mode for behaviours other than the relay itself: a
//! behaviour wrapped in [`MembersOnly`] serves the connections of peers
//! listed in the authorized peers file, and guests' connections get no
//! handler of it at all (they see the protocol as unsupported).
//!
//! The relay wraps gossipsub (a guest neither receives discovery records
//! nor chat, nor may it publish) and AutoNAT (a guest gets no dial-backs).
//! Guests keep what [`crate::private::authorized_relay`] gives them: circuits to
//! listed peers, when allowed.
//!
//! Like [`crate::private::authorized_relay`], a connection's handler is chosen when
//! it is established; when the file changes, that behaviour closes the
//! connections whose side changed, and the peer's next connection gets the
//! right handler here too.

use std::{
    collections::{HashMap, HashSet},
    task::{Context, Poll},
};

use either::Either;
use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm, behaviour::ConnectionEstablished, dummy,
    },
};

use crate::private::authorized_peers::AuthorizedPeers;

/// `inner`, served only to listed peers when `members` is set.
pub struct MembersOnly<B> {
    inner: B,
    members: Option<AuthorizedPeers>,
    /// Served too in private relay mode: the federation's relays, for
    /// gossip.
    also: Option<AuthorizedPeers>,
    /// Guests' connections, which `inner` never hears of. Bounded by the
    /// swarm's connection limits.
    guests: HashSet<ConnectionId>,
    /// Connections `inner` knows of, per peer, so that the counts it is
    /// told leave guests' connections out.
    served: HashMap<PeerId, usize>,
}

impl<B> std::fmt::Debug for MembersOnly<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembersOnly")
            .field("private", &self.members.is_some())
            .field("guests", &self.guests.len())
            .finish()
    }
}

impl<B> MembersOnly<B> {
    /// `members`: `None` serves everyone (an open relay).
    pub fn new(inner: B, members: Option<AuthorizedPeers>) -> Self {
        Self {
            inner,
            members,
            also: None,
            guests: HashSet::new(),
            served: HashMap::new(),
        }
    }

    /// Serves the peers in `also` too, when `members` is set.
    pub fn also_serving(mut self, also: Option<AuthorizedPeers>) -> Self {
        self.also = also;
        self
    }

    fn is_guest(&self, peer: &PeerId) -> bool {
        self.members.as_ref().is_some_and(|members| {
            !members.is_authorized(peer)
                && !self
                    .also
                    .as_ref()
                    .is_some_and(|also| also.is_authorized(peer))
        })
    }

    fn handler(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        inner: impl FnOnce(&mut B) -> Result<THandler<B>, ConnectionDenied>,
    ) -> Result<THandler<Self>, ConnectionDenied>
    where
        B: NetworkBehaviour,
    {
        if self.is_guest(&peer) {
            self.guests.insert(connection);
            return Ok(Either::Right(dummy::ConnectionHandler));
        }
        inner(&mut self.inner).map(Either::Left)
    }
}

impl<B> std::ops::Deref for MembersOnly<B> {
    type Target = B;

    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> std::ops::DerefMut for MembersOnly<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for MembersOnly<B> {
    type ConnectionHandler = Either<THandler<B>, dummy::ConnectionHandler>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.handler(connection_id, peer, |inner| {
            inner.handle_established_inbound_connection(
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
        self.inner.handle_pending_outbound_connection(
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
        self.handler(connection_id, peer, |inner| {
            inner.handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
        })
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(established) => {
                if self.guests.contains(&established.connection_id) {
                    return;
                }
                let served = self.served.entry(established.peer_id).or_default();
                let other_established = *served;
                *served += 1;
                self.inner.on_swarm_event(FromSwarm::ConnectionEstablished(
                    ConnectionEstablished {
                        other_established,
                        ..established
                    },
                ));
            }
            FromSwarm::ConnectionClosed(closed) => {
                if self.guests.remove(&closed.connection_id) {
                    return;
                }
                let remaining_established = match self.served.get_mut(&closed.peer_id) {
                    Some(served) => {
                        *served = served.saturating_sub(1);
                        *served
                    }
                    None => 0,
                };
                if remaining_established == 0 {
                    self.served.remove(&closed.peer_id);
                }
                self.inner
                    .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                        remaining_established,
                        ..closed
                    }));
            }
            FromSwarm::AddressChange(change) if self.guests.contains(&change.connection_id) => {}
            event => self.inner.on_swarm_event(event),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(event) => {
                self.inner
                    .on_connection_handler_event(peer_id, connection_id, event)
            }
            Either::Right(never) => libp2p::core::util::unreachable(never),
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        // `inner` addresses only connections it was told of, none a guest's.
        self.inner
            .poll(cx)
            .map(|action| action.map_in(Either::Left))
    }
}
