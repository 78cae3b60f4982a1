//! Browser-to-browser WebRTC for rust-libp2p: the `/webrtc` transport of
//! the libp2p specification (`webrtc/webrtc.md`), which no Rust libp2p
//! implementation has yet (rust-libp2p#4389).
//!
//! # How a connection comes to be
//!
//! 1. The listener B holds a relay reservation and announces
//!    `<relay>/p2p-circuit/webrtc/p2p/B`.
//! 2. The dialer A reaches B through the relay (the address without
//!    `/webrtc`); that connection is authenticated end to end by Noise.
//! 3. A opens a `/webrtc-signaling/0.0.1` stream on it ([`signaling`]),
//!    creates an `RTCPeerConnection` with a data channel named `init` and
//!    sends its SDP offer; B answers; both trickle ICE candidates until the
//!    peer connection is connected or has failed.
//! 4. The DTLS fingerprints travelled in the SDP over the authenticated
//!    relayed connection, so there is no Noise handshake on the new
//!    connection: the remote peer id is the relayed connection's.
//! 5. Each libp2p stream is its own `RTCDataChannel`, framed as in
//!    WebRTC-direct (varint-prefixed protobuf frames of at most 16 KiB with
//!    FIN / STOP_SENDING / RESET_STREAM / FIN_ACK, by `webrtc-framing`),
//!    multistream-select on each.
//!
//! # Modules
//!
//! - [`signaling`]: the signaling message codec and the order of the
//!   exchange; pure, tested natively.
//! - `exchange` (browser): runs the signaling exchange on a stream, in
//!   either role, until the peer connection is up.
//! - `peer_connection` (browser): an `RTCPeerConnection` with ICE servers,
//!   trickled candidates, its state and the channels the remote opens.
//! - `data_channel` and `stream` (browser): a data channel as a byte stream,
//!   with the framing of `webrtc-framing` on top (a FIN answered with
//!   FIN_ACK, a close that waits for the peer's FIN_ACK).
//! - `connection` (browser): the connection as a libp2p `StreamMuxer`.
//! - `transport` and `behaviour` (browser): [`new`] returns both, wired
//!   together. The transport dials and listens on `/webrtc` addresses; the
//!   behaviour opens and accepts the signaling streams (through
//!   `libp2p-stream`, on the relayed connections) and runs each exchange.
//! - [`upgrade`]: the upgrade policy, the browser's DCUtR: which peer
//!   dials, when, and how often; a behaviour with no browser API, tested
//!   natively.
//! - [`addr`]: `/webrtc` addresses.
//! - [`alongside`]: a handlerless behaviour (such as [`upgrade`]) run next
//!   to one with a handler, so that it adds none to each connection.
//! - `timing` (browser): User Timing marks at each phase of a connection
//!   (`libp2p-webrtc:<phase> <peer>`, `libp2p-webrtc-direct:<phase>`), for
//!   DevTools and the benchmarks.
//! - `direct` (browser): WebRTC-direct (`/webrtc-direct/certhash/...`),
//!   a browser dialing a server such as the relay, on the same peer
//!   connection, data channel and connection code; [`direct_sdp`] is its
//!   SDP text handling. It replaces `libp2p-webrtc-websys`, whose data
//!   channels stalled protocols and left freed callbacks behind (see the
//!   module's docs).
//!
//! # Supported, and not
//!
//! Supported: both roles, trickled candidates, configurable ICE servers,
//! bounded concurrent handshakes, reset and half-close of streams.
//! Interoperates with js-libp2p's `@libp2p/webrtc` (6.x, libp2p 3.x) in
//! both roles: `e2e/tests/js_interop.rs` runs both pages in Chromium.
//!
//! Two details differ from what one might write first. Dialing a `/webrtc`
//! address opens the relayed connection it needs itself (libp2p-stream
//! would not dial a peer that is being dialed, and the `/webrtc` dial is
//! one). And data that reaches a stream nobody is reading wakes the
//! connection's task, as a yamux socket would: libp2p-ping's responder,
//! for one, starts waiting for the next ping without polling, and missed
//! pings by seconds before. A connection ends when its peer connection
//! fails or closes, and also as soon as its SCTP association does
//! (`RTCSctpTransport.state` `closed`): when the remote page reloads or
//! closes, the browser keeps the connection `connected` for half a minute
//! more (until ICE's consent checks give up), while no channel can carry
//! a byte again.
//! Not (yet): reusing an existing relayed connection's identity checks
//! beyond what the relay circuit gives, renegotiation, and native
//! (non-browser) peers, which have no `RTCPeerConnection`.

pub mod addr;
pub mod alongside;
pub mod direct_sdp;
mod error;
#[cfg(target_arch = "wasm32")]
pub mod exchange;
pub mod signaling;
pub mod small_map;
pub mod upgrade;

#[cfg(target_arch = "wasm32")]
pub mod direct;

#[cfg(target_arch = "wasm32")]
mod behaviour;
#[cfg(target_arch = "wasm32")]
mod connection;
#[cfg(target_arch = "wasm32")]
mod data_channel;
#[cfg(target_arch = "wasm32")]
mod peer_connection;
#[cfg(target_arch = "wasm32")]
pub mod prepared;
#[cfg(target_arch = "wasm32")]
mod stream;
#[cfg(target_arch = "wasm32")]
mod timing;
#[cfg(target_arch = "wasm32")]
mod transport;

#[cfg(target_arch = "wasm32")]
pub use behaviour::{Behaviour, Event, IceServers, MAX_CONCURRENT_ANSWERS, new};
#[cfg(target_arch = "wasm32")]
pub use connection::Connection;
pub use error::Error;
#[cfg(target_arch = "wasm32")]
pub use peer_connection::{LinkState, PeerConnection};
#[cfg(target_arch = "wasm32")]
pub use stream::Stream;
#[cfg(target_arch = "wasm32")]
pub use transport::Transport;
