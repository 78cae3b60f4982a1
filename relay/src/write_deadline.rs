//! A deadline on writes that make no progress, for the HTTP server.
//!
//! hyper sets no timer on writing a response: a client that asks for a
//! large asset and never reads holds its connection (and its slot of the
//! HTTP budget) for as long as it likes, once the kernel's buffers are
//! full. [`WriteDeadline`] wraps a connection's stream and fails a write
//! (or flush) that has made no progress for its deadline, which ends the
//! connection. Any progress restarts the clock, so a slow but live reader
//! is served; a stalled one is dropped after the deadline.

use std::{
    future::Future as _,
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// A stream whose writes fail once they have been stalled for `deadline`.
#[derive(Debug)]
pub struct WriteDeadline<S> {
    inner: S,
    deadline: Duration,
    /// Armed when a write is first refused (`Pending`), disarmed by any
    /// progress.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, deadline: Duration) -> Self {
        Self {
            inner,
            deadline,
            stalled_since: None,
        }
    }

    /// What to return for a write or flush that `inner` left pending:
    /// still pending, or an error once the deadline has passed.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.deadline;
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the peer read nothing for {deadline:?}"),
        ))
    }

    fn progressed(&mut self) {
        self.stalled_since = None;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                self.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                self.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => {
                self.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    const DEADLINE: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_deadline_and_a_slow_reader_is_served() {
        // A pipe with a 16-byte buffer: writes stall once it is full.
        let (writer, mut reader) = tokio::io::duplex(16);
        let mut writer = WriteDeadline::new(writer, DEADLINE);

        // A reader that takes 8 bytes every third of the deadline keeps
        // the writer going, however long the whole write takes.
        let slow = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            for _ in 0..6 {
                tokio::time::sleep(DEADLINE / 3).await;
                tokio::io::AsyncReadExt::read_exact(&mut reader, &mut buf)
                    .await
                    .expect("read");
            }
            reader
        });
        let started = Instant::now();
        writer.write_all(&[1; 64]).await.expect("a slow reader");
        let _reader = slow.await.expect("reader");
        assert!(
            started.elapsed() > DEADLINE,
            "the write took longer than one deadline in all"
        );

        // Nobody reads now: the buffer fills and the write fails, not
        // before the deadline.
        let started = Instant::now();
        let error = writer.write_all(&[2; 64]).await.expect_err("nobody reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(started.elapsed() >= DEADLINE);
    }
}
