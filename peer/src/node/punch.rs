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
//! Only the side that saw the failure knows of it (DCUtR may report it on
//! one side only). When both did, the side that dials first (the dial
//! rule) goes first and the other waits [`FIRST_DIALER_GRACE`] longer: a
//! new relayed connection drops a try still waiting, since a punch runs on
//! it already, and closing it would cut that punch short.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chat_network::{
    Link, Path,
    dial::{FIRST_DIALER_GRACE, dials_first},
};
use libp2p::PeerId;

use super::Node;
use crate::events::Event;

/// How many times a failed hole punch is tried again before the pair
/// stays relayed (until its relayed connection ends).
pub const PUNCH_RETRIES: u32 = 3;
/// How long after the first failure the punch is tried again; each later
/// try waits twice as long as the one before.
pub const PUNCH_RETRY_FIRST: Duration = Duration::from_secs(5);
/// The most peers with a punch waiting to be tried again. Each is a peer
/// connected through the relay, so the connection limits bound them too;
/// beyond this a failure is reported and not retried.
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
    /// if it will.
    fn failed(&mut self, peer: PeerId, goes_first: bool, now: Instant) -> Option<Duration> {
        if !self.waiting.contains_key(&peer) && self.waiting.len() >= MAX_PUNCH_RETRIES_WAITING {
            return None;
        }
        let retry = self.waiting.entry(peer).or_insert(Retry {
            tries: 0,
            due: None,
        });
        if retry.tries >= PUNCH_RETRIES {
            retry.due = None;
            return None;
        }
        let mut wait = PUNCH_RETRY_FIRST * 2u32.pow(retry.tries);
        if !goes_first {
            wait += FIRST_DIALER_GRACE;
        }
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
    /// was tried [`PUNCH_RETRIES`] times already.
    pub(super) fn on_punch_failed(&mut self, peer: PeerId) {
        let goes_first = dials_first(self.swarm.local_peer_id(), &peer);
        if let Some(wait) = self.punch_retries.failed(peer, goes_first, Instant::now()) {
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

    /// The tries that are due: a peer still only relayed has its relayed
    /// connections closed; the side that dials first then dials a new
    /// circuit, on which the side that accepts it punches again.
    pub(super) fn retry_due_punches(&mut self) {
        for (peer, attempt) in self.punch_retries.due(Instant::now()) {
            let network = &self.swarm.behaviour().network;
            let link = network.peer(&peer).map(|info| info.link);
            if !matches!(link, Some(Link::Connected(Path::Relayed))) {
                // Direct meanwhile, or not connected: a direct connection
                // ends the count, a new relayed one punches anew.
                continue;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tries_wait_longer_each_time_and_stop_after_the_last() {
        let mut retries = PunchRetries::default();
        let peer = PeerId::random();
        let start = Instant::now();
        let mut waits = Vec::new();
        let mut now = start;
        while let Some(wait) = retries.failed(peer, true, now) {
            assert!(
                retries
                    .due(now + wait - Duration::from_millis(1))
                    .is_empty()
            );
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
        assert_eq!(retries.failed(peer, true, now), Some(PUNCH_RETRY_FIRST));
    }

    #[test]
    fn the_side_that_does_not_dial_first_waits_the_grace_longer() {
        let mut retries = PunchRetries::default();
        assert_eq!(
            retries.failed(PeerId::random(), false, Instant::now()),
            Some(PUNCH_RETRY_FIRST + FIRST_DIALER_GRACE)
        );
    }

    #[test]
    fn a_new_relayed_connection_drops_the_waiting_try_but_not_the_count() {
        let mut retries = PunchRetries::default();
        let peer = PeerId::random();
        let now = Instant::now();
        let wait = retries.failed(peer, false, now).expect("a first try");
        retries.punch_under_way(&peer);
        assert!(
            retries.due(now + wait).is_empty(),
            "the other side's punch runs"
        );
        for _ in 0..PUNCH_RETRIES {
            let wait = retries.failed(peer, true, now).expect("tries left");
            assert_eq!(retries.due(now + wait).len(), 1);
        }
        assert_eq!(retries.failed(peer, true, now), None);
    }

    #[test]
    fn waiting_retries_are_bounded() {
        let mut retries = PunchRetries::default();
        let now = Instant::now();
        for _ in 0..MAX_PUNCH_RETRIES_WAITING {
            assert!(retries.failed(PeerId::random(), true, now).is_some());
        }
        assert_eq!(retries.failed(PeerId::random(), true, now), None);
        assert_eq!(retries.waiting.len(), MAX_PUNCH_RETRIES_WAITING);
    }
}
