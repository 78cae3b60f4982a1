//! A libp2p stream of a `/webrtc` connection: one data channel with the
//! spec's framing (FIN / STOP_SENDING / RESET_STREAM), made `Send` for
//! libp2p (the page is single-threaded: it never leaves it).
//!
//! The framing is `libp2p-webrtc-utils` 0.5's, which neither sends FIN_ACK
//! nor knows the flag (rust-libp2p#4600): closing does not wait for the
//! remote, and a FIN_ACK received (js-libp2p sends one) is a read error.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{AsyncRead, AsyncWrite};
use send_wrapper::SendWrapper;
use web_sys::RtcDataChannel;

use crate::data_channel::{ConnectionWaker, PollDataChannel};

pub struct Stream {
    inner: SendWrapper<libp2p_webrtc_utils::Stream<PollDataChannel>>,
}

/// Resets the stream for the peer when it is dropped without being closed.
pub(crate) type DropListener = SendWrapper<libp2p_webrtc_utils::DropListener<PollDataChannel>>;

impl Stream {
    pub(crate) fn new(
        channel: RtcDataChannel,
        connection: ConnectionWaker,
    ) -> (Self, DropListener) {
        Self::from_channel(PollDataChannel::new(channel, connection))
    }

    /// A stream on WebRTC-direct's handshake channel, which stays open
    /// after the stream is closed (see [`PollDataChannel::new_kept_open`]).
    pub(crate) fn handshake(channel: RtcDataChannel) -> (Self, DropListener) {
        Self::from_channel(PollDataChannel::new_kept_open(
            channel,
            ConnectionWaker::default(),
        ))
    }

    fn from_channel(channel: PollDataChannel) -> (Self, DropListener) {
        let (inner, drop_listener) = libp2p_webrtc_utils::Stream::new(channel);
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
