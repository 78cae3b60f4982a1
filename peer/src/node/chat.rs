//! What the chat network behaviour reports, in this peer's events; and
//! chat sent by the user.

use chat_network::{Event as NetworkEvent, SendError, Sent};
use chat_protocol::report::describe_error;

use super::Node;
use crate::{events::Event, names::short};

impl Node {
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
            NetworkEvent::PeerGone { peer } => self.emit(Event::PeerGone { peer }),
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
