//! WebRTC-direct (`/webrtc-direct/certhash/...`): a browser dialing a
//! server that has a public address and a known certificate, such as the
//! relay. No signaling channel and no certificate authority: the dialer
//! makes up the server's answer from its address and certificate hash,
//! and a Noise handshake on data channel 0, with both certificate
//! fingerprints in its prologue, proves who is at either end.
//!
//! # Why this crate dials it, and not `libp2p-webrtc-websys`
//!
//! `libp2p-webrtc-websys` 0.5 dials the same protocol, but its data
//! channels fall short where this crate's (`data_channel`) do not:
//!
//! - It sets each channel's `onmessage`, `onclose`, ... callbacks and
//!   frees them when the stream is dropped, without unsetting them (the
//!   handshake's channel, every stream dropped before its channel closed),
//!   so the browser later calls freed closures and the page throws
//!   `closure invoked recursively or after being dropped`: 4 to 10 times
//!   per page in the first seconds of the e2e flow. Here the callbacks are
//!   unset when the last handle goes.
//! - Data for a stream wakes only that stream's last reader; here data
//!   that nobody waits for wakes the connection's task, as over yamux
//!   (libp2p-ping's responder, for one, does not poll its next read).
//! - Its connection never looks at the peer connection's state: when the
//!   relay went away, the page kept a dead connection (still "connected"
//!   30 s after the relay process was killed). Here a WebRTC-direct
//!   connection ends when ICE reports `disconnected`.
//! - It closes channel 0 after the handshake; see step 5 for what that
//!   does to the next stream.
//!
//! None of these can be mended from outside: its `Connection` creates and
//! keeps the `RTCDataChannel`s and the `RTCPeerConnection`, which a wrapper
//! never sees. Dialing with this crate's peer connection, data channels
//! and [`Connection`] (the browser-to-browser transport's) fixes them at
//! the source, and the page carries one WebRTC stack instead of two.
//!
//! # The dial, step by step (libp2p specs, `webrtc/webrtc-direct.md`)
//!
//! 1. A peer connection without ICE servers (the server is ICE-lite on a
//!    public address) and the negotiated data channel 0.
//! 2. The browser's offer, with its ICE username and password both replaced
//!    by a random `ufrag` ([`direct_sdp::with_ice_credentials`]).
//! 3. The server's answer, rendered from its address, its fingerprint (the
//!    multiaddr's certhash) and the same `ufrag`.
//! 4. Noise XX on channel 0, the dialer responding, with the prologue of
//!    both fingerprints; the server's identity comes out of it.
//! 5. Every later stream is a data channel of its own. Channel 0 stays
//!    open: closed, its id would go to the page's next channel, which the
//!    server still takes for the handshake's (its first stream then fails
//!    protocol negotiation). The server closes its end of channel 0
//!    anyway, after which the page holds whatever channel gets id 0 unused
//!    (`Connection::poll_outbound`).
//! 6. The page opens its first streams once the server has opened one (or
//!    after [`SERVER_READY_GRACE`]): see
//!    `wait_until_server_accepts_channels`.

use std::{net::SocketAddr, pin::Pin, task::Poll, time::Duration};

use futures::{
    FutureExt as _,
    future::{self, BoxFuture, Either},
};
use gloo_timers::future::TimeoutFuture;
use libp2p_core::{
    Multiaddr, PeerId,
    muxing::SubstreamBox,
    transport::{DialOpts, ListenerId, TransportError, TransportEvent},
};
use libp2p_identity::Keypair;
use libp2p_webrtc_utils::{Fingerprint, parse_webrtc_dial_addr};
use send_wrapper::SendWrapper;
use web_sys::RtcSdpType;

use crate::{
    Connection, Error, direct_sdp,
    peer_connection::{LinkState, PeerConnection},
    stream::Stream,
    timing,
};

/// How long a dial may take, from the peer connection to the end of the
/// Noise handshake. On loopback it takes about 100 ms, across the world
/// well under a second; without this an unreachable server would hold the
/// dial until the browser gives ICE up (30 s and more).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new WebRTC-direct connection waits for the server's first
/// stream before the page opens its own (see
/// `wait_until_server_accepts_channels`).
pub const SERVER_READY_GRACE: Duration = Duration::from_secs(1);

/// Dials `/ip4|ip6/.../udp/<port>/webrtc-direct/certhash/<hash>[/p2p/<id>]`.
/// It does not listen: a browser cannot be a WebRTC-direct server.
#[derive(Debug)]
pub struct Transport {
    keypair: Keypair,
}

impl Transport {
    /// A transport authenticating as `keypair` in its Noise handshakes.
    pub fn new(keypair: Keypair) -> Self {
        Self { keypair }
    }
}

impl libp2p_core::Transport for Transport {
    type Output = (PeerId, Connection);
    type Error = Error;
    type ListenerUpgrade = future::Pending<Result<Self::Output, Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Error>>;

