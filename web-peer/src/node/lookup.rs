//! Reaching a peer by its id alone (issue #14, part 5): the page asks its
//! relay which relay of the federation holds the peer's reservation
//! (`chat_network::Behaviour::locate`), and the network dials the peer's
//! circuit through that relay; the WebRTC upgrade follows as for any
//! relayed peer. A person starts it by pasting a peer id into the dial
//! field; the outcome goes to the event log, and a failure to the notice.

use chat_network::{LocateError, short};
use chat_protocol::report;
use libp2p::PeerId;

use super::Node;
use crate::events::Event;

impl Node {
    /// Looks `peer` up through this page's relay.
    pub(super) fn reach_by_id(&mut self, peer: PeerId) {
        if peer == *self.swarm.local_peer_id() {
            self.emit(Event::Notice("That is this page's own peer id.".to_owned()));
            return;
        }
        let Some(relay) = self.relay.as_ref().filter(|relay| relay.ready()) else {
            self.emit(Event::Notice(
                "Connect to a relay first: it looks the peer up.".to_owned(),
            ));
            return;
        };
        let relay = relay.addr.peer_id;
        self.emit(Event::ClearNotice);
        match self.swarm.behaviour_mut().network.locate(relay, peer) {
            Ok(()) => self.log(format!(
                "asking relay {} which relay holds {}",
                short(&relay),
                short(&peer)
            )),
            Err(error) => self.locate_failed(peer, error),
        }
    }

    pub(super) fn located(&mut self, peer: PeerId, relay: PeerId) {
        self.log(format!(
            "{} is reserved on relay {}: dialing its circuit through it",
            short(&peer),
            short(&relay)
        ));
    }

    pub(super) fn locate_failed(&mut self, peer: PeerId, error: LocateError) {
        // A notice goes to the event log too.
        let why = report::describe_error(&error);
        self.emit(Event::Notice(format!("Cannot reach {peer}: {why}.")));
    }
}
