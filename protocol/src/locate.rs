//! The locate protocol (`/browser-chat/locate/1.0.0`): a peer asks its
//! relay which relay of the federation holds another peer's reservation,
//! and how to dial that relay.
//!
//! One request and one response per stream (libp2p's request-response):
//! each side writes one protobuf message ([`LocateRequestProto`],
//! [`LocateResponseProto`], the schema in `locate.proto`) and closes its
//! side; the reader reads to the end, at most [`MAX_REQUEST_BYTES`] or
//! [`MAX_RESPONSE_BYTES`]. Pages and native peers are not members of the
//! federation's DHT; their relay is, and looks the peer up for them.

use std::io;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use prost::Message as _;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/browser-chat/locate/1.0.0");

/// Largest request read: a peer id is at most 42 bytes (an inlined
/// ed25519 or secp256k1 key) plus its tag; room for a few bytes more.
pub const MAX_REQUEST_BYTES: usize = 128;

/// Most addresses of the holding relay an answer carries, of each kind
/// (native and browser; the relay's address book keeps as many per
/// member).
pub const MAX_LOCATE_ADDRS: usize = 8;

/// Largest response read or written. Readers of the first release (no
/// browser addresses) read at most this much, so a writer leaves out the
/// addresses that would not fit rather than raise it
/// ([`encode_response`]).
pub const MAX_RESPONSE_BYTES: usize = 2048;

/// What a peer asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocateRequest {
    /// The peer whose relay is wanted.
    pub peer: PeerId,
}

/// Where the peer is reserved: a relay and the addresses to dial it at,
/// what the federation's address book holds of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub relay: PeerId,
    /// TCP and QUIC ones, for native peers.
    pub addrs: Vec<Multiaddr>,
    /// Those a browser dials (`/ws`, `/wss`, `/tls/ws`, `/webrtc-direct`
    /// with its certhash); empty from a relay of the first release.
    pub browser_addrs: Vec<Multiaddr>,
}

impl Located {
    /// Every address, browser ones first (a native peer's dial rule
    /// leaves those out).
    pub fn all_addrs(&self) -> impl Iterator<Item = &Multiaddr> {
        self.browser_addrs.iter().chain(&self.addrs)
    }
}

/// Why the relay gave no relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocateRefusal {
    #[error("no relay of the federation holds a reservation for that peer")]
    NotFound,
    #[error("the relay has too many lookups under way; ask again in a moment")]
    Busy,
    #[error("the relay's lookup in the federation timed out")]
    TimedOut,
    #[error("the relay does not know how to reach the relay holding the reservation")]
    NoAddress,
}

/// The relay's answer.
pub type LocateResponse = Result<Located, LocateRefusal>;

/// Why bytes are not a valid locate message.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("locate message is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("locate message is not valid protobuf")]
    Decode(#[from] prost::DecodeError),
    #[error("locate message names no valid peer id")]
    PeerId,
    #[error("locate answer carries an invalid address")]
    Addr,
    #[error("locate answer has an unknown status {0}")]
    Status(i32),
    #[error("locate answer carries more than {max} addresses of a kind", max = MAX_LOCATE_ADDRS)]
    TooManyAddrs,
}

impl From<LocateError> for io::Error {
    fn from(error: LocateError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// The request message, as declared in `locate.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct LocateRequestProto {
    #[prost(bytes = "vec", tag = "1")]
    peer: Vec<u8>,
}

/// The response message, as declared in `locate.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct LocateResponseProto {
    #[prost(int32, tag = "1")]
    status: i32,
    #[prost(bytes = "vec", tag = "2")]
    relay: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    addrs: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    browser_addrs: Vec<Vec<u8>>,
}

const FOUND: i32 = 0;
const NOT_FOUND: i32 = 1;
const BUSY: i32 = 2;
const TIMED_OUT: i32 = 3;
const NO_ADDRESS: i32 = 4;

