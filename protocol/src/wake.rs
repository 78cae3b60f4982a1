//! Wakes every connection's task, so that gossipsub's handler on it looks at
//! its send queue.
//!
//! Why: rust-libp2p's gossipsub (0.50) keeps one send queue per peer, shared
//! by all that peer's connections. A connection handler registers for
//! wake-ups on that queue only once it has an outbound stream, and it opens
//! one only when its connection task happens to poll it while the queue is
//! not empty. The handler of a second connection to a peer (the direct
//! WebRTC one, after the relayed one carried everything so far) therefore
//! sleeps through a publish: once the relayed connection is gone, a chat
//! message waited for the next unrelated event on the direct connection
//! (a ping, up to 5 s later). Sending an empty event to a handler of ours
//! on each connection makes the connection task poll all its handlers,
//! gossipsub's included, right after a publish.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    task::{Context, Poll, Waker},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse, upgrade::DeniedUpgrade},
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent,
        ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm,
        handler::{ConnectionEvent, FullyNegotiatedInbound, FullyNegotiatedOutbound},
    },
};

/// Knows the open connections and wakes them on request.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// One entry per open connection: bounded by the swarm's connections.
    connections: HashMap<ConnectionId, PeerId>,
    pending: VecDeque<(PeerId, ConnectionId)>,
    waker: Option<Waker>,
}

impl Behaviour {
    /// Wakes the task of every open connection.
    pub fn wake_all(&mut self) {
        self.pending.clear();
        self.pending.extend(
            self.connections
                .iter()
                .map(|(connection, peer)| (*peer, *connection)),
        );
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.connections.insert(connection, peer);
        Ok(Handler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.connections.insert(connection, peer);
        Ok(Handler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) = event {
            self.connections.remove(&connection_id);
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

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.pending.pop_front() {
            Some((peer_id, connection)) => Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: Wake,
            }),
            None => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The event that wakes a connection: it carries nothing.
#[derive(Debug, Clone, Copy)]
pub struct Wake;

/// Speaks no protocol and does not keep its connection alive; receiving
/// [`Wake`] is all it is for.
#[derive(Debug)]
pub struct Handler;

impl ConnectionHandler for Handler {
    type FromBehaviour = Wake;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn on_behaviour_event(&mut self, Wake: Wake) {}

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol, ..
            }) => match protocol {},
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol, ..
            }) => match protocol {},
            _ => {}
        }
    }
}
