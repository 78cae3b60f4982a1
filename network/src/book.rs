//! What this peer knows of the others: their announced addresses (what the
//! dial rule kept of them), its connections to them and what the peer list
//! shows.
//!
//! Bounded: at most [`Config::max_peers`](crate::Config::max_peers)
//! entries ([`DEFAULT_MAX_PEERS`] by default). When full, the peer heard
//! from longest ago that is not connected makes room, and a newcomer is
//! dropped if every entry is connected. A peer that stops announcing and is
//! not connected is forgotten after the expiry ([`PeerBook::expire`]).
//!
//! A peer whose connections all closed and that shows up again (a record,
//! a connection) is news, like a newcomer: perhaps it restarted with the
//! same key. It missed our announcements, and its incarnation counter
//! ([`PeerInfo::incarnation`]) moves on, so that policies with attempt
//! budgets (the browser's WebRTC upgrade) give it a fresh one.

use std::{
    collections::{HashMap, hash_map},
    time::Duration,
};

use libp2p::{Multiaddr, PeerId, swarm::ConnectionId};
use web_time::Instant;

/// Peers known at most, unless [`crate::Config`] says otherwise: a chat
/// page lists them all, and a record flood must not grow the book.
pub const DEFAULT_MAX_PEERS: usize = 256;
/// Longest agent string kept from identify.
const MAX_AGENT_LEN: usize = 128;

/// The last characters of a peer id: enough to tell peers apart on screen.
pub fn short(peer: &PeerId) -> String {
    let id = peer.to_string();
    format!("…{}", &id[id.len().saturating_sub(8)..])
}

/// How a connection reaches a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// Through a relay (a `/p2p-circuit` connection).
    Relayed,
    /// Straight to the peer: dialed, hole-punched, or a browser-to-browser
    /// `/webrtc` connection (whose signaling went through a circuit).
    Direct,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Relayed => "relayed",
            Path::Direct => "direct",
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of the link to a peer, as a peer list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Known from its announcements, not connected.
    Discovered,
    Dialing,
    Connected(Path),
    /// Connected, but the best path's pings have gone unanswered for a
    /// while ([`PeerBook::check_liveness`]): the link may be dead (the peer
    /// froze, slept, lost its network) or about to recover. It is closed
    /// if the silence lasts (the shell's or the behaviour's liveness rule).
    Reconnecting(Path),
    /// The last dial failed, with the reason.
    Unreachable(String),
}

impl Link {
    /// Short, stable name (the page's `data-state`).
    pub fn name(&self) -> &'static str {
        match self {
            Link::Discovered => "discovered",
            Link::Dialing => "dialing",
            Link::Connected(Path::Relayed) => "relayed",
            Link::Connected(Path::Direct) => "direct",
            Link::Reconnecting(_) => "reconnecting",
            Link::Unreachable(_) => "unreachable",
        }
    }

    /// The path of the link shown, if connected (stalled or not).
    pub fn path(&self) -> Option<Path> {
        match self {
            Link::Connected(path) | Link::Reconnecting(path) => Some(*path),
            _ => None,
        }
    }
}

/// What is known of one peer, as the behaviour reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub peer: PeerId,
    /// The addresses the dial rule kept from its record (circuits through
    /// trusted relays, reached our way), `/webrtc` ones first.
    pub addrs: Vec<Multiaddr>,
    pub link: Link,
    /// The round trip on its best path, if measured.
    pub rtt: Option<Duration>,
    pub agent: Option<String>,
    /// Whether it announced itself on the discovery topic.
    pub discovered: bool,
    /// Relayed connections still open (0 once a direct link replaced them).
    pub relayed: usize,
    /// Counts the peer's comebacks: it moves on each time the peer shows up
    /// again after every connection to it closed.
    pub incarnation: u32,
    /// The connection the link shown stands on (the newest on its path):
    /// a new one is a new link, even with no break between them.
    pub link_id: Option<ConnectionId>,
}

impl PeerInfo {
    /// The best path of the open connections (direct beats relayed).
    pub fn path(&self) -> Option<Path> {
        self.link.path()
    }
}

/// One open connection: its path, since when it is open, when a ping on
/// it was last answered (its opening counts as one), and whether that was
/// too long ago ([`PeerBook::check_liveness`]).
#[derive(Debug, Clone, Copy)]
struct Connection {
    path: Path,
    since: Instant,
    answered: Instant,
    stalled: bool,
}

