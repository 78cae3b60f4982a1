//! Noticing a connection to the relay that went silent.
//!
//! A laptop that moved to another network, or whose NAT forgot its
//! mapping, keeps a WebSocket that nothing comes back on: the browser
//! reports it open for minutes, and libp2p's ping reports failures but
//! closes nothing. The node records when each relay connection was last
//! heard from (established, or a ping answered) and asks, once a second,
//! which have been silent longer than [`RELAY_SILENCE`]; those it drops
//! and replaces with a new connection (`node`).
//!
//! A page that did not run (a laptop asleep, a hidden tab whose timers
//! the browser holds back) heard nothing because it asked nothing: when a
//! check comes much later than the last one, every connection starts a
//! fresh silence window instead of being condemned for the page's sleep.

use std::time::Duration;

use libp2p::swarm::ConnectionId;
use libp2p_webrtc_p2p::small_map::SmallMap;
use web_time::Instant;

/// How long a relay connection may go without an answered ping before the
/// page gives it up and dials the relay again. Pings go out every second
/// and time out after 3 s; 10 s is three failed pings, well above a slow
/// network's hiccup, and short against the 45 s a person waits before
/// calling the chat broken.
pub const RELAY_SILENCE: Duration = Duration::from_secs(10);

/// How often the node checks ([`RelayLiveness::silent`]).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A check this much later than the one before means the page did not run
/// in between (see the module docs).
const ASLEEP: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct RelayLiveness {
    silence: Duration,
    /// At most the connections to one peer, the relay (one, two while a
    /// dead one is replaced).
    heard: SmallMap<ConnectionId, Instant>,
    last_check: Option<Instant>,
}

impl RelayLiveness {
    pub fn new(silence: Duration) -> Self {
        Self {
            silence,
            heard: SmallMap::new(),
            last_check: None,
        }
    }

    pub fn silence(&self) -> Duration {
        self.silence
    }

    /// `connection` was established, or answered a ping, at `at`.
    pub fn heard(&mut self, connection: ConnectionId, at: Instant) {
        self.heard.insert(connection, at);
    }

    /// `connection` closed, or is being given up: no longer watched.
    pub fn forget(&mut self, connection: ConnectionId) {
        self.heard.remove(&connection);
    }

    pub fn is_watched(&self, connection: ConnectionId) -> bool {
        self.heard.contains_key(&connection)
    }

    /// Whether no connection is watched (none open, or all given up).
    pub fn is_empty(&self) -> bool {
        self.heard.is_empty()
    }

    /// The connections not heard from for longer than the silence bound as
    /// of `now`. After a gap in the checks (the page asleep) every
    /// connection is given a fresh window instead.
    pub fn silent(&mut self, now: Instant) -> Vec<ConnectionId> {
        let slept = self
            .last_check
            .is_some_and(|last| now.saturating_duration_since(last) > ASLEEP);
        self.last_check = Some(now);
        if slept {
            for heard in self.heard.values_mut() {
                *heard = now;
            }
            return Vec::new();
        }
        let mut silent: Vec<ConnectionId> = self
            .heard
            .iter()
            .filter(|(_, heard)| now.saturating_duration_since(**heard) > self.silence)
            .map(|(connection, _)| *connection)
            .collect();
        silent.sort_unstable();
        silent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Checks once a second from `from` to `to` (inclusive); the silent
    /// connections each check found.
    fn check_each_second(
        liveness: &mut RelayLiveness,
        from: Instant,
        seconds: u64,
    ) -> Vec<(u64, Vec<ConnectionId>)> {
        (0..=seconds)
            .map(|s| (s, liveness.silent(from + SECOND * s as u32)))
            .filter(|(_, silent)| !silent.is_empty())
            .collect()
    }

    #[test]
    fn a_connection_unheard_for_longer_than_the_bound_is_silent() {
        let mut liveness = RelayLiveness::new(10 * SECOND);
        let (old, new) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        let start = Instant::now();
        liveness.heard(old, start);
        liveness.heard(new, start);
        // `new` keeps answering, `old` does not.
        let mut found = Vec::new();
        for s in 0..=12u32 {
            liveness.heard(new, start + SECOND * s);
            let silent = liveness.silent(start + SECOND * s);
            if !silent.is_empty() {
                found.push((s, silent));
            }
        }
        assert_eq!(found, vec![(11, vec![old]), (12, vec![old])]);
        liveness.forget(old);
        assert!(!liveness.is_watched(old));
        assert!(liveness.silent(start + 13 * SECOND).is_empty());
    }

    #[test]
    fn an_answered_ping_restarts_the_window() {
        let mut liveness = RelayLiveness::new(10 * SECOND);
        let connection = ConnectionId::new_unchecked(1);
        let start = Instant::now();
        liveness.heard(connection, start);
        assert!(check_each_second(&mut liveness, start, 9).is_empty());
        liveness.heard(connection, start + 9 * SECOND);
        let found = check_each_second(&mut liveness, start + 10 * SECOND, 10);
        // Silent 11 s after the answer at 9 s: the check at 20 s.
        assert_eq!(found, vec![(10, vec![connection])]);
    }

    #[test]
    fn a_page_that_did_not_run_gets_a_fresh_window_not_a_verdict() {
        let mut liveness = RelayLiveness::new(10 * SECOND);
        let connection = ConnectionId::new_unchecked(1);
        let start = Instant::now();
        liveness.heard(connection, start);
        assert!(liveness.silent(start).is_empty());
        // Asleep for a minute: nothing was asked, so nothing is known.
        let woke = start + 60 * SECOND;
        assert_eq!(
            liveness.silent(woke),
            Vec::<ConnectionId>::new(),
            "the first check after a minute asleep must not call the connection silent"
        );
        // Still no answer 10 s after waking: now it is silent.
        let found = check_each_second(&mut liveness, woke + SECOND, 10);
        assert_eq!(found, vec![(10, vec![connection])]);
    }
}
