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

use libp2p::{core::ConnectedPoint, identity::Keypair};

/// The gossipsub behaviour of a peer with identity `keypair`, which sends
/// a peer's traffic on a connection `is_direct` calls direct before a
/// relayed one (see [`gossipsub_lite::Config::is_direct`]).
pub fn peer_behaviour(
    keypair: &Keypair,
    is_direct: fn(&ConnectedPoint) -> bool,
) -> gossipsub_lite::Behaviour {
    let config = gossipsub_lite::Config {
        is_direct,
        ..gossipsub_lite::Config::default()
    };
    gossipsub_lite::Behaviour::new(keypair.clone(), config)
}
