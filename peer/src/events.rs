//! What the terminal (or a test) sends the node, and what it hears back.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

/// How a connection reaches a peer (the chat network's word for it).
pub use chat_network::Path;

/// What this peer learned about its own reachability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reachability {
    /// AutoNAT: the relay dialed us back at this address.
    Reachable { addr: Multiaddr },
    /// AutoNAT: the relay could not dial us back at this address.
    Unreachable { addr: Multiaddr, reason: String },
    /// `--force-private`: whatever AutoNAT says, direct addresses are
    /// neither announced nor advertised.
    ForcedPrivate { ignored: Option<Multiaddr> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Listening on a local address (DCUtR uses these ports).
    Listening {
        addr: Multiaddr,
    },
    /// Connected to the relay.
    RelayConnected {
        relay: PeerId,
    },
    /// The connection to the relay is gone; another attempt follows.
    RelayLost {
        reason: String,
        retry_in: Duration,
    },
    /// The relay accepted our reservation: others reach us at this address.
    Reserved {
        circuit_addr: Multiaddr,
    },
    /// The relay refused the reservation (e.g. a private relay).
    ReservationRefused {
        reason: String,
    },
    Reachability(Reachability),
    /// A peer announced itself on the discovery topic for the first time,
    /// or for the first time since every connection to it closed (it came
    /// back, perhaps restarted).
    Discovered {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
    /// A peer stopped announcing and is not connected.
    PeerGone {
        peer: PeerId,
    },
    Connected {
        peer: PeerId,
        path: Path,
        remote_addr: Multiaddr,
    },
    Disconnected {
        peer: PeerId,
        path: Path,
    },
    /// The last connection to a peer still in the book was relayed and
    /// ended (a circuit reaches the relay's duration or byte limit; the
    /// relay lost one side for a moment): this peer dials it again now,
    /// rather than at its next announcement.
    Redialing {
        peer: PeerId,
        reason: String,
    },
    /// A hole punch with `peer` failed earlier and the pair is still only
    /// relayed: this peer closes its relayed connections, the side that
    /// dials first dials a fresh circuit, and DCUtR punches again on it
    /// (try `attempt` of `of`).
    PunchingAgain {
        peer: PeerId,
        attempt: u32,
        of: u32,
    },
    /// Could not reach a peer.
    Unreachable {
        peer: PeerId,
        reason: String,
    },
    /// The relay said which relay of its federation holds `peer`'s
    /// reservation; `peer` is dialed through that relay.
    Located {
        peer: PeerId,
        relay: PeerId,
    },
    /// DCUtR's attempt to turn a relayed connection into a direct one.
    HolePunch {
        peer: PeerId,
        result: Result<(), String>,
    },
    /// The answer to [`crate::PeerHandle::ping`]: a round trip on one of
    /// the connections to `peer` that take its best path (a direct one, if
    /// there is one, even while a relayed one has its grace).
    Ping {
        peer: PeerId,
        path: Path,
        rtt: Duration,
    },
    PingFailed {
        peer: PeerId,
        reason: String,
    },
    Chat {
        from: PeerId,
        text: String,
        /// Our own message, as published.
        own: bool,
    },
    ChatNotSent {
        text: String,
        reason: String,
    },
}

/// What the node knows of one peer, for `/peers` and `peers`.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    /// The best path of the open connections (direct beats relayed).
    pub path: Option<Path>,
    pub rtt: Option<Duration>,
    pub agent: Option<String>,
    /// Whether it announced itself on the discovery topic.
    pub discovered: bool,
}

impl From<chat_network::PeerInfo> for PeerInfo {
    fn from(info: chat_network::PeerInfo) -> Self {
        Self {
            peer: info.peer,
            path: info.path(),
            addrs: info.addrs,
            rtt: info.rtt,
            agent: info.agent,
            discovered: info.discovered,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Command {
    SendChat(String),
    Ping(PeerId),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
}
