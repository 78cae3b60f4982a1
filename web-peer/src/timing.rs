//! User Timing marks (`performance.mark`) at each phase of the node's way
//! to a direct link, where the phase happens in the node (the page's own
//! marks, `ui::marks`, are made when the page shows each moment, a channel
//! hop later). With the WebRTC crate's (`libp2p-webrtc:<phase> <peer>`
//! and `libp2p-webrtc-direct:<phase>`, see `libp2p_webrtc_p2p`'s `timing`)
//! they break the time from Connect to a direct link into its phases;
//! `bench/browser-pair.mjs` prints them.
//!
//! | mark | when |
//! | --- | --- |
//! | `browser-chat:node:relay-connection` | the swarm has a connection to the relay |
//! | `browser-chat:node:reservation` | the relay accepted the reservation |
//! | `browser-chat:node:announced` | this page published its record (the latest time) |
//! | `browser-chat:node:record <peer id>` | the peer's discovery record arrived (first time) |
//! | `browser-chat:node:circuit <peer id>` | a relayed connection with the peer is up |
//! | `browser-chat:node:direct <peer id>` | a direct connection with the peer is up |
//!
//! Each name holds one mark, the latest.

use libp2p::PeerId;

pub const RELAY_CONNECTION: &str = "relay-connection";
pub const RESERVATION: &str = "reservation";
pub const ANNOUNCED: &str = "announced";
pub const RECORD: &str = "record";
pub const CIRCUIT: &str = "circuit";
pub const DIRECT: &str = "direct";

/// Marks `browser-chat:node:<phase>` now.
pub fn phase(phase: &str) {
    put(&format!("browser-chat:node:{phase}"));
}

/// Marks `browser-chat:node:<phase> <peer>` now.
pub fn peer_phase(phase: &str, peer: &PeerId) {
    put(&format!("browser-chat:node:{phase} {peer}"));
}

/// Marks `name` now, clearing an earlier mark of that name (one each).
pub(crate) fn put(name: &str) {
    let Some(performance) = web_sys::window().and_then(|window| window.performance()) else {
        return;
    };
    performance.clear_marks_with_mark_name(name);
    let _ = performance.mark(name);
}
