//! The crate's errors.

use crate::signaling::{OrderError, SignalingError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {doing}: {message}")]
    Js {
        doing: &'static str,
        message: String,
    },
    #[error(transparent)]
    Signaling(#[from] SignalingError),
    #[error("signaling out of order: {0}")]
    Order(#[from] OrderError),
    #[error("ICE found no path to the peer (its NAT, or ours, allows no direct connection)")]
    IceFailed,
    #[error("the WebRTC connection was closed")]
    Closed,
    #[error("too many WebRTC dials at once")]
    Busy,
    #[error("cannot read our own certificate's fingerprint: {0}")]
    Fingerprint(#[from] crate::direct_sdp::FingerprintError),
    #[error("the Noise handshake with the server failed")]
    Noise(#[source] libp2p_webrtc_utils::noise::Error),
    #[error("no WebRTC-direct connection within {} s", .0.as_secs())]
    Timeout(std::time::Duration),
    #[error("ICE found no path to the server at {server}{}", loopback_hint(server))]
    ServerUnreachable { server: std::net::SocketAddr },
}

/// What to tell someone who dialed a loopback server: Firefox never
/// completes WebRTC with a loopback address (Chromium does), a trap when a
/// relay runs on the same machine as the browser.
fn loopback_hint(server: &std::net::SocketAddr) -> &'static str {
    if server.ip().is_loopback() {
        " (a loopback address: Firefox makes no WebRTC connections to loopback; \
         use the server's LAN or public address)"
    } else {
        ""
    }
}

#[cfg(target_arch = "wasm32")]
impl Error {
    /// Maps a JavaScript exception, saying what we were doing.
    pub(crate) fn js(doing: &'static str) -> impl Fn(wasm_bindgen::JsValue) -> Error {
        move |value| Error::Js {
            doing,
            message: js_message(&value),
        }
    }
}

/// What a thrown JavaScript value says: an `Error`'s message, with its
/// name unless that is plain `Error` (a `DOMException`'s, such as
/// `InvalidStateError`); a string as it is; another object as its
/// `toString` (`[object Event]`); anything else as JSON. Not `{:?}`: the
/// page's release build prints nothing for it (`-Zfmt-debug=none`,
/// scripts/lib.sh).
#[cfg(target_arch = "wasm32")]
pub(crate) fn js_message(value: &wasm_bindgen::JsValue) -> String {
    use wasm_bindgen::JsCast as _;
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        let (name, message) = (String::from(error.name()), String::from(error.message()));
        return match (name.as_str(), message.is_empty()) {
            ("" | "Error", _) => message,
            (_, true) => name,
            (_, false) => format!("{name}: {message}"),
        };
    }
    if let Some(text) = value.as_string() {
        return text;
    }
    if let Some(object) = value.dyn_ref::<js_sys::Object>() {
        return String::from(object.to_string());
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|json| wasm_bindgen::JsValue::from(json).as_string())
        .unwrap_or_else(|| "undefined".to_owned())
}
