//! Pings the user asks for (bounded, with a deadline), and the path each
//! connection takes: once a peer is reached directly, its relayed
//! connections are closed.

use std::time::{Duration, Instant};

use libp2p::{PeerId, ping};

use super::Node;
use crate::events::{Event, Path};

/// Pings asked for and not yet answered, over all peers.
pub const MAX_PENDING_PINGS: usize = 16;
/// How long a ping asked for may take, dial included.
pub const PING_TIMEOUT: Duration = Duration::from_secs(30);

impl Node {
    pub(super) fn request_ping(&mut self, peer: PeerId) {
        if peer == *self.swarm.local_peer_id() || peer == self.relay_id {
            let reason = "pick another peer than this one or the relay".to_owned();
            return self.emit(Event::PingFailed { peer, reason });
        }
        if !self.pings.contains_key(&peer) && self.pings.len() >= MAX_PENDING_PINGS {
            let reason = format!("{MAX_PENDING_PINGS} pings are already waiting");
            return self.emit(Event::PingFailed { peer, reason });
        }
        self.pings.insert(peer, Instant::now());
        // Without the relay there is no circuit yet: the dial waits for it
        // (see `ConnectionEstablished`), or the relay client's own dial of
        // the relay would race ours and cancel the circuit.
        if !self.swarm.is_connected(&peer) && self.swarm.is_connected(&self.relay_id) {
            self.dial_peer(peer);
        }
    }

    pub(super) fn expire_pings(&mut self) {
        let now = Instant::now();
        let late: Vec<PeerId> = self
            .pings
            .iter()
            .filter(|(_, asked)| now.saturating_duration_since(**asked) > PING_TIMEOUT)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in late {
            self.pings.remove(&peer);
            let reason = format!("no answer within {PING_TIMEOUT:?}");
            self.emit(Event::PingFailed { peer, reason });
        }
    }

    /// A round trip measured by libp2p's ping: recorded for `/peers`, and
    /// reported if the user asked for it.
    pub(super) fn on_ping(&mut self, event: ping::Event) {
        let ping::Event {
            peer,
            connection,
            result,
        } = event;
        if peer == self.relay_id {
            return;
        }
        match result {
            Ok(rtt) => {
                self.book.on_rtt(&peer, rtt);
                if self.pings.remove(&peer).is_some() {
                    let path = self
                        .book
                        .path_of(&peer, connection)
                        .unwrap_or(Path::Relayed);
                    self.emit(Event::Ping { peer, path, rtt });
                }
            }
            Err(error) => tracing::debug!(peer = %peer, %error, "ping failed"),
        }
    }

    /// Once a peer is reached directly, its relayed connections only cost
    /// the relay: close them, for every peer that has a direct one.
    pub(super) fn close_relayed_to_direct_peers(&mut self) {
        let relayed: Vec<_> = self
            .book
            .ids()
            .filter_map(|peer| self.book.get(&peer))
            .filter(|entry| entry.path() == Some(Path::Direct))
            .flat_map(|entry| {
                entry
                    .connections
                    .iter()
                    .filter(|(_, path)| **path == Path::Relayed)
                    .map(|(id, _)| *id)
            })
            .collect();
        for connection in relayed {
            tracing::debug!(%connection, "closing a relayed connection");
            self.swarm.close_connection(connection);
        }
    }
}
