//! The federation as one relay sees it: who may join (the membership file),
//! where each member can be reached, and which members it is connected
//! to. It keeps a member's connection open (a relay link has no
//! reservation to keep it alive) and dials a member again, with backoff,
//! when its connection goes away.
//!
//! Addresses come from `--federate`, from a member's identify (its own
//! listen addresses) and from the DHT (what the other members know); only
//! members' addresses are kept, at most [`MAX_ADDRS_PER_MEMBER`] each, and
//! at most `--max-federation-members` members are dialed. A member that
//! dials in is always kept: the operator listed it.
//!
//! Beside the addresses relays dial (TCP, QUIC), each member's addresses a
//! browser can dial ([`browser_addr`]: `/ws`, `/wss`, `/webrtc-direct`
//! with its certhash), as the member itself announced them in identify,
//! are kept for `/api/relay`'s federation list ([`Members::browser_list`]):
//! the relays a page may dial circuits through and fail over to.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};

use either::Either;
use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    multiaddr::Protocol,
    swarm::{
        CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm,
        dial_opts::{DialOpts, PeerCondition},
        dummy,
    },
};
use tokio::time::{Instant, Interval};

use super::{backoff::Backoff, keep_alive::KeepAlive};
use crate::{private::authorized_peers::AuthorizedPeers, refusals::Refusals};

/// Addresses kept per member: a relay has one per transport and IP family.
pub const MAX_ADDRS_PER_MEMBER: usize = 8;
/// How often due dials are made and the membership file is checked.
const TICK: Duration = Duration::from_millis(500);
/// How often the DHT is asked for the other members (the first time as
/// soon as a member has said where it listens). Members that join later
/// find this relay themselves; this catches two that joined at once.
pub const LOOKUP_INTERVAL: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first connection to a member stands.
    Connected { peer: PeerId },
    /// The last connection to a member closed.
    Disconnected { peer: PeerId },
    /// Time to ask the DHT for the other members.
    LookupDue,
}

#[derive(Debug, Default)]
struct Member {
    addrs: Vec<Multiaddr>,
    /// Where a browser reaches it (at most [`MAX_ADDRS_PER_MEMBER`]), as
    /// the member said in its last identify.
    browser_addrs: Vec<Multiaddr>,
    connections: usize,
    backoff: Backoff,
    next_dial: Option<Instant>,
    dialing: bool,
}

/// The membership list and the links to the members.
pub struct Members {
    local: PeerId,
    list: AuthorizedPeers,
    max_dialed: usize,
    /// Members known or connected. Bounded by the list (and new addresses
    /// by `max_dialed`).
    book: HashMap<PeerId, Member>,
    /// Member connections, so that closing ones are recognised.
    connections: HashMap<ConnectionId, PeerId>,
    checked_version: u64,
    tick: Interval,
    lookup: Interval,
    actions: VecDeque<ToSwarm<Event, Infallible>>,
    refusals: Refusals,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Members")
            .field("file", &self.list.path())
            .field("known", &self.book.len())
            .field("connected", &self.connected())
            .finish()
    }
}

impl Members {
    /// `bootstrap`: the `--federate` addresses, dialed at once.
    pub fn new(
        local: PeerId,
        list: AuthorizedPeers,
        bootstrap: impl IntoIterator<Item = (PeerId, Multiaddr)>,
        max_dialed: usize,
        refusals: Refusals,
    ) -> Self {
        let checked_version = list.version();
        let mut members = Self {
            local,
            list,
            max_dialed,
            book: HashMap::new(),
            connections: HashMap::new(),
            checked_version,
            tick: interval(TICK),
            lookup: interval(LOOKUP_INTERVAL),
            actions: VecDeque::new(),
            refusals,
        };
        for (peer, addr) in bootstrap {
            members.learn(peer, [addr]);
        }
        members
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// Whether `peer` is another relay of the federation (as last read from
    /// the file, which is checked every half second).
    pub fn is_member(&self, peer: &PeerId) -> bool {
        *peer != self.local && self.list.contains(peer)
    }

    /// Members in the file, this relay left out.
    pub fn listed(&self) -> usize {
        self.list.len() - usize::from(self.list.contains(&self.local))
    }

    /// Members this relay knows an address of or is connected to.
    pub fn known(&self) -> usize {
        self.book.len()
    }

    /// Members this relay is connected to.
    pub fn connected(&self) -> usize {
        self.book.values().filter(|m| m.connections > 0).count()
    }

    pub fn connected_members(&self) -> impl Iterator<Item = &PeerId> {
        self.book
            .iter()
            .filter(|(_, member)| member.connections > 0)
            .map(|(peer, _)| peer)
    }

    /// Where a browser reaches `peer`, a connected member (empty when it
    /// is not one, or said nothing of it).
    pub fn browser_addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.book
            .get(peer)
            .filter(|member| member.connections > 0)
            .map(|member| member.browser_addrs.clone())
            .unwrap_or_default()
    }

