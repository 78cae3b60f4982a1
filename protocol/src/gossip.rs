//! The gossipsub every peer of the network runs, page and native alike.
//!
//! What must match the relay and the other peers: messages signed by their
//! author and checked strictly, the default message id, and validation left
//! to the application (each peer accepts or rejects every message, so that
//! gossipsub forwards only what passed). One place builds it so the page and
//! the native peer cannot drift apart.

use std::time::Duration;

use libp2p::{gossipsub, identity::Keypair};

/// How long a published message may wait for a stream before gossipsub
/// drops it: a fresh connection's first stream (a WebRTC data channel takes
/// a round trip or two) can take longer than the default 5 s on a slow link.
pub const PUBLISH_QUEUE_DURATION: Duration = Duration::from_secs(30);

/// Why a peer's gossipsub could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error("invalid gossipsub configuration")]
    Config(#[source] gossipsub::ConfigBuilderError),
    #[error("cannot build gossipsub: {0}")]
    Behaviour(&'static str),
}

/// The gossipsub behaviour of a peer with identity `keypair`.
pub fn peer_behaviour(keypair: &Keypair) -> Result<gossipsub::Behaviour, GossipError> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .publish_queue_duration(PUBLISH_QUEUE_DURATION)
        .build()
        .map_err(GossipError::Config)?;
    gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(keypair.clone()),
        config,
    )
    .map_err(GossipError::Behaviour)
}
