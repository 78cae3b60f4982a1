//! The stream framing of libp2p's WebRTC transports (specs
//! `webrtc/README.md`), shared by WebRTC-direct and browser-to-browser
//! `/webrtc`: every data channel carries uvarint-prefixed protobuf frames
//! `{flag, message}` of at most 16 KiB, and the flags FIN, STOP_SENDING,
//! RESET_STREAM and FIN_ACK give a message channel the half-close and
//! reset of a libp2p stream.
//!
//! rust-libp2p's `libp2p-webrtc-utils` 0.5 neither sends FIN_ACK nor
//! understands it (rust-libp2p#4600: a FIN_ACK reads as an error), while
//! js-libp2p sends it and waits 10 s for it on every close. This crate
//! does both:
//!
//! - a FIN is answered with FIN_ACK as soon as it is read, by the stream or,
//!   when the application is not reading, by its [`DropListener`], which
//!   the connection polls (and which lingers after the stream is dropped);
//! - closing waits for the peer's FIN_ACK, up to
//!   [`Config::fin_ack_timeout`] (10 s, like js-libp2p), so an older peer
//!   that never sends one costs that wait and no error;
//! - a FIN_ACK nobody waits for, and flags of later versions, are ignored.
//!
//! # Modules
//!
//! - [`codec`]: frames to bytes and back, with frames split across or
//!   sharing channel messages, and oversize frames refused.
//! - [`state`]: the two halves of a stream and the flags owed, pure.
//! - [`stream`]: [`Stream`] and [`DropListener`] over any channel that
//!   is `AsyncRead + AsyncWrite` (one write, one message). No I/O of its
//!   own: the browser's `RTCDataChannel` and webrtc-rs's data channel both
//!   plug in.
//! - `memory` (feature `memory-channel`): an in-memory channel with a
//!   data channel's semantics, for tests.

pub mod codec;
#[cfg(feature = "memory-channel")]
pub mod memory;
pub mod state;
pub mod stream;

pub use codec::{Flag, Frame, FrameDecoder, FrameError, MAX_FRAME_LEN, MAX_PAYLOAD_LEN};
pub use stream::{Config, DEFAULT_FIN_ACK_TIMEOUT, DropListener, MAX_READ_AHEAD, Stream};
