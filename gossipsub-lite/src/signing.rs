//! Message signing and strict validation (libp2p specs, pubsub/README.md,
//! "Message Signing"), and the message id.
//!
//! The signature covers `"libp2p-pubsub:"` followed by the protobuf
//! encoding of the message without its `signature` and `key` fields. The
//! author's key is the one inlined in `from` (Ed25519 peer ids), or else
//! `key`, which must then match `from`.

use libp2p::{PeerId, identity::PublicKey};
use prost::Message as _;

use crate::{Message, MessageId, Topic, rpc};

const SIGNING_PREFIX: &[u8] = b"libp2p-pubsub:";

/// Why a received message is refused under strict validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("message has no topic")]
    NoTopic,
    #[error("message has no author (from)")]
    NoSource,
    #[error("message author is not a valid peer id")]
    BadSource,
    #[error("message sequence number is missing or not 8 bytes")]
    BadSeqno,
    #[error("message is not signed")]
    NoSignature,
    #[error("message key is not a valid public key")]
    BadKey,
    #[error("message key does not belong to its author")]
    KeyMismatch,
    #[error("message author's key is neither inlined in its peer id nor attached")]
    NoKey,
    #[error("message signature is invalid")]
    BadSignature,
}

/// The bytes a signature covers.
fn signed_bytes(message: &rpc::Message) -> Vec<u8> {
    let unsigned = rpc::Message {
        signature: None,
        key: None,
        ..message.clone()
    };
    let mut bytes = SIGNING_PREFIX.to_vec();
    unsigned.encode(&mut bytes).expect("a Vec grows as needed");
    bytes
}

/// The public key inlined in an identity-multihash peer id, if any.
fn inlined_key(peer: &PeerId) -> Option<PublicKey> {
    let multihash = peer.as_ref();
    // Code 0 is the identity hash: the digest is the encoded key.
    (multihash.code() == 0)
        .then(|| PublicKey::try_decode_protobuf(multihash.digest()).ok())
        .flatten()
}

/// Signs `message` (with `from` and `seqno` set) as `keypair`, attaching
/// the key when the peer id does not inline it.
pub fn sign(
    keypair: &libp2p::identity::Keypair,
    message: &mut rpc::Message,
) -> Result<(), libp2p::identity::SigningError> {
    message.signature = Some(keypair.sign(&signed_bytes(message))?);
    let public = keypair.public();
    message.key = inlined_key(&public.to_peer_id())
        .is_none()
        .then(|| public.encode_protobuf());
    Ok(())
}

/// Checks `message` strictly and returns what the application sees.
pub fn verify(message: &rpc::Message) -> Result<Message, ValidationError> {
    let topic = message.topic.as_ref().ok_or(ValidationError::NoTopic)?;
    let from = message.from.as_ref().ok_or(ValidationError::NoSource)?;
    let source = PeerId::from_bytes(from).map_err(|_| ValidationError::BadSource)?;
    let seqno: [u8; 8] = message
        .seqno
        .as_deref()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(ValidationError::BadSeqno)?;
    let signature = message
        .signature
        .as_ref()
        .ok_or(ValidationError::NoSignature)?;
    let key = match &message.key {
        Some(key) => {
            let key = PublicKey::try_decode_protobuf(key).map_err(|_| ValidationError::BadKey)?;
            if key.to_peer_id() != source {
                return Err(ValidationError::KeyMismatch);
            }
            key
        }
        None => inlined_key(&source).ok_or(ValidationError::NoKey)?,
    };
    if !key.verify(&signed_bytes(message), signature) {
        return Err(ValidationError::BadSignature);
    }
    Ok(Message {
        source,
        data: message.data.clone().unwrap_or_default(),
        sequence_number: u64::from_be_bytes(seqno),
        topic: Topic::new(topic.clone()),
    })
}

/// rust-libp2p's default message id, so that ids in IHAVE/IWANT mean the
/// same to the relay: the author's base58 peer id followed by the decimal
/// sequence number.
pub fn message_id(source: &PeerId, sequence_number: u64) -> MessageId {
    MessageId(format!("{}{}", source.to_base58(), sequence_number).into_bytes())
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn signed(keypair: &Keypair) -> rpc::Message {
        let mut message = rpc::Message {
            from: Some(keypair.public().to_peer_id().to_bytes()),
            data: Some(b"hello".to_vec()),
            seqno: Some(42u64.to_be_bytes().to_vec()),
            topic: Some("chat".into()),
            signature: None,
            key: None,
        };
        sign(keypair, &mut message).expect("sign");
        message
    }

    #[test]
    fn signed_messages_verify() {
        let keypair = Keypair::generate_ed25519();
        let message = signed(&keypair);
        assert_eq!(
            message.key, None,
            "an Ed25519 key is inlined in the peer id"
        );
        let checked = verify(&message).expect("valid");
        assert_eq!(checked.source, keypair.public().to_peer_id());
        assert_eq!(checked.sequence_number, 42);
        assert_eq!(checked.data, b"hello");
    }

    #[test]
    fn tampering_is_caught() {
        let keypair = Keypair::generate_ed25519();
        let good = signed(&keypair);
        let mut data = good.clone();
        data.data = Some(b"hellO".to_vec());
        assert_eq!(verify(&data), Err(ValidationError::BadSignature));
        let mut topic = good.clone();
        topic.topic = Some("other".into());
        assert_eq!(verify(&topic), Err(ValidationError::BadSignature));
        let mut unsigned = good.clone();
        unsigned.signature = None;
        assert_eq!(verify(&unsigned), Err(ValidationError::NoSignature));
        let mut short_seqno = good.clone();
        short_seqno.seqno = Some(vec![1]);
        assert_eq!(verify(&short_seqno), Err(ValidationError::BadSeqno));
        let mut no_from = good.clone();
        no_from.from = None;
        assert_eq!(verify(&no_from), Err(ValidationError::NoSource));
        // Another author's key attached.
        let mut other_key = good.clone();
        other_key.key = Some(Keypair::generate_ed25519().public().encode_protobuf());
        assert_eq!(verify(&other_key), Err(ValidationError::KeyMismatch));
        // Another author claimed.
        let mut other_from = good;
        other_from.from = Some(Keypair::generate_ed25519().public().to_peer_id().to_bytes());
        assert_eq!(verify(&other_from), Err(ValidationError::BadSignature));
    }

    #[test]
    fn message_id_is_rust_libp2ps_default() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(
            message_id(&peer, 1234).0,
            format!("{}1234", peer.to_base58()).into_bytes()
        );
    }
}
