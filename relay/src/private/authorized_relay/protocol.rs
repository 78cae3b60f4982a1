//! The messages of circuit relay v2 that this relay answers itself for
//! guests (peers not in the authorized peers file): hop requests and their
//! answers, and the stop handshake that opens a guest's circuit.
//!
//! Schema (libp2p/specs `relay/circuit-v2.md`, proto2); only the fields
//! this relay reads or writes are declared, the others are skipped on
//! decode:
//!
//! ```proto
//! message HopMessage {
//!   enum Type { RESERVE = 0; CONNECT = 1; STATUS = 2; }
//!   required Type type = 1;
//!   optional Peer peer = 2;
//!   optional Reservation reservation = 3;  // not declared: never granted here
//!   optional Limit limit = 4;
//!   optional Status status = 5;
//! }
//! message StopMessage {
//!   enum Type { CONNECT = 0; STATUS = 1; }
//!   required Type type = 1;
//!   optional Peer peer = 2;
//!   optional Limit limit = 3;
//!   optional Status status = 4;
//! }
//! message Peer { required bytes id = 1; repeated bytes addrs = 2; }
//! message Limit { optional uint32 duration = 1; optional uint64 data = 2; }
//! ```
//!
//! Each message travels as an unsigned-varint length followed by that many
//! bytes of protobuf.

use std::io;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::{PeerId, StreamProtocol};

/// The hop protocol: reservations and circuit requests, clients to relay.
pub const HOP_PROTOCOL: StreamProtocol = StreamProtocol::new("/libp2p/circuit/relay/0.2.0/hop");
/// The stop protocol: the relay asks a circuit's destination to accept it.
pub const STOP_PROTOCOL: StreamProtocol = StreamProtocol::new("/libp2p/circuit/relay/0.2.0/stop");

/// Largest hop message read. A request is a type and a peer id with a few
/// addresses; this is the bound libp2p implementations use.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// A length prefix of more bytes than this cannot be at most
/// [`MAX_MESSAGE_BYTES`] (4096 needs two).
const MAX_LENGTH_PREFIX_BYTES: usize = 2;