#[derive(Debug)]
struct Entry {
    addrs: Vec<Multiaddr>,
    last_seen: Instant,
    connections: HashMap<ConnectionId, Connection>,
    rtt: Option<Duration>,
    agent: Option<String>,
    discovered: bool,
    dialing: bool,
    last_error: Option<String>,
    /// Every connection to the peer closed since it was last heard from:
    /// its next record or connection is news.
    lost: bool,
    /// A connection to it was closed as dead (its pings went unanswered)
    /// and it has not shown up since: not dialed again until it does, so
    /// a frozen peer is forgotten after the expiry instead of being kept
    /// by dials that hang on it.
    dead: bool,
    /// Since when the peer has had neither a connection nor a dial in
    /// flight: [`PeerBook::idle`] says how long each idle peer has been.
    quiet_since: Instant,
    incarnation: u32,
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
            last_error: None,
            lost: false,
            dead: false,
            quiet_since: now,
            incarnation: 0,
        }
    }

    fn path(&self) -> Option<Path> {
        let mut paths = self.connections.values().map(|c| c.path);
        if paths.clone().any(|path| path == Path::Direct) {
            Some(Path::Direct)
        } else {
            paths.next()
        }
    }

    fn link(&self) -> Link {
        if let Some(path) = self.path() {
            let stalled = self
                .connections
                .values()
                .filter(|c| c.path == path)
                .all(|c| c.stalled);
            if stalled {
                Link::Reconnecting(path)
            } else {
                Link::Connected(path)
            }
        } else if self.dialing {
            Link::Dialing
        } else if let Some(error) = &self.last_error {
            Link::Unreachable(error.clone())
        } else {
            Link::Discovered
        }
    }

    /// The newest connection on the path shown.
    fn link_id(&self) -> Option<ConnectionId> {
        let path = self.path()?;
        self.connections
            .iter()
            .filter(|(_, c)| c.path == path)
            .max_by_key(|(_, c)| c.since)
            .map(|(id, _)| *id)
    }

    /// Since when the peer has been reached directly without a break.
    fn direct_since(&self) -> Option<Instant> {
        self.connections
            .values()
            .filter(|c| c.path == Path::Direct)
            .map(|c| c.since)
            .min()
    }

    fn relayed(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections
            .iter()
            .filter(|(_, c)| c.path == Path::Relayed)
            .map(|(id, _)| *id)
    }

    /// Marks a comeback: the peer shows up again after it was lost.
    fn back(&mut self) -> bool {
        self.dead = false;
        let back = self.lost;
        if back {
            self.lost = false;
            self.incarnation = self.incarnation.wrapping_add(1);
            self.last_error = None;
        }
        back
    }
}

#[derive(Debug)]
pub struct PeerBook {
    peers: HashMap<PeerId, Entry>,
    max_peers: usize,
    expiry: Duration,
}

impl PeerBook {
    pub fn new(max_peers: usize, expiry: Duration) -> Self {
        Self {
            peers: HashMap::new(),
            max_peers,
            expiry,
        }
    }

    pub fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
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

    pub fn info(&self, peer: &PeerId) -> Option<PeerInfo> {
        let entry = self.peers.get(peer)?;
        Some(PeerInfo {
            peer: *peer,
            addrs: entry.addrs.clone(),
            link: entry.link(),
            rtt: entry.rtt,
            agent: entry.agent.clone(),
            discovered: entry.discovered,
            relayed: entry.relayed().count(),
            incarnation: entry.incarnation,
            link_id: entry.link_id(),
        })
    }

    /// Every peer, sorted by id.
    pub fn infos(&self) -> Vec<PeerInfo> {
        let mut infos: Vec<PeerInfo> = self.ids().filter_map(|peer| self.info(&peer)).collect();
        infos.sort_by_key(|info| info.peer.to_string());
        infos
    }

