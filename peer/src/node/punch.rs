//! Hole punches that failed, tried again.
//!
//! DCUtR punches once per relayed connection: three dials, and then it
//! gives up, and the pair would stay relayed for as long as that
//! connection stands. One lost packet, a router slow to map, or a path
//! cut for a moment is enough for that. So a failed punch is tried again
//! on a fresh circuit: DCUtR runs on every new relayed connection, and the
//! peer that accepts it starts the punch. The peer that saw the failure
//! closes its relayed connections to the other, and the side that dials
//! first dials a new circuit at once, as whenever a pair's last relayed
//! connection ends (`chat::redial_after_relayed`): one circuit per pair,
//! never one more per try. Three more times at most
//! ([`PUNCH_RETRIES`]), [`PUNCH_RETRY_FIRST`] after the failure, then
//! twice as long each time; a direct connection (or the peer leaving the
//! book) ends the count.
//!
//! Only a peer that speaks DCUtR is punched again (identify lists it):
//! with a page, or a peer started with `--no-hole-punching`, DCUtR fails
//! at once as unsupported, and there is nothing to try again. And only a
//! peer whose record names a circuit through this peer's relay: the redial
//! goes through that relay (a peer found by a lookup, on another relay of
//! the federation, would be left with no connection at all).
//!
//! DCUtR reports its failure on the side that accepted the circuit; were
//! both sides to report one, the first to close makes the other's try
//! moot: a new relayed connection drops a try still waiting, since a
//! punch runs on it already, and closing it would cut that punch short.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chat_network::{Link, Path};
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

use super::Node;
use crate::events::Event;

/// How many times a failed hole punch is tried again before the pair
/// stays relayed (until its relayed connection ends).
pub const PUNCH_RETRIES: u32 = 3;
/// How long after the first failure the punch is tried again; each later
/// try waits twice as long as the one before.
pub const PUNCH_RETRY_FIRST: Duration = Duration::from_secs(5);
/// The most peers with a failed punch counted. Entries of peers no longer
/// relayed are dropped to make room; beyond this a failure is reported
/// and not retried.
pub const MAX_PUNCH_RETRIES_WAITING: usize = 256;

/// The failed punches waiting to be tried again, by peer.
#[derive(Debug, Default)]
pub(super) struct PunchRetries {
    waiting: HashMap<PeerId, Retry>,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    /// Tries made so far (0 before the first).
    tries: u32,
    /// When the next try is due, if one is.
    due: Option<Instant>,
}

impl PunchRetries {
    /// A punch with `peer` failed at `now`: when it will be tried again,
    /// if it will. When the map is full, the entries of peers that
    /// `still_relayed` says are not make room first.
    fn failed(
        &mut self,
        peer: PeerId,
        now: Instant,
        still_relayed: impl Fn(&PeerId) -> bool,
    ) -> Option<Duration> {
        if !self.waiting.contains_key(&peer) && self.waiting.len() >= MAX_PUNCH_RETRIES_WAITING {
            self.waiting.retain(|peer, _| still_relayed(peer));
            if self.waiting.len() >= MAX_PUNCH_RETRIES_WAITING {
                return None;
            }
        }
        let retry = self.waiting.entry(peer).or_insert(Retry {
            tries: 0,
            due: None,
        });
        if retry.tries >= PUNCH_RETRIES {
            retry.due = None;
            return None;
        }
        let wait = PUNCH_RETRY_FIRST * 2u32.pow(retry.tries);
        retry.due = Some(now + wait);
        Some(wait)
    }

    /// The peers whose try is due at `now`, each with its number (from 1).
    fn due(&mut self, now: Instant) -> Vec<(PeerId, u32)> {
        let mut due = Vec::new();
        for (peer, retry) in &mut self.waiting {
            if retry.due.is_some_and(|at| at <= now) {
                retry.due = None;
                retry.tries += 1;
                due.push((*peer, retry.tries));
            }
        }
        due
    }

    /// A new relayed connection to `peer` is up: a punch runs on it (the
    /// other side's try, or a redial), so a try waiting is dropped; if
    /// that punch fails too, the next is due after it.
    fn punch_under_way(&mut self, peer: &PeerId) {
        if let Some(retry) = self.waiting.get_mut(peer) {
            retry.due = None;
        }
    }

    /// `peer` is direct, or gone: its count starts again.
    fn forget(&mut self, peer: &PeerId) {
        self.waiting.remove(peer);
    }
}

impl Node {
    /// DCUtR gave up on `peer`: the punch is tried again later, unless it
    /// was tried [`PUNCH_RETRIES`] times already, or the pair is direct
    /// anyway (the other side's dial made it while ours failed).
    pub(super) fn on_punch_failed(&mut self, peer: PeerId) {
        let network = &self.swarm.behaviour().network;
        let link = |peer: &PeerId| network.peer(peer).map(|info| info.link);
        if matches!(link(&peer), Some(Link::Connected(Path::Direct))) {
            return;
        }
        let still_relayed =
            |peer: &PeerId| matches!(link(peer), Some(Link::Connected(Path::Relayed)));
        if let Some(wait) = self
            .punch_retries
            .failed(peer, Instant::now(), still_relayed)
        {
            tracing::debug!(%peer, ?wait, "hole punch failed; trying again later");
        }
    }

    /// A relayed connection to `peer` is up: DCUtR punches on it.
    pub(super) fn punch_started(&mut self, peer: &PeerId) {
        self.punch_retries.punch_under_way(peer);
    }

    /// A direct connection to `peer` is up, or it has gone (its record
    /// expired): nothing to try again. (Not when its connections close: a
    /// try closes them, and the count must go on.)
    pub(super) fn punch_settled(&mut self, peer: &PeerId) {
        self.punch_retries.forget(peer);
    }

