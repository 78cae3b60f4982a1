//! One decoder for every gossip message the network carries: it picks the
//! codec by topic, so the relay, the page and chat-peer read a message the
//! same way, once.

use libp2p::{
    PeerId,
    gossipsub::{self, IdentTopic, TopicHash},
};

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
    UnknownTopic(TopicHash),
}

impl Inbound {
    /// Decodes `message` by its topic.
    pub fn decode(message: &gossipsub::Message) -> Result<Self, InboundError> {
        let topic = &message.topic;
        if *topic == IdentTopic::new(topics::DISCOVERY).hash() {
            PeerRecord::decode_signed(&message.data, message.source.as_ref())
                .map(Inbound::Record)
                .map_err(InboundError::Record)
        } else if *topic == IdentTopic::new(topics::CHAT).hash() {
            let message_ = ChatMessage::decode(&message.data).map_err(InboundError::Chat)?;
            let from = message.source.ok_or(InboundError::UnsignedChat)?;
            Ok(Inbound::Chat {
                from,
                message: message_,
            })
        } else {
            Err(InboundError::UnknownTopic(topic.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn message(topic: &str, source: Option<PeerId>, data: Vec<u8>) -> gossipsub::Message {
        gossipsub::Message {
            source,
            data,
            sequence_number: Some(1),
            topic: IdentTopic::new(topic).hash(),
        }
    }

    #[test]
    fn each_topic_gets_its_codec() {
        let key = Keypair::generate_ed25519();
        let record = PeerRecord::new(key.public(), vec![]).expect("valid");
        let peer = record.peer_id();
        assert_eq!(
            Inbound::decode(&message(topics::DISCOVERY, Some(peer), record.encode())),
            Ok(Inbound::Record(record))
        );
        assert_eq!(
            Inbound::decode(&message(topics::CHAT, Some(peer), b"hi".to_vec())),
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
            Inbound::decode(&message(topics::DISCOVERY, Some(peer), vec![0xff; 8])),
            Err(InboundError::Record(_))
        ));
        assert!(matches!(
            Inbound::decode(&message(topics::CHAT, Some(peer), vec![0xff])),
            Err(InboundError::Chat(ChatError::NotUtf8))
        ));
        assert_eq!(
            Inbound::decode(&message(topics::CHAT, None, b"hi".to_vec())),
            Err(InboundError::UnsignedChat)
        );
        assert!(matches!(
            Inbound::decode(&message("other", Some(peer), b"hi".to_vec())),
            Err(InboundError::UnknownTopic(_))
        ));
    }
}
