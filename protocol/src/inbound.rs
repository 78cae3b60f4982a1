//! One decoder for every gossip message the network carries: it picks the
//! codec by topic, so the relay, the page and chat-peer read a message the
//! same way, once.

use libp2p::PeerId;

use crate::{ChatError, ChatMessage, PeerRecord, RecordError, topics};

/// A gossip message of the network, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A discovery record, signed by the peer it describes.
    Record(PeerRecord),
    /// A chat message from its verified author.
    Chat { from: PeerId, message: ChatMessage },
}

/// Why a gossip message is not one of the network's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// The record's own error says what it is ("discovery record ...").
    #[error(transparent)]
    Record(RecordError),
    /// The message's own error says what it is ("chat message ...").
    #[error(transparent)]
    Chat(ChatError),
    #[error("chat message is not signed (gossipsub message without a source)")]
    UnsignedChat,
    #[error("topic {0} is not one of the network's")]
    UnknownTopic(String),
}

impl Inbound {
    /// Decodes a gossip message's `data` by its `topic` (the topic's name:
    /// the network's topics are identity-hashed), `source` being its
    /// verified author. The peers' gossipsub-lite and the relay's
    /// rust-libp2p gossipsub both hand their messages over this way.
    pub fn decode(topic: &str, source: Option<PeerId>, data: &[u8]) -> Result<Self, InboundError> {
        if topic == topics::DISCOVERY {
            PeerRecord::decode_signed(data, source.as_ref())
                .map(Inbound::Record)
                .map_err(InboundError::Record)
        } else if topic == topics::CHAT {
            let message = ChatMessage::decode(data).map_err(InboundError::Chat)?;
            let from = source.ok_or(InboundError::UnsignedChat)?;
            Ok(Inbound::Chat { from, message })
        } else {
            Err(InboundError::UnknownTopic(topic.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    #[test]
    fn each_topic_gets_its_codec() {
        let key = Keypair::generate_ed25519();
        let record = PeerRecord::new(key.public(), vec![]).expect("valid");
        let peer = record.peer_id();
        assert_eq!(
            Inbound::decode(topics::DISCOVERY, Some(peer), &record.encode()),
            Ok(Inbound::Record(record))
        );
        assert_eq!(
            Inbound::decode(topics::CHAT, Some(peer), b"hi"),
            Ok(Inbound::Chat {
                from: peer,
                message: ChatMessage::new("hi").expect("valid")
            })
        );
    }

    #[test]
    fn bad_messages_say_why() {
        let peer = PeerId::random();
        assert!(matches!(
            Inbound::decode(topics::DISCOVERY, Some(peer), &[0xff; 8]),
            Err(InboundError::Record(_))
        ));
        assert!(matches!(
            Inbound::decode(topics::CHAT, Some(peer), &[0xff]),
            Err(InboundError::Chat(ChatError::NotUtf8))
        ));
        assert_eq!(
            Inbound::decode(topics::CHAT, None, b"hi"),
            Err(InboundError::UnsignedChat)
        );
        assert!(matches!(
            Inbound::decode("other", Some(peer), b"hi"),
            Err(InboundError::UnknownTopic(_))
        ));
    }
}