    /// The tries that are due: a peer still only relayed, that speaks
    /// DCUtR and is reached through this peer's relay, has its relayed
    /// connections closed; the side that dials first then dials a new
    /// circuit, on which the side that accepts it punches again.
    pub(super) fn retry_due_punches(&mut self) {
        for (peer, attempt) in self.punch_retries.due(Instant::now()) {
            let network = &self.swarm.behaviour().network;
            let Some(info) = network.peer(&peer) else {
                self.punch_retries.forget(&peer);
                continue;
            };
            let worth_it =
                self.punchers.contains(&peer) && through_relay(&info.addrs, &self.relay_id);
            match info.link {
                Link::Connected(Path::Relayed) if worth_it => {}
                // Not connected now: a new relayed connection punches
                // anew, and its failure counts on.
                Link::Dialing | Link::Reconnecting(_) => continue,
                // Direct, or no punch to try again: the count ends.
                _ => {
                    self.punch_retries.forget(&peer);
                    continue;
                }
            }
            let relayed = network.relayed_connections(&peer);
            self.emit(Event::PunchingAgain {
                peer,
                attempt,
                of: PUNCH_RETRIES,
            });
            for connection in relayed {
                self.swarm.close_connection(connection);
            }
        }
    }
}

/// Whether one of `addrs` is a circuit through `relay` (the redial after a
/// close goes through this peer's relay).
fn through_relay(addrs: &[Multiaddr], relay: &PeerId) -> bool {
    addrs.iter().any(|addr| {
        let mut protocols = addr.iter().peekable();
        while let Some(protocol) = protocols.next() {
            if protocol == Protocol::P2p(*relay) {
                return protocols.peek() == Some(&Protocol::P2pCircuit);
            }
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relayed(_: &PeerId) -> bool {
        true
    }

    #[test]
    fn tries_wait_longer_each_time_and_stop_after_the_last() {
        let mut retries = PunchRetries::default();
        let peer = PeerId::random();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        while let Some(wait) = retries.failed(peer, now, relayed) {
            let early = retries.due(now + wait - Duration::from_millis(1));
            assert!(early.is_empty(), "nothing due before {wait:?}");
            now += wait;
            let due = retries.due(now);
            assert_eq!(due.len(), 1, "one try due at {now:?}");
            waits.push((wait, due[0].1));
        }
        assert_eq!(
            waits,
            [
                (PUNCH_RETRY_FIRST, 1),
                (PUNCH_RETRY_FIRST * 2, 2),
                (PUNCH_RETRY_FIRST * 4, 3)
            ]
        );
        assert!(retries.due(now + Duration::from_secs(3600)).is_empty());

        retries.forget(&peer);
        assert_eq!(retries.failed(peer, now, relayed), Some(PUNCH_RETRY_FIRST));
    }

    #[test]
    fn a_new_relayed_connection_drops_the_waiting_try_but_not_the_count() {
        let mut retries = PunchRetries::default();
        let peer = PeerId::random();
        let now = Instant::now();
        let wait = retries.failed(peer, now, relayed).expect("a first try");
        assert_eq!(retries.due(now + wait), [(peer, 1)]);
        let wait = retries.failed(peer, now, relayed).expect("a second try");
        retries.punch_under_way(&peer);
        assert!(
            retries.due(now + wait).is_empty(),
            "a punch runs on the new connection"
        );
        // The count went on: two tries are left, not three.
        let wait = retries.failed(peer, now, relayed).expect("a try left");
        assert_eq!(retries.due(now + wait), [(peer, 2)]);
        let wait = retries.failed(peer, now, relayed).expect("the last try");
        assert_eq!(retries.due(now + wait), [(peer, 3)]);
        assert_eq!(retries.failed(peer, now, relayed), None);
    }

    #[test]
    fn a_full_map_drops_the_peers_no_longer_relayed_and_is_bounded() {
        let mut retries = PunchRetries::default();
        let now = Instant::now();
        let mut peers = Vec::new();
        for _ in 0..MAX_PUNCH_RETRIES_WAITING {
            let peer = PeerId::random();
            assert!(retries.failed(peer, now, relayed).is_some());
            peers.push(peer);
        }
        assert_eq!(retries.failed(PeerId::random(), now, relayed), None);
        assert_eq!(retries.waiting.len(), MAX_PUNCH_RETRIES_WAITING);

        let gone = peers[7];
        let newcomer = PeerId::random();
        let wait = retries.failed(newcomer, now, |peer| *peer != gone);
        assert_eq!(wait, Some(PUNCH_RETRY_FIRST), "the gone peer made room");
        assert!(!retries.waiting.contains_key(&gone));
        assert_eq!(retries.waiting.len(), MAX_PUNCH_RETRIES_WAITING);
    }

    #[test]
    fn a_circuit_through_the_relay_is_told_from_others() {
        let relay = PeerId::random();
        let other = PeerId::random();
        let peer = PeerId::random();
        let circuit = |via: PeerId| -> Multiaddr {
            format!("/ip4/198.51.100.2/tcp/4001/p2p/{via}/p2p-circuit/p2p/{peer}")
                .parse()
                .expect("a circuit")
        };
        assert!(through_relay(&[circuit(other), circuit(relay)], &relay));
        assert!(!through_relay(&[circuit(other)], &relay));
        let direct: Multiaddr = format!("/ip4/198.51.100.2/tcp/4001/p2p/{relay}")
            .parse()
            .expect("an address");
        assert!(!through_relay(&[direct], &relay));
    }
}
