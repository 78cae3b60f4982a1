//! The wire format of a libp2p WebRTC stream (specs `webrtc/README.md`):
//! each frame is an unsigned-varint length followed by the protobuf
//! message `{ optional Flag flag = 1; optional bytes message = 2; }`, and a
//! whole frame, prefix included, is at most [`MAX_FRAME_LEN`] bytes.
//!
//! The protobuf has two fields, so it is written by hand here: no code
//! generator, and the decoder can bound every length before it allocates.
//! Frames may span channel messages, or several may share one, so the
//! decoder keeps the bytes of an incomplete frame until the rest arrives.

/// The largest encoded frame, length prefix included (the spec's 16 KiB,
/// which every major browser can send as one data channel message).
pub const MAX_FRAME_LEN: usize = 16 * 1024;

/// The most bytes of framing around a payload: a 2-byte length prefix, the
/// flag field (tag and value, 2 bytes) and the message field's tag (1) and
/// length (2).
const MAX_OVERHEAD: usize = 2 + 2 + 1 + 2;

/// The largest payload one frame carries, so that the frame stays within
/// [`MAX_FRAME_LEN`] whatever its flag.
pub const MAX_PAYLOAD_LEN: usize = MAX_FRAME_LEN - MAX_OVERHEAD;

/// Protobuf keys: field number << 3 | wire type.
const FLAG_KEY: u64 = 1 << 3; // varint
const MESSAGE_KEY: u64 = (2 << 3) | 2; // length-delimited

/// A frame's flag. Values this crate does not know are kept as
/// [`Flag::Other`] and ignored by the state machine, so that a peer on a
/// later version of the spec does not break the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// The sender will send nothing more.
    Fin,
    /// The sender will read nothing more and discards what arrives.
    StopSending,
    /// The sender abandons the stream.
    ResetStream,
    /// The sender received our FIN (and so everything before it).
    FinAck,
    /// A flag this version does not know.
    Other(u64),
}

impl Flag {
    fn from_wire(value: u64) -> Self {
        match value {
            0 => Flag::Fin,
            1 => Flag::StopSending,
            2 => Flag::ResetStream,
            3 => Flag::FinAck,
            other => Flag::Other(other),
        }
    }

    fn to_wire(self) -> u64 {
        match self {
            Flag::Fin => 0,
            Flag::StopSending => 1,
            Flag::ResetStream => 2,
            Flag::FinAck => 3,
            Flag::Other(value) => value,
        }
    }
}

/// One decoded frame. A frame may carry a payload, a flag, or both (the
/// payload then comes first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub flag: Option<Flag>,
    pub payload: Vec<u8>,
}

/// Appends one frame to `out`.
///
/// # Panics
///
/// If `payload` is longer than [`MAX_PAYLOAD_LEN`]: callers split their
/// data into frames first.
pub fn encode(flag: Option<Flag>, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= MAX_PAYLOAD_LEN,
        "a frame's payload is at most {MAX_PAYLOAD_LEN} bytes, not {}",
        payload.len()
    );
    let mut body = Vec::with_capacity(payload.len() + MAX_OVERHEAD);
    if let Some(flag) = flag {
        put_uvarint(FLAG_KEY, &mut body);
        put_uvarint(flag.to_wire(), &mut body);
    }
    if !payload.is_empty() {
        put_uvarint(MESSAGE_KEY, &mut body);
        put_uvarint(payload.len() as u64, &mut body);
        body.extend_from_slice(payload);
    }
    put_uvarint(body.len() as u64, out);
    out.extend_from_slice(&body);
}