#[derive(Clone, PartialEq, prost::Message)]
pub struct HopMessage {
    #[prost(enumeration = "HopType", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub peer: Option<Peer>,
    #[prost(message, optional, tag = "4")]
    pub limit: Option<Limit>,
    #[prost(enumeration = "Status", optional, tag = "5")]
    pub status: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StopMessage {
    #[prost(enumeration = "StopType", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub peer: Option<Peer>,
    #[prost(message, optional, tag = "3")]
    pub limit: Option<Limit>,
    #[prost(enumeration = "Status", optional, tag = "4")]
    pub status: Option<i32>,
}

/// What a circuit may carry before the relay ends it.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Limit {
    /// Seconds.
    #[prost(uint32, optional, tag = "1")]
    pub duration: Option<u32>,
    /// Bytes. The specification says "in each direction"; `libp2p-relay`
    /// and this relay count both together, the stricter reading.
    #[prost(uint64, optional, tag = "2")]
    pub data: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Peer {
    #[prost(bytes = "vec", required, tag = "1")]
    pub id: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub addrs: Vec<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum HopType {
    Reserve = 0,
    Connect = 1,
    Status = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum StopType {
    Connect = 0,
    Status = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Status {
    Ok = 100,
    ReservationRefused = 200,
    ResourceLimitExceeded = 201,
    PermissionDenied = 202,
    ConnectionFailed = 203,
    NoReservation = 204,
    MalformedMessage = 400,
    UnexpectedMessage = 401,
}

impl HopMessage {
    /// The answer to a request: `type = STATUS` with `status`.
    pub fn answer(status: Status) -> Self {
        Self {
            r#type: HopType::Status as i32,
            peer: None,
            limit: None,
            status: Some(status as i32),
        }
    }

    /// The answer to an accepted circuit request: `STATUS OK` with the
    /// circuit's limit.
    pub fn accepted(limit: Limit) -> Self {
        Self {
            limit: Some(limit),
            ..Self::answer(Status::Ok)
        }
    }

    /// A circuit request for `peer`.
    pub fn connect(peer: PeerId) -> Self {
        Self {
            r#type: HopType::Connect as i32,
            peer: Some(Peer {
                id: peer.to_bytes(),
                addrs: Vec::new(),
            }),
            limit: None,
            status: None,
        }
    }

    pub fn reserve() -> Self {
        Self {
            r#type: HopType::Reserve as i32,
            peer: None,
            limit: None,
            status: None,
        }
    }
}

impl StopMessage {
    /// The relay's request to a destination: a circuit from `src`. The
    /// source's addresses are left out, as the specification asks.
    pub fn connect(src: PeerId, limit: Limit) -> Self {
        Self {
            r#type: StopType::Connect as i32,
            peer: Some(Peer {
                id: src.to_bytes(),
                addrs: Vec::new(),
            }),
            limit: Some(limit),
            status: None,
        }
    }

    pub fn answer(status: Status) -> Self {
        Self {
            r#type: StopType::Status as i32,
            peer: None,
            limit: None,
            status: Some(status as i32),
        }
    }
}

/// What a client asked for on a hop stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Reserve,
    /// A circuit to `dst` (`None`: the peer id did not parse).
    Connect {
        dst: Option<PeerId>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the message: {0}")]
    Io(#[from] io::Error),
    #[error("the message announces {0} bytes; the limit is {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("the message's length prefix is malformed")]
    BadLength,
    #[error("the message does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("expected a RESERVE or CONNECT request, got message type {0}")]
    Unexpected(i32),
    #[error("expected a STATUS answer, got message type {0}")]
    NotAnAnswer(i32),
}

impl ReadError {
    /// The status to answer with, if the stream is still worth an answer.
    pub fn status(&self) -> Option<Status> {
        match self {
            Self::Io(_) => None,
            Self::TooLarge(_) | Self::BadLength | Self::Decode(_) => Some(Status::MalformedMessage),
            Self::Unexpected(_) | Self::NotAnAnswer(_) => Some(Status::UnexpectedMessage),
        }
    }
}

/// Reads one length-prefixed message, refusing any over
/// [`MAX_MESSAGE_BYTES`] before reading its body. Exactly the message's
/// bytes are read: what follows on the stream is the circuit's.
pub async fn read_message<M: prost::Message + Default>(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<M, ReadError> {
    let len = read_length(stream).await?;
    if len > MAX_MESSAGE_BYTES {
        return Err(ReadError::TooLarge(len));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(M::decode(body.as_slice())?)
}

/// Reads a request and says what it asks for.
pub async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> Result<Request, ReadError> {
    let message: HopMessage = read_message(stream).await?;
    match HopType::try_from(message.r#type) {
        Ok(HopType::Reserve) => Ok(Request::Reserve),
        Ok(HopType::Connect) => Ok(Request::Connect {
            dst: message
                .peer
                .and_then(|peer| PeerId::from_bytes(&peer.id).ok()),
        }),
        Ok(HopType::Status) | Err(_) => Err(ReadError::Unexpected(message.r#type)),
    }
}

/// Reads a destination's answer to [`StopMessage::connect`]: its status,
/// as the raw number when it is not one this schema knows.
pub async fn read_stop_answer(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Result<Status, i32>, ReadError> {
    let message: StopMessage = read_message(stream).await?;
    if message.r#type != StopType::Status as i32 {
        return Err(ReadError::NotAnAnswer(message.r#type));
    }
    let status = message.status.unwrap_or_default();
    Ok(Status::try_from(status).map_err(|_| status))
}

pub async fn write_message(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &impl prost::Message,
) -> io::Result<()> {
    stream
        .write_all(&message.encode_length_delimited_to_vec())
        .await?;
    stream.flush().await
}

async fn read_length(stream: &mut (impl AsyncRead + Unpin)) -> Result<usize, ReadError> {
    let mut value = 0usize;
    for index in 0..MAX_LENGTH_PREFIX_BYTES {
        let mut byte = [0u8];
        stream.read_exact(&mut byte).await?;
        value |= usize::from(byte[0] & 0x7f) << (7 * index);
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    // Still continued after the bytes any allowed length takes.
    Err(ReadError::BadLength)
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn framed(message: &HopMessage) -> Vec<u8> {
        message.encode_length_delimited_to_vec()
    }

    fn read(bytes: &[u8]) -> Result<Request, ReadError> {
        futures::executor::block_on(read_request(&mut futures::io::Cursor::new(bytes)))
    }

    #[test]
    fn reserve_and_connect_requests_are_recognised() {
        let dst = PeerId::random();
        assert_eq!(
            read(&framed(&HopMessage::reserve())).ok(),
            Some(Request::Reserve)
        );
        assert_eq!(
            read(&framed(&HopMessage::connect(dst))).ok(),
            Some(Request::Connect { dst: Some(dst) })
        );
    }

    #[test]
    fn a_denial_is_status_permission_denied_on_the_wire() {
        // type = STATUS (field 1, varint 2), status = 202 (field 5, varint
        // 0xca 0x01), after a one-byte length prefix.
        let bytes = framed(&HopMessage::answer(Status::PermissionDenied));
        assert_eq!(bytes, [5, 0x08, 0x02, 0x28, 0xca, 0x01]);
    }

    #[test]
    fn oversized_malformed_and_unexpected_requests_are_refused() {
        // 4097 as a varint: 0x81 0x20.
        assert!(matches!(
            read(&[0x81, 0x20]),
            Err(ReadError::TooLarge(4097))
        ));
        assert!(matches!(
            read(&[0xff, 0xff, 0xff]),
            Err(ReadError::BadLength)
        ));
        assert!(matches!(read(&[2, 0xff, 0xff]), Err(ReadError::Decode(_))));
        assert!(matches!(
            read(&framed(&HopMessage::answer(Status::Ok))),
            Err(ReadError::Unexpected(2))
        ));
        assert!(
            matches!(read(&[3, 0x08]), Err(ReadError::Io(_))),
            "truncated"
        );
    }
}
