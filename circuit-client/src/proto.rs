//! The wire: the spec's `HopMessage` and `StopMessage` (`circuit.proto`
//! beside this file), each behind one unsigned-varint length, at most
//! [`MAX_MESSAGE_BYTES`].
//!
//! Written by hand, not generated: the client writes three messages
//! (RESERVE, CONNECT, a STOP status) and reads two (a HOP status, a STOP
//! CONNECT), so a field reader and a few bytes of encoding do it. A
//! field it does not use (limits, the voucher, a peer's addresses) is read
//! past; a field of the wrong wire type, or one running past the end, is a
//! malformed message, and so is a group (wire types 3 and 4: deprecated in
//! protobuf, and in no message of the spec).

use std::fmt;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Largest message read or written. A reservation names the relay's
/// addresses and a signed voucher: well under this (rust-libp2p reads at
/// most 4 KiB too).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Addresses of a reservation kept at most; the rest are read past.
pub const MAX_RESERVATION_ADDRS: usize = 16;

/// `HopMessage.Type`.
pub(crate) const HOP_RESERVE: u64 = 0;
pub(crate) const HOP_CONNECT: u64 = 1;
pub(crate) const HOP_STATUS: u64 = 2;
/// `StopMessage.Type`.
pub(crate) const STOP_CONNECT: u64 = 0;
pub(crate) const STOP_STATUS: u64 = 1;

/// The spec's `Status`, with its names: they are what the relay means and
/// what a person can look up (`RESOURCE_LIMIT_EXCEEDED`: the relay is at
/// its reservation or circuit limit, or this peer asked too often).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u64);

impl Status {
    pub const OK: Status = Status(100);
    pub const RESERVATION_REFUSED: Status = Status(200);
    pub const RESOURCE_LIMIT_EXCEEDED: Status = Status(201);
    pub const PERMISSION_DENIED: Status = Status(202);
    pub const CONNECTION_FAILED: Status = Status(203);
    pub const NO_RESERVATION: Status = Status(204);
    pub const MALFORMED_MESSAGE: Status = Status(400);
    pub const UNEXPECTED_MESSAGE: Status = Status(401);

    fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            100 => "OK",
            200 => "RESERVATION_REFUSED",
            201 => "RESOURCE_LIMIT_EXCEEDED",
            202 => "PERMISSION_DENIED",
            203 => "CONNECTION_FAILED",
            204 => "NO_RESERVATION",
            400 => "MALFORMED_MESSAGE",
            401 => "UNEXPECTED_MESSAGE",
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "status {}", self.0),
        }
    }
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the message is longer than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    #[error("the message is malformed: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a relay's `HopMessage` of type STATUS says (the client reads no
/// other).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct HopStatus {
    pub status: Option<Status>,
    /// `reservation.expire`: UNIX seconds.
    pub expire: Option<u64>,
    /// `reservation.addrs`, at most [`MAX_RESERVATION_ADDRS`].
    pub addrs: Vec<Vec<u8>>,
    pub has_reservation: bool,
}

/// A relay's `StopMessage` of type CONNECT: who is connecting.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StopConnect {
    pub peer_id: Vec<u8>,
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A field's key: its number and wire type (0 varint, 2 length-delimited).
fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    put_varint(out, field << 3 | wire_type);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `HopMessage { type = RESERVE }`.
pub(crate) fn hop_reserve() -> Vec<u8> {
    let mut out = Vec::with_capacity(2);
    put_key(&mut out, 1, 0);
    put_varint(&mut out, HOP_RESERVE);
    out
}

/// `HopMessage { type = CONNECT, peer = Peer { id } }`.
pub(crate) fn hop_connect(peer_id: &[u8]) -> Vec<u8> {
    let mut peer = Vec::with_capacity(peer_id.len() + 2);
    put_bytes(&mut peer, 1, peer_id);
    let mut out = Vec::with_capacity(peer.len() + 4);
    put_key(&mut out, 1, 0);
    put_varint(&mut out, HOP_CONNECT);
    put_bytes(&mut out, 2, &peer);
    out
}

/// `StopMessage { type = STATUS, status }`.
pub(crate) fn stop_status(status: Status) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    put_key(&mut out, 1, 0);
    put_varint(&mut out, STOP_STATUS);
    put_key(&mut out, 4, 0);
    put_varint(&mut out, status.0);
    out
}

