//! What the chat network behaviour reports, in this peer's events; chat
//! sent by the user; and dialing a peer again whose relayed connection
//! ended.

use chat_network::{Event as NetworkEvent, SendError, Sent, dial::dials_first};
use chat_protocol::report::describe_error;
use libp2p::{
    PeerId,
    multiaddr::Protocol,
    swarm::dial_opts::{DialOpts, PeerCondition},
};

use super::Node;
use crate::{events::Event, names::short};

impl Node {
    /// `peer`'s last connection, a relayed one, ended: a circuit reached
    /// the relay's duration or byte limit (2 minutes, 1 MiB by default),
    /// or the relay lost one side. A peer still in the book is dialed
    /// again at once by the side that dials first (the dial rule), so a
    /// pair that cannot go direct is back on a fresh circuit within a
    /// round trip, not at the next announcement; a peer that has gone
    /// fails the dial and is forgotten when its record expires.
    ///
    /// The dial goes through the relay this peer uses (the one circuit the
    /// dial rule allows) and only asks that the peer be disconnected: a
    /// hole punch that cannot succeed (symmetric NATs) may still be
    /// dialing it for seconds, and the chat network's dial, which also
    /// waits for that, would be dropped.
    pub(super) fn redial_after_relayed(&mut self, peer: PeerId, reason: String) {
        let known = self.swarm.behaviour().network.peer(&peer).is_some();
        if !known || !dials_first(self.swarm.local_peer_id(), &peer) {
            return;
        }
        let circuit = self
            .relay_addr
            .clone()
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(peer));
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![circuit])
            .condition(PeerCondition::Disconnected)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => self.emit(Event::Redialing { peer, reason }),
            Err(error) => tracing::debug!(%peer, %error, "no redial"),
        }
    }

    pub(super) fn send_chat(&mut self, text: String) {
        let result = self.swarm.behaviour_mut().network.send_chat(text.clone());
        match result {
            Ok(Sent::Published) => self.emit(Event::Chat {
                from: *self.swarm.local_peer_id(),
                text,
                own: true,
            }),
            // Published once the relayed connections closed (`ChatSent`).
            Ok(Sent::Held) => tracing::debug!("message waits for relayed connections to close"),
            Err(error) => self.emit(Event::ChatNotSent {
                text,
                reason: not_sent_reason(&error),
            }),
        }
    }

    pub(super) fn on_network_event(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::Discovered {
                peer, announced, ..
            } => {
                tracing::info!(peer = %short(&peer), addrs = announced.len(), "discovered");
                self.emit(Event::Discovered {
                    peer,
                    addrs: announced,
                });
            }
            NetworkEvent::PeerGone { peer } => {
                self.punch_settled(&peer);
                self.emit(Event::PeerGone { peer });
            }
            NetworkEvent::Rejected {
                propagation_source,
                error,
            } => {
                tracing::warn!(from = %propagation_source, error = %describe_error(&error), "rejected a gossip message");
            }
            NetworkEvent::ClosingRelayed { peer } => {
                tracing::debug!(peer = %short(&peer), "closing a relayed connection: the peer is reached directly");
            }
            NetworkEvent::Chat { from, text, .. } => {
                let own = false;
                self.emit(Event::Chat { from, text, own });
            }
            // A message held while relayed connections closed.
            NetworkEvent::ChatSent { text } => {
                let from = *self.swarm.local_peer_id();
                self.emit(Event::Chat {
                    from,
                    text,
                    own: true,
                });
            }
            NetworkEvent::ChatNotSent { text, error } => {
                let reason = not_sent_reason(&error);
                self.emit(Event::ChatNotSent { text, reason });
            }
            NetworkEvent::Located { peer, relay } => {
                tracing::info!(peer = %short(&peer), relay = %short(&relay), "located");
                self.emit(Event::Located { peer, relay });
            }
            NetworkEvent::LocateFailed { peer, error } => self.locate_failed(peer, error),
            // chat-peer closes silent connections itself (`pings`).
            NetworkEvent::PeerChanged(_) | NetworkEvent::LinkDead { .. } => {}
        }
    }
}

/// What the terminal says of a message that was not sent.
fn not_sent_reason(error: &SendError) -> String {
    match error {
        SendError::NoPeers => "nobody to send it to yet: not connected to the relay".to_owned(),
        error => describe_error(error),
    }
}
