//! The signaling message and its wire codec.
//!
//! On the wire each message is an unsigned-varint length followed by the
//! protobuf `Message` of `message.proto`. A length over
//! [`MAX_MESSAGE_SIZE`] ends the attempt before anything is allocated for it.

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use prost::Message as _;

use super::candidate_json;

/// The protocol the signaling stream is negotiated with.
pub const PROTOCOL: &str = "/webrtc-signaling/0.0.1";

/// Largest encoded message accepted or sent, without its length prefix.
/// An SDP offer of a data-channel-only connection is 1-2 KiB; candidates
/// are trickled separately and are a few hundred bytes each.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024;

/// A decoded signaling message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalingMessage {
    /// `RTCSessionDescription.sdp` of the dialer's offer.
    Offer(String),
    /// `RTCSessionDescription.sdp` of the listener's answer.
    Answer(String),
    /// A trickled ICE candidate; `None` marks the end of the candidates.
    Candidate(Option<IceCandidate>),
}

/// `RTCIceCandidate.toJSON()`, as browsers produce and accept it; carried
/// as JSON (`candidate_json`: `candidate`, `sdpMid`, `sdpMLineIndex`,
/// `usernameFragment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCandidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_m_line_index: Option<u16>,
    pub username_fragment: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignalingError {
    #[error("signaling message of {len} bytes exceeds the limit of {MAX_MESSAGE_SIZE} bytes")]
    TooLarge { len: usize },
    #[error("signaling message length prefix is not a valid varint")]
    BadLength,
    #[error("signaling message is not a valid protobuf: {0}")]
    Malformed(#[from] prost::DecodeError),
    #[error("signaling message has no type")]
    MissingType,
    #[error("signaling message has unknown type {0}")]
    UnknownType(i32),
    #[error("signaling message of type {0} carries no data")]
    MissingData(&'static str),
    #[error("ICE candidate is not the JSON of an RTCIceCandidate: {0}")]
    BadCandidate(String),
    #[error("signaling stream ended")]
    Eof,
    #[error("signaling stream failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The protobuf message, as declared in `message.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct MessageProto {
    #[prost(enumeration = "MessageType", optional, tag = "1")]
    r#type: Option<i32>,
    #[prost(string, optional, tag = "2")]
    data: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
enum MessageType {
    SdpOffer = 0,
    SdpAnswer = 1,
    IceCandidate = 2,
}

impl SignalingMessage {
    /// The protobuf encoding, without the length prefix.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, data) = match self {
            SignalingMessage::Offer(sdp) => (MessageType::SdpOffer, sdp.clone()),
            SignalingMessage::Answer(sdp) => (MessageType::SdpAnswer, sdp.clone()),
            SignalingMessage::Candidate(candidate) => (
                MessageType::IceCandidate,
                // `null` is what js-libp2p sends at the end of candidates.
                candidate_json::write(candidate.as_ref()),
            ),
        };
        MessageProto {
            r#type: Some(kind as i32),
            data: Some(data),
        }
        .encode_to_vec()
    }

    /// Decodes a message (without its length prefix).
    pub fn decode(bytes: &[u8]) -> Result<Self, SignalingError> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(SignalingError::TooLarge { len: bytes.len() });
        }
        let proto = MessageProto::decode(bytes)?;
        let kind = proto.r#type.ok_or(SignalingError::MissingType)?;
        match MessageType::try_from(kind).map_err(|_| SignalingError::UnknownType(kind))? {
            MessageType::SdpOffer => Ok(Self::Offer(
                proto.data.ok_or(SignalingError::MissingData("SDP_OFFER"))?,
            )),
            MessageType::SdpAnswer => Ok(Self::Answer(
                proto
                    .data
                    .ok_or(SignalingError::MissingData("SDP_ANSWER"))?,
            )),
            MessageType::IceCandidate => {
                // No data, `null`, or an empty candidate string: the end of candidates.
                let data = proto.data.unwrap_or_default();
                if data.trim().is_empty() || data.trim() == "null" {
                    return Ok(Self::Candidate(None));
                }
                let candidate = candidate_json::read(&data)
                    .map_err(|error| SignalingError::BadCandidate(error.to_string()))?;
                Ok(Self::Candidate(
                    Some(candidate).filter(|c| !c.candidate.is_empty()),
                ))
            }
        }
    }
}

/// Writes one length-prefixed message.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &SignalingMessage,
) -> Result<(), SignalingError> {
    let body = message.encode();
    if body.len() > MAX_MESSAGE_SIZE {
        return Err(SignalingError::TooLarge { len: body.len() });
    }
    let mut frame = Vec::with_capacity(body.len() + 3);
    let mut len = body.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            frame.push(byte);
            break;
        }
        frame.push(byte | 0x80);
    }
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one length-prefixed message. A clean end of the stream before a
/// message starts is [`SignalingError::Eof`].
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<SignalingMessage, SignalingError> {
    let mut len: usize = 0;
    for index in 0.. {
        let mut byte = [0u8];
        match reader.read(&mut byte).await? {
            0 if index == 0 => return Err(SignalingError::Eof),
            0 => return Err(SignalingError::BadLength),
            _ => {}
        }
        len |= usize::from(byte[0] & 0x7f) << (7 * index);
        // Three varint bytes hold 2 MiB, far past the limit: stop there.
        if len > MAX_MESSAGE_SIZE {
            return Err(SignalingError::TooLarge { len });
        }
        if byte[0] & 0x80 == 0 {
            break;
        }
        if index == 2 {
            return Err(SignalingError::BadLength);
        }
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::UnexpectedEof => SignalingError::Eof,
            _ => SignalingError::Io(error),
        })?;
    SignalingMessage::decode(&body)
}

