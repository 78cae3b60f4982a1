//! What this peer knows of the others: their announced addresses, its
//! connections to them, and the state shown in the peer list.
//!
//! Bounded: at most [`MAX_PEERS`] entries; a peer that stops announcing and
//! is not connected is forgotten after [`PEER_EXPIRY`].

use std::{
    collections::{HashMap, hash_map::Entry},
    time::Duration,
};

use chat_protocol::{PeerRecord, discovery::TrustedRelays};
use libp2p::{Multiaddr, PeerId, swarm::ConnectionId};
use web_time::Instant;

pub const MAX_PEERS: usize = 128;
/// Attempts at a direct connection to one peer before staying relayed;
/// each failed `RTCPeerConnection` counts against the page's few hundred.
pub const MAX_DIRECT_ATTEMPTS: u32 = 4;
/// The wait after the first failed attempt; it doubles after each.
pub const DIRECT_RETRY: Duration = Duration::from_secs(5);
/// Three missed announcements.
pub const PEER_EXPIRY: Duration = Duration::from_secs(3 * crate::ANNOUNCE_INTERVAL.as_secs());

/// How a connection reaches the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Through the relay (`/p2p-circuit`).
    Relayed,
    /// Straight to the peer.
    Direct,
}

/// The state of the link to a peer, as the peer list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Known from its announcements, not connected.
    Discovered,
    Dialing,
    Connected(Path),
    /// The last dial failed, with the reason.
    Unreachable(String),
}

impl Link {
    /// Short, stable name for the page (`data-state`).
    pub fn name(&self) -> &'static str {
        match self {
            Link::Discovered => "discovered",
            Link::Dialing => "dialing",
            Link::Connected(Path::Relayed) => "relayed",
            Link::Connected(Path::Direct) => "direct",
            Link::Unreachable(_) => "unreachable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Peer {
    pub addrs: Vec<Multiaddr>,
    pub last_seen: Instant,
    pub rtt: Option<Duration>,
    connections: HashMap<ConnectionId, Path>,
    dialing: bool,
    last_error: Option<String>,
    direct: DirectAttempts,
}

/// Attempts at a direct (WebRTC) connection.
#[derive(Debug, Clone, Default)]
struct DirectAttempts {
    in_progress: bool,
    failures: u32,
    not_before: Option<Instant>,
    last_error: Option<String>,
}

impl Peer {
    fn new(now: Instant) -> Self {
        Self {
            addrs: Vec::new(),
            last_seen: now,
            rtt: None,
            connections: HashMap::new(),
            dialing: false,
            last_error: None,
            direct: DirectAttempts::default(),
        }
    }

    /// Why direct connections failed, once they are given up.
    pub fn direct_given_up(&self) -> Option<&str> {
        (self.direct.failures >= MAX_DIRECT_ATTEMPTS)
            .then(|| self.direct.last_error.as_deref().unwrap_or("failed"))
    }

    pub fn link(&self) -> Link {
        if self.connections.values().any(|path| *path == Path::Direct) {
            Link::Connected(Path::Direct)
        } else if !self.connections.is_empty() {
            Link::Connected(Path::Relayed)
        } else if self.dialing {
            Link::Dialing
        } else if let Some(error) = &self.last_error {
            Link::Unreachable(error.clone())
        } else {
            Link::Discovered
        }
    }

    /// Connections that go through the relay.
    pub fn relayed_connections(&self) -> Vec<ConnectionId> {
        self.connections
            .iter()
            .filter(|(_, path)| **path == Path::Relayed)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn is_connected(&self) -> bool {
        !self.connections.is_empty()
    }
}

/// The last characters of a peer id: enough to tell peers apart on screen.
pub fn short(peer: &PeerId) -> String {
    let id = peer.to_string();
    format!("…{}", &id[id.len().saturating_sub(8)..])
}

#[derive(Debug, Default)]
pub struct PeerBook {
    peers: HashMap<PeerId, Peer>,
}

impl PeerBook {
    pub fn get(&self, peer: &PeerId) -> Option<&Peer> {
        self.peers.get(peer)
    }

    pub fn ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Records an announcement. Returns whether the peer should be dialed:
    /// it is new, or not connected and not being dialed.
    ///
    /// Of its addresses only those the dial rule of
    /// [`chat_protocol::discovery`] allows are kept: circuits through a
    /// `trusted` relay and their `/webrtc` twins, rewritten to reach the
    /// relay the way we do. A forged record cannot make the page open a
    /// socket anywhere else.
    pub fn on_record(
        &mut self,
        record: &PeerRecord,
        trusted: &TrustedRelays,
        now: Instant,
    ) -> bool {
        let Some(peer) = self.entry(record.peer_id(), now) else {
            return false;
        };
        peer.addrs = record.circuits_via(trusted).collect();
        peer.last_seen = now;
        !peer.is_connected() && !peer.dialing
    }

