//! The wire: the spec's `Identify` message (`identify.proto` beside this
//! file) behind one unsigned-varint length, at most [`MAX_MESSAGE_BYTES`].

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use prost::Message as _;

/// Largest message read or written (rust-libp2p and js-libp2p read at
/// most 4 KiB and 8 KiB).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The `Identify` message of the spec (proto2; every field optional).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct IdentifyProto {
    #[prost(string, optional, tag = "5")]
    pub(super) protocol_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub(super) agent_version: Option<String>,
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(super) listen_addrs: Vec<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(super) observed_addr: Option<Vec<u8>>,
    #[prost(string, repeated, tag = "3")]
    pub(super) protocols: Vec<String>,
}

impl IdentifyProto {
    /// Drops listen addresses (the oldest first), then protocols (the
    /// last first), until the message fits in [`MAX_MESSAGE_BYTES`]: a
    /// reader refuses a longer one whole, and would learn nothing.
    pub(super) fn fit(mut self) -> Self {
        while self.encoded_len() > MAX_MESSAGE_BYTES {
            if !self.listen_addrs.is_empty() {
                self.listen_addrs.remove(0);
            } else if self.protocols.pop().is_none() {
                break;
            }
        }
        self
    }
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the message is longer than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    #[error("the message is not a valid Identify protobuf")]
    Decode(#[from] prost::DecodeError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Writes one length-prefixed message and closes the stream.
pub(super) async fn write_message<T: AsyncWrite + Unpin>(
    io: &mut T,
    message: &[u8],
) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(message.len() + 2);
    let mut len = message.len();
    loop {
        let low = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            framed.push(low);
            break;
        }
        framed.push(low | 0x80);
    }
    framed.extend_from_slice(message);
    io.write_all(&framed).await?;
    io.close().await
}

/// Reads one length-prefixed message of at most [`MAX_MESSAGE_BYTES`].
pub(super) async fn read_message<T: AsyncRead + Unpin>(
    io: &mut T,
) -> Result<IdentifyProto, ReadError> {
    let mut len = 0usize;
    for shift in (0..).step_by(7) {
        let mut byte = [0u8];
        io.read_exact(&mut byte).await?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        if len > MAX_MESSAGE_BYTES {
            return Err(ReadError::TooLarge);
        }
        if byte[0] & 0x80 == 0 {
            break;
        }
        // 4096 fits in two bytes: a third continuation is too large.
        if shift >= 14 {
            return Err(ReadError::TooLarge);
        }
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    Ok(IdentifyProto::decode(bytes.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_reads_back_and_an_oversized_one_is_refused() {
        let message = IdentifyProto {
            agent_version: Some("agent/1".to_owned()),
            protocols: vec!["/ipfs/id/1.0.0".to_owned()],
            listen_addrs: vec![vec![7; 300]],
            ..IdentifyProto::default()
        };
        let mut wire = Vec::new();
        write_message(&mut wire, &message.encode_to_vec())
            .await
            .expect("written");
        assert_eq!(wire[0] & 0x80, 0x80, "a length over 127 takes two bytes");
        let read = read_message(&mut futures::io::Cursor::new(wire))
            .await
            .expect("read");
        assert_eq!(read, message);

        let mut wire = Vec::new();
        write_message(&mut wire, &vec![0u8; MAX_MESSAGE_BYTES + 1])
            .await
            .expect("written");
        let error = read_message(&mut futures::io::Cursor::new(wire))
            .await
            .expect_err("too large");
        assert!(matches!(error, ReadError::TooLarge), "{error}");
    }

    #[test]
    fn an_answer_with_many_long_addresses_is_cut_to_fit_newest_kept() {
        let addrs: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i; 400]).collect();
        let message = IdentifyProto {
            agent_version: Some("agent/1".to_owned()),
            listen_addrs: addrs.clone(),
            protocols: vec!["/ipfs/id/1.0.0".to_owned(), "/meshsub/1.1.0".to_owned()],
            ..IdentifyProto::default()
        };
        assert!(message.encoded_len() > MAX_MESSAGE_BYTES);
        let fitted = message.fit();
        assert!(fitted.encoded_len() <= MAX_MESSAGE_BYTES);
        assert_eq!(
            fitted.protocols.len(),
            2,
            "protocols kept while addresses go"
        );
        assert_eq!(
            fitted.listen_addrs.last(),
            addrs.last(),
            "the newest address stays"
        );
    }
}
