//! Lookups: which relay of the federation holds a peer's reservation
//! (issue #14, part 5), asked of this peer's relay over
//! [`chat_protocol::locate`]. The page and the native peer share it.
//!
//! The answer names a relay and its addresses (native and browser ones);
//! only the answer of this peer's own relay is followed (the one it is
//! reserved on: the relay vouches for the federation), so the behaviour
//! trusts the relay named ([`crate::Behaviour`]'s trust set, at most
//! [`MAX_LOCATED_RELAYS`] more than the federation's) and dials the peer's
//! circuit through it at the first address this peer has a transport for,
//! as for a peer whose record names that relay.
//!
//! Bounded: at most [`MAX_LOOKUPS_IN_FLIGHT`] lookups at once, one per
//! peer, each answered within [`LOCATE_TIMEOUT`].

use std::{collections::HashMap, time::Duration};

use chat_protocol::locate::{Codec, LocateRefusal, LocateRequest, Located, PROTOCOL};
use libp2p::{
    Multiaddr, PeerId,
    multiaddr::Protocol,
    request_response::{self, OutboundFailure, OutboundRequestId, ProtocolSupport},
};

/// Lookups under way at once; one more is refused at once.
pub const MAX_LOOKUPS_IN_FLIGHT: usize = 8;
/// Relays trusted through lookups beyond the home relay and the
/// [`crate::dial::MAX_FEDERATION_RELAYS`] of its list: each is a socket
/// this peer may open. A new list of the federation
/// ([`crate::Behaviour::set_federation`]) starts the count again.
pub const MAX_LOCATED_RELAYS: usize = 4;
/// How long the relay may take to answer (its own DHT lookup is bounded
/// at 10 s).
pub const LOCATE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a lookup gave no relay to dial.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error(transparent)]
    Refused(#[from] LocateRefusal),
    #[error("{MAX_LOOKUPS_IN_FLIGHT} lookups are already under way")]
    TooMany,
    #[error("not connected to a relay to ask")]
    NoRelay,
    #[error("the relay does not answer lookups (it is not part of a federation)")]
    Unsupported,
    #[error("the lookup failed")]
    Failed(#[source] OutboundFailure),
    #[error("the relay {relay} holding the reservation has no address this peer can dial")]
    NoDialableAddress { relay: PeerId },
    #[error("the answer came from {from}, not from this peer's own relay")]
    NotHome { from: PeerId },
    #[error(
        "the relay {relay} holding the reservation is not trusted: {MAX_LOCATED_RELAYS} relays found by lookups are already"
    )]
    TooManyRelays { relay: PeerId },
}

/// The client side of the locate protocol.
pub type Client = request_response::Behaviour<Codec>;

pub fn client() -> Client {
    request_response::Behaviour::with_codec(
        Codec,
        [(PROTOCOL, ProtocolSupport::Outbound)],
        request_response::Config::default().with_request_timeout(LOCATE_TIMEOUT),
    )
}

/// Lookups under way: which peer each request is about.
#[derive(Debug, Default)]
pub struct Lookups {
    in_flight: HashMap<OutboundRequestId, PeerId>,
}

impl Lookups {
    /// Asks `relay` where `peer` is; `Ok(false)` when that lookup is
    /// already under way.
    pub fn ask(
        &mut self,
        client: &mut Client,
        relay: PeerId,
        peer: PeerId,
    ) -> Result<bool, LocateError> {
        if self.in_flight.values().any(|p| *p == peer) {
            return Ok(false);
        }
        if self.in_flight.len() >= MAX_LOOKUPS_IN_FLIGHT {
            return Err(LocateError::TooMany);
        }
        let id = client.send_request(&relay, LocateRequest { peer });
        self.in_flight.insert(id, peer);
        Ok(true)
    }

    /// The peer a finished request was about, the relay that answered it,
    /// and how it ended.
    pub fn on_event(
        &mut self,
        event: request_response::Event<LocateRequest, chat_protocol::locate::LocateResponse>,
    ) -> Option<(PeerId, PeerId, Result<Located, LocateError>)> {
        match event {
            request_response::Event::Message {
                peer: relay,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let peer = self.in_flight.remove(&request_id)?;
                Some((peer, relay, response.map_err(LocateError::from)))
            }
            request_response::Event::OutboundFailure {
                peer: relay,
                request_id,
                error,
                ..
            } => {
                let peer = self.in_flight.remove(&request_id)?;
                let error = match error {
                    OutboundFailure::UnsupportedProtocols => LocateError::Unsupported,
                    error => LocateError::Failed(error),
                };
                Some((peer, relay, Err(error)))
            }
            _ => None,
        }
    }
}

