//! Two behaviours as one, with the first's connection handler only.
//!
//! A behaviour whose handler is `dummy::ConnectionHandler` (a policy such
//! as [`crate::upgrade`], which acts on swarm events alone) still puts a
//! handler in every connection's chain when it is a field of a derived
//! behaviour, and each handler in that chain instantiates the swarm's
//! generic connection code again: in the page that is kilobytes of wasm
//! for a handler that does nothing. [`Alongside`] runs such a behaviour
//! next to one with a real handler: every call goes to both, in order
//! (the first, then the second, as a derived behaviour would), and the
//! connection gets the first's handler alone.

use std::task::{Context, Poll};

use libp2p_core::{Endpoint, Multiaddr, PeerId, transport::PortUse};
use libp2p_swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

/// `first`'s handler serves each connection; `second` sees every swarm
/// event and acts through `poll`, and has no handler.
#[derive(Debug)]
pub struct Alongside<A, B> {
    pub first: A,
    pub second: B,
}

/// What either behaviour reports.
#[derive(Debug)]
pub enum Event<A, B> {
    First(A),
    Second(B),
}

impl<A, B> NetworkBehaviour for Alongside<A, B>
where
    A: NetworkBehaviour,
    B: NetworkBehaviour<ConnectionHandler = dummy::ConnectionHandler>,
{
    type ConnectionHandler = A::ConnectionHandler;
    type ToSwarm = Event<A::ToSwarm, B::ToSwarm>;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.first
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)?;
        self.second
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let handler = self.first.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        self.second.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        Ok(handler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let mut found = self.first.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?;
        found.extend(self.second.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?);
        Ok(found)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let handler = self.first.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        self.second.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        Ok(handler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.first.on_swarm_event(event);
        self.second.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.first
            .on_connection_handler_event(peer, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Poll::Ready(action) = self.first.poll(cx) {
            return Poll::Ready(action.map_out(Event::First));
        }
        self.second.poll(cx).map(|action| {
            action
                .map_out(Event::Second)
                // A dummy handler takes no event: nothing to send it.
                .map_in(|never| match never {})
        })
    }
}
