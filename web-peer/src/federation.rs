//! The federation as the page knows it: the relays its relay's
//! `/api/relay` last listed, each at one address this page can dial, and
//! the choice of the next one to move to when the page's relay dies.
//!
//! The list is read from the network (the relay that served the page):
//! every entry is checked as a pasted relay address is
//! ([`RelayAddr::parse`]), and one that is not usable is skipped with a
//! line saying why. The node trusts the listed relays for circuits
//! (`chat_network::Behaviour::set_federation`, bounded there) and, when
//! its relay is gone, moves to the first one it has not tried yet
//! ([`Federation::next_candidate`]).

use libp2p::{Multiaddr, PeerId};

use crate::{
    announce::{self, RelayTransport},
    relay_addr::RelayAddr,
};

/// Relays of the last list kept, at most: the list comes from the
/// network, and a page tries them one after the other when its relay dies.
pub const MAX_LISTED_RELAYS: usize = 16;

/// One relay as `/api/relay` lists it, as text (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRelay {
    pub peer_id: String,
    pub addrs: Vec<String>,
}

/// The federation's relays this page may use, and the state of a move.
#[derive(Debug, Default)]
pub struct Federation {
    relays: Vec<RelayAddr>,
    /// Relays tried (and failed) in the current round of moving: each is
    /// tried once a round, so a list of dead relays ends the round.
    tried: Vec<PeerId>,
}

impl Federation {
    /// Takes in a new list. A page served over `https:` (`secure_page`)
    /// can only open secure WebSockets or WebRTC-direct. Returns whether
    /// the list changed, and a line for each entry skipped.
    pub fn update(&mut self, listed: &[ListedRelay], secure_page: bool) -> (bool, Vec<String>) {
        let mut relays = Vec::new();
        let mut skipped = Vec::new();
        for entry in listed {
            if relays.len() >= MAX_LISTED_RELAYS {
                skipped.push(format!(
                    "federation list: relay {} skipped: only the first {MAX_LISTED_RELAYS} are kept",
                    entry.peer_id
                ));
                continue;
            }
            match pick_addr(entry, secure_page) {
                Ok(addr) if !relays.iter().any(|r: &RelayAddr| r.peer_id == addr.peer_id) => {
                    relays.push(addr)
                }
                Ok(_) => {}
                Err(reason) => skipped.push(format!(
                    "federation list: relay \"{}\" skipped: {reason}",
                    entry.peer_id
                )),
            }
        }
        let changed = relays != self.relays;
        self.relays = relays;
        (changed, skipped)
    }

    /// Each listed relay and the address this page dials it at.
    pub fn members(&self) -> impl Iterator<Item = (PeerId, Multiaddr)> + '_ {
        self.relays
            .iter()
            .map(|relay| (relay.peer_id, relay.addr.clone()))
    }

    pub fn is_empty(&self) -> bool {
        self.relays.is_empty()
    }

    /// The next relay to move to, away from `current`: the first listed
    /// one neither `current` nor tried in this round (and now counted as
    /// tried). `None` once every one has been tried.
    pub fn next_candidate(&mut self, current: &PeerId) -> Option<RelayAddr> {
        let next = self
            .relays
            .iter()
            .find(|relay| relay.peer_id != *current && !self.tried.contains(&relay.peer_id))?
            .clone();
        self.tried.push(next.peer_id);
        Some(next)
    }

    /// Starts a new round: every listed relay may be tried again (after
    /// a move succeeded, or after waiting out a backoff).
    pub fn new_round(&mut self) {
        self.tried.clear();
    }
}

