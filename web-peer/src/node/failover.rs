//! The node and the federation: trusting the relays its relay lists, and
//! moving to one of them when its own relay dies.
//!
//! A relay that went away is dialed again once (a network blip passes
//! so); when that dial fails too, or does not answer within
//! [`MOVE_AFTER`], the page moves to the first relay of the last list it
//! has not tried, skipping those it cannot reach (each gets
//! [`MOVE_AFTER`] too), and reserves and announces there. Its direct links do not go through a
//! relay and stay up meanwhile. When every listed relay has failed, it
//! goes back to retrying its own relay with backoff, and tries the list
//! again after each wait.

use std::time::Duration;

use chat_network::short;
use futures::FutureExt as _;
use gloo_timers::future::TimeoutFuture;
use libp2p::PeerId;

use super::{Node, Relay};
use crate::{
    federation::ListedRelay,
    relay_liveness::{self, RelayLiveness},
};

/// How long a relay dialed after ours went away has to answer before the
/// next relay of the federation is tried. A dead relay's dial does not
/// always fail at once: Chromium throttles WebSocket dials to a host
/// that refused one, and a dial to a vanished host waits for TCP's
/// timeout. A live relay answers within a round trip or two.
pub(super) const MOVE_AFTER: Duration = Duration::from_secs(3);

impl Node {
    /// Starts [`MOVE_AFTER`] for the relay being dialed, when there is
    /// somewhere to move to and the dial follows a loss or a move.
    pub(super) fn arm_move_timer(&mut self) {
        let Some(relay) = &self.relay else { return };
        let after_loss = relay.was_connected || self.moving_from.is_some();
        if after_loss && !self.federation.is_empty() {
            self.move_timer = TimeoutFuture::new(MOVE_AFTER.as_millis() as u32).fuse();
        }
    }

    /// [`MOVE_AFTER`] passed: if the relay still has not answered, the
    /// next one is tried.
    pub(super) fn on_move_due(&mut self) {
        let Some(relay) = &self.relay else { return };
        if !relay.liveness.is_empty() {
            return;
        }
        self.relay_dial_failed(format!("no answer within {} s", MOVE_AFTER.as_secs()));
    }

    /// A new federation list from the relay that served the page.
    pub(super) fn on_federation_list(&mut self, relays: &[ListedRelay], secure_page: bool) {
        let (changed, skipped) = self.federation.update(relays, secure_page);
        for line in skipped {
            self.log(line);
        }
        if !changed {
            return;
        }
        let names: Vec<String> = self
            .federation
            .members()
            .map(|(peer, addr)| format!("{} at {addr}", short(&peer)))
            .collect();
        self.log(if names.is_empty() {
            "federation: no other relay listed".to_owned()
        } else {
            format!("federation: relays {}", names.join(", "))
        });
        self.trust_federation();
    }

    /// Trusts this page's relay and the federation's (within
    /// `chat_network::dial::MAX_FEDERATION_RELAYS`): their circuits are
    /// dialed.
    pub(super) fn trust_federation(&mut self) {
        let Some(relay) = &self.relay else { return };
        let home = (relay.addr.peer_id, relay.addr.addr.clone());
        let members: Vec<_> = self.federation.members().collect();
        self.swarm
            .behaviour_mut()
            .network
            .set_federation(home, members);
    }

    /// A dial of this page's relay failed. If the relay had been reached
    /// before (it went away) or is one this page is moving to, the next
    /// relay of the federation is tried; else the user hears why.
    pub(super) fn relay_dial_failed(&mut self, reason: String) {
        let Some(relay) = &self.relay else { return };
        let current = relay.addr.clone();
        if !relay.was_connected && self.moving_from.is_none() {
            return self.relay_unreachable(reason);
        }
        if let Some(next) = self.federation.next_candidate(&current.peer_id) {
            self.log(format!(
                "relay {} unreachable ({reason}); moving to relay {} of the federation",
                short(&current.peer_id),
                short(&next.peer_id)
            ));
            self.moving_from.get_or_insert(current);
            return self.connect_to(next);
        }
        // Every relay of the list failed: back to our own, with backoff.
        if let Some(home) = self.moving_from.clone()
            && home.peer_id != current.peer_id
        {
            self.log(format!(
                "relay {} unreachable ({reason}); no relay of the federation could be reached",
                short(&current.peer_id)
            ));
            self.relay = Some(Relay {
                addr: home,
                was_connected: true,
                circuit_listener: None,
                liveness: RelayLiveness::new(relay_liveness::RELAY_SILENCE),
                given_up: Default::default(),
                dialing: None,
            });
            self.trust_federation();
        }
        self.relay_unreachable(reason);
    }

    /// This page's relay `relay` is connected: if the page was moving, it
    /// has moved, and says so.
    pub(super) fn on_moved(&mut self, relay: PeerId) {
        let Some(from) = self.moving_from.take() else {
            return;
        };
        self.federation.new_round();
        if from.peer_id == relay {
            return; // Our own relay came back.
        }
        self.moved_from = Some(from.peer_id);
        let line = format!(
            "moved to relay {}: relay {} went away",
            short(&relay),
            short(&from.peer_id)
        );
        self.log(line);
    }
}
