//! The libp2p perf protocol (`/perf/1.0.0`, libp2p/specs `perf/perf.md`):
//! the client writes the number of bytes it wants back (u64, big endian),
//! then the bytes it uploads, and closes its side; the server reads all of
//! it and sends back that many bytes, then closes.
//!
//! Plain async functions over one stream, so the benchmarks' native peers
//! and the page (over its direct WebRTC connections) run the same code.
//! The server is bounded by [`Limits`]: a peer cannot make it send, or
//! make it read, more than that on one stream.

use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, FutureExt as _};
use libp2p::StreamProtocol;
use web_time::Instant;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/perf/1.0.0");

/// Bytes written or read per call.
pub const CHUNK: usize = 64 * 1024;

/// What one stream may cost the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes a client may ask the server to send.
    pub max_send: u64,
    /// Most bytes the server reads from a client's upload.
    pub max_receive: u64,
}

impl Limits {
    /// No limit: for the benchmarks' own peers, which serve only each other.
    pub const UNLIMITED: Limits = Limits {
        max_send: u64::MAX,
        max_receive: u64::MAX,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    /// The peer answered the stream's protocol proposal with "na".
    #[error("the peer does not speak {PROTOCOL}")]
    Unsupported,
    #[error("perf stream I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("asked for {expected} bytes, received {received}")]
    ShortRead { expected: u64, received: u64 },
    #[error("the client asked for {requested} bytes; this server sends at most {max}")]
    RequestTooLarge { requested: u64, max: u64 },
    #[error("the client uploaded more than {max} bytes, this server's limit")]
    UploadTooLarge { max: u64 },
}

/// What the server did on one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub received: u64,
    pub sent: u64,
}

/// The server side of one stream: answers the request within `limits`,
/// then closes. A request over the limits is refused before anything is
/// sent: the stream is closed, so the client reads nothing back.
pub async fn serve<S>(mut stream: S, limits: Limits) -> Result<Served, PerfError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = [0u8; 8];
    stream.read_exact(&mut request).await?;
    let to_send = u64::from_be_bytes(request);
    if to_send > limits.max_send {
        let _ = stream.close().await;
        return Err(PerfError::RequestTooLarge {
            requested: to_send,
            max: limits.max_send,
        });
    }
    let received = receive_all(&mut stream, limits.max_receive).await?;
    let Some(received) = received else {
        let _ = stream.close().await;
        return Err(PerfError::UploadTooLarge {
            max: limits.max_receive,
        });
    };
    send_bytes(&mut stream, to_send).await?;
    stream.close().await?;
    Ok(Served {
        received,
        sent: to_send,
    })
}

/// The client side: asks for `download` bytes, uploads `upload` bytes,
/// closes its side, reads the answer, and returns how long it all took,
/// from the request until the last byte came back.
pub async fn client<S>(mut stream: S, upload: u64, download: u64) -> Result<Duration, PerfError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let sent = async {
        stream.write_all(&download.to_be_bytes()).await?;
        send_bytes(&mut stream, upload).await?;
        stream.close().await
    };
    if let Err(error) = sent.await {
        return Err(refusal_or(&mut stream, error));
    }
    let received = receive_all(&mut stream, u64::MAX)
        .await
        .map_err(|error| refusal_or(&mut stream, error))?
        .unwrap_or(u64::MAX);
    if received != download {
        return Err(PerfError::ShortRead {
            expected: download,
            received,
        });
    }
    Ok(started.elapsed())
}

/// What a failed transfer's `error` was. Streams are opened with lazy
/// negotiation (the protocol's proposal goes with the first bytes), so a
/// peer without the protocol answers "na" and resets the stream: a write
/// or the close fails while the answer waits in the read buffer, or the
/// first read fails with it. One read that does not wait tells.
fn refusal_or<S: AsyncRead + Unpin>(stream: &mut S, error: std::io::Error) -> PerfError {
    if crate::refused_protocol(&error) {
        return PerfError::Unsupported;
    }
    match stream.read(&mut [0u8; 1]).now_or_never() {
        Some(Err(read_error)) if crate::refused_protocol(&read_error) => PerfError::Unsupported,
        _ => PerfError::Io(error),
    }
}

