//! The client's behaviour: no handler, no I/O. It watches the connections
//! of the relays listened through, names a relay's address when
//! libp2p-stream dials it, and hands the swarm what the transport reports.

use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use libp2p_core::{Endpoint, Multiaddr, transport::PortUse};
use libp2p_identity::PeerId;
use libp2p_swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

use crate::{Event, Shared};

pub struct Behaviour {
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour").finish_non_exhaustive()
    }
}

impl Behaviour {
    pub(crate) fn new(shared: Arc<Mutex<Shared>>) -> Self {
        Self { shared }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    /// libp2p-stream dials a relay by its peer id alone: the address the
    /// circuit or listen address named is where.
    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        maybe_peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let Some(peer) = maybe_peer else {
            return Ok(Vec::new());
        };
        let shared = Shared::lock(&self.shared);
        Ok(shared
            .dial_hints
            .iter()
            .filter(|(relay, _)| *relay == peer)
            .map(|(_, addr)| addr.clone())
            .collect())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Shared::lock(&self.shared)
            .dial_hints
            .retain(|(relay, _)| *relay != peer);
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        let FromSwarm::ConnectionClosed(closed) = event else {
            return;
        };
        let mut shared = Shared::lock(&self.shared);
        if !shared.watched.contains(&closed.peer_id) {
            return;
        }
        let last = closed.remaining_established == 0;
        // One entry a relay: the transport reads them all at once.
        match shared
            .closed
            .iter_mut()
            .find(|(relay, _)| *relay == closed.peer_id)
        {
            Some((_, was_last)) => *was_last = last,
            None => shared.closed.push((closed.peer_id, last)),
        }
        if let Some(waker) = shared.transport_waker.take() {
            waker.wake();
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        let mut shared = Shared::lock(&self.shared);
        match shared.reports.pop_front() {
            Some(report) => Poll::Ready(report),
            None => {
                shared.behaviour_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
