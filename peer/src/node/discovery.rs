//! Discovery: announcing this peer's signed record, reading the others',
//! and dialing the peers found.

use std::time::{Duration, Instant};

use chat_protocol::{PeerRecord, discovery::Circuit, topics};
use libp2p::{
    Multiaddr, PeerId,
    gossipsub::{self, IdentTopic, MessageAcceptance},
    multiaddr::Protocol,
    swarm::dial_opts::{DialOpts, PeerCondition},
};

use super::{
    Node,
    addrs::{is_circuit, with_peer_id},
};
use crate::{events::Event, names::short};

/// Announcements wait this long, so a burst of address changes or
/// newcomers makes one announcement.
pub(super) const ANNOUNCE_DELAY: Duration = Duration::from_millis(300);

impl Node {
    pub(super) fn on_announce_tick(&mut self) {
        self.announce();
        if self.swarm.is_connected(&self.relay_id) {
            self.reserve();
        }
        // Peers that did not dial us (the larger id waits one period).
        let idle: Vec<PeerId> = self
            .book
            .ids()
            .filter(|peer| {
                self.book
                    .get(peer)
                    .is_some_and(|e| e.discovered && !e.dialing)
                    && !self.swarm.is_connected(peer)
            })
            .collect();
        for peer in idle {
            self.dial_peer(peer);
        }
        for peer in self.book.expire(Instant::now()) {
            self.emit(Event::PeerGone { peer });
        }
    }

    /// Publishes this peer's discovery record: its circuit addresses only.
    /// By the dial rule of [`chat_protocol::discovery`] nobody dials a
    /// bare host and port from a record, and the relay refuses records
    /// that list one; a direct path comes from DCUtR over the circuit.
    pub(super) fn announce(&mut self) {
        let me = *self.swarm.local_peer_id();
        let mut addrs: Vec<Multiaddr> = self
            .swarm
            .listeners()
            .filter(|addr| is_circuit(addr))
            .map(|addr| with_peer_id(addr, me))
            .collect();
        if addrs.is_empty() {
            return;
        }
        addrs.truncate(chat_protocol::MAX_RECORD_ADDRS);
        let record = match PeerRecord::new(self.public_key.clone(), addrs) {
            Ok(record) => record,
            Err(error) => return tracing::error!(%error, "own discovery record is invalid"),
        };
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(topics::DISCOVERY), record.encode())
        {
            Ok(_) => {
                self.swarm.behaviour_mut().wake.wake_all();
                tracing::debug!("announced");
            }
            Err(error) => tracing::debug!(%error, "announcement not published"),
        }
    }

    /// Dials `peer` at every address of its record this node can use,
    /// through our relay first.
    pub(super) fn dial_peer(&mut self, peer: PeerId) {
        let addrs = self.dial_addrs(peer);
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => self.book.on_dialing(peer, Instant::now()),
            Err(error) => tracing::debug!(peer = %peer, %error, "not dialed"),
        }
    }

    /// By the dial rule of [`chat_protocol::discovery`]: the circuits
    /// through our relay the peer announced, reached by our own address for
    /// the relay (never a host and port from the record). A native peer
    /// has no `/webrtc`, so that is one address, tried even when the record
    /// names none; the direct path comes from DCUtR.
    pub(super) fn dial_addrs(&self, peer: PeerId) -> Vec<Multiaddr> {
        let announced = self
            .book
            .get(&peer)
            .map(|e| e.addrs.as_slice())
            .unwrap_or(&[]);
        let mut addrs: Vec<Multiaddr> = Vec::new();
        for addr in announced {
            let Ok(circuit) = Circuit::parse(addr, peer, |relay| *relay == self.relay_id) else {
                continue;
            };
            let candidate = circuit.via(&self.relay_addr, peer);
            if !circuit.webrtc && !addrs.contains(&candidate) {
                addrs.push(candidate);
            }
        }
        if addrs.is_empty() {
            addrs.push(
                self.relay_addr
                    .clone()
                    .with(Protocol::P2pCircuit)
                    .with(Protocol::P2p(peer)),
            );
        }
        addrs
    }

    /// A message on the discovery topic: a record signed by the peer it
    /// describes, or rejected.
    pub(super) fn on_discovery_message(
        &mut self,
        propagation_source: &libp2p::PeerId,
        message: &gossipsub::Message,
    ) -> MessageAcceptance {
        match PeerRecord::decode_signed(&message.data, message.source.as_ref()) {
            Ok(record) => {
                self.on_record(record);
                MessageAcceptance::Accept
            }
            Err(error) => {
                tracing::warn!(from = %propagation_source, source = ?message.source, %error, "rejected a discovery record");
                MessageAcceptance::Reject
            }
        }
    }

    fn on_record(&mut self, record: PeerRecord) {
        let peer = record.peer_id();
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        let addrs: Vec<Multiaddr> = record.dialable_addrs().collect();
        if self.book.on_record(peer, addrs.clone(), Instant::now()) {
            tracing::info!(peer = %short(&peer), addrs = addrs.len(), "discovered");
            self.emit(Event::Discovered { peer, addrs });
            // The newcomer missed our earlier announcements.
            self.announce_soon.arm_if_idle(ANNOUNCE_DELAY);
        }
        // Of two peers, the smaller id dials at once; the other waits an
        // announcement period, so a pair usually makes one circuit.
        let dialing = self.book.get(&peer).is_some_and(|e| e.dialing);
        if *self.swarm.local_peer_id() < peer && !dialing && !self.swarm.is_connected(&peer) {
            self.dial_peer(peer);
        }
    }
}