    fn listen_on(&mut self, _: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _: ListenerId) -> bool {
        false
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Error>> {
        if opts.role.is_listener() {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        let Some((server, fingerprint)) = parse_webrtc_dial_addr(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let keypair = self.keypair.clone();
        // The page is single-threaded: the future never leaves it.
        Ok(SendWrapper::new(dial_within(server, fingerprint, keypair)).boxed())
    }

    fn poll(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}

async fn dial_within(
    server: SocketAddr,
    fingerprint: Fingerprint,
    keypair: Keypair,
) -> Result<(PeerId, Connection), Error> {
    let timeout = TimeoutFuture::new(DIAL_TIMEOUT.as_millis() as u32);
    match future::select(
        Box::pin(dial(server, fingerprint, keypair)),
        Box::pin(timeout),
    )
    .await
    {
        Either::Left((result, _)) => result,
        // Dropping the dial drops its peer connection, which closes it.
        Either::Right(((), _)) => Err(Error::Timeout(DIAL_TIMEOUT)),
    }
}

/// Waits until the server surely listens for the page's data channels: its
/// first stream to us (the relay's identify request comes within
/// milliseconds), or [`SERVER_READY_GRACE`] for a server that opens none.
///
/// Noise ends on the page when the server's last message arrives, but
/// libp2p-webrtc (0.10) sets its handler for incoming data channels only
/// after that message is sent. A channel the page opens in between is
/// acknowledged by the server's SCTP stack, so it opens on the page, and
/// nobody on the server reads it: the page's identify, reservation or
/// circuit request then waits in vain until a 10 s timeout. Firefox opens
/// its streams quickly enough to hit this window often under load.
async fn wait_until_server_accepts_channels(peer_connection: &PeerConnection) {
    let opened = future::poll_fn(|cx| peer_connection.poll_inbound_waiting(cx));
    let grace = TimeoutFuture::new(SERVER_READY_GRACE.as_millis() as u32);
    if let Either::Right(_) = future::select(Box::pin(opened), Box::pin(grace)).await {
        timing::direct_phase("grace-over");
    }
}

async fn dial(
    server: SocketAddr,
    server_fingerprint: Fingerprint,
    keypair: Keypair,
) -> Result<(PeerId, Connection), Error> {
    timing::direct_phase("dial");
    let peer_connection = PeerConnection::new(&[])?;
    // Before the offer, so that the offer carries the data channel section.
    let handshake_channel = peer_connection.create_handshake_channel();
    let ufrag = libp2p_webrtc_utils::sdp::random_ufrag();
    peer_connection
        .offer_edited(|sdp| direct_sdp::with_ice_credentials(sdp, &ufrag))
        .await?;
    let answer = libp2p_webrtc_utils::sdp::answer(server, server_fingerprint, &ufrag);
    peer_connection
        .set_remote_description(RtcSdpType::Answer, &answer)
        .await?;
    timing::direct_phase("described");
    let own_fingerprint =
        direct_sdp::fingerprint(&peer_connection.local_sdp().unwrap_or_default())?;

    // Noise closes the stream when done (FIN); channel 0 itself
    // stays open as long as the peer connection (see `Stream::handshake`).
    // Boxed, as the page's other Noise handshakes run (on circuits and
    // WebSockets): one copy of Noise's code in the wasm for all of them.
    let (stream, _reset_on_drop) = Stream::handshake(handshake_channel);
    let noise = libp2p_webrtc_utils::noise::outbound(
        keypair,
        SubstreamBox::new(stream),
        server_fingerprint,
        own_fingerprint,
    )
    .await;
    let peer = match noise {
        Ok(peer) => peer,
        // ICE or DTLS failed, so the browser closed channel 0 under Noise,
        // which reads an end of file: say what really happened. Firefox
        // gets here 5 s into a dial of a loopback server (it makes no
        // WebRTC connections to loopback), where it used to report "the
        // Noise handshake with the server failed: eof".
        Err(_) if peer_connection.state() == LinkState::Failed => {
            return Err(Error::ServerUnreachable { server });
        }
        Err(error) => return Err(Error::Noise(error)),
    };
    timing::direct_phase("noise");

    // Channel 0 opened, so DTLS and SCTP are up; the state may lag by a task.
    if peer_connection.state() != LinkState::Connected {
        let state =
            future::poll_fn(|cx| peer_connection.poll_state_change(cx, LinkState::Connecting))
                .await;
        if state != LinkState::Connected {
            return Err(Error::Closed);
        }
    }
    wait_until_server_accepts_channels(&peer_connection).await;
    timing::direct_phase("ready");
    tracing::debug!(%peer, %server, "WebRTC-direct connection up");
    Ok((peer, Connection::to_server(peer_connection)))
}
