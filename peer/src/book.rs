//! What this peer knows of the others. Bounded: at most [`MAX_PEERS`]
//! entries; when full, the peer seen longest ago that is not connected
//! makes room, and a newcomer is dropped if every entry is connected.
//!
//! A peer whose connections all closed and that announces itself again is
//! news, like a newcomer (perhaps it restarted with the same key): it
//! missed our announcements and gets a fresh chance to connect and go
//! direct. A connection whose pings stopped being answered is reported
//! ([`PeerBook::silent`]) so the node closes it instead of trusting it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId, swarm::ConnectionId};

use crate::events::{Path, PeerInfo};

pub const MAX_PEERS: usize = 256;
/// A peer that has not announced itself for this long, and is not
/// connected, is forgotten (three announcement periods).
pub const PEER_EXPIRY: Duration = Duration::from_secs(3 * crate::ANNOUNCE_INTERVAL.as_secs());
/// Longest agent string kept from identify.
const MAX_AGENT_LEN: usize = 128;

/// One open connection: its path, since when it is open, and when a ping
/// on it was last answered (its opening counts as one).
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub path: Path,
    pub since: Instant,
    pub answered: Instant,
}

#[derive(Debug)]
pub struct Entry {
    pub addrs: Vec<Multiaddr>,
    pub last_seen: Instant,
    pub connections: HashMap<ConnectionId, Link>,
    pub rtt: Option<Duration>,
    pub agent: Option<String>,
    pub discovered: bool,
    pub dialing: bool,
    /// Every connection to the peer closed since its last announcement:
    /// its next one is news.
    pub lost: bool,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            addrs: Vec::new(),
            last_seen: now,
            connections: HashMap::new(),
            rtt: None,
            agent: None,
            discovered: false,
            dialing: false,
            lost: false,
        }
    }

    pub fn path(&self) -> Option<Path> {
        let mut paths = self.connections.values().map(|link| link.path);
        if paths.clone().any(|path| path == Path::Direct) {
            Some(Path::Direct)
        } else {
            paths.next()
        }
    }

    /// Since when the peer has been reached directly without a break.
    fn direct_since(&self) -> Option<Instant> {
        self.connections
            .values()
            .filter(|link| link.path == Path::Direct)
            .map(|link| link.since)
            .min()
    }
}

#[derive(Debug, Default)]
pub struct PeerBook {
    peers: HashMap<PeerId, Entry>,
}

impl PeerBook {
    pub fn get(&self, peer: &PeerId) -> Option<&Entry> {
        self.peers.get(peer)
    }