/// The located relay's addresses, each ending in `/p2p/<relay>`, whose
/// circuits this peer has a transport for (`dialable`, the dial rule's
/// test of a circuit), WebSocket ones first (a browser opens them where
/// it may not open WebRTC-direct, and a page's relay is one already).
pub fn relay_addrs(located: &Located, dialable: fn(&Multiaddr) -> bool) -> Vec<Multiaddr> {
    let mut addrs: Vec<Multiaddr> = located
        .all_addrs()
        .map(|addr| {
            let mut addr = addr.clone();
            if addr.iter().last() != Some(Protocol::P2p(located.relay)) {
                addr.push(Protocol::P2p(located.relay));
            }
            addr
        })
        .filter(|addr| dialable(&addr.clone().with(Protocol::P2pCircuit)))
        .collect();
    addrs.sort_by_key(|addr| {
        !addr
            .iter()
            .any(|p| matches!(p, Protocol::Ws(_) | Protocol::Wss(_)))
    });
    addrs.dedup();
    addrs
}

/// The circuit to `peer` through `relay_addr`, plain (what is dialed)
/// and, when `dialable` lets it through, its `/webrtc` twin (what a page
/// upgrades to a direct link at, as a record's).
pub fn circuits(
    relay_addr: &Multiaddr,
    peer: PeerId,
    dialable: fn(&Multiaddr) -> bool,
) -> Vec<Multiaddr> {
    let circuit = relay_addr.clone().with(Protocol::P2pCircuit);
    let webrtc = circuit
        .clone()
        .with(Protocol::WebRTC)
        .with(Protocol::P2p(peer));
    let mut circuits = vec![circuit.with(Protocol::P2p(peer))];
    if dialable(&webrtc) {
        circuits.insert(0, webrtc);
    }
    circuits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuits_go_through_the_located_relays_dialable_addresses() {
        let (relay, peer) = (PeerId::random(), PeerId::random());
        let located = Located {
            relay,
            addrs: vec!["/ip4/192.0.2.1/tcp/4001".parse().expect("valid")],
            browser_addrs: vec![
                "/ip4/192.0.2.1/udp/4003/webrtc-direct"
                    .parse()
                    .expect("valid"),
                "/ip4/192.0.2.1/tcp/4002/ws".parse().expect("valid"),
            ],
        };
        let native: fn(&Multiaddr) -> bool = |addr| {
            !addr.iter().any(|p| {
                matches!(
                    p,
                    Protocol::Ws(_) | Protocol::WebRTCDirect | Protocol::WebRTC
                )
            })
        };
        let addrs = relay_addrs(&located, native);
        assert_eq!(
            addrs,
            vec![
                format!("/ip4/192.0.2.1/tcp/4001/p2p/{relay}")
                    .parse::<Multiaddr>()
                    .expect("valid")
            ]
        );
        assert_eq!(
            circuits(&addrs[0], peer, native),
            vec![
                format!("/ip4/192.0.2.1/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{peer}")
                    .parse::<Multiaddr>()
                    .expect("valid")
            ],
            "no /webrtc twin for a peer without the transport"
        );
        let browser: fn(&Multiaddr) -> bool = |addr| {
            addr.iter()
                .any(|p| matches!(p, Protocol::Ws(_) | Protocol::WebRTCDirect))
        };
        let addrs = relay_addrs(&located, browser);
        assert_eq!(addrs.len(), 2, "{addrs:?}");
        assert!(
            addrs[0].to_string().contains("/ws/"),
            "WebSocket first: {addrs:?}"
        );
        let circuits = circuits(&addrs[0], peer, browser);
        assert_eq!(circuits.len(), 2, "{circuits:?}");
        assert!(
            circuits[0]
                .to_string()
                .ends_with(&format!("/p2p-circuit/webrtc/p2p/{peer}"))
        );
        assert!(relay_addrs(&located, |_| false).is_empty());
    }
}
