//! The gossipsub every peer of the network runs, page and native alike:
//! gossipsub-lite (its crate docs say what it does and leaves out).
//!
//! What must match the relay and the other peers: messages signed by their
//! author and checked strictly, the default message id, and validation left
//! to the application (each peer accepts or rejects every message, so that
//! gossipsub forwards only what passed). gossipsub-lite does all three
//! always; a published message waits for a fresh connection's first stream
//! up to [`gossipsub_lite::handler::SEND_QUEUE_TTL`] (30 s, as
//! rust-libp2p's `publish_queue_duration` was set here). One place builds
//! it so the page and the native peer cannot drift apart.

use libp2p::identity::Keypair;

/// The gossipsub behaviour of a peer with identity `keypair`.
pub fn peer_behaviour(keypair: &Keypair) -> gossipsub_lite::Behaviour {
    gossipsub_lite::Behaviour::new(keypair.clone(), gossipsub_lite::Config::default())
}