    pub fn on_dialing(&mut self, peer: PeerId, now: Instant) {
        if let Some(entry) = self.entry(peer, now) {
            entry.dialing = true;
        }
    }

    pub fn on_dial_failed(&mut self, peer: &PeerId, error: String) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.dialing = false;
            entry.last_error = Some(error);
        }
    }

    pub fn on_connected(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        path: Path,
        now: Instant,
    ) {
        if let Some(entry) = self.entry(peer, now) {
            entry.connections.insert(connection, path);
            entry.dialing = false;
            entry.last_error = None;
        }
    }

    pub fn on_disconnected(&mut self, peer: &PeerId, connection: ConnectionId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.connections.remove(&connection);
            if entry.connections.is_empty() {
                entry.rtt = None;
            }
        }
    }

    /// Whether to try a direct connection to `peer` now: none exists, none
    /// is under way, and the retry budget and backoff allow it. If so, the
    /// attempt is recorded as started.
    pub fn start_direct_attempt(&mut self, peer: &PeerId, now: Instant) -> bool {
        let Some(entry) = self.peers.get_mut(peer) else {
            return false;
        };
        let direct = &mut entry.direct;
        let connected_directly = entry.connections.values().any(|path| *path == Path::Direct);
        if connected_directly
            || direct.in_progress
            || direct.failures >= MAX_DIRECT_ATTEMPTS
            || direct.not_before.is_some_and(|at| now < at)
        {
            return false;
        }
        direct.in_progress = true;
        true
    }

    pub fn on_direct_failed(&mut self, peer: &PeerId, error: String, now: Instant) {
        if let Some(entry) = self.peers.get_mut(peer) {
            let direct = &mut entry.direct;
            direct.in_progress = false;
            direct.failures += 1;
            direct.not_before = Some(now + DIRECT_RETRY * 2u32.saturating_pow(direct.failures - 1));
            direct.last_error = Some(error);
        }
    }

    pub fn on_rtt(&mut self, peer: &PeerId, rtt: Duration) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.rtt = Some(rtt);
        }
    }

    /// Forgets peers neither connected nor heard from within [`PEER_EXPIRY`].
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let expired: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, peer)| {
                !peer.is_connected()
                    && !peer.dialing
                    && now.duration_since(peer.last_seen) > PEER_EXPIRY
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.peers.remove(id);
        }
        expired
    }

    /// The entry of `peer`, created if there is room (evicting the peer
    /// heard from longest ago that is not connected, if need be).
    fn entry(&mut self, peer: PeerId, now: Instant) -> Option<&mut Peer> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            let oldest = self
                .peers
                .iter()
                .filter(|(_, entry)| !entry.is_connected())
                .min_by_key(|(_, entry)| entry.last_seen)
                .map(|(id, _)| *id)?;
            self.peers.remove(&oldest);
        }
        match self.peers.entry(peer) {
            Entry::Occupied(entry) => Some(entry.into_mut()),
            Entry::Vacant(entry) => Some(entry.insert(Peer::new(now))),
        }
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn record() -> PeerRecord {
        PeerRecord::new(Keypair::generate_ed25519().public(), vec![]).expect("valid")
    }

    fn trusted() -> TrustedRelays {
        TrustedRelays::default()
    }

    #[test]
    fn only_circuits_through_our_relay_are_kept_and_over_our_address() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let relay = PeerId::random();
        let ours: Multiaddr = format!("/ip4/127.0.0.1/tcp/4002/ws/p2p/{relay}")
            .parse()
            .expect("valid");
        let trusted: TrustedRelays = [(relay, ours.clone())].into_iter().collect();
        let record = PeerRecord::new(
            key.public(),
            [
                "/ip4/127.0.0.1/tcp/9/ws".to_owned(),
                format!("/ip4/192.0.2.1/tcp/80/ws/p2p/{relay}/p2p-circuit/webrtc"),
            ]
            .iter()
            .map(|addr| addr.parse().expect("valid"))
            .collect(),
        )
        .expect("valid");
        let mut book = PeerBook::default();
        book.on_record(&record, &trusted, Instant::now());
        let expected: Multiaddr = format!("{ours}/p2p-circuit/webrtc/p2p/{peer}")
            .parse()
            .expect("valid");
        assert_eq!(
            book.get(&peer).map(|p| p.addrs.clone()),
            Some(vec![expected])
        );
    }

    #[test]
    fn a_new_record_is_dialed_once_and_a_connected_peer_is_not_redialed() {
        let mut book = PeerBook::default();
        let now = Instant::now();
        let record = record();
        let peer = record.peer_id();
        assert!(book.on_record(&record, &trusted(), now));
        book.on_dialing(peer, now);
        assert!(!book.on_record(&record, &trusted(), now), "already dialing");
        assert_eq!(book.get(&peer).map(Peer::link), Some(Link::Dialing));
        book.on_connected(peer, ConnectionId::new_unchecked(1), Path::Relayed, now);
        assert!(!book.on_record(&record, &trusted(), now));
        assert_eq!(
            book.get(&peer).map(Peer::link),
            Some(Link::Connected(Path::Relayed))
        );
    }

    #[test]
    fn a_direct_connection_wins_over_a_relayed_one() {
        let mut book = PeerBook::default();
        let now = Instant::now();
        let peer = PeerId::random();
        book.on_connected(peer, ConnectionId::new_unchecked(1), Path::Relayed, now);
        book.on_connected(peer, ConnectionId::new_unchecked(2), Path::Direct, now);
        assert_eq!(
            book.get(&peer).map(Peer::link),
            Some(Link::Connected(Path::Direct))
        );
        book.on_disconnected(&peer, ConnectionId::new_unchecked(2));
        assert_eq!(
            book.get(&peer).map(Peer::link),
            Some(Link::Connected(Path::Relayed))
        );
        book.on_disconnected(&peer, ConnectionId::new_unchecked(1));
        assert_eq!(book.get(&peer).map(Peer::link), Some(Link::Discovered));
    }

    #[test]
    fn a_failed_dial_is_shown_and_the_next_record_retries() {
        let mut book = PeerBook::default();
        let now = Instant::now();
        let record = record();
        book.on_record(&record, &trusted(), now);
        book.on_dialing(record.peer_id(), now);
        book.on_dial_failed(&record.peer_id(), "no route".into());
        assert_eq!(
            book.get(&record.peer_id()).map(Peer::link),
            Some(Link::Unreachable("no route".into()))
        );
        assert!(
            book.on_record(&record, &trusted(), now),
            "a later announcement tries again"
        );
    }

    #[test]
    fn direct_attempts_back_off_and_are_bounded() {
        let mut book = PeerBook::default();
        let start = Instant::now();
        let record = record();
        let peer = record.peer_id();
        book.on_record(&record, &trusted(), start);
        assert!(book.start_direct_attempt(&peer, start));
        assert!(!book.start_direct_attempt(&peer, start), "one at a time");
        let mut now = start;
        for failure in 1..=MAX_DIRECT_ATTEMPTS {
            book.on_direct_failed(&peer, "ICE failed".into(), now);
            let wait = DIRECT_RETRY * 2u32.pow(failure - 1);
            assert!(
                !book.start_direct_attempt(&peer, now + wait - Duration::from_millis(1)),
                "backoff {failure}"
            );
            now += wait;
            if failure < MAX_DIRECT_ATTEMPTS {
                assert!(book.start_direct_attempt(&peer, now), "retry {failure}");
            }
        }
        assert!(
            !book.start_direct_attempt(&peer, now + Duration::from_secs(3600)),
            "given up"
        );
        assert_eq!(
            book.get(&peer).and_then(Peer::direct_given_up),
            Some("ICE failed")
        );
    }

    #[test]
    fn a_direct_connection_ends_the_attempts() {
        let mut book = PeerBook::default();
        let now = Instant::now();
        let peer = PeerId::random();
        book.on_connected(peer, ConnectionId::new_unchecked(1), Path::Direct, now);
        assert!(!book.start_direct_attempt(&peer, now));
    }

    #[test]
    fn silent_unconnected_peers_expire_and_connected_ones_stay() {
        let mut book = PeerBook::default();
        let start = Instant::now();
        let (silent, connected) = (record(), record());
        book.on_record(&silent, &trusted(), start);
        book.on_record(&connected, &trusted(), start);
        book.on_connected(
            connected.peer_id(),
            ConnectionId::new_unchecked(1),
            Path::Relayed,
            start,
        );
        assert!(book.expire(start + PEER_EXPIRY / 2).is_empty());
        assert_eq!(
            book.expire(start + PEER_EXPIRY + Duration::from_secs(1)),
            vec![silent.peer_id()]
        );
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn the_book_is_bounded_and_evicts_the_longest_silent_peer() {
        let mut book = PeerBook::default();
        let start = Instant::now();
        let first = record();
        book.on_record(&first, &trusted(), start);
        for i in 1..MAX_PEERS as u64 + 5 {
            book.on_record(&record(), &trusted(), start + Duration::from_millis(i));
        }
        assert_eq!(book.len(), MAX_PEERS);
        assert!(
            book.get(&first.peer_id()).is_none(),
            "the oldest silent peer was evicted"
        );
    }
}