    /// The connected members that said where a browser reaches them, each
    /// with those addresses (ending in the member's `/p2p`), sorted by
    /// peer id so that every page reads the list in one order.
    pub fn browser_list(&self) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut list: Vec<(PeerId, Vec<Multiaddr>)> = self
            .book
            .iter()
            .filter(|(_, member)| member.connections > 0 && !member.browser_addrs.is_empty())
            .map(|(peer, member)| {
                let addrs = member
                    .browser_addrs
                    .iter()
                    .map(|addr| addr.clone().with(Protocol::P2p(*peer)))
                    .collect();
                (*peer, addrs)
            })
            .collect();
        list.sort_by_key(|(peer, _)| *peer);
        list
    }

    /// Replaces what a connected member said of where browsers reach it
    /// (its identify's listen addresses, through [`browser_addr`]). Ignored
    /// for a peer this relay is not connected to as a member.
    pub fn learn_browser_addrs(
        &mut self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
    ) {
        let Some(member) = self.book.get_mut(&peer) else {
            return;
        };
        member.browser_addrs.clear();
        for addr in addrs {
            if member.browser_addrs.len() >= MAX_ADDRS_PER_MEMBER {
                break;
            }
            if !member.browser_addrs.contains(&addr) {
                member.browser_addrs.push(addr);
            }
        }
    }

    /// Takes in addresses of `peer` (ignored unless it is a member), and
    /// dials it soon if it is not connected. The callers pick the
    /// addresses (see [`relay_addr`]); a trailing `/p2p` is dropped.
    pub fn learn(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        if !self.is_member(&peer) {
            return;
        }
        if !self.book.contains_key(&peer) && self.book.len() >= self.max_dialed {
            self.refusals.refused("federation-members-full", || {
                format!(
                    "member relay {peer} not dialed: --max-federation-members ({}) reached",
                    self.max_dialed
                )
            });
            return;
        }
        let member = self.book.entry(peer).or_default();
        for mut addr in addrs {
            if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
                addr.pop();
            }
            if member.addrs.len() >= MAX_ADDRS_PER_MEMBER {
                break;
            }
            if !member.addrs.contains(&addr) {
                member.addrs.push(addr);
            }
        }
        if member.connections == 0
            && !member.dialing
            && member.next_dial.is_none()
            && !member.addrs.is_empty()
        {
            member.next_dial = Some(Instant::now());
        }
    }

    /// Closes the connections of `peer`, which speaks the federation's
    /// protocol without being a member.
    pub fn refuse(&mut self, peer: PeerId) {
        let file = self.list.path().display().to_string();
        self.refusals.refused("federation-not-member", || {
            format!("relay {peer} is not in the federation file {file}: its connection is closed")
        });
        self.actions.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::All,
        });
    }

    /// After the file changed: forget members removed from it and close
    /// their connections.
    fn recheck(&mut self) {
        let version = self.list.version();
        if version == self.checked_version {
            return;
        }
        self.checked_version = version;
        let removed: Vec<PeerId> = self
            .book
            .keys()
            .filter(|peer| !self.list.contains(peer))
            .copied()
            .collect();
        for peer in removed {
            let member = self.book.remove(&peer).unwrap_or_default();
            tracing::info!(%peer, "relay removed from the federation file: closing its connections");
            if member.connections > 0 {
                self.actions.push_back(ToSwarm::CloseConnection {
                    peer_id: peer,
                    connection: CloseConnection::All,
                });
            }
        }
    }

    fn dial_due(&mut self, now: Instant) {
        for (peer, member) in &mut self.book {
            if member.connections > 0 || member.dialing {
                continue;
            }
            if member.next_dial.is_some_and(|due| due <= now) {
                member.next_dial = None;
                member.dialing = true;
                tracing::debug!(%peer, addrs = ?member.addrs, "dialing member relay");
                self.actions.push_back(ToSwarm::Dial {
                    opts: DialOpts::peer_id(*peer)
                        .addresses(member.addrs.clone())
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build(),
                });
            }
        }
    }

    fn retry_later(&mut self, peer: PeerId) {
        if let Some(member) = self.book.get_mut(&peer) {
            member.dialing = false;
            if member.connections == 0 && !member.addrs.is_empty() {
                let wait = member.backoff.next_wait();
                tracing::debug!(%peer, ?wait, "member relay unreachable: dialing again later");
                member.next_dial = Some(Instant::now() + wait);
            }
        }
    }

    fn handler(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        remote: &Multiaddr,
    ) -> THandler<Self> {
        let relayed = remote.iter().any(|p| p == Protocol::P2pCircuit);
        if relayed || !self.is_member(&peer) {
            return Either::Right(dummy::ConnectionHandler);
        }
        self.connections.insert(connection, peer);
        Either::Left(KeepAlive)
    }
}

