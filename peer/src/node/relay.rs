//! Staying connected to the relay (reconnecting with backoff), holding a
//! reservation on it, and noticing a relay connection that went silent.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use libp2p::{multiaddr::Protocol, swarm::ConnectionId};

use super::Node;
use crate::events::Event;

pub(super) const RELAY_BACKOFF_MIN: Duration = Duration::from_secs(1);
const RELAY_BACKOFF_MAX: Duration = Duration::from_secs(15);

/// When each connection to the relay was last heard from: established, or
/// a ping answered. A laptop whose address changed, or whose NAT forgot
/// its mapping, keeps a connection that nothing comes back on: TCP says
/// nothing for minutes, and libp2p's ping reports a failure but closes
/// nothing. Without this the peer would wait on that connection and never
/// reconnect, reserve again or re-announce.
#[derive(Debug, Default)]
pub(super) struct RelayLiveness {
    /// At most the connections to one peer (the swarm's per-peer limit).
    heard: HashMap<ConnectionId, Instant>,
}

impl RelayLiveness {
    pub(super) fn heard(&mut self, connection: ConnectionId, at: Instant) {
        self.heard.insert(connection, at);
    }

    pub(super) fn closed(&mut self, connection: ConnectionId) {
        self.heard.remove(&connection);
    }

    /// The connections not heard from for `silence` as of `now`.
    pub(super) fn silent(&self, now: Instant, silence: Duration) -> Vec<ConnectionId> {
        self.heard
            .iter()
            .filter(|(_, heard)| now.saturating_duration_since(**heard) > silence)
            .map(|(connection, _)| *connection)
            .collect()
    }
}

impl Node {
    pub(super) fn dial_relay(&mut self) {
        if self.swarm.is_connected(&self.relay_id) {
            return self.reserve();
        }
        tracing::info!(relay = %self.relay_addr, "dialing the relay");
        if let Err(error) = self.swarm.dial(self.relay_addr.clone()) {
            self.relay_unreachable(error.to_string());
        }
    }

    pub(super) fn relay_unreachable(&mut self, reason: String) {
        let retry_in = self.relay_backoff;
        self.relay_backoff = (self.relay_backoff * 2).min(RELAY_BACKOFF_MAX);
        self.relay_retry.arm(retry_in);
        self.emit(Event::RelayLost { reason, retry_in });
    }

    /// Asks the relay for a reservation by listening on its circuit address.
    pub(super) fn reserve(&mut self) {
        if self.circuit_listener.is_some() {
            return;
        }
        let circuit = self.relay_addr.clone().with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit) {
            Ok(id) => self.circuit_listener = Some(id),
            Err(error) => {
                let reason = error.to_string();
                self.emit(Event::ReservationRefused { reason });
            }
        }
    }

    /// Closes the relay connections whose pings went unanswered for
    /// [`Node::link_silence`]; the last one closing makes the node dial
    /// the relay again (`ConnectionClosed`), whose fresh connection gets a
    /// new reservation and a new announcement.
    pub(super) fn close_silent_relay_connections(&mut self) {
        for connection in self
            .relay_liveness
            .silent(Instant::now(), self.link_silence)
        {
            // Forgotten now: closing takes a moment, and one close is enough.
            self.relay_liveness.closed(connection);
            if self.swarm.close_connection(connection) {
                tracing::info!(
                    %connection,
                    silence = ?self.link_silence,
                    "closing the relay connection: its pings go unanswered"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_connection_is_silent_once_unheard_for_longer_than_the_bound() {
        let mut liveness = RelayLiveness::default();
        let connection = ConnectionId::new_unchecked(7);
        let start = Instant::now();
        let silence = Duration::from_secs(5);
        liveness.heard(connection, start);
        assert!(liveness.silent(start + silence, silence).is_empty());
        assert_eq!(
            liveness.silent(start + silence + Duration::from_millis(1), silence),
            vec![connection]
        );
        liveness.heard(connection, start + silence);
        assert!(
            liveness
                .silent(start + silence + Duration::from_secs(1), silence)
                .is_empty()
        );
        liveness.closed(connection);
        assert!(liveness.silent(start + silence * 9, silence).is_empty());
    }
}
