//! A libp2p stream of a `/webrtc` connection: one data channel with the
//! spec's framing (FIN / STOP_SENDING / RESET_STREAM / FIN_ACK, by the
//! `webrtc-framing` crate), made `Send` for libp2p (the page is
//! single-threaded: it never leaves it).
//!
//! A FIN from the peer is answered with FIN_ACK, by the stream or, when
//! nobody reads it, by its drop listener, which the connection polls.
//! Closing waits for the peer's FIN_ACK up to
//! [`webrtc_framing::DEFAULT_FIN_ACK_TIMEOUT`] (10 s, as js-libp2p): an
//! older peer that never sends one costs that wait, not an error.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{AsyncRead, AsyncWrite};
use send_wrapper::SendWrapper;
use web_sys::RtcDataChannel;

use webrtc_framing::Config;

use crate::data_channel::{ConnectionWaker, PollDataChannel};

pub struct Stream {
    inner: SendWrapper<webrtc_framing::Stream<PollDataChannel>>,
}

/// Answers the peer's flags while nobody reads the stream; resets the
/// stream for the peer when it is dropped without being closed, and
/// acknowledges the peer's FIN when it is dropped after closing.
pub(crate) type DropListener = SendWrapper<webrtc_framing::DropListener<PollDataChannel>>;

impl Stream {
    pub(crate) fn new(channel: PollDataChannel) -> (Self, DropListener) {
        Self::from_channel(channel, Config::default())
    }

    /// A stream on WebRTC-direct's handshake channel, which stays open
    /// after the stream is closed (see [`PollDataChannel::new_kept_open`]).
    /// Its close does not wait for FIN_ACK: nobody reads the channel after
    /// the handshake, on either side, to send one.
    pub(crate) fn handshake(channel: RtcDataChannel) -> (Self, DropListener) {
        Self::from_channel(
            PollDataChannel::new_kept_open(channel, ConnectionWaker::default()),
            Config::without_fin_ack_wait(),
        )
    }

    fn from_channel(channel: PollDataChannel, config: Config) -> (Self, DropListener) {
        let (inner, drop_listener) = webrtc_framing::Stream::with_config(channel, config);
        (
            Self {
                inner: SendWrapper::new(inner),
            },
            SendWrapper::new(drop_listener),
        )
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_close(cx)
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").finish_non_exhaustive()
    }
}