/// One field's value, as far as the client reads values.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Reads protobuf fields in order; fixed-width ones are skipped.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn varint(&mut self) -> Result<u64, ReadError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .rest
                .split_first()
                .ok_or(ReadError::Malformed("a varint runs past the end"))?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadError::Malformed("a varint is longer than 10 bytes"))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], ReadError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.rest.len() {
            return Err(ReadError::Malformed("a field runs past the end"));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// The next field (its number and value), `None` at the end.
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, ReadError> {
        loop {
            if self.rest.is_empty() {
                return Ok(None);
            }
            let key = self.varint()?;
            let field = key >> 3;
            match key & 7 {
                0 => return Ok(Some((field, Value::Varint(self.varint()?)))),
                2 => {
                    let len = self.varint()?;
                    return Ok(Some((field, Value::Bytes(self.take(len)?))));
                }
                1 => {
                    self.take(8)?;
                }
                5 => {
                    self.take(4)?;
                }
                _ => return Err(ReadError::Malformed("a field has an unknown wire type")),
            }
        }
    }
}

fn expect_varint(value: Value<'_>) -> Result<u64, ReadError> {
    match value {
        Value::Varint(value) => Ok(value),
        Value::Bytes(_) => Err(ReadError::Malformed("a number field holds bytes")),
    }
}

fn expect_bytes(value: Value<'_>) -> Result<&[u8], ReadError> {
    match value {
        Value::Bytes(bytes) => Ok(bytes),
        Value::Varint(_) => Err(ReadError::Malformed("a bytes field holds a number")),
    }
}

/// Reads a `HopMessage`, which must be of type STATUS.
pub(crate) fn decode_hop_status(bytes: &[u8]) -> Result<HopStatus, ReadError> {
    let mut fields = Fields::new(bytes);
    let mut message_type = None;
    let mut read = HopStatus::default();
    while let Some((field, value)) = fields.next_field()? {
        match field {
            1 => message_type = Some(expect_varint(value)?),
            3 => {
                read.has_reservation = true;
                let mut reservation = Fields::new(expect_bytes(value)?);
                while let Some((field, value)) = reservation.next_field()? {
                    match field {
                        1 => read.expire = Some(expect_varint(value)?),
                        2 => {
                            let addr = expect_bytes(value)?;
                            if read.addrs.len() < MAX_RESERVATION_ADDRS {
                                read.addrs.push(addr.to_vec());
                            }
                        }
                        _ => {}
                    }
                }
            }
            5 => read.status = Some(Status(expect_varint(value)?)),
            _ => {}
        }
    }
    match message_type {
        Some(HOP_STATUS) => Ok(read),
        Some(_) => Err(ReadError::Malformed("the relay's answer is not a STATUS")),
        None => Err(ReadError::Malformed("the message has no type")),
    }
}

