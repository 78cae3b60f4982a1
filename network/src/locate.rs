//! Lookups: which relay of the federation holds a peer's reservation
//! (issue #14, part 5), asked of this peer's relay over
//! [`chat_protocol::locate`]. The page and the native peer share it.
//!
//! The answer names a relay and its addresses; the relay that answered
//! vouches for it, so the behaviour trusts it ([`crate::Behaviour`]'s
//! trust set) and dials the peer's circuit through it, as for a peer whose
//! record names that relay.
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

    /// The peer a finished request was about, and how it ended.
    pub fn on_event(
        &mut self,
        event: request_response::Event<LocateRequest, chat_protocol::locate::LocateResponse>,
    ) -> Option<(PeerId, Result<Located, LocateError>)> {
        match event {
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let peer = self.in_flight.remove(&request_id)?;
                Some((peer, response.map_err(LocateError::from)))
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                let peer = self.in_flight.remove(&request_id)?;
                let error = match error {
                    OutboundFailure::UnsupportedProtocols => LocateError::Unsupported,
                    error => LocateError::Failed(error),
                };
                Some((peer, Err(error)))
            }
            _ => None,
        }
    }
}

/// `relay`'s address among `located`'s that this peer dials (`dialable`),
/// ending in `/p2p/<relay>`; `None` when there is none.
pub fn relay_addrs(located: &Located, dialable: fn(&Multiaddr) -> bool) -> Vec<Multiaddr> {
    located
        .addrs
        .iter()
        .filter(|addr| dialable(addr))
        .map(|addr| {
            let mut addr = addr.clone();
            if addr.iter().last() != Some(Protocol::P2p(located.relay)) {
                addr.push(Protocol::P2p(located.relay));
            }
            addr
        })
        .collect()
}

/// The circuits to `peer` through each of `relay_addrs`.
pub fn circuits(relay_addrs: &[Multiaddr], peer: PeerId) -> Vec<Multiaddr> {
    relay_addrs
        .iter()
        .map(|addr| {
            addr.clone()
                .with(Protocol::P2pCircuit)
                .with(Protocol::P2p(peer))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuits_go_through_the_located_relays_dialable_addresses() {
        let (relay, peer) = (PeerId::random(), PeerId::random());
        let located = Located {
            relay,
            addrs: vec![
                "/ip4/192.0.2.1/tcp/4001".parse().expect("valid"),
                "/ip4/192.0.2.1/tcp/4002/ws".parse().expect("valid"),
            ],
        };
        let native: fn(&Multiaddr) -> bool =
            |addr| !addr.iter().any(|p| matches!(p, Protocol::Ws(_)));
        let addrs = relay_addrs(&located, native);
        assert_eq!(
            circuits(&addrs, peer),
            vec![
                format!("/ip4/192.0.2.1/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{peer}")
                    .parse::<Multiaddr>()
                    .expect("valid")
            ]
        );
        assert!(relay_addrs(&located, |_| false).is_empty());
    }
}