fn interval(period: Duration) -> Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// The part of `addr` another relay dials: TCP or QUIC straight to an IP
/// or DNS name (no WebSocket, WebRTC or circuit), without its `/p2p`.
pub fn relay_addr(addr: Multiaddr) -> Option<Multiaddr> {
    let mut out = Multiaddr::empty();
    let mut protocols = addr.iter();
    match protocols.next()? {
        host @ (Protocol::Ip4(_)
        | Protocol::Ip6(_)
        | Protocol::Dns(_)
        | Protocol::Dns4(_)
        | Protocol::Dns6(_)) => out.push(host),
        _ => return None,
    }
    match protocols.next()? {
        Protocol::Tcp(port) => {
            out.push(Protocol::Tcp(port));
        }
        Protocol::Udp(port) => {
            if protocols.next()? != Protocol::QuicV1 {
                return None;
            }
            out.push(Protocol::Udp(port));
            out.push(Protocol::QuicV1);
        }
        _ => return None,
    }
    match protocols.next() {
        None | Some(Protocol::P2p(_)) if protocols.next().is_none() => Some(out),
        _ => None,
    }
}

/// The part of `addr` a browser dials: a WebSocket (`/ws`, `/wss`,
/// `/tls/ws`) or WebRTC-direct address with its certhash, to a specified
/// IP or a DNS name, without its `/p2p`. Never TCP or QUIC alone (a
/// browser cannot open those), never a circuit.
pub fn browser_addr(addr: Multiaddr) -> Option<Multiaddr> {
    let mut out = Multiaddr::empty();
    let mut protocols = addr.iter().peekable();
    match protocols.next()? {
        Protocol::Ip4(ip) if !ip.is_unspecified() => out.push(Protocol::Ip4(ip)),
        Protocol::Ip6(ip) if !ip.is_unspecified() && !ip.is_unicast_link_local() => {
            out.push(Protocol::Ip6(ip))
        }
        host @ (Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_)) => out.push(host),
        _ => return None,
    }
    let browser = match protocols.next()? {
        Protocol::Tcp(port) => {
            out.push(Protocol::Tcp(port));
            if protocols.peek() == Some(&Protocol::Tls) {
                out.push(Protocol::Tls);
                protocols.next();
            }
            match protocols.next()? {
                ws @ (Protocol::Ws(_) | Protocol::Wss(_)) => {
                    out.push(ws);
                    true
                }
                _ => false,
            }
        }
        Protocol::Udp(port) => {
            out.push(Protocol::Udp(port));
            if protocols.next()? != Protocol::WebRTCDirect {
                return None;
            }
            out.push(Protocol::WebRTCDirect);
            let mut certhash = false;
            while let Some(Protocol::Certhash(hash)) = protocols.peek().cloned() {
                out.push(Protocol::Certhash(hash));
                protocols.next();
                certhash = true;
            }
            certhash
        }
        _ => false,
    };
    match protocols.next() {
        None | Some(Protocol::P2p(_)) if browser && protocols.next().is_none() => Some(out),
        _ => None,
    }
}