/// Reassembles frames from the bytes of a channel, however they were cut
/// into messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Bytes of frames not yet returned: at most one incomplete frame once
    /// [`FrameDecoder::next_frame`] has returned `Ok(None)`.
    buffer: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the channel. Call [`FrameDecoder::next_frame`]
    /// until it returns `Ok(None)` before pushing more, which keeps the
    /// buffer within one frame plus one read.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Whether bytes of an incomplete frame are waiting for the rest.
    pub fn has_partial_frame(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The next complete frame, `Ok(None)` if the buffer holds only part of
    /// one, or an error if the bytes cannot be a valid frame. After an
    /// error the stream is unusable: its framing is lost.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let (len, prefix_len) = match get_uvarint(&self.buffer) {
            Varint::Incomplete if self.buffer.len() < 3 => return Ok(None),
            // Three bytes of prefix already mean a length of 16 KiB or more.
            Varint::Incomplete | Varint::Overflow => {
                return Err(FrameError::TooLarge { len: None });
            }
            Varint::Value(len, prefix_len) => (len, prefix_len),
        };
        if len.saturating_add(prefix_len as u64) > MAX_FRAME_LEN as u64 {
            return Err(FrameError::TooLarge {
                len: Some(len as usize + prefix_len),
            });
        }
        let end = prefix_len + len as usize;
        if self.buffer.len() < end {
            return Ok(None);
        }
        let frame = decode_body(&self.buffer[prefix_len..end])?;
        self.buffer.drain(..end);
        Ok(Some(frame))
    }
}

fn decode_body(mut body: &[u8]) -> Result<Frame, FrameError> {
    let mut frame = Frame::default();
    while !body.is_empty() {
        let key = take_uvarint(&mut body)?;
        match (key, key & 7) {
            (FLAG_KEY, _) => frame.flag = Some(Flag::from_wire(take_uvarint(&mut body)?)),
            (MESSAGE_KEY, _) => {
                let len = take_uvarint(&mut body)?;
                frame.payload = take_bytes(&mut body, len)?.to_vec();
            }
            // Unknown fields are skipped, as protobuf readers do.
            (_, 0) => {
                take_uvarint(&mut body)?;
            }
            (_, 1) => {
                take_bytes(&mut body, 8)?;
            }
            (_, 2) => {
                let len = take_uvarint(&mut body)?;
                take_bytes(&mut body, len)?;
            }
            (_, 5) => {
                take_bytes(&mut body, 4)?;
            }
            (_, wire_type) => {
                return Err(FrameError::Malformed(
                    "unknown protobuf wire type",
                    wire_type,
                ));
            }
        }
    }
    Ok(frame)
}

fn take_uvarint(input: &mut &[u8]) -> Result<u64, FrameError> {
    match get_uvarint(input) {
        Varint::Value(value, len) => {
            *input = &input[len..];
            Ok(value)
        }
        Varint::Incomplete => Err(FrameError::Malformed("truncated varint", 0)),
        Varint::Overflow => Err(FrameError::Malformed("varint longer than 64 bits", 0)),
    }
}

fn take_bytes<'a>(input: &mut &'a [u8], len: u64) -> Result<&'a [u8], FrameError> {
    if len > input.len() as u64 {
        return Err(FrameError::Malformed("field longer than its frame", len));
    }
    let (taken, rest) = input.split_at(len as usize);
    *input = rest;
    Ok(taken)
}

enum Varint {
    Value(u64, usize),
    Incomplete,
    Overflow,
}

fn get_uvarint(input: &[u8]) -> Varint {
    let mut value = 0u64;
    for (i, byte) in input.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return Varint::Overflow;
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Varint::Value(value, i + 1);
        }
    }
    if input.len() >= 10 {
        Varint::Overflow
    } else {
        Varint::Incomplete
    }
}

