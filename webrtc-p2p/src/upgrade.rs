//! The upgrade policy: when to turn a connection to a peer into a direct
//! `/webrtc` one. The browser's DCUtR.
//!
//! - Of two peers only the one with the smaller peer id dials, so that a
//!   pair makes one peer connection, not two.
//! - It dials once the peer is connected (the signaling runs over that
//!   connection) and has no `/webrtc` connection, to one `/webrtc` address
//!   at a time: each is a whole signaling exchange and peer connection,
//!   and the swarm would race several and drop all but one.
//! - The address is the one the peer's record gave, else the `/webrtc`
//!   twin of the circuit it is connected over. The signaling runs on that
//!   circuit, so the smaller id can always dial once connected, even when
//!   it has no record of the peer through a relay it trusts: a peer that
//!   reached it by a lookup (its circuit through our relay), say. Without
//!   that, such a pair would stay relayed, as the larger id never dials.
//! - A failed attempt is retried after a wait that doubles
//!   ([`Config::first_retry`]), at most [`Config::max_attempts`] times:
//!   each failed `RTCPeerConnection` counts against the page's few hundred.
//! - A peer that comes back (every connection to it closed, then a new
//!   one: a reload, a restart, a new circuit) is a new chance: its budget
//!   starts afresh, since attempts that failed for one incarnation say
//!   little of the next.
//!
//! It has no I/O and no browser API of its own: the `/webrtc` dial goes
//! through the swarm, so the policy runs and is tested natively.

use std::{
    collections::VecDeque,
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};

use futures::FutureExt as _;
use futures_timer::Delay;
use libp2p_core::{
    ConnectedPoint, Endpoint, Multiaddr, PeerId, multiaddr::Protocol, transport::PortUse,
};
use libp2p_swarm::{
    ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
    dial_opts::{DialOpts, PeerCondition},
    dummy,
};
use web_time::Instant;

use crate::small_map::SmallMap;

/// The defaults the page runs with.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
pub const DEFAULT_FIRST_RETRY: Duration = Duration::from_secs(5);
/// Peers whose attempts are tracked at most; more are not upgraded until
/// one leaves (each has a connection, which the swarm bounds anyway).
pub const MAX_PEERS: usize = 256;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Attempts per incarnation of a peer before it stays as it is.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each.
    pub first_retry: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            first_retry: DEFAULT_FIRST_RETRY,
        }
    }
}

/// What the policy reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A `/webrtc` dial to `peer` started (attempt `attempt`, from 1).
    Attempt { peer: PeerId, attempt: u32 },
    /// It failed; the next one follows after `retry_in`, or, when `None`,
    /// none will for this incarnation of the peer.
    Failed {
        peer: PeerId,
        error: String,
        retry_in: Option<Duration>,
    },
}

/// The attempts at one incarnation of a peer.
#[derive(Debug, Default)]
struct Attempts {
    webrtc_addr: Option<Multiaddr>,
    connections: SmallMap<ConnectionId, bool>,
    /// The `/webrtc` twins of the relayed connections among `connections`.
    circuits: SmallMap<ConnectionId, Multiaddr>,
    in_progress: Option<ConnectionId>,
    failures: u32,
    not_before: Option<Instant>,
    last_error: Option<String>,
}

impl Attempts {
    fn is_direct(&self) -> bool {
        self.connections.values().any(|direct| *direct)
    }

    /// Where to dial: the record's address, else a circuit's twin.
    fn dial_addr(&self) -> Option<Multiaddr> {
        self.webrtc_addr
            .clone()
            .or_else(|| self.circuits.values().next().cloned())
    }
}

/// The upgrade policy as a behaviour (see the module docs).
#[derive(Debug)]
pub struct Behaviour {
    local: PeerId,
    config: Config,
    peers: SmallMap<PeerId, Attempts>,
    pending: VecDeque<ToSwarm<Event, Infallible>>,
    /// Fires when the next backoff ends.
    retry: Option<Delay>,
}

impl Behaviour {
    pub fn new(local: PeerId, config: Config) -> Self {
        Self {
            local,
            config,
            peers: SmallMap::new(),
            pending: VecDeque::new(),
            retry: None,
        }
    }

