//! 0.5's `Stream` and `DropListener`, on `webrtc-framing`.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{AsyncRead, AsyncWrite};
use webrtc_framing::Config;

/// The largest frame on a data channel, prefix included (16 KiB).
pub const MAX_MSG_LEN: usize = webrtc_framing::MAX_FRAME_LEN;

/// Answers the peer's flags while the stream is not read, sends
/// RESET_STREAM for a stream dropped unclosed, and acknowledges the
/// peer's FIN for a while after a closed stream is dropped. The
/// connection polls it until it completes.
pub type DropListener<T> = webrtc_framing::DropListener<T>;

/// A libp2p stream on one data channel, framed as the spec says.
#[derive(Debug)]
pub struct Stream<T> {
    inner: webrtc_framing::Stream<T>,
}

impl<T> Stream<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Clone,
{
    /// A stream on `data_channel` and the listener its connection polls.
    /// Closing sends FIN without waiting for FIN_ACK (see the crate docs).
    pub fn new(data_channel: T) -> (Self, DropListener<T>) {
        let (inner, listener) =
            webrtc_framing::Stream::with_config(data_channel, Config::without_fin_ack_wait());
        (Self { inner }, listener)
    }

    /// Closes the read half: STOP_SENDING tells the peer to stop.
    pub fn poll_close_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close_read(cx)
    }
}

impl<T> AsyncRead for Stream<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T> AsyncWrite for Stream<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