fn put_uvarint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Bytes that cannot be a frame of this protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame longer than [`MAX_FRAME_LEN`] (`len` is its length, prefix
    /// included, when the prefix could be read).
    #[error("a frame of {} bytes, over the limit of {MAX_FRAME_LEN}", len.map_or("16384 or more".to_owned(), |len| len.to_string()))]
    TooLarge { len: Option<usize> },
    /// The frame's protobuf could not be read.
    #[error("a malformed frame: {0} ({1})")]
    Malformed(&'static str, u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut decoder = FrameDecoder::new();
        decoder.push(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame);
        }
        assert!(!decoder.has_partial_frame(), "bytes left over");
        Ok(frames)
    }

    #[test]
    fn flags_have_the_spec_wire_values() {
        // [len, key 0x08, value]: FIN = 0, STOP_SENDING = 1, RESET = 2, FIN_ACK = 3.
        for (value, flag) in [
            (0, Flag::Fin),
            (1, Flag::StopSending),
            (2, Flag::ResetStream),
            (3, Flag::FinAck),
        ] {
            let mut out = Vec::new();
            encode(Some(flag), &[], &mut out);
            assert_eq!(out, [2, 0x08, value], "{flag:?}");
            assert_eq!(
                decode_all(&out),
                Ok(vec![Frame {
                    flag: Some(flag),
                    payload: vec![]
                }])
            );
        }
    }

    #[test]
    fn an_unknown_flag_decodes_as_other_instead_of_failing() {
        assert_eq!(
            decode_all(&[2, 0x08, 7]),
            Ok(vec![Frame {
                flag: Some(Flag::Other(7)),
                payload: vec![]
            }])
        );
    }

    #[test]
    fn payload_and_flag_round_trip_and_unknown_fields_are_skipped() {
        let mut out = Vec::new();
        encode(Some(Flag::Fin), b"bye", &mut out);
        assert_eq!(out, [7, 0x08, 0, 0x12, 3, b'b', b'y', b'e']);
        // Field 3 (varint 5) and field 4 (bytes "x") before the known ones.
        let with_unknown = [9, 0x18, 5, 0x22, 1, b'x', 0x12, 2, b'h', b'i'];
        assert_eq!(
            decode_all(&with_unknown),
            Ok(vec![Frame {
                flag: None,
                payload: b"hi".to_vec()
            }])
        );
    }

    #[test]
    fn a_full_payload_makes_a_frame_of_exactly_the_limit() {
        let mut out = Vec::new();
        encode(Some(Flag::Fin), &vec![1; MAX_PAYLOAD_LEN], &mut out);
        assert_eq!(out.len(), MAX_FRAME_LEN);
        let frames = decode_all(&out).expect("a frame at the limit is valid");
        assert_eq!(frames[0].payload.len(), MAX_PAYLOAD_LEN);
    }

    #[test]
    #[should_panic(expected = "at most")]
    fn encoding_an_oversize_payload_panics() {
        encode(None, &vec![0; MAX_PAYLOAD_LEN + 1], &mut Vec::new());
    }

    #[test]
    fn frames_spanning_messages_and_sharing_one_are_reassembled() {
        let mut wire = Vec::new();
        encode(None, &vec![9; 5000], &mut wire);
        encode(Some(Flag::Fin), b"", &mut wire);
        encode(None, b"tail", &mut wire);
        let mut decoder = FrameDecoder::new();
        let mut frames = Vec::new();
        // Cut into odd pieces, one byte of the prefix at a time included.
        for piece in wire.chunks(3).take(2).chain(wire[6..].chunks(997)) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame().expect("valid") {
                frames.push(frame);
            }
        }
        assert!(!decoder.has_partial_frame());
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].payload, vec![9; 5000]);
        assert_eq!(frames[1].flag, Some(Flag::Fin));
        assert_eq!(frames[2].payload, b"tail");
    }

    #[test]
    fn an_oversize_frame_is_refused_from_its_prefix_alone() {
        // 16383 bytes of body behind a 2-byte prefix: 16385 > 16384.
        let mut decoder = FrameDecoder::new();
        decoder.push(&[0xff, 0x7f]);
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len: Some(16385) })
        );
        // A three-byte prefix is 16384 or more on its own.
        let mut decoder = FrameDecoder::new();
        decoder.push(&[0x80, 0x80, 0x01]);
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { .. })
        ));
        let mut decoder = FrameDecoder::new();
        decoder.push(&[0x80, 0x80, 0x80]);
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len: None })
        );
    }

    #[test]
    fn a_field_longer_than_its_frame_is_malformed() {
        assert!(matches!(
            decode_all(&[3, 0x12, 5, b'x']),
            Err(FrameError::Malformed(..))
        ));
        assert!(matches!(
            decode_all(&[2, 0x0b, 0]),
            Err(FrameError::Malformed("unknown protobuf wire type", 3))
        ));
    }
}
