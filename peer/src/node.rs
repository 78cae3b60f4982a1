//! The libp2p node.
//!
//! [`Peer::start`] builds the swarm, binds its listeners, dials the relay
//! and spawns the node's loop. The returned [`PeerHandle`] is all a
//! terminal or a test touches: it sends commands and reads [`Event`]s; it
//! never touches the swarm.
//!
//! The node is one struct, [`Node`], whose methods are grouped by job:
//!
//! - [`config`]: how it starts ([`Config`]) and why it may not ([`StartError`]);
//! - [`handle`]: the public side: [`Peer::start`], [`PeerHandle`];
//! - [`swarm`]: the composed behaviour and the swarm's transports;
//! - [`event_loop`]: listeners, the loop, and where each swarm event goes;
//! - [`relay`]: staying connected to the relay and holding a reservation;
//! - [`chat`]: what the chat network behaviour reports, in this peer's
//!   events (discovery, the peer book, chat and the hand-off from relayed
//!   to direct are `chat_network`'s);
//! - [`pings`]: pings asked for, and connections that went silent;
//! - [`punch`]: hole punches that failed, tried again;
//! - [`addrs`]: what the node makes of multiaddrs;
//! - [`timer`]: the one-shot timers the loop waits on.

mod addrs;
mod chat;
mod config;
mod event_loop;
mod handle;
mod pings;
mod punch;
mod relay;
mod swarm;
mod timer;

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId, Swarm, core::transport::ListenerId};
use tokio::sync::mpsc;

/// How long a relayed connection outlives the direct one that replaces it
/// (see [`chat_network::config::DEFAULT_RELAYED_GRACE`]).
pub const RELAYED_GRACE: Duration = chat_network::config::DEFAULT_RELAYED_GRACE;

pub use config::{Config, StartError};
pub use handle::{Peer, PeerHandle, Stopped};
pub use pings::{MAX_PENDING_PINGS, PING_TIMEOUT};
pub use punch::{MAX_PUNCH_RETRIES_WAITING, PUNCH_RETRIES, PUNCH_RETRY_FIRST};

use crate::events::{Command, Event, PeerInfo};
use swarm::Behaviour;
use timer::Timer;

/// Events waiting for the terminal; beyond this they are dropped (and the
/// drop is logged) rather than grow without bound.
pub const EVENT_QUEUE: usize = 1024;

/// The node's state, owned by its task.
struct Node {
    swarm: Swarm<Behaviour>,
    relay_id: PeerId,
    relay_addr: Multiaddr,
    force_private: bool,
    circuit_listener: Option<ListenerId>,
    events: mpsc::Sender<Event>,
    dropped_events: u64,
    /// Pings asked for: peer and when. At most [`MAX_PENDING_PINGS`].
    pings: HashMap<PeerId, Instant>,
    relay_backoff: Duration,
    relay_retry: Timer,
    /// A connection without a ping answer for this long is closed as dead
    /// ([`pings::link_silence`]).
    link_silence: Duration,
    /// When each connection to the relay was last heard from (established,
    /// or a ping answered): one silent for [`Self::link_silence`] is
    /// closed, and the relay dialed again ([`relay::RelayLiveness`]).
    relay_liveness: relay::RelayLiveness,
    /// Failed hole punches waiting to be tried again ([`punch`]).
    punch_retries: punch::PunchRetries,
    /// Connected peers whose identify lists DCUtR: only their failed
    /// punches are tried again. Bounded by the connections.
    punchers: HashSet<PeerId>,
}

impl Node {
    fn emit(&mut self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.dropped_events += 1;
            tracing::warn!(
                dropped = self.dropped_events,
                "event queue full or closed; event dropped"
            );
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::SendChat(text) => self.send_chat(text),
            Command::Ping(peer) => self.request_ping(peer),
            Command::Peers(reply) => {
                let peers = self.swarm.behaviour().network.peers();
                let _ = reply.send(peers.into_iter().map(PeerInfo::from).collect());
            }
        }
    }
}
