//! Pings the user asks for (bounded, with a deadline), and connections
//! whose pings went unanswered.

use std::time::{Duration, Instant};

use libp2p::{PeerId, ping};

use super::Node;
use crate::events::Event;

/// Pings asked for and not yet answered, over all peers.
pub const MAX_PENDING_PINGS: usize = 16;
/// How long a ping asked for may take, dial included.
pub const PING_TIMEOUT: Duration = Duration::from_secs(30);
/// Slack over three ping intervals before a connection counts as dead (a
/// slow relayed round trip delays the next ping by as much).
const SILENCE_SLACK: Duration = Duration::from_secs(2);

/// How long a connection may go without a ping answer before it is closed
/// as dead: three missed pings plus [`SILENCE_SLACK`] (5 s at the default
/// 1 s interval).
pub fn link_silence(ping_interval: Duration) -> Duration {
    ping_interval * 3 + SILENCE_SLACK
}

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
            self.reach(peer);
        }
    }

    /// Dials `peer` through the relay its record names; a peer without a
    /// circuit this peer may dial (not discovered, or reserved on another
    /// relay of the federation) is looked up first: the relay says which
    /// relay holds its reservation, and the network dials through that
    /// one (`Located`).
    pub(super) fn reach(&mut self, peer: PeerId) {
        let network = &mut self.swarm.behaviour_mut().network;
        let has_circuit = network
            .peer(&peer)
            .is_some_and(|info| !info.addrs.is_empty());
        if has_circuit {
            network.dial(peer);
            return;
        }
        if let Err(error) = network.locate(self.relay_id, peer) {
            self.locate_failed(peer, error);
        }
    }

    /// A lookup gave no relay: a relay that does not answer lookups is
    /// tried as before (the circuit through it); otherwise a ping waiting
    /// for `peer` fails with the reason.
    pub(super) fn locate_failed(&mut self, peer: PeerId, error: chat_network::LocateError) {
        if matches!(error, chat_network::LocateError::Unsupported) {
            self.swarm.behaviour_mut().network.dial(peer);
            return;
        }
        let reason = format!(
            "cannot find it: {}",
            chat_protocol::report::describe_error(&error)
        );
        tracing::debug!(%peer, %reason, "lookup failed");
        if self.pings.remove(&peer).is_some() {
            self.emit(Event::PingFailed { peer, reason });
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

    /// A round trip measured by libp2p's ping on one connection: recorded
    /// for `/peers`, and reported if the user asked for it. libp2p pings
    /// every connection; while a relayed connection outlives the direct one
    /// (its grace, [`super::RELAYED_GRACE`]), only the direct one answers
    /// the user, so that the answer is the path chat takes from now on.
    pub(super) fn on_ping(&mut self, event: ping::Event) {
        let ping::Event {
            peer,
            connection,
            result,
        } = event;
        if peer == self.relay_id {
            if result.is_ok() {
                self.relay_liveness.heard(connection, Instant::now());
            }
            return;
        }
        let rtt = match result {
            Ok(rtt) => rtt,
            Err(error) => {
                return tracing::debug!(peer = %peer, %connection, %error, "ping failed");
            }
        };
        let network = &mut self.swarm.behaviour_mut().network;
        network.on_rtt(&peer, connection, rtt);
        let Some(path) = network.path_of(&peer, connection) else {
            return tracing::debug!(peer = %peer, %connection, "ping on a connection not in the book");
        };
        let best = network.peer(&peer).and_then(|info| info.path());
        if Some(path) == best && self.pings.remove(&peer).is_some() {
            self.emit(Event::Ping { peer, path, rtt });
        }
    }

    /// Closes the connections to peers whose pings went unanswered for
    /// [`link_silence`]: a peer that was killed, froze or lost its network
    /// says no goodbye, and its connections would otherwise pass for live
    /// ones until an idle or transport timeout (never, for TCP without
    /// traffic), keeping its entry `direct` with an old round trip and
    /// the peer from being dialed again when it comes back.
    pub(super) fn close_silent_connections(&mut self) {
        let silent = self
            .swarm
            .behaviour()
            .network
            .silent_connections(self.link_silence);
        for (peer, connection) in silent {
            if self.swarm.close_connection(connection) {
                tracing::info!(
                    peer = %peer,
                    %connection,
                    silence = ?self.link_silence,
                    "closing a connection whose pings go unanswered"
                );
            }
        }
    }
}
