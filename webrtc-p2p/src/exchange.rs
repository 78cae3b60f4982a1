//! Running the signaling exchange on a stream, in either role, until the
//! peer connection is up (or has failed, or the time is up).

use std::{future::Future, pin::pin, task::Poll, time::Duration};

use futures::{
    AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, FutureExt as _, Stream as _,
    future::poll_fn,
};
use libp2p_core::PeerId;
use web_sys::RtcSdpType;

use crate::{
    Connection, Error,
    peer_connection::{INIT_CHANNEL_LABEL, LinkState, PeerConnection},
    signaling::{
        Role, Session, SignalingError, SignalingMessage, Step, read_message, write_message,
    },
    timing,
};

/// How long ICE and DTLS may take once the descriptions are exchanged.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The dialer's half of the exchange before the signaling stream: a peer
/// connection with the spec's `init` channel, and its offer set as the
/// local description. Made while the signaling stream opens, or earlier
/// still ([`crate::prepared`]).
#[derive(Debug)]
pub struct LocalOffer {
    peer_connection: PeerConnection,
    init: web_sys::RtcDataChannel,
    sdp: String,
}

impl LocalOffer {
    /// Makes one with `ice_servers`; `peer` (the remote) names the
    /// `local-offer` mark.
    pub async fn make(ice_servers: &[String], peer: PeerId) -> Result<Self, Error> {
        let peer_connection = PeerConnection::new(ice_servers)?;
        // The spec's `init` channel: without a channel the offer would
        // carry no data-channel (SCTP) section.
        let init = peer_connection.create_data_channel(INIT_CHANNEL_LABEL);
        let sdp = peer_connection.offer().await?;
        timing::peer_phase("local-offer", &peer);
        Ok(Self {
            peer_connection,
            init,
            sdp,
        })
    }

    /// The offer's SDP, as set as the local description.
    pub fn sdp(&self) -> &str {
        &self.sdp
    }
}

/// The dialer's side: offer, then candidates both ways until connected.
/// `open` opens the signaling stream (a round trip through the relay, or
/// the circuit's dial before it): the peer connection and its offer are
/// made meanwhile, so the offer goes out as soon as the stream is open.
/// `peer` (the remote) names the phases' User Timing marks (`timing`).
pub async fn dial<S, F>(open: F, ice_servers: &[String], peer: PeerId) -> Result<Connection, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Result<S, Error>>,
{
    dial_with(open, LocalOffer::make(ice_servers, peer), peer).await
}

/// [`dial`] with the offer `made` elsewhere, perhaps before the dial.
pub async fn dial_with<S, F, M>(open: F, made: M, peer: PeerId) -> Result<Connection, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Result<S, Error>>,
    M: Future<Output = Result<LocalOffer, Error>>,
{
    let opened = async {
        let stream = open.await;
        timing::peer_phase("signaling", &peer);
        stream
    };
    // Either failing drops (and so closes) the peer connection.
    let (stream, offer) = futures::future::try_join(opened, made).await?;
    let LocalOffer {
        peer_connection,
        init,
        sdp,
    } = offer;
    let (reader, mut writer) = stream.split();
    write_message(&mut writer, &SignalingMessage::Offer(sdp)).await?;
    timing::peer_phase("offer", &peer);
    let result = exchange(
        &peer_connection,
        Session::new(Role::Dialer),
        reader,
        &mut writer,
        peer,
    )
    .await;
    init.close();
    result?;
    let _ = writer.close().await;
    Ok(Connection::new(peer_connection))
}

/// The listener's side: answer the offer, then candidates both ways.
/// `peer` (the remote) names the phases' User Timing marks (`timing`).
pub async fn answer<S>(stream: S, ice_servers: &[String], peer: PeerId) -> Result<Connection, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = stream.split();
    let mut session = Session::new(Role::Listener);
    // Nothing is created for a peer that does not even send an offer.
    let Step::RemoteDescription(offer) = session.on_message(read_message(&mut reader).await?)?
    else {
        unreachable!("a listener's first step in order is the remote description");
    };
    timing::peer_phase("signaling", &peer);
    let peer_connection = PeerConnection::new(ice_servers)?;
    peer_connection
        .set_remote_description(RtcSdpType::Offer, &offer)
        .await?;
    timing::peer_phase("offer", &peer);
    let answer = peer_connection.answer().await?;
    write_message(&mut writer, &SignalingMessage::Answer(answer)).await?;
    timing::peer_phase("answer", &peer);
    exchange(&peer_connection, session, reader, &mut writer, peer).await?;
    Ok(Connection::new(peer_connection))
}

enum Event {
    Remote(Result<SignalingMessage, SignalingError>),
    Local(Option<crate::signaling::IceCandidate>),
    State(LinkState),
    TimedOut,
}

/// Trickles candidates both ways until the connection is up. Any error
/// drops (and so closes) the peer connection in the caller.
async fn exchange<R, W>(
    peer_connection: &PeerConnection,
    mut session: Session,
    reader: R,
    writer: &mut W,
    peer: PeerId,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut timeout = pin!(gloo_timers::future::sleep(CONNECT_TIMEOUT).fuse());
    // The remote's messages as a stream: a read in progress is never
    // cancelled half-way while we wait for other events.
    let mut remote = pin!(futures::stream::unfold(reader, |mut reader| async move {
        let message = read_message(&mut reader).await;
        Some((message, reader))
    }));
    let mut remote_open = true;
    let mut local_done = false;
    loop {
        let event = poll_fn(|cx| {
            if remote_open && let Poll::Ready(Some(message)) = remote.as_mut().poll_next(cx) {
                return Poll::Ready(Event::Remote(message));
            }
            if !local_done && let Poll::Ready(candidate) = peer_connection.poll_local_candidate(cx)
            {
                return Poll::Ready(Event::Local(candidate));
            }
            if let Poll::Ready(state) = peer_connection.poll_state_change(cx, LinkState::Connecting)
            {
                return Poll::Ready(Event::State(state));
            }
            if timeout.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::TimedOut);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Remote(Ok(message)) => match session.on_message(message)? {
                Step::AddCandidate(candidate) => {
                    peer_connection.add_ice_candidate(Some(&candidate)).await?
                }
                Step::EndOfCandidates => peer_connection.add_ice_candidate(None).await?,
                Step::RepeatedEnd => {}
                // The dialer's answer; the listener's offer was taken before.
                Step::RemoteDescription(sdp) => {
                    peer_connection
                        .set_remote_description(RtcSdpType::Answer, &sdp)
                        .await?;
                    timing::peer_phase("answer", &peer);
                }
            },
            // The remote may close its side once it is connected.
            Event::Remote(Err(SignalingError::Eof)) => remote_open = false,
            Event::Remote(Err(error)) => return Err(error.into()),
            Event::Local(candidate) => {
                local_done = candidate.is_none();
                // A remote that stopped listening does not need them.
                let _ = write_message(writer, &SignalingMessage::Candidate(candidate)).await;
            }
            Event::State(LinkState::Connected) => {
                timing::peer_phase("connected", &peer);
                return Ok(());
            }
            Event::State(_) | Event::TimedOut => return Err(Error::IceFailed),
        }
    }
}