/// The benchmarks' one-way transfer: download `bytes`, upload nothing.
pub async fn download<S>(stream: S, bytes: u64) -> Result<Duration, PerfError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    client(stream, 0, bytes).await
}

/// Writes `count` bytes in [`CHUNK`]s.
pub async fn send_bytes<S: AsyncWrite + Unpin>(stream: &mut S, count: u64) -> std::io::Result<()> {
    let chunk = vec![0u8; CHUNK];
    let mut left = count;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    stream.flush().await
}

/// Reads until the end of the stream and returns the byte count, or
/// `None` as soon as more than `max` bytes came.
pub async fn receive_all<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: u64,
) -> std::io::Result<Option<u64>> {
    let mut buffer = vec![0u8; CHUNK];
    let mut received = 0u64;
    loop {
        match stream.read(&mut buffer).await? {
            0 => return Ok(Some(received)),
            n => received = received.saturating_add(n as u64),
        }
        if received > max {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use futures::{executor::block_on, io::Cursor};

    use super::*;

    /// One end of a stream: reads what the other end sent (given up
    /// front), records what is written, and whether it was closed.
    struct Recorded {
        incoming: Cursor<Vec<u8>>,
        written: Vec<u8>,
        closed: bool,
    }

    impl Recorded {
        fn new(incoming: Vec<u8>) -> Self {
            Self {
                incoming: Cursor::new(incoming),
                written: Vec::new(),
                closed: false,
            }
        }
    }

    impl AsyncRead for Recorded {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.incoming).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Recorded {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            assert!(!self.closed, "written after close");
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            self.closed = true;
            Poll::Ready(Ok(()))
        }
    }

    fn request(to_send: u64, upload: usize) -> Vec<u8> {
        let mut bytes = to_send.to_be_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(7u8, upload));
        bytes
    }

    const LIMITS: Limits = Limits {
        max_send: 1 << 20,
        max_receive: 1 << 20,
    };

    #[test]
    fn server_reads_the_upload_then_sends_the_bytes_asked_for() {
        let mut stream = Recorded::new(request(200_000, 100_000));
        let served = block_on(serve(&mut stream, LIMITS)).expect("served");
        assert_eq!(
            served,
            Served {
                received: 100_000,
                sent: 200_000
            }
        );
        assert_eq!(stream.written.len(), 200_000);
        assert!(stream.closed, "the server closes its side when done");
    }

    #[test]
    fn server_refuses_a_request_over_its_limit_and_sends_nothing() {
        let mut stream = Recorded::new(request(LIMITS.max_send + 1, 0));
        let error = block_on(serve(&mut stream, LIMITS)).expect_err("refused");
        assert!(
            matches!(error, PerfError::RequestTooLarge { requested, max }
                if requested == LIMITS.max_send + 1 && max == LIMITS.max_send),
            "expected RequestTooLarge, got {error:?}"
        );
        assert!(
            stream.written.is_empty(),
            "sent {} bytes",
            stream.written.len()
        );
        assert!(stream.closed);
    }

    #[test]
    fn server_stops_reading_an_upload_over_its_limit() {
        let limits = Limits {
            max_send: 10,
            max_receive: 1000,
        };
        let mut stream = Recorded::new(request(10, 5 * CHUNK));
        let error = block_on(serve(&mut stream, limits)).expect_err("refused");
        assert!(
            matches!(error, PerfError::UploadTooLarge { max: 1000 }),
            "{error:?}"
        );
        assert!(stream.written.is_empty());
    }

    #[test]
    fn client_sends_request_and_upload_and_counts_the_answer() {
        let mut stream = Recorded::new(vec![0; 3000]);
        block_on(client(&mut stream, 5000, 3000)).expect("transfer");
        let mut expected = 3000u64.to_be_bytes().to_vec();
        expected.extend(std::iter::repeat_n(0u8, 5000));
        assert_eq!(stream.written, expected);
        assert!(stream.closed, "the client closes its side after the upload");
    }

    #[test]
    fn client_reports_a_short_answer() {
        let mut stream = Recorded::new(vec![0; 10]);
        let error = block_on(client(&mut stream, 0, 3000)).expect_err("short");
        assert!(
            matches!(
                error,
                PerfError::ShortRead {
                    expected: 3000,
                    received: 10
                }
            ),
            "{error:?}"
        );
    }
}
