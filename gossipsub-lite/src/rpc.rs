//! The wire format: the pubsub RPC protobuf (libp2p specs, pubsub/README.md
//! and gossipsub-v1.1.md), each RPC framed by its length as an unsigned
//! varint.
//!
//! Fields are proto2 `optional`s (`Option` here) so that a message decoded
//! and encoded again gives the same bytes: a signature covers the encoding.
//! Message ids in IHAVE/IWANT are `bytes` (the spec says `string`; the wire
//! is the same, and ids need not be UTF-8).
//!
//! The schema these types follow, as the wire sees it, is `rpc.proto`
//! beside this file (the specs' `rpc.proto`, with those choices); the
//! types are written by hand, not generated, to keep the build free of
//! `protoc`.

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use prost::Message as _;

/// Largest RPC accepted or sent, without its length prefix: the relay's
/// `max_transmit_size` (relay/src/gossip.rs) and rust-libp2p's default.
/// A chat message or a discovery record is a few hundred bytes.
pub const MAX_TRANSMIT_SIZE: usize = 64 * 1024;

/// One RPC: subscriptions, messages and control, all optional.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Rpc {
    #[prost(message, repeated, tag = "1")]
    pub subscriptions: Vec<SubOpts>,
    #[prost(message, repeated, tag = "2")]
    pub publish: Vec<Message>,
    #[prost(message, optional, tag = "3")]
    pub control: Option<ControlMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubOpts {
    #[prost(bool, optional, tag = "1")]
    pub subscribe: Option<bool>,
    #[prost(string, optional, tag = "2")]
    pub topic_id: Option<String>,
}