/// The address of `entry` this page dials: a WebSocket one it may open
/// (not a plain `/ws` from an `https:` page), else WebRTC-direct.
fn pick_addr(entry: &ListedRelay, secure_page: bool) -> Result<RelayAddr, String> {
    let peer_id: PeerId = entry
        .peer_id
        .parse()
        .map_err(|error| format!("\"{}\" is not a peer id ({error})", entry.peer_id))?;
    let mut usable = Vec::new();
    let mut reasons = Vec::new();
    for text in &entry.addrs {
        match RelayAddr::parse(text) {
            Ok(addr) if addr.peer_id != peer_id => {
                reasons.push(format!("{text} names another relay"));
            }
            Ok(addr) => usable.push(addr),
            Err(error) => reasons.push(format!("{text}: {error}")),
        }
    }
    let transport = |addr: &RelayAddr| announce::browser_transport(&addr.addr);
    let secure_ws = |addr: &RelayAddr| transport(addr) == Some(RelayTransport::SecureWebSocket);
    let websocket = |addr: &RelayAddr| {
        matches!(
            transport(addr),
            Some(RelayTransport::PlainWebSocket | RelayTransport::SecureWebSocket)
        )
    };
    let pick = usable
        .iter()
        .find(|addr| websocket(addr) && (!secure_page || secure_ws(addr)))
        .or_else(|| usable.iter().find(|addr| !websocket(addr)))
        .cloned();
    pick.ok_or_else(|| {
        if reasons.is_empty() {
            "no address a browser can dial".to_owned()
        } else {
            format!("no address a browser can dial ({})", reasons.join("; "))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(peer: &PeerId, addrs: &[&str]) -> ListedRelay {
        ListedRelay {
            peer_id: peer.to_string(),
            addrs: addrs
                .iter()
                .map(|a| a.replace("PEER", &peer.to_string()))
                .collect(),
        }
    }

    #[test]
    fn bad_entries_are_skipped_with_a_reason_and_the_rest_kept_in_order() {
        let (b, c, d) = (PeerId::random(), PeerId::random(), PeerId::random());
        let other = PeerId::random();
        let list = vec![
            listed(
                &b,
                &[
                    "/ip4/10.0.0.2/tcp/4001/p2p/PEER",
                    "/ip4/10.0.0.2/tcp/4002/ws/p2p/PEER",
                ],
            ),
            ListedRelay {
                peer_id: "not-a-peer".to_owned(),
                addrs: vec![],
            },
            listed(&d, &["/ip4/10.0.0.4/tcp/4001/p2p/PEER"]),
            listed(&c, &[&format!("/ip4/10.0.0.3/tcp/4002/ws/p2p/{other}")]),
        ];
        let mut federation = Federation::default();
        let (changed, skipped) = federation.update(&list, false);
        assert!(changed);
        let kept: Vec<PeerId> = federation.members().map(|(peer, _)| peer).collect();
        assert_eq!(kept, vec![b], "{skipped:?}");
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].contains("not a peer id"), "{}", skipped[0]);
        assert!(skipped[1].contains("raw TCP"), "{}", skipped[1]);
        assert!(skipped[2].contains("names another relay"), "{}", skipped[2]);
        assert!(!federation.update(&list, false).0, "the same list again");
    }

    #[test]
    fn a_secure_page_takes_a_secure_websocket_or_webrtc_direct() {
        let b = PeerId::random();
        let certhash = "uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g";
        let webrtc = format!("/ip4/10.0.0.2/udp/4003/webrtc-direct/certhash/{certhash}/p2p/PEER");
        let list = [listed(&b, &["/ip4/10.0.0.2/tcp/4002/ws/p2p/PEER", &webrtc])];
        let mut federation = Federation::default();
        federation.update(&list, true);
        let (_, addr) = federation.members().next().expect("kept");
        assert!(addr.to_string().contains("webrtc-direct"), "{addr}");
        federation.update(&list, false);
        let (_, addr) = federation.members().next().expect("kept");
        assert!(addr.to_string().contains("/ws/"), "{addr}");
    }

    #[test]
    fn each_relay_is_tried_once_a_round_never_the_current_one() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let list: Vec<ListedRelay> = [a, b, c]
            .iter()
            .map(|peer| listed(peer, &["/ip4/10.0.0.2/tcp/4002/ws/p2p/PEER"]))
            .collect();
        let mut federation = Federation::default();
        federation.update(&list, false);
        let next = |f: &mut Federation| f.next_candidate(&a).map(|r| r.peer_id);
        assert_eq!(next(&mut federation), Some(b));
        assert_eq!(next(&mut federation), Some(c));
        assert_eq!(next(&mut federation), None, "every one tried");
        federation.new_round();
        assert_eq!(next(&mut federation), Some(b));
    }
}
