//! The upgrade of a new session: ICE-lite, DTLS (server), SCTP (server),
//! then Noise on the negotiated channel 0, the relay as initiator, with
//! the prologue made of both certificates' fingerprints (spec
//! `webrtc-direct.md`, "Connection Security").

use std::{future::poll_fn, sync::Arc, task::Poll, time::Duration};

use futures::FutureExt as _;
use libp2p::{PeerId, identity::Keypair};
use libp2p_webrtc_utils::Fingerprint;
use std::future::Future as _;
use str0m::{RtcConfig, channel::ChannelConfig};
use tokio::net::UdpSocket;

use super::{
    channel::ChannelIo,
    connection::Connection,
    demux::NewSession,
    metrics::Metrics,
    session::{Session, SessionError, lock},
};

/// How long the first Noise message waits after channel 0 opened (see
/// `accept`): a few task hops of the client, far below a round trip
/// across the internet.
const CLIENT_CHANNEL_SETTLE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("the client's DTLS certificate has no SHA-256 fingerprint")]
    NoFingerprint,
    #[error("noise: {0}")]
    Noise(#[from] libp2p_webrtc_utils::noise::Error),
}

pub async fn accept(
    config: RtcConfig,
    socket: Arc<UdpSocket>,
    session: NewSession,
    keypair: Keypair,
    server_fingerprint: Fingerprint,
    metrics: Metrics,
) -> Result<(PeerId, Connection), HandshakeError> {
    let NewSession {
        remote,
        ufrag,
        first,
        datagrams,
        slot,
    } = session;
    let mut session = Session::new(config, socket, remote, &ufrag, datagrams)?;
    tracing::debug!(%remote, since_first_check = ?first.at.elapsed(), "WebRTC-direct session opened");
    let handshake_channel = session.rtc.direct_api().create_data_channel(ChannelConfig {
        label: String::new(),
        negotiated: Some(0),
        ..ChannelConfig::default()
    });
    session.channels.entry(handshake_channel).or_default();
    session.opening.push(handshake_channel);
    session.receive(&first);
    let session = Arc::new(std::sync::Mutex::new(session));

    // Until DTLS is up and channel 0 open.
    poll_fn(|cx| {
        let mut session = lock(&session);
        session.drive(cx)?;
        let open = session
            .channels
            .get(&handshake_channel)
            .is_some_and(|channel| channel.open);
        if session.connected && open {
            Poll::Ready(Ok::<_, SessionError>(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    // A webrtc-rs client (rust-libp2p's dialer) creates its negotiated
    // channel 0 only after setting our answer, and sent at once, our first
    // Noise message was lost about one time in two: the client's handshake
    // waited for it until its dial timed out (seen in relay/tests/
    // webrtc_direct.rs; webrtc-data 0.17's `DataChannel::accept` takes a
    // stream no created channel is bound to as a new channel whose first
    // message must be a DCEP OPEN, and fails it on our binary message).
    // Browsers create the channel before their offer. So the first Noise
    // message waits a moment, the session still driven meanwhile. No
    // event can replace the wait: the client is Noise's responder and
    // sends nothing on channel 0 first, and a negotiated channel opens
    // without a message, so the relay cannot see the client bind it.
    // Checked again for #20: without the wait, 4 of 16 native dials
    // failed (4 runs of 4 tests in relay/tests/webrtc_direct.rs); with
    // one timer tick (`sleep(0)`) 0 of 20 did on this machine; 50 ms is
    // the margin for a slower client host.
    let mut settle = Box::pin(tokio::time::sleep(CLIENT_CHANNEL_SETTLE));
    poll_fn(|cx| {
        lock(&session).drive(cx)?;
        settle.as_mut().poll(cx).map(Ok::<_, SessionError>)
    })
    .await?;
    let client_fingerprint = {
        let mut session = lock(&session);
        let remote = session.rtc.direct_api().remote_dtls_fingerprint().cloned();
        remote
            .and_then(|fp| <[u8; 32]>::try_from(fp.bytes).ok())
            .map(Fingerprint::raw)
            .ok_or(HandshakeError::NoFingerprint)?
    };

    let (stream, drop_listener) = webrtc_framing::Stream::with_config(
        ChannelIo::new(session.clone(), handshake_channel, false),
        webrtc_framing::Config::without_fin_ack_wait(),
    );
    drop(drop_listener);
    let mut noise = Box::pin(libp2p_webrtc_utils::noise::inbound(
        keypair,
        stream,
        client_fingerprint,
        server_fingerprint,
    ));
    let peer_id = poll_fn(|cx| {
        lock(&session).drive(cx)?;
        noise
            .poll_unpin(cx)
            .map(|result| result.map_err(HandshakeError::from))
    })
    .await?;
    drop(noise);
    drop(slot);
    tracing::debug!(%peer_id, %remote, "WebRTC-direct session established");
    Ok((peer_id, Connection::new(session, metrics)))
}