    pub fn addrs(&self, peer: &PeerId) -> &[Multiaddr] {
        self.peers.get(peer).map_or(&[], |e| e.addrs.as_slice())
    }

    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|e| !e.connections.is_empty())
    }

    pub fn is_dialing(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|e| e.dialing)
    }

    /// Discovered, neither connected nor being dialed, nor silent since
    /// a link to it died ([`PeerBook::on_link_dead`]): each with how long
    /// it has been so at `now`.
    pub fn idle(&self, now: Instant) -> Vec<(PeerId, Duration)> {
        self.peers
            .iter()
            .filter(|(_, e)| e.discovered && !e.dialing && !e.dead && e.connections.is_empty())
            .map(|(id, e)| (*id, now.saturating_duration_since(e.quiet_since)))
            .collect()
    }

    /// The entry of `peer`, made if there is room.
    fn entry(&mut self, peer: PeerId, now: Instant) -> Option<&mut Entry> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.max_peers {
            let oldest = self
                .peers
                .iter()
                .filter(|(_, entry)| entry.connections.is_empty())
                .min_by_key(|(_, entry)| entry.last_seen)
                .map(|(id, _)| *id)?;
            self.peers.remove(&oldest);
        }
        Some(match self.peers.entry(peer) {
            hash_map::Entry::Occupied(entry) => entry.into_mut(),
            hash_map::Entry::Vacant(entry) => entry.insert(Entry::new(now)),
        })
    }

    /// Records an announcement whose addresses the dial rule reduced to
    /// `addrs`. Returns whether it is news: the peer's first, or its first
    /// since every connection to it closed (a peer that comes back,
    /// perhaps restarted, missed our announcements).
    pub fn on_record(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, now: Instant) -> bool {
        let Some(entry) = self.entry(peer, now) else {
            return false;
        };
        let news = !entry.discovered || (entry.lost && entry.connections.is_empty());
        if !entry.discovered {
            entry.quiet_since = now;
        }
        entry.back();
        entry.addrs = addrs;
        entry.last_seen = now;
        entry.discovered = true;
        news
    }

    /// Records where a lookup found `peer` (its circuits through the relay
    /// holding its reservation): the addresses it is dialed and upgraded
    /// at until its own record says otherwise. A lookup is no record: the
    /// peer is not marked discovered.
    pub fn on_located(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, now: Instant) {
        if let Some(entry) = self.entry(peer, now) {
            entry.addrs = addrs;
            entry.last_seen = now;
        }
    }

    pub fn on_dialing(&mut self, peer: PeerId, now: Instant) {
        if let Some(entry) = self.entry(peer, now) {
            entry.dialing = true;
        }
    }

    /// Records that the swarm refused to start a dial because the peer is
    /// connected or being dialed already: no dial of ours is in flight,
    /// and nothing failed. (A connection the book has no room for when it
    /// opens is not in the book: without this, a peer connected that way
    /// and dialed once its record finds room would stay "dialing" for
    /// good, and never expire after it left.)
    pub fn on_dial_refused(&mut self, peer: &PeerId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.dialing = false;
        }
    }

    pub fn on_dial_failed(&mut self, peer: &PeerId, error: String, now: Instant) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.dialing = false;
            if entry.connections.is_empty() {
                entry.last_error = Some(error);
                entry.quiet_since = now;
            }
        }
    }

    /// Records a connection. Returns whether the peer came back with it
    /// (every earlier connection had closed).
    pub fn on_connected(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        path: Path,
        now: Instant,
    ) -> bool {
        let Some(entry) = self.entry(peer, now) else {
            return false;
        };
        let back = entry.connections.is_empty() && entry.back();
        let best = entry.path();
        entry.connections.insert(
            connection,
            Connection {
                path,
                since: now,
                answered: now,
                stalled: false,
            },
        );
        if entry.path() != best {
            // A better path: the round trip of the old one is not its own.
            entry.rtt = None;
        }
        entry.dialing = false;
        entry.last_error = None;
        entry.last_seen = now;
        back
    }

    /// Records that a connection to `peer` is being closed as dead: until
    /// it shows up again (a record, a connection), it is not [`idle`]
    /// (not dialed by the announcement period).
    ///
    /// [`idle`]: PeerBook::idle
    pub fn on_link_dead(&mut self, peer: &PeerId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.dead = true;
        }
    }

    /// When `peer` was last heard from: a record or a new connection.
    pub fn last_seen(&self, peer: &PeerId) -> Option<Instant> {
        Some(self.peers.get(peer)?.last_seen)
    }

    /// When a ping on `connection` to `peer` was last answered.
    pub fn answered(&self, peer: &PeerId, connection: ConnectionId) -> Option<Instant> {
        Some(self.peers.get(peer)?.connections.get(&connection)?.answered)
    }

    /// Forgets a connection; returns its path.
    pub fn on_disconnected(
        &mut self,
        peer: &PeerId,
        connection: ConnectionId,
        now: Instant,
    ) -> Option<Path> {
        let entry = self.peers.get_mut(peer)?;
        let best = entry.path();
        let path = entry.connections.remove(&connection).map(|c| c.path);
        if path.is_some() && entry.connections.is_empty() {
            entry.lost = true;
            if !entry.dialing {
                entry.quiet_since = now;
            }
        }
        if entry.path() != best {
            // The round trip measured on the best path says nothing of the
            // one left.
            entry.rtt = None;
        }
        path
    }

    pub fn path_of(&self, peer: &PeerId, connection: ConnectionId) -> Option<Path> {
        Some(self.peers.get(peer)?.connections.get(&connection)?.path)
    }

    /// Records a round trip measured on `connection`, if that connection
    /// takes the peer's best path: while a relayed connection outlives the
    /// direct one (its grace), its pings would show a relay's round trip
    /// next to the word "direct". Returns whether the shown rtt changed.
    pub fn on_rtt(
        &mut self,
        peer: &PeerId,
        connection: ConnectionId,
        rtt: Duration,
        now: Instant,
    ) -> bool {
        let Some(entry) = self.peers.get_mut(peer) else {
            return false;
        };
        let best = entry.path();
        let Some(link) = entry.connections.get_mut(&connection) else {
            return false;
        };
        link.answered = now;
        // An answer revives a stalled connection.
        let revived = std::mem::replace(&mut link.stalled, false);
        if Some(link.path) == best && entry.rtt != Some(rtt) {
            entry.rtt = Some(rtt);
            return true;
        }
        revived
    }

    /// Marks the connections whose pings have gone unanswered for longer
    /// than `stall` at `now` as stalled, and those answered since as live
    /// again. Returns the peers whose link changed: a peer whose best path
    /// stalled shows [`Link::Reconnecting`], without the round trip of
    /// a link that no longer answers.
    pub fn check_liveness(&mut self, now: Instant, stall: Duration) -> Vec<PeerId> {
        let mut changed = Vec::new();
        for (peer, entry) in &mut self.peers {
            let before = entry.link();
            for connection in entry.connections.values_mut() {
                connection.stalled = now.saturating_duration_since(connection.answered) > stall;
            }
            let after = entry.link();
            if after != before {
                if matches!(after, Link::Reconnecting(_)) {
                    entry.rtt = None;
                }
                changed.push(*peer);
            }
        }
        changed
    }

    pub fn on_agent(&mut self, peer: &PeerId, agent: &str) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.agent = Some(agent.chars().take(MAX_AGENT_LEN).collect());
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
                    .filter(move |(_, c)| now.saturating_duration_since(c.answered) > silence)
                    .map(move |(id, _)| (*peer, *id))
            })
            .collect()
    }

    /// The direct connections to `peer`.
    pub fn direct_connections(&self, peer: &PeerId) -> Vec<ConnectionId> {
        self.connections_on(peer, Path::Direct)
    }

    /// The relayed connections to `peer`.
    pub fn relayed_connections(&self, peer: &PeerId) -> Vec<ConnectionId> {
        self.connections_on(peer, Path::Relayed)
    }

    fn connections_on(&self, peer: &PeerId, path: Path) -> Vec<ConnectionId> {
        self.peers.get(peer).map_or_else(Vec::new, |entry| {
            entry
                .connections
                .iter()
                .filter(|(_, c)| c.path == path)
                .map(|(id, _)| *id)
                .collect()
        })
    }

    /// The relayed connections of peers also reached directly: a message
    /// sent now could be taken by one of them.
    pub fn relayed_to_direct_peers(&self) -> Vec<(PeerId, ConnectionId)> {
        self.peers
            .iter()
            .filter(|(_, entry)| entry.path() == Some(Path::Direct))
            .flat_map(|(peer, entry)| entry.relayed().map(move |id| (*peer, id)))
            .collect()
    }

    /// The relayed connections to close at `now`: those of peers also
    /// reached directly, once the relayed connection and the direct path
    /// have both been open for `grace`, each counted on its own (a peer
    /// that goes direct later gets its whole grace, whatever others did).
    /// Also returns when the next one falls due, if one will.
    pub fn relayed_to_close(
        &self,
        now: Instant,
        grace: Duration,
    ) -> (Vec<(PeerId, ConnectionId)>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for (peer, entry) in &self.peers {
            let Some(direct_since) = entry.direct_since() else {
                continue;
            };
            for (id, c) in &entry.connections {
                if c.path != Path::Relayed {
                    continue;
                }
                let deadline = c.since.max(direct_since) + grace;
                if deadline <= now {
                    due.push((*peer, *id));
                } else {
                    next = Some(next.map_or(deadline, |next| next.min(deadline)));
                }
            }
        }
        (due, next)
    }

    /// Removes peers neither connected, nor being dialed, nor heard from
    /// within the expiry.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let expiry = self.expiry;
        let gone: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, entry)| {
                entry.connections.is_empty()
                    && !entry.dialing
                    && now.saturating_duration_since(entry.last_seen) > expiry
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in &gone {
            self.peers.remove(peer);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRY: Duration = Duration::from_secs(60);

    fn book() -> PeerBook {
        PeerBook::new(DEFAULT_MAX_PEERS, EXPIRY)
    }

    fn id(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    fn idle(book: &PeerBook) -> Vec<PeerId> {
        let now = Instant::now();
        book.idle(now).into_iter().map(|(peer, _)| peer).collect()
    }

    fn link(book: &PeerBook, peer: &PeerId) -> Option<Link> {
        book.info(peer).map(|info| info.link)
    }

    #[test]
    fn the_book_is_bounded_evicts_the_longest_silent_peer_and_keeps_connected_ones() {
        let now = Instant::now();
        let mut book = book();
        let connected = PeerId::random();
        let first = PeerId::random();
        book.on_connected(connected, id(1), Path::Relayed, now);
        book.on_record(first, vec![], now);
        for i in 1..DEFAULT_MAX_PEERS * 2 {
            book.on_record(
                PeerId::random(),
                vec![],
                now + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(book.len(), DEFAULT_MAX_PEERS);
        assert!(book.contains(&connected), "connected peer evicted");
        assert!(!book.contains(&first), "the oldest silent peer stayed");
    }

    #[test]
    fn a_full_book_of_connected_peers_drops_the_newcomer() {
        let now = Instant::now();
        let mut book = PeerBook::new(2, EXPIRY);
        book.on_connected(PeerId::random(), id(1), Path::Relayed, now);
        book.on_connected(PeerId::random(), id(2), Path::Relayed, now);
        let newcomer = PeerId::random();
        assert!(!book.on_record(newcomer, vec![], now));
        assert!(!book.contains(&newcomer));
    }

    #[test]
    fn a_new_record_is_news_once_and_dialing_and_connecting_show() {
        let now = Instant::now();
        let mut book = book();
        let peer = PeerId::random();
        assert!(book.on_record(peer, vec![], now), "first record");
        assert!(!book.on_record(peer, vec![], now), "second record");
        assert_eq!(idle(&book), vec![peer]);
        book.on_dialing(peer, now);
        assert_eq!(link(&book, &peer), Some(Link::Dialing));
        assert!(idle(&book).is_empty(), "being dialed");
        book.on_connected(peer, id(1), Path::Relayed, now);
        assert_eq!(link(&book, &peer), Some(Link::Connected(Path::Relayed)));
    }

    #[test]
    fn an_idle_peer_says_how_long_it_has_been_without_connection_or_dial() {
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let mut book = book();
        let peer = PeerId::random();
        book.on_record(peer, vec![], t0);
        assert_eq!(book.idle(secs(2)), vec![(peer, Duration::from_secs(2))]);
        // A later record does not make the wait start again.
        book.on_record(peer, vec![], secs(3));
        assert_eq!(book.idle(secs(4)), vec![(peer, Duration::from_secs(4))]);
        // Connected, then its last connection closes: quiet from then on.
        book.on_connected(peer, id(1), Path::Relayed, secs(5));
        assert!(book.idle(secs(6)).is_empty());
        book.on_disconnected(&peer, id(1), secs(10));
        assert_eq!(book.idle(secs(11)), vec![(peer, Duration::from_secs(1))]);
        // A failed dial, likewise.
        book.on_dialing(peer, secs(12));
        assert!(book.idle(secs(13)).is_empty(), "being dialed");
        book.on_dial_failed(&peer, "no route".into(), secs(14));
        assert_eq!(book.idle(secs(16)), vec![(peer, Duration::from_secs(2))]);
    }

    #[test]
    fn a_refused_dial_neither_keeps_a_peer_nor_fails_it() {
        let now = Instant::now();
        let mut book = book();
        let peer = PeerId::random();
        book.on_record(peer, vec![], now);
        book.on_dialing(peer, now);
        book.on_dial_refused(&peer);
        assert_eq!(link(&book, &peer), Some(Link::Discovered));
        let later = now + EXPIRY + Duration::from_secs(1);
        assert_eq!(book.expire(later), vec![peer], "kept by a dial never made");
    }

    #[test]
    fn a_failed_dial_is_shown_until_the_peer_connects() {
        let now = Instant::now();
        let mut book = book();
        let peer = PeerId::random();
        book.on_record(peer, vec![], now);
        book.on_dialing(peer, now);
        book.on_dial_failed(&peer, "no route".into(), now);
        assert_eq!(
            link(&book, &peer),
            Some(Link::Unreachable("no route".into()))
        );
        assert_eq!(idle(&book), vec![peer], "a later tick tries again");
        book.on_connected(peer, id(1), Path::Relayed, now);
        assert_eq!(link(&book, &peer), Some(Link::Connected(Path::Relayed)));
    }

    #[test]
    fn direct_beats_relayed_and_silent_peers_expire() {
        let now = Instant::now();
        let mut book = book();
        let peer = PeerId::random();
        book.on_record(peer, vec![], now);
        book.on_connected(peer, id(1), Path::Relayed, now);
        book.on_connected(peer, id(2), Path::Direct, now);
        assert_eq!(link(&book, &peer), Some(Link::Connected(Path::Direct)));
        assert_eq!(book.info(&peer).map(|i| i.relayed), Some(1));
        assert_eq!(book.on_disconnected(&peer, id(2), now), Some(Path::Direct));
        assert_eq!(link(&book, &peer), Some(Link::Connected(Path::Relayed)));
        let later = now + EXPIRY + Duration::from_secs(1);
        assert!(book.expire(later).is_empty(), "still connected");
        book.on_disconnected(&peer, id(1), now);
        assert_eq!(link(&book, &peer), Some(Link::Discovered));
        assert!(book.expire(now + EXPIRY / 2).is_empty(), "not yet");
        assert_eq!(book.expire(later), vec![peer]);
        assert!(book.is_empty());
    }

    #[test]
    fn relayed_connections_close_once_they_and_the_direct_path_had_the_grace() {
        let grace = Duration::from_secs(3);
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let mut book = book();
        let (a, b) = (PeerId::random(), PeerId::random());
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
            (vec![(a, id(1))], Some(secs(6)))
        );
        // A relayed connection opened after the direct one waits its own grace.
        book.on_connected(a, id(5), Path::Relayed, secs(5));
        let (due, next) = book.relayed_to_close(secs(6), grace);
        assert_eq!((due.len(), next), (2, Some(secs(8))), "{due:?}");
        // No direct path, nothing to close.
        book.on_disconnected(&a, id(2), secs(6));
        assert_eq!(book.relayed_to_close(secs(9), grace).0, vec![(b, id(3))]);
    }

    #[test]
    fn the_round_trip_shown_is_the_best_paths() {
        let now = Instant::now();
        let mut book = book();
        let peer = PeerId::random();
        let (relayed, direct) = (id(1), id(2));
        let rtt = |ms| Some(Duration::from_millis(ms));
        let shown = |book: &PeerBook| book.info(&peer).and_then(|i| i.rtt);
        book.on_connected(peer, relayed, Path::Relayed, now);
        book.on_rtt(&peer, relayed, Duration::from_millis(80), now);
        assert_eq!(shown(&book), rtt(80));
        book.on_connected(peer, direct, Path::Direct, now);
        assert_eq!(shown(&book), None, "the relayed rtt shown as direct");
        book.on_rtt(&peer, direct, Duration::from_millis(2), now);
        book.on_rtt(&peer, relayed, Duration::from_millis(90), now);
        assert_eq!(shown(&book), rtt(2), "a relayed rtt shown as direct");
        book.on_disconnected(&peer, relayed, now);
        assert_eq!(shown(&book), rtt(2), "still direct");
        book.on_disconnected(&peer, direct, now);
        assert_eq!(shown(&book), None);
    }

    #[test]
    fn a_peer_that_lost_every_connection_and_shows_up_again_is_a_new_incarnation() {
        let now = Instant::now();
        let mut book = book();
        let peer = PeerId::random();
        let incarnation = |book: &PeerBook| book.info(&peer).map(|i| i.incarnation);
        assert!(book.on_record(peer, vec![], now), "first record");
        book.on_connected(peer, id(1), Path::Relayed, now);
        book.on_connected(peer, id(2), Path::Direct, now);
        assert!(!book.on_record(peer, vec![], now), "connected: not news");
        book.on_disconnected(&peer, id(1), now);
        assert!(!book.on_record(peer, vec![], now), "still reached directly");
        assert_eq!(incarnation(&book), Some(0));
        book.on_disconnected(&peer, id(2), now);
        assert!(book.on_record(peer, vec![], now), "it came back");
        assert_eq!(incarnation(&book), Some(1));
        assert!(!book.on_record(peer, vec![], now), "news once");
        // Back by a connection before its record arrived: a new
        // incarnation too, and its record is then nothing to catch up on.
        book.on_connected(peer, id(3), Path::Relayed, now);
        book.on_disconnected(&peer, id(3), now);
        assert!(book.on_connected(peer, id(4), Path::Relayed, now));
        assert_eq!(incarnation(&book), Some(2));
        assert!(!book.on_record(peer, vec![], now));
        assert!(
            !book.on_connected(peer, id(5), Path::Direct, now),
            "a second connection is no comeback"
        );
    }

    #[test]
    fn a_best_path_whose_pings_go_unanswered_shows_reconnecting_until_one_is() {
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let stall = Duration::from_secs(3);
        let mut book = book();
        let peer = PeerId::random();
        let (relayed, direct) = (id(1), id(2));
        book.on_connected(peer, relayed, Path::Relayed, t0);
        book.on_connected(peer, direct, Path::Direct, t0);
        book.on_rtt(&peer, direct, Duration::from_millis(2), secs(1));
        book.on_rtt(&peer, relayed, Duration::from_millis(40), secs(3));
        assert!(
            book.check_liveness(secs(4), stall).is_empty(),
            "all answered"
        );
        // The direct link stops answering; the relayed one still does,
        // yet the direct one is what the list shows: it is reconnecting.
        book.on_rtt(&peer, relayed, Duration::from_millis(40), secs(5));
        assert_eq!(book.check_liveness(secs(5), stall), vec![peer]);
        let info = book.info(&peer).expect("listed");
        assert_eq!(info.link, Link::Reconnecting(Path::Direct));
        assert_eq!(info.rtt, None, "an old round trip shown for a stalled link");
        assert!(book.check_liveness(secs(6), stall).is_empty(), "no change");
        // An answer revives it.
        assert!(book.on_rtt(&peer, direct, Duration::from_millis(3), secs(6)));
        assert_eq!(link(&book, &peer), Some(Link::Connected(Path::Direct)));
        // Once the dead direct connection is closed, the relayed one shows.
        book.check_liveness(secs(10), stall);
        book.on_rtt(&peer, relayed, Duration::from_millis(40), secs(10));
        book.on_disconnected(&peer, direct, secs(10));
        assert_eq!(link(&book, &peer), Some(Link::Connected(Path::Relayed)));
    }

    #[test]
    fn a_peer_whose_link_died_is_not_dialed_again_until_it_shows_up() {
        let now = Instant::now();
        let mut book = book();
        let peer = PeerId::random();
        book.on_record(peer, vec![], now);
        book.on_connected(peer, id(1), Path::Direct, now);
        book.on_link_dead(&peer);
        book.on_disconnected(&peer, id(1), now);
        assert!(idle(&book).is_empty(), "a dead peer is dialed");
        book.on_record(peer, vec![], now);
        assert_eq!(idle(&book), vec![peer], "it announced: it is back");
    }

    #[test]
    fn connections_whose_pings_go_unanswered_are_silent() {
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let silence = Duration::from_secs(3);
        let mut book = book();
        let peer = PeerId::random();
        let (relayed, direct) = (id(1), id(2));
        book.on_connected(peer, relayed, Path::Relayed, t0);
        book.on_connected(peer, direct, Path::Direct, secs(1));
        assert!(book.silent(secs(3), silence).is_empty(), "new connections");
        book.on_rtt(&peer, direct, Duration::from_millis(1), secs(3));
        assert_eq!(book.silent(secs(5), silence), vec![(peer, relayed)]);
        assert_eq!(book.silent(secs(7), silence).len(), 2);
    }
}
