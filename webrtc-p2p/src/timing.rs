//! User Timing marks (`performance.mark`) at each phase of a connection,
//! so that DevTools' Performance panel and the benchmarks
//! (`bench/browser-pair.mjs`) can tell where the time to a direct link
//! goes. Each name holds one mark, the latest.
//!
//! Browser to browser (`/webrtc`), `libp2p-webrtc:<phase> <peer id>`:
//!
//! | phase | dialer | listener |
//! | --- | --- | --- |
//! | `local-offer` | the offer is made (while the circuit or the stream opens) | - |
//! | `signaling` | the signaling stream is open (the circuit is up) | the offer arrived |
//! | `offer` | the offer was sent | the offer was applied |
//! | `answer` | the answer arrived and was applied | the answer was sent |
//! | `connected` | ICE and DTLS are up: the peer connection is `connected` | the same |
//!
//! WebRTC-direct to a server, `libp2p-webrtc-direct:<phase>`:
//!
//! | phase | when |
//! | --- | --- |
//! | `dial` | the dial began |
//! | `described` | both descriptions are set: ICE and DTLS start |
//! | `noise` | the Noise handshake is done (DTLS and SCTP were up before) |
//! | `ready` | the server takes data channels: the connection is handed to the swarm |

use libp2p_core::PeerId;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = performance, js_name = mark)]
    fn performance_mark(name: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_namespace = performance, js_name = clearMarks)]
    fn performance_clear_marks(name: &str) -> Result<JsValue, JsValue>;
}

/// Marks `libp2p-webrtc:<phase> <peer>` now.
pub(crate) fn peer_phase(phase: &str, peer: &PeerId) {
    put(&format!("libp2p-webrtc:{phase} {peer}"));
}

/// Marks `libp2p-webrtc-direct:<phase>` now.
pub(crate) fn direct_phase(phase: &str) {
    put(&format!("libp2p-webrtc-direct:{phase}"));
}

/// A page without User Timing (none is known) simply has no marks.
fn put(name: &str) {
    let _ = performance_clear_marks(name);
    let _ = performance_mark(name);
}
