//! Chat on the page's topic: publishing what the user types, and passing
//! on the messages that validate.

use chat_protocol::{ChatMessage, topics};
use libp2p::{
    PeerId,
    gossipsub::{self, IdentTopic, MessageAcceptance},
};

use super::Node;
use crate::events::Event;

impl Node {
    pub(super) fn send_chat(&mut self, text: String) {
        let message = match ChatMessage::new(text.clone()) {
            Ok(message) => message,
            Err(error) => {
                let reason = error.to_string();
                return self.emit(Event::ChatNotSent { text, reason });
            }
        };
        let result = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(topics::CHAT), message.into_bytes());
        if result.is_ok() {
            self.swarm.behaviour_mut().wake.wake_all();
        }
        let event = match result {
            Ok(_) => Event::Chat {
                from: *self.swarm.local_peer_id(),
                text,
                own: true,
            },
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Event::ChatNotSent {
                text,
                reason: "nobody to send it to yet: not connected to the relay".to_owned(),
            },
            Err(error) => Event::ChatNotSent {
                text,
                reason: format!("not sent: {error}"),
            },
        };
        self.emit(event);
    }

    /// A message on the chat topic: valid text from a known source, or
    /// rejected.
    pub(super) fn on_chat_message(
        &mut self,
        propagation_source: &PeerId,
        message: &gossipsub::Message,
    ) -> MessageAcceptance {
        match (ChatMessage::decode(&message.data), message.source) {
            (Ok(chat), Some(from)) => {
                self.emit(Event::Chat {
                    from,
                    text: chat.text().to_owned(),
                    own: false,
                });
                MessageAcceptance::Accept
            }
            (Err(error), _) => {
                tracing::warn!(from = %propagation_source, %error, "rejected a chat message");
                MessageAcceptance::Reject
            }
            (Ok(_), None) => MessageAcceptance::Reject,
        }
    }
}