impl LocateRequest {
    pub fn encode(&self) -> Vec<u8> {
        LocateRequestProto {
            peer: self.peer.to_bytes(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, LocateError> {
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(LocateError::TooLarge {
                max: MAX_REQUEST_BYTES,
            });
        }
        let proto = LocateRequestProto::decode(bytes)?;
        let peer = PeerId::from_bytes(&proto.peer).map_err(|_| LocateError::PeerId)?;
        Ok(Self { peer })
    }
}

/// Encodes `response` within [`MAX_RESPONSE_BYTES`]: at most
/// [`MAX_LOCATE_ADDRS`] addresses of each kind, and of those the last ones
/// left out (browser ones first) while the message is too large.
pub fn encode_response(response: &LocateResponse) -> Vec<u8> {
    let proto = match response {
        Ok(located) => {
            let bytes = |addrs: &[Multiaddr]| -> Vec<Vec<u8>> {
                addrs
                    .iter()
                    .take(MAX_LOCATE_ADDRS)
                    .map(|addr| addr.to_vec())
                    .collect()
            };
            let mut proto = LocateResponseProto {
                status: FOUND,
                relay: located.relay.to_bytes(),
                addrs: bytes(&located.addrs),
                browser_addrs: bytes(&located.browser_addrs),
            };
            while proto.encoded_len() > MAX_RESPONSE_BYTES {
                if proto.browser_addrs.pop().is_none() && proto.addrs.pop().is_none() {
                    break;
                }
            }
            proto
        }
        Err(refusal) => LocateResponseProto {
            status: match refusal {
                LocateRefusal::NotFound => NOT_FOUND,
                LocateRefusal::Busy => BUSY,
                LocateRefusal::TimedOut => TIMED_OUT,
                LocateRefusal::NoAddress => NO_ADDRESS,
            },
            relay: Vec::new(),
            addrs: Vec::new(),
            browser_addrs: Vec::new(),
        },
    };
    proto.encode_to_vec()
}

pub fn decode_response(bytes: &[u8]) -> Result<LocateResponse, LocateError> {
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(LocateError::TooLarge {
            max: MAX_RESPONSE_BYTES,
        });
    }
    let proto = LocateResponseProto::decode(bytes)?;
    let refusal = match proto.status {
        FOUND => None,
        NOT_FOUND => Some(LocateRefusal::NotFound),
        BUSY => Some(LocateRefusal::Busy),
        TIMED_OUT => Some(LocateRefusal::TimedOut),
        NO_ADDRESS => Some(LocateRefusal::NoAddress),
        other => return Err(LocateError::Status(other)),
    };
    if let Some(refusal) = refusal {
        return Ok(Err(refusal));
    }
    if proto.addrs.len() > MAX_LOCATE_ADDRS || proto.browser_addrs.len() > MAX_LOCATE_ADDRS {
        return Err(LocateError::TooManyAddrs);
    }
    let relay = PeerId::from_bytes(&proto.relay).map_err(|_| LocateError::PeerId)?;
    let parse = |addrs: Vec<Vec<u8>>| {
        addrs
            .into_iter()
            .map(|bytes| Multiaddr::try_from(bytes).map_err(|_| LocateError::Addr))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Ok(Located {
        relay,
        addrs: parse(proto.addrs)?,
        browser_addrs: parse(proto.browser_addrs)?,
    }))
}

/// Reads what the other side wrote until it closed, refusing more than
/// `max` bytes.
async fn read_bounded<T: AsyncRead + Unpin>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut bytes).await?;
    if bytes.len() > max {
        return Err(LocateError::TooLarge { max }.into());
    }
    Ok(bytes)
}

async fn write_all_and_close<T: AsyncWrite + Unpin>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.close().await
}

