//! A lean gossipsub for leaf peers: `/meshsub/1.1.0` (and `1.0.0`, and
//! `1.2.0` with its IDONTWANT ignored: see [`handler::PROTOCOLS`]), written
//! from the libp2p specs (pubsub/README.md, gossipsub-v1.0.md and
//! gossipsub-v1.1.md) for the browser page, where rust-libp2p's
//! full router (peer scoring, IHAVE gossip, fanout, explicit peers) was the
//! largest protocol in the wasm.
//!
//! What it does, and how it stays a good peer for a router that scores it
//! (the relay runs rust-libp2p's gossipsub with peer scoring):
//! - messages signed by their author and checked strictly (the spec's
//!   signing rules), with rust-libp2p's default message id;
//! - our subscriptions sent on every new connection, each peer's tracked;
//! - a mesh per subscribed topic (D = 6, D_lo = 4, D_hi = 12) kept by a
//!   heartbeat with GRAFT and PRUNE; a PRUNE's backoff is honoured (no
//!   GRAFT before it ends, plus a heartbeat of slack), a GRAFT during our
//!   backoff (the bare one, no slack) is answered with PRUNE, a GRAFT or
//!   PRUNE for a topic we are not in is ignored (it records no backoff),
//!   and a GRAFT implies the peer's subscription; a peer's first
//!   subscription to our topic is answered with a GRAFT at once while the
//!   mesh is below D_lo, so that we are in a relay's mesh before anything
//!   we publish reaches it (see `Behaviour::graft_if_mesh_low`);
//! - our own messages flooded to every peer subscribed to the topic;
//!   others' forwarded to the mesh once the application accepts them.
//!
//! What it leaves out: peer scoring, IHAVE gossip of its own, answering
//! IWANT, fanout (publishing goes to every subscribed peer anyway) and
//! peer exchange. IWANT received is ignored, and there is no message
//! cache: an honest peer sends IWANT only after our IHAVE, which we never
//! send, so answering it would only serve a peer asking us to amplify.
//! IHAVE received on our topics is answered with an IWANT for the ids not
//! seen (at most [`behaviour::MAX_IWANT_IDS`] an RPC): a relay whose mesh
//! is full does not graft a newcomer, and offers it what it forwards only
//! by IHAVE until the newcomer's own GRAFT. Every map or queue a remote peer can grow has a bound
//! (the constants of [`behaviour`], [`handler`] and [`rpc`]).
//!
//! With several connections to one peer (a relayed one and the direct
//! one that replaces it) everything for the peer goes on one: a direct
//! connection before a relayed one, the newest first. See
//! [`Behaviour`].

pub mod behaviour;
mod cache;
pub mod handler;
pub mod rpc;
pub mod signing;

use libp2p::PeerId;

pub use behaviour::{Behaviour, Config, Event, PublishError};
pub use signing::ValidationError;

/// A topic: its name is its id on the wire (the identity "hash").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(String);

impl Topic {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message's id: see [`signing::message_id`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub Vec<u8>);

/// A received message, its signature checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The author, who signed it.
    pub source: PeerId,
    pub data: Vec<u8>,
    pub sequence_number: u64,
    pub topic: Topic,
}

/// The application's verdict on a message (see
/// [`Behaviour::report_message_validation_result`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid: forwarded to the mesh.
    Accept,
    /// Invalid: dropped.
    Reject,
    /// Not for us to judge: dropped, not forwarded.
    Ignore,
}
