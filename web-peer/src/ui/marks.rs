//! User Timing marks (`performance.mark`) at the moments a user of the
//! page waits for, so that browser tools (DevTools' Performance panel, the
//! benchmarks' `bench/browser-pair.mjs`) can read when they happened:
//!
//! | mark | when |
//! | --- | --- |
//! | `browser-chat:connect` | Connect was clicked (or Enter pressed) |
//! | `browser-chat:relay-connected` | the status says connected to the relay |
//! | `browser-chat:reserved` | the page got an address through the relay |
//! | `browser-chat:peer-listed <peer id>` | the peer appeared in the list |
//! | `browser-chat:direct <peer id>` | its link became direct (WebRTC) |
//! | `browser-chat:chat <peer id>` | a chat message from it was shown |
//!
//! Each name holds one mark, the latest (an earlier one of the same name
//! is cleared), so a long session keeps one per peer and moment.

use libp2p::PeerId;

use crate::timing::put;

pub const CONNECT: &str = "connect";
pub const RELAY_CONNECTED: &str = "relay-connected";
pub const RESERVED: &str = "reserved";
pub const PEER_LISTED: &str = "peer-listed";
pub const DIRECT: &str = "direct";
pub const CHAT: &str = "chat";

/// Marks `browser-chat:<moment>` now.
pub fn mark(moment: &str) {
    put(&format!("browser-chat:{moment}"));
}

/// Marks `browser-chat:<moment> <peer>` now.
pub fn mark_peer(moment: &str, peer: &PeerId) {
    put(&format!("browser-chat:{moment} {peer}"));
}
