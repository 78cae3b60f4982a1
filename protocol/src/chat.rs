//! The chat message: plain UTF-8 text in the data of a signed gossipsub
//! message.
//!
//! The sender is the gossipsub message's verified `source`, not a field of
//! the payload, so a message cannot claim to come from someone else.
//! Plain text (no envelope) is what the js-libp2p chat examples publish too.

/// Longest chat message, in bytes of UTF-8. Big enough for a paragraph,
/// small enough that a flood of them stays cheap for the relay to forward.
pub const MAX_CHAT_MESSAGE_BYTES: usize = 4096;

/// A validated chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    text: String,
}

/// Why bytes are not a valid [`ChatMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("chat message is empty")]
    Empty,
    #[error("chat message is {len} bytes long; the limit is {max} bytes", max = MAX_CHAT_MESSAGE_BYTES)]
    TooLong { len: usize },
    #[error("chat message is not valid UTF-8 text")]
    NotUtf8,
}

impl ChatMessage {
    /// Checks text typed by the local user before it is published.
    pub fn new(text: impl Into<String>) -> Result<Self, ChatError> {
        let text = text.into();
        check_len(text.len())?;
        if text.trim().is_empty() {
            return Err(ChatError::Empty);
        }
        Ok(Self { text })
    }

    /// Decodes a message received from the network.
    pub fn decode(data: &[u8]) -> Result<Self, ChatError> {
        // Length first: never spend UTF-8 validation on an oversized payload.
        check_len(data.len())?;
        let text = std::str::from_utf8(data).map_err(|_| ChatError::NotUtf8)?;
        Self::new(text)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.text.into_bytes()
    }
}

fn check_len(len: usize) -> Result<(), ChatError> {
    if len > MAX_CHAT_MESSAGE_BYTES {
        return Err(ChatError::TooLong { len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        let message = ChatMessage::new("hello, 世界").expect("valid");
        let decoded = ChatMessage::decode(&message.clone().into_bytes()).expect("decodes");
        assert_eq!(decoded, message);
        assert_eq!(decoded.text(), "hello, 世界");
    }

    #[test]
    fn message_at_the_limit_is_accepted_and_one_byte_more_is_not() {
        assert!(ChatMessage::new("a".repeat(MAX_CHAT_MESSAGE_BYTES)).is_ok());
        assert_eq!(
            ChatMessage::new("a".repeat(MAX_CHAT_MESSAGE_BYTES + 1)),
            Err(ChatError::TooLong {
                len: MAX_CHAT_MESSAGE_BYTES + 1
            })
        );
    }

    #[test]
    fn blank_and_invalid_messages_are_rejected() {
        assert_eq!(ChatMessage::new("  \n"), Err(ChatError::Empty));
        assert_eq!(ChatMessage::decode(b""), Err(ChatError::Empty));
        assert_eq!(ChatMessage::decode(&[0xff, 0xfe]), Err(ChatError::NotUtf8));
    }

    #[test]
    fn markup_is_kept_verbatim_as_text() {
        // Rendering is the UI's job (as text); the codec neither strips nor escapes.
        let message = ChatMessage::decode(b"<img src=x onerror=alert(1)>").expect("valid text");
        assert_eq!(message.text(), "<img src=x onerror=alert(1)>");
    }
}
