//! What this peer knows of the others. Bounded: at most [`MAX_PEERS`]
//! entries; when full, the peer seen longest ago that is not connected
//! makes room, and a newcomer is dropped if every entry is connected.

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

#[derive(Debug)]
pub struct Entry {
    pub addrs: Vec<Multiaddr>,
    pub last_seen: Instant,
    pub connections: HashMap<ConnectionId, Path>,
    pub rtt: Option<Duration>,
    pub agent: Option<String>,
    pub discovered: bool,
    pub dialing: bool,
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
        }
    }

    pub fn path(&self) -> Option<Path> {
        let mut paths = self.connections.values();
        if paths.clone().any(|path| *path == Path::Direct) {
            Some(Path::Direct)
        } else {
            paths.next().copied()
        }
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

    /// Records an announcement. Returns whether it is the first one.
    pub fn on_record(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, now: Instant) -> bool {
        let Some(entry) = self.entry(peer, now) else {
            return false;
        };
        let first = !entry.discovered;
        entry.addrs = addrs;
        entry.last_seen = now;
        entry.discovered = true;
        first
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
            entry.connections.insert(connection, path);
            entry.dialing = false;
            entry.last_seen = now;
        }
    }

    /// Forgets a connection; returns its path.
    pub fn on_disconnected(&mut self, peer: &PeerId, connection: ConnectionId) -> Option<Path> {
        let entry = self.peers.get_mut(peer)?;
        let path = entry.connections.remove(&connection);
        if entry.connections.is_empty() {
            entry.rtt = None;
        }
        path
    }

    pub fn path_of(&self, peer: &PeerId, connection: ConnectionId) -> Option<Path> {
        self.peers.get(peer)?.connections.get(&connection).copied()
    }

    pub fn on_rtt(&mut self, peer: &PeerId, rtt: Duration) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.rtt = Some(rtt);
        }
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
}