#[cfg(test)]
mod tests {
    use futures::{executor::block_on, io::Cursor};

    use super::*;

    fn candidate() -> IceCandidate {
        IceCandidate {
            candidate: "candidate:1 1 udp 2113937151 192.0.2.7 54321 typ host generation 0".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: Some("abcd".into()),
        }
    }

    fn round_trip(message: &SignalingMessage) -> SignalingMessage {
        let mut wire = Cursor::new(Vec::new());
        block_on(write_message(&mut wire, message)).expect("writes");
        wire.set_position(0);
        block_on(read_message(&mut wire)).expect("reads")
    }

    #[test]
    fn every_kind_of_message_round_trips() {
        for message in [
            SignalingMessage::Offer("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into()),
            SignalingMessage::Answer("v=0\r\n".into()),
            SignalingMessage::Candidate(Some(candidate())),
            SignalingMessage::Candidate(None),
        ] {
            assert_eq!(round_trip(&message), message);
        }
    }

    #[test]
    fn wire_format_matches_the_spec() {
        // type = 1 (varint, SDP_ANSWER), data = 2 (string "x"), prefixed by its length.
        let mut wire = Cursor::new(Vec::new());
        block_on(write_message(
            &mut wire,
            &SignalingMessage::Answer("x".into()),
        ))
        .expect("writes");
        assert_eq!(wire.into_inner(), [5, 0x08, 0x01, 0x12, 0x01, b'x']);
    }

    #[test]
    fn candidates_as_browsers_write_them_are_read() {
        let json = r#"{"candidate":"candidate:1 1 udp 1 192.0.2.7 1 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}"#;
        let bytes = MessageProto {
            r#type: Some(2),
            data: Some(json.into()),
        }
        .encode_to_vec();
        let SignalingMessage::Candidate(Some(candidate)) =
            SignalingMessage::decode(&bytes).expect("decodes")
        else {
            panic!("expected a candidate");
        };
        assert_eq!(candidate.sdp_m_line_index, Some(0));
        assert_eq!(candidate.username_fragment, None);
        // js-libp2p marks the end of candidates with `null` or an empty candidate.
        for end in ["null", "", r#"{"candidate":""}"#] {
            let bytes = MessageProto {
                r#type: Some(2),
                data: Some(end.into()),
            }
            .encode_to_vec();
            assert_eq!(
                SignalingMessage::decode(&bytes).expect("decodes"),
                SignalingMessage::Candidate(None),
                "{end:?}"
            );
        }
    }

    #[test]
    fn oversized_length_prefix_is_refused_before_reading_the_body() {
        // 0x80 0x80 0x01 = 16384 + 0 ... = 2^14 * 1 = 16384: at the limit is fine,
        // one more is not.
        let mut wire = Cursor::new(vec![0x81, 0x80, 0x01]);
        assert!(matches!(
            block_on(read_message(&mut wire)),
            Err(SignalingError::TooLarge { len: 16385 })
        ));
        let mut wire = Cursor::new(vec![0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            block_on(read_message(&mut wire)),
            Err(SignalingError::TooLarge { .. })
        ));
    }

    #[test]
    fn oversized_message_is_not_written() {
        let mut wire = Cursor::new(Vec::new());
        let huge = SignalingMessage::Offer("a".repeat(MAX_MESSAGE_SIZE));
        assert!(matches!(
            block_on(write_message(&mut wire, &huge)),
            Err(SignalingError::TooLarge { .. })
        ));
        assert!(wire.into_inner().is_empty());
    }

    #[test]
    fn malformed_messages_end_the_attempt_with_a_reason() {
        let cases: [(&[u8], &str); 5] = [
            (&[0xff, 0xff], "Malformed"),
            (
                &MessageProto {
                    r#type: None,
                    data: Some("x".into()),
                }
                .encode_to_vec(),
                "MissingType",
            ),
            (
                &MessageProto {
                    r#type: Some(7),
                    data: Some("x".into()),
                }
                .encode_to_vec(),
                "UnknownType",
            ),
            (
                &MessageProto {
                    r#type: Some(0),
                    data: None,
                }
                .encode_to_vec(),
                "MissingData",
            ),
            (
                &MessageProto {
                    r#type: Some(2),
                    data: Some("{not json".into()),
                }
                .encode_to_vec(),
                "BadCandidate",
            ),
        ];
        for (bytes, expected) in cases {
            let error = SignalingMessage::decode(bytes).expect_err(expected);
            assert!(
                format!("{error:?}").starts_with(expected),
                "{expected}: got {error:?}"
            );
        }
    }

    #[test]
    fn truncated_streams_are_errors_not_hangs() {
        assert!(matches!(
            block_on(read_message(&mut Cursor::new(vec![]))),
            Err(SignalingError::Eof)
        ));
        assert!(matches!(
            block_on(read_message(&mut Cursor::new(vec![0x80]))),
            Err(SignalingError::BadLength)
        ));
        assert!(matches!(
            block_on(read_message(&mut Cursor::new(vec![5, 0x08]))),
            Err(SignalingError::Eof)
        ));
    }
}
