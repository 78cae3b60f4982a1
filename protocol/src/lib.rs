//! What every peer of the chat network and its relay agree on.
//!
//! The relay validates exactly what the browser publishes, so both sides
//! share this crate: it compiles for native targets and for wasm32 alike and
//! opens no sockets of its own (the perf functions run over a stream
//! their caller opened).
//!
//! - [`topics`]: the gossipsub topic names;
//! - [`discovery`]: the signed discovery record peers announce their
//!   addresses with (the record of libp2p's pubsub peer discovery, so
//!   js-libp2p peers read ours and we read theirs);
//! - [`chat`]: the chat message and its limits;
//! - [`inbound`]: one decoder for every gossip message, by topic
//!   ([`Inbound::decode`]), used by the relay and both peers;
//! - [`gossip`]: the gossipsub every peer runs (gossipsub-lite);
//! - [`locate`]: asking a relay which relay of its federation holds a
//!   peer's reservation (`/browser-chat/locate/1.0.0`);
//! - [`perf`]: the libp2p perf protocol (`/perf/1.0.0`), client and
//!   bounded server, for the benchmarks' native peers and the page;
//! - [`report`]: errors described the same way in the page and the
//!   terminal.

// `RecordError` names peer ids (80 bytes each); it is built only for bad
// input, where a clear message matters more than a small `Result`.
#![allow(clippy::result_large_err)]

pub mod chat;
pub mod discovery;
pub mod gossip;
pub mod inbound;
pub mod locate;
pub mod perf;
pub mod report;
pub mod topics;

pub use chat::{ChatError, ChatMessage, MAX_CHAT_MESSAGE_BYTES};

/// Whether `error` is a peer's "na" to a stream's protocol. Every peer
/// opens streams with lazy negotiation (multistream-select's `V1Lazy`: the
/// first bytes go with the proposal, a round trip sooner), so a peer
/// without the protocol refuses at the stream's first read, as an I/O
/// error, not when it opens.
pub fn refused_protocol(error: &std::io::Error) -> bool {
    use libp2p::core::upgrade::NegotiationError;
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<NegotiationError>())
        .is_some_and(|negotiation| matches!(negotiation, NegotiationError::Failed))
}
pub use discovery::{MAX_RECORD_ADDRS, MAX_RECORD_BYTES, PeerRecord, RecordError};
pub use inbound::{Inbound, InboundError};