    pub fn ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The entry of `peer`, made if there is room.
    fn entry(&mut self, peer: PeerId, now: Instant) -> Option<&mut Entry> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            let oldest = self
                .peers
                .iter()
                .filter(|(_, entry)| entry.connections.is_empty())
                .min_by_key(|(_, entry)| entry.last_seen)
                .map(|(id, _)| *id)?;
            self.peers.remove(&oldest);
        }
        Some(self.peers.entry(peer).or_insert_with(|| Entry::new(now)))
    }

    /// Records an announcement. Returns whether it is news: the peer's
    /// first, or its first since every connection to it closed (a peer
    /// that comes back, perhaps restarted, missed our announcements, and
    /// must not wait a whole period for one to connect again).
    pub fn on_record(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, now: Instant) -> bool {
        let Some(entry) = self.entry(peer, now) else {
            return false;
        };
        let news = !entry.discovered || (entry.lost && entry.connections.is_empty());
        entry.addrs = addrs;
        entry.last_seen = now;
        entry.discovered = true;
        entry.lost = false;
        news
    }

    pub fn on_dialing(&mut self, peer: PeerId, now: Instant) {
        if let Some(entry) = self.entry(peer, now) {
            entry.dialing = true;
        }
    }

    pub fn on_dial_failed(&mut self, peer: &PeerId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.dialing = false;
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
            let link = Link {
                path,
                since: now,
                answered: now,
            };
            entry.connections.insert(connection, link);
            entry.dialing = false;
            entry.lost = false;
            entry.last_seen = now;
        }
    }

    /// Forgets a connection; returns its path.
    pub fn on_disconnected(&mut self, peer: &PeerId, connection: ConnectionId) -> Option<Path> {
        let entry = self.peers.get_mut(peer)?;
        let best = entry.path();
        let path = entry.connections.remove(&connection).map(|link| link.path);
        if path.is_some() && entry.connections.is_empty() {
            entry.lost = true;
        }
        if entry.path() != best {
            // The round trip measured on the best path says nothing of the
            // one left.
            entry.rtt = None;
        }
        path
    }

    pub fn path_of(&self, peer: &PeerId, connection: ConnectionId) -> Option<Path> {
        let link = self.peers.get(peer)?.connections.get(&connection)?;
        Some(link.path)
    }

    /// Records a round trip measured on `connection`, if that connection
    /// takes the peer's best path: while a relayed connection outlives the
    /// direct one (see [`PeerBook::relayed_to_close`]), its pings would
    /// show a relay's round trip next to the word "direct".
    pub fn on_rtt(&mut self, peer: &PeerId, connection: ConnectionId, rtt: Duration, now: Instant) {
        let Some(entry) = self.peers.get_mut(peer) else {
            return;
        };
        let best = entry.path();
        let Some(link) = entry.connections.get_mut(&connection) else {
            return;
        };
        link.answered = now;
        if Some(link.path) == best {
            entry.rtt = Some(rtt);
        }
    }

    /// The connections whose pings have gone unanswered for longer than
    /// `silence` at `now`: the peer is gone (killed, frozen, cut off) or the
    /// path broke, and the connection must not pass for a live one.
    pub fn silent(&self, now: Instant, silence: Duration) -> Vec<(PeerId, ConnectionId)> {
        self.peers
            .iter()
            .flat_map(|(peer, entry)| {
                entry
                    .connections
                    .iter()
                    .filter(move |(_, link)| now.saturating_duration_since(link.answered) > silence)
                    .map(move |(id, _)| (*peer, *id))
            })
            .collect()
    }

    /// The relayed connections to close at `now`: those of peers also
    /// reached directly, once the relayed connection and the direct path
    /// have both been open for `grace`. Also returns when the next one
    /// falls due, if one will.
    pub fn relayed_to_close(
        &self,
        now: Instant,
        grace: Duration,
    ) -> (Vec<ConnectionId>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for entry in self.peers.values() {
            let Some(direct_since) = entry.direct_since() else {
                continue;
            };
            for (id, link) in &entry.connections {
                if link.path != Path::Relayed {
                    continue;
                }
                let deadline = link.since.max(direct_since) + grace;
                if deadline <= now {
                    due.push(*id);
                } else {
                    next = Some(next.map_or(deadline, |next| next.min(deadline)));
                }
            }
        }
        (due, next)
    }

    pub fn on_agent(&mut self, peer: &PeerId, agent: &str) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.agent = Some(agent.chars().take(MAX_AGENT_LEN).collect());
        }
    }

    /// Removes peers that stopped announcing and are not connected.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let gone: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, entry)| {
                entry.connections.is_empty()
                    && !entry.dialing
                    && now.saturating_duration_since(entry.last_seen) > PEER_EXPIRY
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in &gone {
            self.peers.remove(peer);
        }
        gone
    }

    pub fn infos(&self) -> Vec<PeerInfo> {
        let mut infos: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(peer, entry)| PeerInfo {
                peer: *peer,
                addrs: entry.addrs.clone(),
                path: entry.path(),
                rtt: entry.rtt,
                agent: entry.agent.clone(),
                discovered: entry.discovered,
            })
            .collect();
        infos.sort_by_key(|info| info.peer.to_string());
        infos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_is_bounded_and_keeps_connected_peers() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let connected = PeerId::random();
        book.on_connected(
            connected,
            ConnectionId::new_unchecked(1),
            Path::Relayed,
            now,
        );
        for i in 0..MAX_PEERS * 2 {
            book.on_record(
                PeerId::random(),
                vec![],
                now + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(book.len(), MAX_PEERS);
        assert!(book.get(&connected).is_some(), "connected peer evicted");
    }

    #[test]
    fn direct_beats_relayed_and_silent_peers_expire() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let peer = PeerId::random();
        assert!(book.on_record(peer, vec![], now));
        assert!(!book.on_record(peer, vec![], now), "second announcement");
        book.on_connected(peer, ConnectionId::new_unchecked(1), Path::Relayed, now);
        book.on_connected(peer, ConnectionId::new_unchecked(2), Path::Direct, now);
        assert_eq!(book.get(&peer).and_then(Entry::path), Some(Path::Direct));
        assert_eq!(
            book.on_disconnected(&peer, ConnectionId::new_unchecked(2)),
            Some(Path::Direct)
        );
        assert_eq!(book.get(&peer).and_then(Entry::path), Some(Path::Relayed));
        let later = now + PEER_EXPIRY + Duration::from_secs(1);
        assert!(book.expire(later).is_empty(), "still connected");
        book.on_disconnected(&peer, ConnectionId::new_unchecked(1));
        assert_eq!(book.expire(later), vec![peer]);
    }

    #[test]
    fn relayed_connections_close_once_they_and_the_direct_path_had_the_grace() {
        let grace = Duration::from_secs(3);
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let mut book = PeerBook::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let id = ConnectionId::new_unchecked;
        book.on_connected(a, id(1), Path::Relayed, t0);
        assert_eq!(book.relayed_to_close(secs(10), grace), (vec![], None));

        book.on_connected(a, id(2), Path::Direct, secs(1));
        // b goes direct later: its grace is its own, not a's.
        book.on_connected(b, id(3), Path::Relayed, t0);
        book.on_connected(b, id(4), Path::Direct, secs(3));
        assert_eq!(
            book.relayed_to_close(secs(2), grace),
            (vec![], Some(secs(4)))
        );
        assert_eq!(
            book.relayed_to_close(secs(4), grace),
            (vec![id(1)], Some(secs(6)))
        );
        // A relayed connection opened after the direct one waits its own grace.
        book.on_connected(a, id(5), Path::Relayed, secs(5));
        let (due, next) = book.relayed_to_close(secs(6), grace);
        assert_eq!((due.len(), next), (2, Some(secs(8))), "{due:?}");
        // No direct path, nothing to close.
        book.on_disconnected(&a, id(2));
        assert_eq!(book.relayed_to_close(secs(9), grace).0, vec![id(3)]);
    }

    #[test]
    fn the_round_trip_shown_is_the_best_paths() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let peer = PeerId::random();
        let (relayed, direct) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        let rtt = |ms| Some(Duration::from_millis(ms));
        book.on_connected(peer, relayed, Path::Relayed, now);
        book.on_rtt(&peer, relayed, Duration::from_millis(80), now);
        assert_eq!(book.get(&peer).and_then(|e| e.rtt), rtt(80));
        book.on_connected(peer, direct, Path::Direct, now);
        book.on_rtt(&peer, direct, Duration::from_millis(2), now);
        book.on_rtt(&peer, relayed, Duration::from_millis(90), now);
        assert_eq!(
            book.get(&peer).and_then(|e| e.rtt),
            rtt(2),
            "a relayed rtt shown as direct"
        );
        book.on_disconnected(&peer, relayed);
        assert_eq!(book.get(&peer).and_then(|e| e.rtt), rtt(2), "still direct");
        book.on_disconnected(&peer, direct);
        assert_eq!(book.get(&peer).and_then(|e| e.rtt), None);
    }

    #[test]
    fn a_peer_that_lost_every_connection_and_announces_again_is_news() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let peer = PeerId::random();
        let id = ConnectionId::new_unchecked;
        assert!(book.on_record(peer, vec![], now), "first record");
        book.on_connected(peer, id(1), Path::Relayed, now);
        book.on_connected(peer, id(2), Path::Direct, now);
        assert!(!book.on_record(peer, vec![], now), "connected: not news");
        book.on_disconnected(&peer, id(1));
        assert!(!book.on_record(peer, vec![], now), "still reached directly");
        book.on_disconnected(&peer, id(2));
        assert!(book.on_record(peer, vec![], now), "it came back");
        assert!(!book.on_record(peer, vec![], now), "news once");
        // Reconnected before its record arrived: nothing to catch up on.
        book.on_disconnected(&peer, id(3));
        book.on_connected(peer, id(4), Path::Relayed, now);
        book.on_disconnected(&peer, id(4));
        book.on_connected(peer, id(5), Path::Relayed, now);
        assert!(!book.on_record(peer, vec![], now));
    }

    #[test]
    fn connections_whose_pings_go_unanswered_are_silent() {
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let silence = Duration::from_secs(3);
        let mut book = PeerBook::default();
        let peer = PeerId::random();
        let (relayed, direct) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        book.on_connected(peer, relayed, Path::Relayed, t0);
        book.on_connected(peer, direct, Path::Direct, secs(1));
        assert!(book.silent(secs(3), silence).is_empty(), "new connections");
        book.on_rtt(&peer, direct, Duration::from_millis(1), secs(3));
        assert_eq!(book.silent(secs(5), silence), vec![(peer, relayed)]);
        assert_eq!(book.silent(secs(7), silence).len(), 2);
    }
}
