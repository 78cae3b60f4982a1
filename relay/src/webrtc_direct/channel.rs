//! A str0m data channel as the byte pipe `webrtc-framing` frames: one
//! write is one message; reads hand out what arrived, in order.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{AsyncRead, AsyncWrite};
use str0m::channel::ChannelId;

use super::session::{Shared, lock};

pub struct ChannelIo {
    session: Shared,
    id: ChannelId,
    /// Close the SCTP stream when dropped. Not for the handshake channel:
    /// the page keeps it open, and Chromium hands its id to the page's
    /// next channel once it is closed.
    close_on_drop: bool,
}

impl ChannelIo {
    pub fn new(session: Shared, id: ChannelId, close_on_drop: bool) -> Self {
        Self {
            session,
            id,
            close_on_drop,
        }
    }
}

impl AsyncRead for ChannelIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut session = lock(&self.session);
        session.poll_read(self.id, cx, buf).map(Ok)
    }
}

impl AsyncWrite for ChannelIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut session = lock(&self.session);
        session.poll_write(self.id, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The framing's FIN is the stream's close; the SCTP stream itself
        // closes when both halves are done (on drop).
        Poll::Ready(Ok(()))
    }
}

impl Drop for ChannelIo {
    fn drop(&mut self) {
        let mut session = lock(&self.session);
        if self.close_on_drop {
            session.close_channel(self.id);
        }
        session.forget_channel(self.id);
    }
}

impl std::fmt::Debug for ChannelIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelIo").field("id", &self.id).finish()
    }
}