    /// Sets the `/webrtc` address `peer` is dialed at (the first of its
    /// record's, say), or forgets it; tries to upgrade at once if due.
    pub fn set_webrtc_addr(&mut self, peer: PeerId, addr: Option<Multiaddr>) {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            return;
        }
        self.peers.get_or_insert_default(peer).webrtc_addr = addr;
        self.try_upgrade(peer);
    }

    /// Why direct connections to `peer` were given up on, if they were.
    pub fn given_up(&self, peer: &PeerId) -> Option<&str> {
        let attempts = self.peers.get(peer)?;
        (attempts.failures >= self.config.max_attempts)
            .then(|| attempts.last_error.as_deref().unwrap_or("failed"))
    }

    /// Dials `peer`'s `/webrtc` address if the policy says so now.
    fn try_upgrade(&mut self, peer: PeerId) {
        let now = Instant::now();
        let max = self.config.max_attempts;
        if !dials_webrtc(&self.local, &peer) {
            return;
        }
        let Some(attempts) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some(addr) = attempts.dial_addr() else {
            return;
        };
        if attempts.connections.is_empty()
            || attempts.is_direct()
            || attempts.in_progress.is_some()
            || attempts.failures >= max
            || attempts.not_before.is_some_and(|at| now < at)
        {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::Always)
            .build();
        attempts.in_progress = Some(opts.connection_id());
        let attempt = attempts.failures + 1;
        self.pending.push_back(ToSwarm::Dial { opts });
        self.pending
            .push_back(ToSwarm::GenerateEvent(Event::Attempt { peer, attempt }));
    }

    fn on_failure(&mut self, peer: PeerId, connection: ConnectionId, error: &DialError) {
        let Some(attempts) = self.peers.get_mut(&peer) else {
            return;
        };
        if attempts.in_progress != Some(connection) {
            return;
        }
        attempts.in_progress = None;
        attempts.failures += 1;
        let error = describe(error);
        attempts.last_error = Some(error.clone());
        let retry_in = (attempts.failures < self.config.max_attempts)
            .then(|| self.config.first_retry * 2u32.saturating_pow(attempts.failures - 1));
        attempts.not_before = retry_in.map(|wait| Instant::now() + wait);
        self.schedule_retry();
        self.pending
            .push_back(ToSwarm::GenerateEvent(Event::Failed {
                peer,
                error,
                retry_in,
            }));
    }

    /// Sets the timer for the earliest backoff to end.
    fn schedule_retry(&mut self) {
        let now = Instant::now();
        let next = self
            .peers
            .values()
            .filter(|a| a.in_progress.is_none() && a.failures < self.config.max_attempts)
            .filter_map(|a| a.not_before)
            .filter(|at| *at > now)
            .min();
        self.retry = next.map(|at| Delay::new(at - now));
    }
}

/// Whether `local` dials `remote`'s `/webrtc` address (the smaller id
/// does), rather than waiting for `remote` to dial.
pub fn dials_webrtc(local: &PeerId, remote: &PeerId) -> bool {
    local < remote
}

/// An error and its sources on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

fn is_webrtc(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::WebRTC)
}

/// The `/webrtc` address of `peer` over the circuit `endpoint` is, if it
/// is one: `<relay>/p2p-circuit/webrtc/p2p/<peer>`. A dialed circuit names
/// its relay in the address dialed; an accepted one in the local address
/// (our reservation, `<relay>/p2p-circuit`).
pub fn circuit_webrtc_addr(endpoint: &ConnectedPoint, peer: PeerId) -> Option<Multiaddr> {
    let addr = match endpoint {
        ConnectedPoint::Dialer { address, .. } => address,
        ConnectedPoint::Listener { local_addr, .. } => local_addr,
    };
    if is_webrtc(addr) {
        return None;
    }
    let mut twin = Multiaddr::empty();
    for protocol in addr.iter() {
        twin.push(protocol.clone());
        if protocol == Protocol::P2pCircuit {
            return Some(twin.with(Protocol::WebRTC).with(Protocol::P2p(peer)));
        }
    }
    None
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if !self.peers.contains_key(&e.peer_id) && self.peers.len() >= MAX_PEERS {
                    return;
                }
                let attempts = self.peers.get_or_insert_default(e.peer_id);
                if attempts.connections.is_empty() {
                    // A new incarnation of the peer: a fresh budget.
                    let addr = attempts.webrtc_addr.take();
                    *attempts = Attempts {
                        webrtc_addr: addr,
                        ..Attempts::default()
                    };
                }
                let direct = is_webrtc(e.endpoint.get_remote_address());
                attempts.connections.insert(e.connection_id, direct);
                if let Some(twin) = circuit_webrtc_addr(e.endpoint, e.peer_id) {
                    attempts.circuits.insert(e.connection_id, twin);
                }
                if attempts.in_progress == Some(e.connection_id) {
                    attempts.in_progress = None;
                }
                self.try_upgrade(e.peer_id);
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(attempts) = self.peers.get_mut(&e.peer_id) {
                    attempts.connections.remove(&e.connection_id);
                    attempts.circuits.remove(&e.connection_id);
                    if attempts.in_progress == Some(e.connection_id) {
                        attempts.in_progress = None;
                    }
                    if attempts.connections.is_empty() && attempts.webrtc_addr.is_none() {
                        self.peers.remove(&e.peer_id);
                    }
                }
                // A lost direct link is worth another attempt.
                self.try_upgrade(e.peer_id);
            }
            FromSwarm::DialFailure(e) => {
                if let Some(peer) = e.peer_id {
                    self.on_failure(peer, e.connection_id, e.error);
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Poll::Ready(event);
            }
            let fired = self
                .retry
                .as_mut()
                .is_some_and(|timer| timer.poll_unpin(cx).is_ready());
            if !fired {
                return Poll::Pending;
            }
            self.retry = None;
            let peers: Vec<PeerId> = self.peers.keys().copied().collect();
            for peer in peers {
                self.try_upgrade(peer);
            }
            self.schedule_retry();
        }
    }
}