/// Reads a `StopMessage`, which must be of type CONNECT with a peer id.
pub(crate) fn decode_stop_connect(bytes: &[u8]) -> Result<StopConnect, ReadError> {
    let mut fields = Fields::new(bytes);
    let mut message_type = None;
    let mut peer_id = None;
    while let Some((field, value)) = fields.next_field()? {
        match field {
            1 => message_type = Some(expect_varint(value)?),
            2 => {
                let mut peer = Fields::new(expect_bytes(value)?);
                while let Some((field, value)) = peer.next_field()? {
                    if field == 1 {
                        peer_id = Some(expect_bytes(value)?.to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    if message_type != Some(STOP_CONNECT) {
        return Err(ReadError::Malformed(
            "the relay's STOP message is not a CONNECT",
        ));
    }
    Ok(StopConnect {
        peer_id: peer_id.ok_or(ReadError::Malformed("the CONNECT names no peer"))?,
    })
}

/// Writes one length-prefixed message (and flushes it: the other side
/// waits for it before anything else moves).
pub(crate) async fn write_message<T: AsyncWrite + Unpin>(
    io: &mut T,
    message: &[u8],
) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(message.len() + 2);
    put_varint(&mut framed, message.len() as u64);
    framed.extend_from_slice(message);
    io.write_all(&framed).await?;
    io.flush().await
}

/// Reads one length-prefixed message of at most [`MAX_MESSAGE_BYTES`],
/// and not a byte more: after a CONNECT's answer the stream carries the
/// relayed connection.
pub(crate) async fn read_message<T: AsyncRead + Unpin>(io: &mut T) -> Result<Vec<u8>, ReadError> {
    let mut len = 0usize;
    for shift in [0, 7] {
        let mut byte = [0u8];
        io.read_exact(&mut byte).await?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            if len > MAX_MESSAGE_BYTES {
                return Err(ReadError::TooLarge);
            }
            let mut bytes = vec![0u8; len];
            io.read_exact(&mut bytes).await?;
            return Ok(bytes);
        }
    }
    // 4096 fits in two bytes: a third is too large.
    Err(ReadError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop_status(status: u64, reservation: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        put_key(&mut out, 1, 0);
        put_varint(&mut out, HOP_STATUS);
        if let Some(reservation) = reservation {
            put_bytes(&mut out, 3, reservation);
        }
        // A limit (field 4) the client reads past.
        put_bytes(&mut out, 4, &[0x08, 0x78, 0x10, 0x80, 0x80, 0x40]);
        put_key(&mut out, 5, 0);
        put_varint(&mut out, status);
        out
    }

    #[test]
    fn messages_are_encoded_as_the_spec_lays_them_out() {
        assert_eq!(hop_reserve(), [0x08, 0x00]);
        assert_eq!(
            hop_connect(&[1, 2, 3]),
            [0x08, 0x01, 0x12, 0x05, 0x0a, 0x03, 1, 2, 3]
        );
        // Status 100 is one varint byte; 201 two.
        assert_eq!(stop_status(Status::OK), [0x08, 0x01, 0x20, 100]);
        assert_eq!(
            stop_status(Status::RESOURCE_LIMIT_EXCEEDED),
            [0x08, 0x01, 0x20, 0xc9, 0x01]
        );
    }

    #[test]
    fn an_accepted_reservation_reads_with_its_expiry_and_addresses() {
        let mut reservation = Vec::new();
        put_key(&mut reservation, 1, 0);
        put_varint(&mut reservation, 1_800_000_000);
        put_bytes(&mut reservation, 2, b"first");
        put_bytes(&mut reservation, 2, b"second");
        put_bytes(&mut reservation, 3, b"a voucher, read past");
        let read = decode_hop_status(&hop_status(100, Some(&reservation))).expect("valid");
        assert_eq!(read.status, Some(Status::OK));
        assert_eq!(read.expire, Some(1_800_000_000));
        assert_eq!(read.addrs, [b"first".to_vec(), b"second".to_vec()]);
        assert!(read.has_reservation);
    }

    #[test]
    fn a_refusal_keeps_its_status_name() {
        let read = decode_hop_status(&hop_status(201, None)).expect("valid");
        assert_eq!(read.status, Some(Status::RESOURCE_LIMIT_EXCEEDED));
        assert_eq!(
            read.status.expect("a status").to_string(),
            "RESOURCE_LIMIT_EXCEEDED"
        );
        assert_eq!(Status(999).to_string(), "status 999");
        assert!(!read.has_reservation);
    }

    #[test]
    fn a_reservation_keeps_a_bounded_number_of_addresses() {
        let mut reservation = Vec::new();
        for _ in 0..MAX_RESERVATION_ADDRS + 5 {
            put_bytes(&mut reservation, 2, b"addr");
        }
        let read = decode_hop_status(&hop_status(100, Some(&reservation))).expect("valid");
        assert_eq!(read.addrs.len(), MAX_RESERVATION_ADDRS);
    }

    #[test]
    fn malformed_messages_are_refused() {
        // A length past the end.
        assert!(decode_hop_status(&[0x08, 0x02, 0x1a, 0x09, 1]).is_err());
        // Not a STATUS.
        assert!(decode_hop_status(&hop_reserve()).is_err());
        // A bytes field where a number belongs.
        assert!(decode_hop_status(&[0x0a, 0x00]).is_err());
        // An unterminated varint.
        assert!(decode_hop_status(&[0x08, 0x80]).is_err());
        // A STOP CONNECT without a peer.
        assert!(decode_stop_connect(&[0x08, 0x00]).is_err());
    }

    #[test]
    fn a_stop_connect_names_its_peer() {
        let mut peer = Vec::new();
        put_bytes(&mut peer, 1, &[9, 9]);
        put_bytes(&mut peer, 2, b"an address, read past");
        let mut message = Vec::new();
        put_key(&mut message, 1, 0);
        put_varint(&mut message, STOP_CONNECT);
        put_bytes(&mut message, 2, &peer);
        assert_eq!(
            decode_stop_connect(&message).expect("valid"),
            StopConnect {
                peer_id: vec![9, 9]
            }
        );
    }

    #[test]
    fn framing_reads_back_and_refuses_an_oversized_message() {
        futures::executor::block_on(async {
            let mut wire = Vec::new();
            write_message(&mut wire, &[7; 300]).await.expect("written");
            wire.extend_from_slice(b"relayed bytes");
            let mut cursor = futures::io::Cursor::new(wire);
            assert_eq!(read_message(&mut cursor).await.expect("read"), [7; 300]);
            let mut rest = Vec::new();
            cursor.read_to_end(&mut rest).await.expect("rest");
            assert_eq!(rest, b"relayed bytes", "no byte past the message is read");

            let mut wire = Vec::new();
            write_message(&mut wire, &vec![0; MAX_MESSAGE_BYTES + 1])
                .await
                .expect("written");
            let error = read_message(&mut futures::io::Cursor::new(wire))
                .await
                .expect_err("too large");
            assert!(matches!(error, ReadError::TooLarge), "{error}");
        });
    }
}
