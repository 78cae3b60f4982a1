//! The libp2p perf protocol (`/perf/1.0.0`, libp2p/specs `perf/perf.md`):
//! the client writes the number of bytes it wants back (u64, big endian),
//! then the bytes it uploads, and closes its side; the server reads all of
//! it and sends back that many bytes, then closes.
//!
//! The benchmarks only download (upload 0 bytes): one direction, the same
//! bytes as the plain TCP copy they are compared with.

use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::StreamProtocol;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/perf/1.0.0");

/// Bytes written or read per call, the same for every path compared.
pub const CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("perf stream I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("asked for {expected} bytes, received {received}")]
    ShortRead { expected: u64, received: u64 },
}

/// The server side of one stream: answers the request, then closes.
pub async fn serve<S>(mut stream: S) -> Result<(), PerfError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = [0u8; 8];
    stream.read_exact(&mut request).await?;
    let to_send = u64::from_be_bytes(request);
    // Drain the upload (none from our client, but the spec allows it).
    let mut sink = vec![0u8; CHUNK];
    while stream.read(&mut sink).await? > 0 {}
    send_bytes(&mut stream, to_send).await?;
    stream.close().await?;
    Ok(())
}

/// The client side: asks for `bytes`, uploads nothing, and returns how
/// long it took from the request until the last byte arrived.
pub async fn download<S>(mut stream: S, bytes: u64) -> Result<Duration, PerfError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    stream.write_all(&bytes.to_be_bytes()).await?;
    stream.close().await?;
    let received = receive_all(&mut stream).await?;
    if received != bytes {
        return Err(PerfError::ShortRead {
            expected: bytes,
            received,
        });
    }
    Ok(started.elapsed())
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

/// Reads until the end of the stream; returns the byte count.
pub async fn receive_all<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<u64> {
    let mut buffer = vec![0u8; CHUNK];
    let mut received = 0u64;
    loop {
        match stream.read(&mut buffer).await? {
            0 => return Ok(received),
            n => received += n as u64,
        }
    }
}