impl NetworkBehaviour for Members {
    type ConnectionHandler = Either<KeepAlive, dummy::ConnectionHandler>;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection_id, peer, remote_addr))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        // The DHT's and gossipsub's dials by peer id find a member here.
        Ok(maybe_peer
            .and_then(|peer| self.book.get(&peer))
            .map(|member| member.addrs.clone())
            .unwrap_or_default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection_id, peer, addr))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(established) => {
                if !self.connections.contains_key(&established.connection_id) {
                    return;
                }
                let member = self.book.entry(established.peer_id).or_default();
                member.connections += 1;
                if member.connections == 1 {
                    member.dialing = false;
                    member.next_dial = None;
                    member.backoff.reset();
                    tracing::info!(peer = %established.peer_id, "federation: connected to member relay");
                    self.actions
                        .push_back(ToSwarm::GenerateEvent(Event::Connected {
                            peer: established.peer_id,
                        }));
                }
            }
            FromSwarm::ConnectionClosed(closed) => {
                if self.connections.remove(&closed.connection_id).is_none() {
                    return;
                }
                let Some(member) = self.book.get_mut(&closed.peer_id) else {
                    // Removed from the file meanwhile.
                    self.actions
                        .push_back(ToSwarm::GenerateEvent(Event::Disconnected {
                            peer: closed.peer_id,
                        }));
                    return;
                };
                member.connections = member.connections.saturating_sub(1);
                if member.connections == 0 {
                    tracing::info!(peer = %closed.peer_id, "federation: lost member relay; dialing it again with backoff");
                    self.actions
                        .push_back(ToSwarm::GenerateEvent(Event::Disconnected {
                            peer: closed.peer_id,
                        }));
                    self.retry_later(closed.peer_id);
                }
            }
            FromSwarm::DialFailure(failure) => {
                if let Some(peer) = failure.peer_id
                    && self.book.get(&peer).is_some_and(|member| member.dialing)
                {
                    tracing::debug!(%peer, error = %failure.error, "dial of member relay failed");
                    self.retry_later(peer);
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(never) | Either::Right(never) => libp2p::core::util::unreachable(never),
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        // Polled until pending, so that each timer has registered to wake
        // this behaviour at its next tick.
        while self.tick.poll_tick(cx).is_ready() {
            self.recheck();
            self.dial_due(Instant::now());
        }
        while self.lookup.poll_tick(cx).is_ready() {
            if self.connected() > 0 {
                self.actions
                    .push_back(ToSwarm::GenerateEvent(Event::LookupDue));
            }
        }
        match self.actions.pop_front() {
            Some(action) => Poll::Ready(action.map_in(|never| match never {})),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("valid multiaddr")
    }

    #[test]
    fn relays_dial_each_other_over_tcp_and_quic_only() {
        let peer = PeerId::random();
        assert_eq!(
            relay_addr(addr(&format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}"))),
            Some(addr("/ip4/127.0.0.1/tcp/4001"))
        );
        assert_eq!(
            relay_addr(addr("/dns4/relay.example.org/udp/4004/quic-v1")),
            Some(addr("/dns4/relay.example.org/udp/4004/quic-v1"))
        );
        for other in [
            "/ip4/127.0.0.1/tcp/4002/ws".to_owned(),
            "/ip4/127.0.0.1/udp/4003/webrtc-direct".to_owned(),
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}/p2p-circuit"),
            "/ip4/127.0.0.1/udp/4004".to_owned(),
            "/p2p-circuit".to_owned(),
        ] {
            assert_eq!(relay_addr(addr(&other)), None, "{other}");
        }
    }

    #[test]
    fn browsers_are_told_of_websocket_and_webrtc_direct_addresses_only() {
        let peer = PeerId::random();
        let certhash = "uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g";
        for (given, kept) in [
            (
                format!("/ip4/127.0.0.1/tcp/4002/ws/p2p/{peer}"),
                "/ip4/127.0.0.1/tcp/4002/ws".to_owned(),
            ),
            (
                "/dns4/relay.example.org/tcp/443/wss".to_owned(),
                "/dns4/relay.example.org/tcp/443/wss".to_owned(),
            ),
            (
                "/dns4/relay.example.org/tcp/443/tls/ws".to_owned(),
                "/dns4/relay.example.org/tcp/443/tls/ws".to_owned(),
            ),
            (
                format!("/ip4/192.0.2.7/udp/4003/webrtc-direct/certhash/{certhash}"),
                format!("/ip4/192.0.2.7/udp/4003/webrtc-direct/certhash/{certhash}"),
            ),
        ] {
            assert_eq!(browser_addr(addr(&given)), Some(addr(&kept)), "{given}");
        }
        for other in [
            "/ip4/127.0.0.1/tcp/4001".to_owned(),
            "/ip4/127.0.0.1/udp/4004/quic-v1".to_owned(),
            "/ip4/127.0.0.1/udp/4003/webrtc-direct".to_owned(),
            "/ip4/0.0.0.0/tcp/4002/ws".to_owned(),
            format!("/ip4/127.0.0.1/tcp/4002/ws/p2p/{peer}/p2p-circuit"),
            "/p2p-circuit".to_owned(),
        ] {
            assert_eq!(browser_addr(addr(&other)), None, "{other}");
        }
    }
}

/// `Members` in real swarms over libp2p's memory transport: a member that
/// goes away is dialed again with backoff until it is back; one removed
/// from the file is let go.
#[cfg(test)]
mod swarm_tests {
    use libp2p::{
        Swarm, Transport as _,
        core::{transport::MemoryTransport, upgrade::Version},
        identity::Keypair,
        noise,
        swarm::SwarmEvent,
        yamux,
    };

    use super::*;

    const WAIT: Duration = Duration::from_secs(20);

    fn member(
        key: Keypair,
        list: &AuthorizedPeers,
        bootstrap: Vec<(PeerId, Multiaddr)>,
    ) -> Swarm<Members> {
        let list = list.clone();
        libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(|key| {
                MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key).expect("noise"))
                    .multiplex(yamux::Config::default())
            })
            .expect("memory transport")
            .with_behaviour(|key| {
                Members::new(
                    key.public().to_peer_id(),
                    list,
                    bootstrap,
                    8,
                    Refusals::default(),
                )
            })
            .expect("behaviour")
            .build()
    }

    /// Runs `swarm`, listening on `addr`, in a task until the sender is
    /// used or dropped: then it frees its address (the memory transport
    /// keeps a port until its listener is removed) and drops the swarm, and
    /// with it its connections.
    fn run(mut swarm: Swarm<Members>, addr: Multiaddr) -> tokio::sync::oneshot::Sender<()> {
        let listener = swarm.listen_on(addr).expect("listen");
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = futures::StreamExt::select_next_some(&mut swarm) => {}
                }
            }
            swarm.remove_listener(listener);
        });
        stop
    }

    /// Polls `swarm` until `pick` returns something; panics after [`WAIT`].
    async fn until<T>(
        swarm: &mut Swarm<Members>,
        what: &str,
        mut pick: impl FnMut(SwarmEvent<Event>) -> Option<T>,
    ) -> T {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(value) = pick(futures::StreamExt::select_next_some(&mut *swarm).await) {
                    return value;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    #[tokio::test]
    async fn a_lost_member_is_dialed_again_with_backoff_and_a_removed_one_is_let_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("federation");
        let (x_key, y_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (x, y) = (x_key.public().to_peer_id(), y_key.public().to_peer_id());
        std::fs::write(&file, format!("{x}\n{y}\n")).expect("write");
        let list = AuthorizedPeers::load(&file).expect("list");
        let y_addr: Multiaddr = format!("/memory/{}", rand::random::<u64>())
            .parse()
            .expect("memory address");

        let stop_y = run(member(y_key.clone(), &list, vec![]), y_addr.clone());
        let mut x_swarm = member(x_key, &list, vec![(y, y_addr.clone())]);
        let connected = |event| match event {
            SwarmEvent::Behaviour(Event::Connected { peer }) if peer == y => Some(()),
            _ => None,
        };
        until(&mut x_swarm, "connection to the member", connected).await;

        // The member dies: it is dialed again, and again (1 s, then 2 s).
        drop(stop_y);
        until(&mut x_swarm, "member lost", |event| match event {
            SwarmEvent::Behaviour(Event::Disconnected { peer }) if peer == y => Some(()),
            _ => None,
        })
        .await;
        for attempt in 1..=2 {
            until(
                &mut x_swarm,
                &format!("redial {attempt}"),
                |event| match event {
                    SwarmEvent::OutgoingConnectionError { peer_id, .. } if peer_id == Some(y) => {
                        Some(())
                    }
                    _ => None,
                },
            )
            .await;
        }
        // It comes back on its address: the next redial finds it.
        let _stop_y = run(member(y_key, &list, vec![]), y_addr);
        until(&mut x_swarm, "connection to the member, back", connected).await;

        // Removed from the file: its connection is closed, and it is not
        // dialed again.
        std::fs::write(&file, format!("{x}  # alone now\n")).expect("write");
        until(
            &mut x_swarm,
            "the removed member let go",
            |event| match event {
                SwarmEvent::Behaviour(Event::Disconnected { peer }) if peer == y => Some(()),
                _ => None,
            },
        )
        .await;
        assert_eq!(
            x_swarm.behaviour().known(),
            0,
            "the removed member is forgotten"
        );
    }
}
