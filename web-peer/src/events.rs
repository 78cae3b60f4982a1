//! The contract between the page and the node: the UI sends [`Command`]s
//! and renders [`Event`]s; it never touches the swarm.

use std::time::Duration;

use futures::channel::oneshot;
use libp2p::{Multiaddr, PeerId};

use chat_network::Link;

#[derive(Debug)]
pub enum Command {
    /// Connect to the relay at this (user-typed) address.
    Connect(String),
    /// Dial a peer by a pasted multiaddr.
    Dial(String),
    /// Publish a chat message.
    SendChat(String),
    /// ICE servers for direct connections (the relay's STUN service).
    SetIceServers(Vec<String>),
    /// Runs one perf transfer (`/perf/1.0.0`) with `peer` over its direct
    /// connection: `upload` bytes up, then `download` bytes back. The reply
    /// is the time it took, or why it did not run.
    Perf {
        peer: PeerId,
        upload: u64,
        download: u64,
        reply: oneshot::Sender<Result<Duration, String>>,
    },
    /// Serve `/perf/1.0.0` to directly connected peers, within a total
    /// budget: only a page opened for benchmarking (`?bench`) does.
    ServePerf,
    /// The federation's relays, as the relay that served the page last
    /// listed them (`/api/relay`); `secure_page`: the page was served over
    /// `https:`, so it can open only secure WebSockets.
    Federation {
        relays: Vec<crate::federation::ListedRelay>,
        secure_page: bool,
    },
}

/// The node's connection to its relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayStatus {
    Idle,
    Connecting {
        relay: PeerId,
    },
    Connected {
        relay: PeerId,
        /// The relay this page was on before, which went away: the page
        /// moved to `relay`.
        moved_from: Option<PeerId>,
    },
    /// Lost; the next attempt is in `retry_in`.
    Reconnecting {
        relay: PeerId,
        retry_in: Duration,
    },
    Failed {
        reason: String,
    },
}

impl RelayStatus {
    /// Short, stable name for the page (`data-state`).
    pub fn name(&self) -> &'static str {
        match self {
            RelayStatus::Idle => "idle",
            RelayStatus::Connecting { .. } => "connecting",
            RelayStatus::Connected { .. } => "connected",
            RelayStatus::Reconnecting { .. } => "reconnecting",
            RelayStatus::Failed { .. } => "error",
        }
    }
}

/// How a chat message reached this page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Straight from its author, whom we reach only directly.
    Direct,
    /// Straight from its author, whom we reach only through a relay.
    Relayed,
    /// Straight from its author, over one of several links.
    Peer,
    /// Forwarded by the relay or another peer.
    Forwarded,
}

impl Via {
    /// Short, stable name (the page's `data-via`).
    pub fn name(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Relayed => "relayed",
            Via::Peer => "peer",
            Via::Forwarded => "forwarded",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    /// This tab's peer id.
    Identity {
        peer_id: PeerId,
    },
    Status(RelayStatus),
    /// Something the user should read: a refused address, an unreachable
    /// relay, a denied reservation.
    Notice(String),
    ClearNotice,
    /// This peer's circuit addresses changed (empty: none yet).
    Addresses(Vec<Multiaddr>),
    Peer {
        peer: PeerId,
        link: Link,
        rtt: Option<Duration>,
        /// Why a direct connection was given up on, if it was.
        direct_failed: Option<String>,
        /// Relayed connections to the peer still open (0 once the direct
        /// link has replaced them).
        relayed: usize,
        /// How often the peer came back after every connection to it
        /// closed (a reload, say).
        incarnation: u32,
        /// The connection the link shown stands on: a new one is a new link.
        link_id: Option<String>,
    },
    PeerGone {
        peer: PeerId,
    },
    Chat {
        from: PeerId,
        text: String,
        own: bool,
        /// How it arrived (`None`: our own).
        via: Option<Via>,
    },
    /// A message was not sent; its text is handed back so nothing is lost.
    ChatNotSent {
        text: String,
        reason: String,
    },
    /// A line for the event log.
    Log(String),
}
