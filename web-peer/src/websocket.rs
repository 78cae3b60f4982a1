//! The WebSocket connection to the relay: `libp2p-websocket-websys`'s, with
//! a flush that does not wait for the browser to put the bytes on the wire,
//! and a close that does not wait for the relay to answer it.
//!
//! `libp2p-websocket-websys` 0.6 finishes `poll_flush` only when the
//! socket's `bufferedAmount` is 0, and it looks at `bufferedAmount` from a
//! 100 ms `setInterval` (the browser has no event for a drained buffer).
//! The browser counts the bytes of a `send` in `bufferedAmount` until a
//! later task, so every flush waits for the next tick of that interval.
//! The dialer flushes twice before its connection to the relay is up
//! (noise's first and third handshake messages), and each flush waits for
//! the next 100 ms tick: measured in Chromium on loopback, the connection
//! to the relay took about 245 ms from Connect, where js-libp2p took 85.
//!
//! Once `WebSocket.send` has returned, the bytes are the browser's to send,
//! in order and before any close frame, as bytes written to a TCP socket
//! are the kernel's: there is nothing left for a flush to push, so ours is
//! done at once. Backpressure stays as it was: `poll_write` still waits
//! while the browser holds more than the library's 1 MiB.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{AsyncRead, AsyncWrite};
use libp2p::websocket_websys;

/// A WebSocket connection whose flush is done once the browser has the bytes.
pub struct Connection(websocket_websys::Connection);

impl From<websocket_websys::Connection> for Connection {
    fn from(connection: websocket_websys::Connection) -> Self {
        Self(connection)
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The library's flush still reports a failed socket; only its wait
        // for the drained buffer is skipped.
        match Pin::new(&mut self.0).poll_flush(cx) {
            Poll::Pending => Poll::Ready(Ok(())),
            done => done,
        }
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The library's close calls `WebSocket.close()` and then waits for
        // the close event, that is for the relay's answering close frame.
        // When the network is gone (a laptop moved, a NAT forgot us) that
        // answer never comes, and Chromium gives up on it only after a
        // minute: the libp2p connection stayed open as long, and the relay
        // client, which reserves on a relay's first connection, kept using
        // it. Once `close()` has been called the closing is the browser's,
        // as sent bytes are: ours is done.
        match Pin::new(&mut self.0).poll_close(cx) {
            Poll::Pending => Poll::Ready(Ok(())),
            done => done,
        }
    }
}
