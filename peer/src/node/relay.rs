//! Staying connected to the relay (reconnecting with backoff) and holding
//! a reservation on it.

use std::time::Duration;

use libp2p::multiaddr::Protocol;

use super::Node;
use crate::events::Event;

pub(super) const RELAY_BACKOFF_MIN: Duration = Duration::from_secs(1);
const RELAY_BACKOFF_MAX: Duration = Duration::from_secs(15);

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
}
