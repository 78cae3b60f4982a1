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
//!
//! Each lookup is one stream opened through `libp2p-stream` (which the
//! peers carry anyway), speaking what the relay's request-response server
//! reads and writes ([`chat_protocol::locate::ask`]): no request-response
//! behaviour of its own in the peer's swarm.

use std::{fmt, io, time::Duration};

use chat_protocol::locate::{self as wire, LocateRefusal, LocateRequest, Located, PROTOCOL};
use futures::{
    FutureExt as _, StreamExt as _,
    future::{self, BoxFuture, Either},
    stream::FuturesUnordered,
};
use futures_timer::Delay;
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use libp2p_stream::{Control, OpenStreamError};

/// Lookups under way at once; one more is refused at once.
pub const MAX_LOOKUPS_IN_FLIGHT: usize = 8;
/// Relays trusted through lookups beyond the home relay and the
/// [`crate::dial::MAX_FEDERATION_RELAYS`] of its list: each is a socket
/// this peer may open. A new list of the federation
/// ([`crate::Behaviour::set_federation`]) starts the count again.
pub const MAX_LOCATED_RELAYS: usize = 4;
/// How long the relay may take to answer, from asking for the stream to
/// the answer's end (its own DHT lookup is bounded at 10 s).
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
    /// The stream could not be opened, broke, or carried no valid answer.
    #[error("the lookup failed")]
    Failed(#[source] io::Error),
    #[error("the relay did not answer within {} s", LOCATE_TIMEOUT.as_secs())]
    TimedOut,
    #[error("the relay {relay} holding the reservation has no address this peer can dial")]
    NoDialableAddress { relay: PeerId },
    #[error("the answer came from {from}, not from this peer's own relay")]
    NotHome { from: PeerId },
    #[error(
        "the relay {relay} holding the reservation is not trusted: {MAX_LOCATED_RELAYS} relays found by lookups are already"
    )]
    TooManyRelays { relay: PeerId },
}

/// How a lookup ended.
#[derive(Debug)]
pub struct Outcome {
    /// The peer looked up.
    pub peer: PeerId,
    /// The relay asked.
    pub relay: PeerId,
    pub result: Result<Located, LocateError>,
}

/// Lookups under way, each a stream to the relay asked.
pub struct Lookups {
    streams: Control,
    /// The peers being looked up (at most [`MAX_LOOKUPS_IN_FLIGHT`]).
    peers: Vec<PeerId>,
    in_flight: FuturesUnordered<BoxFuture<'static, Outcome>>,
}

impl fmt::Debug for Lookups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lookups")
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl Lookups {
    /// Lookups that open their streams through `streams`.
    pub fn new(streams: Control) -> Self {
        Self {
            streams,
            peers: Vec::new(),
            in_flight: FuturesUnordered::new(),
        }
    }

    /// Asks `relay` where `peer` is; `Ok(false)` when that lookup is
    /// already under way. The answer comes from [`Self::poll`].
    pub fn ask(&mut self, relay: PeerId, peer: PeerId) -> Result<bool, LocateError> {
        if self.peers.contains(&peer) {
            return Ok(false);
        }
        if self.peers.len() >= MAX_LOOKUPS_IN_FLIGHT {
            return Err(LocateError::TooMany);
        }
        // A control of its own: one opens one stream at a time.
        let lookup = lookup(self.streams.clone(), relay, peer).boxed();
        let deadline = Delay::new(LOCATE_TIMEOUT);
        self.in_flight.push(
            future::select(lookup, deadline)
                .map(move |ended| {
                    let result = match ended {
                        Either::Left((result, _)) => result,
                        Either::Right(_) => Err(LocateError::TimedOut),
                    };
                    Outcome {
                        peer,
                        relay,
                        result,
                    }
                })
                .boxed(),
        );
        self.peers.push(peer);
        Ok(true)
    }

    /// A lookup that ended, if one did. Registers for a wake-up only while
    /// one is under way: after [`Self::ask`], the swarm's next poll polls
    /// it.
    pub fn poll(&mut self, cx: &mut std::task::Context<'_>) -> Option<Outcome> {
        let std::task::Poll::Ready(Some(outcome)) = self.in_flight.poll_next_unpin(cx) else {
            return None;
        };
        self.peers.retain(|peer| *peer != outcome.peer);
        Some(outcome)
    }
}

/// One lookup: a stream to `relay`, the request, its answer.
async fn lookup(mut streams: Control, relay: PeerId, peer: PeerId) -> Result<Located, LocateError> {
    let mut stream = streams
        .open_stream(relay, PROTOCOL)
        .await
        .map_err(|error| match error {
            OpenStreamError::UnsupportedProtocol(_) => LocateError::Unsupported,
            OpenStreamError::Io(error) => LocateError::Failed(error),
            other => LocateError::Failed(io::Error::other(other)),
        })?;
    let answer = wire::ask(&mut stream, LocateRequest { peer })
        .await
        .map_err(|error| {
            if chat_protocol::refused_protocol(&error) {
                LocateError::Unsupported
            } else {
                LocateError::Failed(error)
            }
        })?;
    Ok(answer?)
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
