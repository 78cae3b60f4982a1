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

/// Most addresses of the holding relay an answer carries (the relay's
/// address book keeps as many per member).
pub const MAX_LOCATE_ADDRS: usize = 8;

/// Largest response read: [`MAX_LOCATE_ADDRS`] addresses of up to 200
/// bytes each, and the relay's id.
pub const MAX_RESPONSE_BYTES: usize = 2048;

/// What a peer asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocateRequest {
    /// The peer whose relay is wanted.
    pub peer: PeerId,
}

/// Where the peer is reserved: a relay and the addresses to dial it at
/// (TCP or QUIC for native peers; what the federation's address book
/// holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub relay: PeerId,
    pub addrs: Vec<Multiaddr>,
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
    #[error("locate answer carries more than {max} addresses", max = MAX_LOCATE_ADDRS)]
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

pub fn encode_response(response: &LocateResponse) -> Vec<u8> {
    let proto = match response {
        Ok(located) => LocateResponseProto {
            status: FOUND,
            relay: located.relay.to_bytes(),
            addrs: located
                .addrs
                .iter()
                .take(MAX_LOCATE_ADDRS)
                .map(|addr| addr.to_vec())
                .collect(),
        },
        Err(refusal) => LocateResponseProto {
            status: match refusal {
                LocateRefusal::NotFound => NOT_FOUND,
                LocateRefusal::Busy => BUSY,
                LocateRefusal::TimedOut => TIMED_OUT,
                LocateRefusal::NoAddress => NO_ADDRESS,
            },
            relay: Vec::new(),
            addrs: Vec::new(),
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
    if proto.addrs.len() > MAX_LOCATE_ADDRS {
        return Err(LocateError::TooManyAddrs);
    }
    let relay = PeerId::from_bytes(&proto.relay).map_err(|_| LocateError::PeerId)?;
    let addrs = proto
        .addrs
        .into_iter()
        .map(|bytes| Multiaddr::try_from(bytes).map_err(|_| LocateError::Addr))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Ok(Located { relay, addrs }))
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

/// libp2p request-response's codec for the locate protocol, shared by the
/// relay (which answers) and the peers (which ask).
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
        }
        .encode_to_vec();
        assert!(matches!(
            decode_response(&many),
            Err(LocateError::TooManyAddrs)
        ));
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
