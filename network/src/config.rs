//! How the chat network behaviour runs: its periods, bounds and rules.

use std::time::Duration;

use libp2p::Multiaddr;

use crate::book::DEFAULT_MAX_PEERS;

/// How often a peer re-announces its record.
pub const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(20);
/// How long a relayed connection outlives the direct one that replaces it.
/// It was set for rust-libp2p's gossipsub, which kept one send queue per
/// peer, shared by all of that peer's connections: closed the moment the
/// direct link came up (often within 100 ms), the relayed connection lost
/// the subscriptions it had taken about one time in five. gossipsub-lite
/// sends our subscriptions on every new connection and a peer's traffic on
/// its direct one; the grace still lets what was queued on the relayed
/// connection before the direct link came up go out. The grace counts for
/// each relayed connection from when both it and the direct path are up.
pub const DEFAULT_RELAYED_GRACE: Duration = Duration::from_secs(3);
/// Chat messages typed while a peer reached directly still has a relayed
/// connection wait for it to close (see [`crate::Behaviour::send_chat`]):
/// at most this many.
pub const DEFAULT_MAX_HELD_CHAT: usize = 16;
/// An announcement waits this long, so that a burst of address changes (a
/// reservation reports several, in one turn of the swarm: the circuit
/// address, then its `/webrtc` twin the WebRTC transport derives from it)
/// makes one record: a timer of any length fires after that turn. A new
/// address is news the others wait for (the first record of a page that
/// just got its reservation), so the wait is no longer than that. The
/// answer to a newcomer's record does not wait for it when the gap below
/// has passed: a record comes alone. (It was 300 ms, the whole of
/// [`ANNOUNCE_MIN_GAP`], then 20 ms: each was in every first discovery,
/// BENCHMARKS.md, "Time to a direct browser link".)
pub const ANNOUNCE_BATCH: Duration = Duration::from_millis(1);
/// Announcements for a reason (not the periodic one) are at least this far
/// apart, but for one answer to a newcomer within it: a stream of
/// newcomers makes at most two records per this time.
pub const ANNOUNCE_MIN_GAP: Duration = Duration::from_millis(300);

/// How often the liveness rule ([`Liveness`]) looks at the connections.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(500);

/// When a connection whose pings go unanswered counts as stalled, and
/// when as dead. The shell pings every connection and reports each answer
/// ([`crate::Behaviour::on_rtt`]); a peer that froze, slept or lost its
/// network says no goodbye, and without this its link would pass for a
/// live one (WebRTC's own consent checks give up after 30 s and more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Unanswered for longer than this: the link shows
    /// [`crate::Link::Reconnecting`], without its old round trip.
    pub stall: Duration,
    /// Unanswered for longer than this: the connection is closed
    /// ([`crate::Event::LinkDead`]), and the peer falls back to another
    /// connection, is dialed again, or is forgotten after the expiry.
    pub dead: Duration,
}

/// The configuration of a [`crate::Behaviour`].
#[derive(Debug, Clone)]
pub struct Config {
    /// How often the record is announced, idle peers dialed and silent
    /// ones expired.
    pub announce_interval: Duration,
    /// A peer neither connected nor heard from for this long is forgotten
    /// (three announcement periods by default).
    pub peer_expiry: Duration,
    /// Peers known at most (see [`crate::book`]).
    pub max_peers: usize,
    /// See [`DEFAULT_RELAYED_GRACE`].
    pub relayed_grace: Duration,
    /// See [`DEFAULT_MAX_HELD_CHAT`].
    pub max_held_chat: usize,
    /// Which of the addresses the dial rule keeps from a record this peer
    /// has a transport for (a native peer has no `/webrtc`).
    pub dialable: fn(&Multiaddr) -> bool,
    /// Which of this peer's own circuit addresses its record carries (a
    /// page announces only those other browsers can open).
    pub announceable: fn(&Multiaddr) -> bool,
    /// The liveness rule, if the behaviour applies it (off by default:
    /// a shell may close silent connections itself).
    pub liveness: Option<Liveness>,
    /// Called the moment this peer's record is published (a page marks
    /// it for the benchmarks' phase breakdown; nothing by default).
    pub on_announced: fn(),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            announce_interval: DEFAULT_ANNOUNCE_INTERVAL,
            peer_expiry: DEFAULT_ANNOUNCE_INTERVAL * 3,
            max_peers: DEFAULT_MAX_PEERS,
            relayed_grace: DEFAULT_RELAYED_GRACE,
            max_held_chat: DEFAULT_MAX_HELD_CHAT,
            dialable: |_| true,
            announceable: |_| true,
            liveness: None,
            on_announced: || {},
        }
    }
}

impl Config {
    /// Also sets the expiry to three periods.
    pub fn with_announce_interval(mut self, interval: Duration) -> Self {
        self.announce_interval = interval;
        self.peer_expiry = interval * 3;
        self
    }

    pub fn with_peer_expiry(mut self, expiry: Duration) -> Self {
        self.peer_expiry = expiry;
        self
    }

    pub fn with_max_peers(mut self, max_peers: usize) -> Self {
        self.max_peers = max_peers;
        self
    }

    pub fn with_relayed_grace(mut self, grace: Duration) -> Self {
        self.relayed_grace = grace;
        self
    }

    pub fn with_dialable(mut self, dialable: fn(&Multiaddr) -> bool) -> Self {
        self.dialable = dialable;
        self
    }

    pub fn with_announceable(mut self, announceable: fn(&Multiaddr) -> bool) -> Self {
        self.announceable = announceable;
        self
    }

    pub fn with_on_announced(mut self, on_announced: fn()) -> Self {
        self.on_announced = on_announced;
        self
    }

    pub fn with_liveness(mut self, liveness: Liveness) -> Self {
        self.liveness = Some(liveness);
        self
    }
}