/// A pubsub message as signed: `signature` and `key` left out of the
/// signed bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub from: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub seqno: Option<Vec<u8>>,
    /// `required` in the spec's proto2; absent decodes as `None` and the
    /// message is refused.
    #[prost(string, optional, tag = "4")]
    pub topic: Option<String>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub signature: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub key: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlMessage {
    #[prost(message, repeated, tag = "1")]
    pub ihave: Vec<ControlIHave>,
    #[prost(message, repeated, tag = "2")]
    pub iwant: Vec<ControlIWant>,
    #[prost(message, repeated, tag = "3")]
    pub graft: Vec<ControlGraft>,
    #[prost(message, repeated, tag = "4")]
    pub prune: Vec<ControlPrune>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlIHave {
    #[prost(string, optional, tag = "1")]
    pub topic_id: Option<String>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub message_ids: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlIWant {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub message_ids: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlGraft {
    #[prost(string, optional, tag = "1")]
    pub topic_id: Option<String>,
}

/// PRUNE; the v1.1 peer exchange list (tag 2) is skipped as unknown: a
/// leaf peer dials nobody it is told of.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlPrune {
    #[prost(string, optional, tag = "1")]
    pub topic_id: Option<String>,
    /// Seconds the pruned peer must wait before grafting again (v1.1).
    #[prost(uint64, optional, tag = "3")]
    pub backoff: Option<u64>,
}

/// Why a frame could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: u64, max: usize },
    #[error("frame length prefix is not a valid varint")]
    BadLength,
    #[error("frame is not a pubsub RPC")]
    Decode(#[from] prost::DecodeError),
    #[error("stream failed")]
    Io(#[from] std::io::Error),
}

impl Rpc {
    /// Decodes one frame's body.
    pub fn decode_frame(body: &[u8]) -> Result<Self, CodecError> {
        if body.len() > MAX_TRANSMIT_SIZE {
            return Err(CodecError::TooLarge {
                len: body.len() as u64,
                max: MAX_TRANSMIT_SIZE,
            });
        }
        Ok(Self::decode(body)?)
    }

    /// The RPC's body, without the length prefix.
    pub fn to_body(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty() && self.publish.is_empty() && self.control.is_none()
    }
}

/// Reads one frame's body: its varint length (at most `max`), then the
/// bytes. `Ok(None)` at a clean end of stream.
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> Result<Option<Vec<u8>>, CodecError> {
    let mut len: u64 = 0;
    for index in 0..10 {
        let mut byte = [0u8];
        if stream.read(&mut byte).await? == 0 {
            return if index == 0 {
                Ok(None)
            } else {
                Err(CodecError::Io(std::io::ErrorKind::UnexpectedEof.into()))
            };
        }
        len |= u64::from(byte[0] & 0x7f) << (7 * index);
        if byte[0] & 0x80 == 0 {
            if len > max as u64 {
                return Err(CodecError::TooLarge { len, max });
            }
            let mut body = vec![0; len as usize];
            stream.read_exact(&mut body).await?;
            return Ok(Some(body));
        }
    }
    Err(CodecError::BadLength)
}

/// Writes one frame (length prefix and body) and flushes.
pub async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    body: &[u8],
) -> Result<(), CodecError> {
    let mut frame = Vec::with_capacity(body.len() + 3);
    let mut len = body.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            frame.push(byte);
            break;
        }
        frame.push(byte | 0x80);
    }
    frame.extend_from_slice(body);
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use futures::{executor::block_on, io::Cursor};

    use super::*;

    fn sample() -> Rpc {
        Rpc {
            subscriptions: vec![SubOpts {
                subscribe: Some(true),
                topic_id: Some("chat".into()),
            }],
            publish: vec![Message {
                from: Some(vec![0, 1, 2]),
                data: Some(vec![]),
                seqno: Some(7u64.to_be_bytes().to_vec()),
                topic: Some("chat".into()),
                signature: Some(vec![9; 64]),
                key: None,
            }],
            control: Some(ControlMessage {
                ihave: vec![],
                iwant: vec![ControlIWant {
                    message_ids: vec![vec![0xff, 0x00]],
                }],
                graft: vec![ControlGraft {
                    topic_id: Some("chat".into()),
                }],
                prune: vec![ControlPrune {
                    topic_id: Some("chat".into()),
                    backoff: Some(60),
                }],
            }),
        }
    }

    #[test]
    fn frames_round_trip() {
        let rpc = sample();
        let mut wire = Cursor::new(Vec::new());
        block_on(write_frame(&mut wire, &rpc.to_body())).expect("write");
        block_on(write_frame(&mut wire, &Rpc::default().to_body())).expect("write");
        wire.set_position(0);
        let body = block_on(read_frame(&mut wire, MAX_TRANSMIT_SIZE))
            .expect("read")
            .expect("a frame");
        assert_eq!(Rpc::decode_frame(&body).expect("decode"), rpc);
        let empty = block_on(read_frame(&mut wire, MAX_TRANSMIT_SIZE))
            .expect("read")
            .expect("a frame");
        assert!(Rpc::decode_frame(&empty).expect("decode").is_empty());
        assert!(
            block_on(read_frame(&mut wire, MAX_TRANSMIT_SIZE))
                .expect("clean end")
                .is_none()
        );
    }

    #[test]
    fn empty_data_keeps_its_presence() {
        // A signature covers the encoding: `Some(vec![])` must not come
        // back as `None` (or encode differently).
        let message = sample().publish.remove(0);
        let again = Message::decode(message.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(again.data, Some(vec![]));
        assert_eq!(again.encode_to_vec(), message.encode_to_vec());
    }

    #[test]
    fn oversized_frames_are_refused_before_reading_them() {
        let mut wire = Cursor::new(Vec::new());
        block_on(write_frame(&mut wire, &vec![0; MAX_TRANSMIT_SIZE + 1])).expect("write");
        wire.set_position(0);
        let error = block_on(read_frame(&mut wire, MAX_TRANSMIT_SIZE)).expect_err("too large");
        assert!(
            matches!(error, CodecError::TooLarge { len, .. } if len == MAX_TRANSMIT_SIZE as u64 + 1),
            "{error:?}"
        );
        // Only the prefix was read, not the megabytes it announced.
        assert!(wire.position() <= 3);
        assert!(matches!(
            Rpc::decode_frame(&vec![0; MAX_TRANSMIT_SIZE + 1]),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_refused() {
        // Eleven continuation bytes: no varint ends.
        let mut wire = Cursor::new(vec![0x80; 11]);
        assert!(matches!(
            block_on(read_frame(&mut wire, MAX_TRANSMIT_SIZE)),
            Err(CodecError::BadLength)
        ));
        // A truncated body.
        let mut wire = Cursor::new(vec![5, 1, 2]);
        assert!(matches!(
            block_on(read_frame(&mut wire, MAX_TRANSMIT_SIZE)),
            Err(CodecError::Io(_))
        ));
        // Not protobuf: a field with wire type 7.
        assert!(matches!(
            Rpc::decode_frame(&[0x0f, 0xff, 0xff]),
            Err(CodecError::Decode(_))
        ));
    }
}
