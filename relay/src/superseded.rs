//! A peer that connects again while the relay still holds its previous
//! connection: the old one is closed and the new one refused, so that the
//! peer's next attempt, a moment later, is its only connection.
//!
//! A peer that restarts with the same key, or whose network changed,
//! leaves its old connection behind without a goodbye the relay can hear:
//! QUIC keeps it until its idle timeout, TCP over a dead path for minutes.
//! Taken as a second connection, the new one is half served:
//!
//! - gossipsub sends its subscriptions to a peer only on the peer's first
//!   connection (rust-libp2p#5097), so the returning peer never learns
//!   that the relay forwards the project's topics and cannot publish to
//!   it (its discovery record reaches nobody); and the messages gossipsub
//!   queues for the peer go to whichever of its connections takes them
//!   first, the dead one included;
//! - the relay may route a circuit to the peer over the dead connection's
//!   reservation.
//!
//! Refusing the new connection (rather than keeping it and closing the
//! old) is what makes every behaviour see a first connection again: the
//! swarm calls each behaviour as the connection is established, and one
//! denial keeps the others from hearing of it.
//!
//! A live old connection is possible too (two processes or tabs with one
//! identity). Such peers would take turns closing each other's
//! connection, so an old connection younger than [`MIN_AGE`] is left
//! alone: after one round both reconnect within a second of each other and
//! stand side by side, as they did before this rule.

use std::{
    collections::HashMap,
    collections::VecDeque,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm, behaviour::ConnectionEstablished, dummy,
    },
};

use crate::refusals::Refusals;

/// An inbound connection younger than this is not taken for a stale one.
pub const MIN_AGE: Duration = Duration::from_secs(2);

/// The refusal kind counted in `relay_refusals_total{kind}`.
const KIND: &str = "superseded-connection";

/// Closes a peer's older inbound connections when it connects again, and
/// refuses that new connection (see the module's docs).
#[derive(Debug)]
pub struct SupersededConnections {
    /// Established inbound connections, per peer, with when each came.
    /// Bounded by the swarm's connection limits.
    inbound: HashMap<PeerId, Vec<(ConnectionId, Instant)>>,
    to_close: VecDeque<(PeerId, ConnectionId)>,
    refusals: Refusals,
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("peer {peer} connected again while its previous connection stood; closing that one")]
pub struct Superseded {
    peer: PeerId,
}

impl SupersededConnections {
    pub fn new(refusals: Refusals) -> Self {
        Self {
            inbound: HashMap::new(),
            to_close: VecDeque::new(),
            refusals,
        }
    }

    /// The stale connections of `peer` as of `now`, if a new connection
    /// from it would supersede them.
    fn stale(&self, peer: &PeerId, now: Instant) -> Vec<ConnectionId> {
        let Some(connections) = self.inbound.get(peer) else {
            return Vec::new();
        };
        if connections
            .iter()
            .any(|(_, since)| now.saturating_duration_since(*since) < MIN_AGE)
        {
            return Vec::new();
        }
        connections.iter().map(|(id, _)| *id).collect()
    }
}

impl NetworkBehaviour for SupersededConnections {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let stale = self.stale(&peer, Instant::now());
        if stale.is_empty() {
            return Ok(dummy::ConnectionHandler);
        }
        self.refusals.refused(KIND, || {
            format!(
                "peer {peer} connected again from {remote_addr} while {} older connection(s) \
                 stood: closing them and refusing this one (its retry starts clean)",
                stale.len()
            )
        });
        self.to_close
            .extend(stale.into_iter().map(|connection| (peer, connection)));
        Err(ConnectionDenied::new(Superseded { peer }))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) if endpoint.is_listener() => {
                self.inbound
                    .entry(peer_id)
                    .or_default()
                    .push((connection_id, Instant::now()));
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => {
                if let Some(connections) = self.inbound.get_mut(&peer_id) {
                    connections.retain(|(id, _)| *id != connection_id);
                    if connections.is_empty() {
                        self.inbound.remove(&peer_id);
                    }
                }
            }
            _ => {}
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

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.to_close.pop_front() {
            Some((peer_id, connection)) => Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: libp2p::swarm::CloseConnection::One(connection),
            }),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_older_than_the_minimum_age_are_taken_for_stale() {
        let mut rule = SupersededConnections::new(Refusals::default());
        let peer = PeerId::random();
        let old = ConnectionId::new_unchecked(1);
        let now = Instant::now();
        assert!(
            rule.stale(&peer, now).is_empty(),
            "no connection, nothing stale"
        );

        rule.inbound.insert(peer, vec![(old, now)]);
        assert!(
            rule.stale(&peer, now + MIN_AGE / 2).is_empty(),
            "a young connection may be a live twin"
        );
        assert_eq!(rule.stale(&peer, now + MIN_AGE), vec![old]);

        let young = ConnectionId::new_unchecked(2);
        rule.inbound
            .get_mut(&peer)
            .expect("listed")
            .push((young, now + MIN_AGE));
        assert!(
            rule.stale(&peer, now + MIN_AGE).is_empty(),
            "a peer that connected again a moment ago is left alone"
        );
        assert!(rule.stale(&PeerId::random(), now + MIN_AGE).is_empty());
    }
}