/// Asks over `io`, a stream just opened for [`PROTOCOL`], what a
/// request-response client of [`Codec`] would: writes the request, closes
/// its side, and reads the answer to its end (at most
/// [`MAX_RESPONSE_BYTES`]). The peers ask this way on a plain stream; the
/// relay answers with [`Codec`].
pub async fn ask<T: AsyncRead + AsyncWrite + Unpin>(
    io: &mut T,
    request: LocateRequest,
) -> io::Result<LocateResponse> {
    write_all_and_close(io, &request.encode()).await?;
    let bytes = read_bounded(io, MAX_RESPONSE_BYTES).await?;
    Ok(decode_response(&bytes)?)
}

/// libp2p request-response's codec for the locate protocol: the relay's
/// server answers with it. Peers ask with [`ask`] on a plain stream (the
/// same bytes), which keeps request-response out of the page.
#[derive(Debug, Clone, Copy, Default)]
pub struct Codec;

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = LocateRequest;
    type Response = LocateResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<LocateRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_REQUEST_BYTES).await?;
        Ok(LocateRequest::decode(&bytes)?)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<LocateResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_RESPONSE_BYTES).await?;
        Ok(decode_response(&bytes)?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: LocateRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_all_and_close(io, &request.encode()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: LocateResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_all_and_close(io, &encode_response(&response)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("valid multiaddr")
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let request = LocateRequest {
            peer: PeerId::random(),
        };
        assert_eq!(
            LocateRequest::decode(&request.encode()).expect("valid"),
            request
        );
        let located = Located {
            relay: PeerId::random(),
            addrs: vec![
                addr("/ip4/192.0.2.1/tcp/4001"),
                addr("/ip4/192.0.2.1/udp/4001/quic-v1"),
            ],
            browser_addrs: vec![addr("/ip4/192.0.2.1/tcp/4002/ws")],
        };
        let answer = decode_response(&encode_response(&Ok(located.clone()))).expect("valid");
        assert_eq!(answer, Ok(located));
        for refusal in [
            LocateRefusal::NotFound,
            LocateRefusal::Busy,
            LocateRefusal::TimedOut,
            LocateRefusal::NoAddress,
        ] {
            let answer = decode_response(&encode_response(&Err(refusal))).expect("valid");
            assert_eq!(answer, Err(refusal));
        }
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let too_large = vec![0u8; MAX_REQUEST_BYTES + 1];
        assert!(matches!(
            LocateRequest::decode(&too_large),
            Err(LocateError::TooLarge { .. })
        ));
        let not_a_peer = LocateRequestProto {
            peer: b"nobody".to_vec(),
        }
        .encode_to_vec();
        assert!(matches!(
            LocateRequest::decode(&not_a_peer),
            Err(LocateError::PeerId)
        ));
        let unknown = LocateResponseProto {
            status: 99,
            relay: Vec::new(),
            addrs: Vec::new(),
            browser_addrs: Vec::new(),
        }
        .encode_to_vec();
        assert_eq!(
            decode_response(&unknown)
                .expect_err("unknown status")
                .to_string(),
            "locate answer has an unknown status 99"
        );
        let many = LocateResponseProto {
            status: FOUND,
            relay: PeerId::random().to_bytes(),
            addrs: vec![addr("/ip4/192.0.2.1/tcp/1").to_vec(); MAX_LOCATE_ADDRS + 1],
            browser_addrs: Vec::new(),
        }
        .encode_to_vec();
        assert!(matches!(
            decode_response(&many),
            Err(LocateError::TooManyAddrs)
        ));
    }

    /// The first release's reader: no browser addresses, at most 2048
    /// bytes.
    #[derive(Clone, PartialEq, prost::Message)]
    struct FirstReleaseResponse {
        #[prost(int32, tag = "1")]
        status: i32,
        #[prost(bytes = "vec", tag = "2")]
        relay: Vec<u8>,
        #[prost(bytes = "vec", repeated, tag = "3")]
        addrs: Vec<Vec<u8>>,
    }

    #[test]
    fn an_answer_fits_the_first_releases_reader_whatever_the_addresses() {
        // Long DNS names: 16 addresses of about 170 bytes would be 2.7 KB.
        let long = |port: u16, tail: &str| {
            addr(&format!(
                "/dns4/{}.example/tcp/{port}{tail}",
                "a".repeat(150)
            ))
        };
        let located = Located {
            relay: PeerId::random(),
            addrs: (1..=8).map(|port| long(port, "")).collect(),
            browser_addrs: (1..=8).map(|port| long(port, "/ws")).collect(),
        };
        let bytes = encode_response(&Ok(located.clone()));
        assert!(bytes.len() <= MAX_RESPONSE_BYTES, "{} bytes", bytes.len());
        let old = FirstReleaseResponse::decode(bytes.as_slice()).expect("an old reader reads it");
        assert_eq!(old.status, FOUND);
        assert_eq!(old.addrs.len(), 8, "native addresses are left out last");
        let Ok(new) = decode_response(&bytes).expect("valid") else {
            panic!("found")
        };
        assert_eq!(new.addrs, located.addrs);
        assert!(
            !new.browser_addrs.is_empty() && new.browser_addrs.len() < 8,
            "{} browser addresses",
            new.browser_addrs.len()
        );
        assert_eq!(
            new.browser_addrs[..],
            located.browser_addrs[..new.browser_addrs.len()]
        );
    }

    /// One side of a stream: what was written, whether the writer closed
    /// its side (before any read), and the other side's bytes to read.
    struct Recorded {
        written: Vec<u8>,
        closed_before_read: Option<bool>,
        to_read: futures::io::Cursor<Vec<u8>>,
    }

    impl AsyncWrite for Recorded {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.written.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_close(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            self.closed_before_read.get_or_insert(true);
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl AsyncRead for Recorded {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.closed_before_read.get_or_insert(false);
            std::pin::Pin::new(&mut self.to_read).poll_read(cx, buf)
        }
    }

    /// A peer asking on a plain stream speaks what the relay's
    /// request-response server reads and writes.
    #[tokio::test]
    async fn asking_on_a_stream_speaks_the_codecs_wire_format() {
        use libp2p::request_response::Codec as _;
        let request = LocateRequest {
            peer: PeerId::random(),
        };
        let located = Located {
            relay: PeerId::random(),
            addrs: vec![addr("/ip4/192.0.2.1/tcp/4001")],
            browser_addrs: vec![addr("/ip4/192.0.2.1/tcp/4002/ws")],
        };
        let mut answer = Vec::new();
        Codec
            .write_response(&PROTOCOL, &mut answer, Ok(located.clone()))
            .await
            .expect("written");
        let mut io = Recorded {
            written: Vec::new(),
            closed_before_read: None,
            to_read: futures::io::Cursor::new(answer),
        };
        let response = ask(&mut io, request).await.expect("answered");
        assert_eq!(response, Ok(located));
        assert_eq!(
            io.closed_before_read,
            Some(true),
            "the request side is closed before the answer is read (the server reads to the end)"
        );
        let read = Codec
            .read_request(&PROTOCOL, &mut futures::io::Cursor::new(io.written))
            .await
            .expect("the relay's codec reads the request");
        assert_eq!(read, request);

        let mut io = Recorded {
            written: Vec::new(),
            closed_before_read: None,
            to_read: futures::io::Cursor::new(vec![7u8; MAX_RESPONSE_BYTES + 1]),
        };
        let error = ask(&mut io, request).await.expect_err("too large");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_reader_stops_at_the_limit() {
        let mut io = futures::io::Cursor::new(vec![7u8; MAX_RESPONSE_BYTES + 10]);
        let error = read_bounded(&mut io, MAX_RESPONSE_BYTES)
            .await
            .expect_err("too large");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("2048"), "{error}");
    }
}
