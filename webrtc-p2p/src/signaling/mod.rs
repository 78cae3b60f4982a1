//! The `/webrtc-signaling/0.0.1` protocol: SDP offer and answer and trickled
//! ICE candidates, exchanged over a relayed libp2p connection.

mod candidate_json;
mod message;
mod session;

pub use message::{
    IceCandidate, MAX_MESSAGE_SIZE, PROTOCOL, SignalingError, SignalingMessage, read_message,
    write_message,
};
pub use session::{MAX_REMOTE_CANDIDATES, OrderError, Role, Session, Step};
