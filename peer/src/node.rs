//! The libp2p node.
//!
//! [`Peer::start`] builds the swarm, binds its listeners, dials the relay
//! and spawns the node's loop. The returned [`PeerHandle`] is all a
//! terminal or a test touches: it sends commands and reads [`Event`]s; it
//! never touches the swarm.
//!
//! The node is one struct, [`Node`], whose methods are grouped by job:
//!
//! - [`handle`]: the public side: [`Config`], [`Peer::start`], [`PeerHandle`];
//! - [`swarm`]: the composed behaviour and the swarm's transports;
//! - [`event_loop`]: listeners, the loop, and where each swarm event goes;
//! - [`relay`]: staying connected to the relay and holding a reservation;
//! - [`discovery`]: announcing our record, reading others', dialing them;
//! - [`chat`]: chat messages out and in;
//! - [`pings`]: pings asked for, and which path a connection takes;
//! - [`addrs`]: what the node makes of multiaddrs;
//! - [`timer`]: the one-shot timers the loop waits on.

mod addrs;
mod chat;
mod discovery;
mod event_loop;
mod handle;
mod pings;
mod relay;
mod swarm;
mod timer;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId, Swarm, core::transport::ListenerId, identity::PublicKey};
use tokio::sync::mpsc;

/// How long a relayed connection outlives the direct one that replaces it.
/// gossipsub's queue for a peer is shared by its connections, and a
/// connection closed while its handler holds a message loses it: the
/// relayed connection holds the subscriptions sent when the peers met, and
/// closing it at once could leave the other side believing we subscribe to
/// nothing (the page lost them about one time in five that way). The grace
/// counts for each relayed connection from when both it and the direct
/// path are up ([`crate::book::PeerBook::relayed_to_close`]).
pub const RELAYED_GRACE: Duration = Duration::from_secs(3);

pub use handle::{Config, Peer, PeerHandle, StartError, Stopped};
pub use pings::{MAX_PENDING_PINGS, PING_TIMEOUT};

use crate::{
    book::PeerBook,
    events::{Command, Event},
};
use swarm::Behaviour;
use timer::Timer;

/// Events waiting for the terminal; beyond this they are dropped (and the
/// drop is logged) rather than grow without bound.
pub const EVENT_QUEUE: usize = 1024;

/// The node's state, owned by its task.
struct Node {
    swarm: Swarm<Behaviour>,
    public_key: PublicKey,
    relay_id: PeerId,
    relay_addr: Multiaddr,
    force_private: bool,
    circuit_listener: Option<ListenerId>,
    book: PeerBook,
    events: mpsc::Sender<Event>,
    dropped_events: u64,
    /// Pings asked for: peer and when. At most [`MAX_PENDING_PINGS`].
    pings: HashMap<PeerId, Instant>,
    relay_backoff: Duration,
    relay_retry: Timer,
    announce_soon: Timer,
    /// Fires when the next relayed connection to a peer reached directly
    /// has had its grace ([`RELAYED_GRACE`]).
    close_relayed: Timer,
    /// A connection without a ping answer for this long is closed as dead
    /// ([`pings::link_silence`]).
    link_silence: Duration,
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
                let _ = reply.send(self.book.infos());
            }
        }
    }
}
