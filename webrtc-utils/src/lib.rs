//! The API of rust-libp2p's `libp2p-webrtc-utils` 0.5, written afresh for
//! this project, so that `libp2p-webrtc` 0.10 (the relay's WebRTC-direct
//! listener) runs on streams that speak the whole framing of the spec.
//!
//! The original's streams neither send FIN_ACK nor understand it
//! (rust-libp2p#4600): js-libp2p waits 10 s for a FIN_ACK on every close and
//! then fails the close, so js pages could not use the relay over
//! WebRTC-direct. `libp2p-webrtc` keeps its use of this crate private (its
//! streams, data channels and peer connection are all private fields), so
//! no wrapper can add FIN_ACK; replacing the crate under it can. The
//! workspace's `Cargo.toml` does that with `[patch.crates-io]`.
//!
//! What differs from 0.5:
//!
//! - [`Stream`] is `webrtc-framing`'s: a FIN is answered with FIN_ACK as
//!   soon as it is read, by the stream or, when the application does not
//!   read, by the [`DropListener`] that `libp2p-webrtc`'s connection polls
//!   (also after the stream is dropped, for a while); a FIN_ACK is
//!   understood, and an unexpected one is ignored instead of failing the
//!   read.
//! - Closing does not wait for the peer's FIN_ACK, as 0.5 did not:
//!   `libp2p-webrtc` runs the Noise handshake through this same `Stream`,
//!   and a browser reads its handshake channel no more after the
//!   handshake, so a close that waited would stall every connection.
//!
//! Everything else (fingerprints, SDP, Noise, addresses) does what 0.5's
//! does, and is tested here against the spec's test vector and texts.

mod fingerprint;
pub mod noise;
pub mod sdp;
mod stream;
mod transport;

pub use fingerprint::{Fingerprint, SHA256};
pub use stream::{DropListener, MAX_MSG_LEN, Stream};
pub use transport::parse_webrtc_dial_addr;
