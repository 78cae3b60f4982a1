//! The order of a signaling exchange, checked message by message.
//!
//! The dialer sends its offer and then its candidates; the listener answers
//! the offer and then sends its candidates. Each side must therefore see the
//! other's description before any candidate, exactly one description, and
//! no more than [`MAX_REMOTE_CANDIDATES`] candidates. Anything else ends
//! the attempt: a peer that breaks the order is not worth an
//! `RTCPeerConnection`.

use super::message::{IceCandidate, SignalingMessage};

/// More candidates than any real host gathers (one per interface, address
/// family and server), few enough that a hostile peer cannot flood us.
pub const MAX_REMOTE_CANDIDATES: usize = 64;

/// Which side of the exchange we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opened the signaling stream; sends the offer.
    Dialer,
    /// Accepted the signaling stream; answers.
    Listener,
}

/// What to do with the peer connection for a message that is in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `setRemoteDescription` with the remote offer (listener) or answer (dialer).
    RemoteDescription(String),
    /// `addIceCandidate`.
    AddCandidate(IceCandidate),
    /// The remote gathered all its candidates.
    EndOfCandidates,
    /// The end of candidates again: nothing to do. js-libp2p before
    /// libp2p/js-libp2p#3279 sends an empty candidate (Firefox's end of
    /// candidates, read here as the end) and then `null`.
    RepeatedEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("received {got} where the {expected} was expected")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("received a candidate after the end of candidates")]
    CandidateAfterEnd,
    #[error("received more than {MAX_REMOTE_CANDIDATES} ICE candidates")]
    TooManyCandidates,
}

#[derive(Debug, Clone)]
pub struct Session {
    role: Role,
    has_remote_description: bool,
    candidates: usize,
    ended: bool,
}

impl Session {
    pub fn new(role: Role) -> Self {
        Self {
            role,
            has_remote_description: false,
            candidates: 0,
            ended: false,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn on_message(&mut self, message: SignalingMessage) -> Result<Step, OrderError> {
        let expected = match self.role {
            Role::Dialer => "SDP answer",
            Role::Listener => "SDP offer",
        };
        match (self.role, message, self.has_remote_description) {
            (Role::Listener, SignalingMessage::Offer(sdp), false)
            | (Role::Dialer, SignalingMessage::Answer(sdp), false) => {
                self.has_remote_description = true;
                Ok(Step::RemoteDescription(sdp))
            }
            (_, SignalingMessage::Candidate(candidate), true) => {
                if self.ended {
                    return match candidate {
                        None => Ok(Step::RepeatedEnd),
                        Some(_) => Err(OrderError::CandidateAfterEnd),
                    };
                }
                match candidate {
                    None => {
                        self.ended = true;
                        Ok(Step::EndOfCandidates)
                    }
                    Some(candidate) => {
                        self.candidates += 1;
                        if self.candidates > MAX_REMOTE_CANDIDATES {
                            return Err(OrderError::TooManyCandidates);
                        }
                        Ok(Step::AddCandidate(candidate))
                    }
                }
            }
            (_, message, has_description) => Err(OrderError::Unexpected {
                expected: if has_description {
                    "ICE candidate"
                } else {
                    expected
                },
                got: kind(&message),
            }),
        }
    }
}

fn kind(message: &SignalingMessage) -> &'static str {
    match message {
        SignalingMessage::Offer(_) => "an SDP offer",
        SignalingMessage::Answer(_) => "an SDP answer",
        SignalingMessage::Candidate(_) => "an ICE candidate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(n: u32) -> SignalingMessage {
        SignalingMessage::Candidate(Some(IceCandidate {
            candidate: format!("candidate:{n} 1 udp 1 192.0.2.7 {n} typ host"),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }))
    }

    #[test]
    fn listener_takes_the_offer_then_candidates_then_the_end() {
        let mut session = Session::new(Role::Listener);
        assert_eq!(
            session.on_message(SignalingMessage::Offer("o".into())),
            Ok(Step::RemoteDescription("o".into()))
        );
        assert!(matches!(
            session.on_message(candidate(1)),
            Ok(Step::AddCandidate(_))
        ));
        assert_eq!(
            session.on_message(SignalingMessage::Candidate(None)),
            Ok(Step::EndOfCandidates)
        );
        assert_eq!(
            session.on_message(SignalingMessage::Candidate(None)),
            Ok(Step::RepeatedEnd),
            "a second end (older js-libp2p on Firefox) is harmless"
        );
        assert_eq!(
            session.on_message(candidate(2)),
            Err(OrderError::CandidateAfterEnd)
        );
    }

    #[test]
    fn dialer_needs_the_answer_before_candidates() {
        let mut session = Session::new(Role::Dialer);
        assert_eq!(
            session.on_message(candidate(1)),
            Err(OrderError::Unexpected {
                expected: "SDP answer",
                got: "an ICE candidate"
            })
        );
        let mut session = Session::new(Role::Dialer);
        assert_eq!(
            session.on_message(SignalingMessage::Offer("o".into())),
            Err(OrderError::Unexpected {
                expected: "SDP answer",
                got: "an SDP offer"
            })
        );
    }

    #[test]
    fn a_second_description_is_refused() {
        let mut session = Session::new(Role::Dialer);
        session
            .on_message(SignalingMessage::Answer("a".into()))
            .expect("in order");
        assert_eq!(
            session.on_message(SignalingMessage::Answer("a".into())),
            Err(OrderError::Unexpected {
                expected: "ICE candidate",
                got: "an SDP answer"
            })
        );
    }

    #[test]
    fn a_flood_of_candidates_ends_the_attempt() {
        let mut session = Session::new(Role::Listener);
        session
            .on_message(SignalingMessage::Offer("o".into()))
            .expect("in order");
        for n in 0..MAX_REMOTE_CANDIDATES as u32 {
            session.on_message(candidate(n)).expect("within the limit");
        }
        assert_eq!(
            session.on_message(candidate(999)),
            Err(OrderError::TooManyCandidates)
        );
    }
}
