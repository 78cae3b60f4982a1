//! Per-address limits that rust-libp2p does not provide out of the box.
//!
//! - [`ConnectionLimitsPerPrefix`]: a behaviour that bounds, per listener
//!   and per source prefix (an IPv4 address or an IPv6 /64), the
//!   connections still in their handshake, and per prefix the established
//!   ones, so that no one host can fill the budget everyone else needs.
//! - [`ReservationsPerIp`]: a relay "rate limiter" that counts the peers
//!   holding a reservation behind each IP address, so one address cannot
//!   take every slot (total, per-peer and rate limits are `libp2p-relay`'s).

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    convert::Infallible,
    hash::Hash,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    relay,
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
        NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
    },
};
use prometheus_client::metrics::{family::Family, gauge::Gauge};

use crate::{
    addresses::{IpPrefix, prefix_of, transport_of},
    metrics::ListenerLabels,
    refusals::Refusals,
};

/// The bounds [`ConnectionLimitsPerPrefix`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct PrefixLimits {
    /// Connections in their handshake on one listener, from everyone.
    pub max_pending_per_listener: usize,
    /// Connections in their handshake from one prefix, on each listener.
    pub max_pending_per_prefix: usize,
    /// Established connections from one prefix.
    pub max_established_per_prefix: usize,
}

/// Denies an inbound connection when its listener already has the most
/// handshakes it may run at once, when its source prefix has the most
/// handshakes one prefix may run on that listener, or (once established)
/// the most established connections one prefix may have.
///
/// Handshakes are bounded per listener so that a flood on one transport
/// leaves the others alone, and per prefix so that one host fills only a
/// small part of its listener's budget. Each handshake also has a deadline
/// (the swarm's connection timeout, `--handshake-timeout`).
#[derive(Debug)]
pub struct ConnectionLimitsPerPrefix {
    limits: PrefixLimits,
    pending: Counts<(&'static str, Option<IpPrefix>)>,
    pending_per_listener: Counts<&'static str>,
    established: Counts<IpPrefix>,
    pending_by_connection: HashMap<ConnectionId, (&'static str, Option<IpPrefix>)>,
    established_by_connection: HashMap<ConnectionId, IpPrefix>,
    pending_gauge: Family<ListenerLabels, Gauge>,
    refusals: Refusals,
}

/// How many of something each key has; a key at zero is removed, so the
/// map holds only keys with live connections (bounded by the listeners'
/// limits).
#[derive(Debug)]
struct Counts<K>(HashMap<K, usize>);

impl<K: Hash + Eq> Counts<K> {
    fn new() -> Self {
        Self(HashMap::new())
    }

    fn get(&self, key: &K) -> usize {
        self.0.get(key).copied().unwrap_or(0)
    }

    fn add(&mut self, key: K) {
        *self.0.entry(key).or_default() += 1;
    }

    fn remove(&mut self, key: K) {
        if let Entry::Occupied(mut count) = self.0.entry(key) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrefixLimitExceeded {
    #[error("{prefix} already has {max} connections, the most one address may have")]
    Established { prefix: IpPrefix, max: usize },
    #[error("{prefix} already has {max} handshakes in progress on the {listener} listener")]
    PendingPerPrefix {
        prefix: IpPrefix,
        listener: &'static str,
        max: usize,
    },
    #[error("the {listener} listener already has {max} handshakes in progress")]
    PendingPerListener { listener: &'static str, max: usize },
}

impl ConnectionLimitsPerPrefix {
    pub fn new(
        limits: PrefixLimits,
        pending_gauge: Family<ListenerLabels, Gauge>,
        refusals: Refusals,
    ) -> Self {
        Self {
            limits,
            pending: Counts::new(),
            pending_per_listener: Counts::new(),
            established: Counts::new(),
            pending_by_connection: HashMap::new(),
            established_by_connection: HashMap::new(),
            pending_gauge,
            refusals,
        }
    }

    fn check_pending(
        &self,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(&'static str, Option<IpPrefix>), PrefixLimitExceeded> {
        let listener = transport_of(local_addr);
        let prefix = prefix_of(remote_addr);
        let max = self.limits.max_pending_per_listener;
        if self.pending_per_listener.get(&listener) >= max {
            return Err(PrefixLimitExceeded::PendingPerListener { listener, max });
        }
        if let Some(prefix) = prefix {
            let max = self.limits.max_pending_per_prefix;
            if self.pending.get(&(listener, Some(prefix))) >= max {
                return Err(PrefixLimitExceeded::PendingPerPrefix {
                    prefix,
                    listener,
                    max,
                });
            }
        }
        Ok((listener, prefix))
    }

    fn check_established(
        &self,
        remote_addr: &Multiaddr,
    ) -> Result<Option<IpPrefix>, PrefixLimitExceeded> {
        let Some(prefix) = prefix_of(remote_addr) else {
            return Ok(None);
        };
        let max = self.limits.max_established_per_prefix;
        if self.established.get(&prefix) >= max {
            return Err(PrefixLimitExceeded::Established { prefix, max });
        }
        Ok(Some(prefix))
    }

    fn deny(&self, exceeded: PrefixLimitExceeded) -> ConnectionDenied {
        let kind = match exceeded {
            PrefixLimitExceeded::Established { .. } => "connections-per-ip",
            PrefixLimitExceeded::PendingPerPrefix { .. } => "handshakes-per-ip",
            PrefixLimitExceeded::PendingPerListener { .. } => "handshakes-per-listener",
        };
        self.refusals
            .refused(kind, || format!("connection refused: {exceeded}"));
        ConnectionDenied::new(exceeded)
    }

    fn gauge(&self, listener: &'static str) -> Gauge {
        self.pending_gauge
            .get_or_create(&ListenerLabels { listener })
            .clone()
    }

    fn end_handshake(&mut self, connection_id: ConnectionId) {
        let Some((listener, prefix)) = self.pending_by_connection.remove(&connection_id) else {
            return;
        };
        self.pending.remove((listener, prefix));
        self.pending_per_listener.remove(listener);
        self.gauge(listener).dec();
    }

    fn forget(&mut self, connection_id: ConnectionId) {
        self.end_handshake(connection_id);
        if let Some(prefix) = self.established_by_connection.remove(&connection_id) {
            self.established.remove(prefix);
        }
    }
}

impl NetworkBehaviour for ConnectionLimitsPerPrefix {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        // Refuse early, before the handshake costs anything: a prefix at
        // its bound of established connections may not start another.
        self.check_established(remote_addr)
            .map_err(|exceeded| self.deny(exceeded))?;
        let key = self
            .check_pending(local_addr, remote_addr)
            .map_err(|exceeded| self.deny(exceeded))?;
        self.pending.add(key);
        self.pending_per_listener.add(key.0);
        self.pending_by_connection.insert(connection_id, key);
        self.gauge(key.0).inc();
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.end_handshake(connection_id);
        // Check again: several handshakes from one prefix may have raced.
        if let Some(prefix) = self
            .check_established(remote_addr)
            .map_err(|exceeded| self.deny(exceeded))?
        {
            self.established.add(prefix);
            self.established_by_connection.insert(connection_id, prefix);
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.forget(connection_id)
            }
            // A handshake failed or timed out, or another behaviour denied
            // a connection this one had counted.
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.forget(connection_id)
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
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Counts the peers holding a reservation behind each IP address.
///
/// `libp2p-relay` asks its rate limiters last, once its own limits have
/// passed, and accepts when all say yes; this one is installed as the last
/// limiter, so a "yes" here means the reservation is being accepted. The
/// relay's events ([`ReservationsPerIp::on_relay_event`]) release the slot.
#[derive(Debug, Clone)]
pub struct ReservationsPerIp {
    inner: Arc<Mutex<ReservationTable>>,
}

#[derive(Debug)]
struct ReservationTable {
    max: usize,
    /// Keyed by prefix (an IPv4 address or an IPv6 /64), as every
    /// per-address limit of the relay.
    per_ip: HashMap<IpPrefix, HashSet<PeerId>>,
    ip_of_peer: HashMap<PeerId, IpPrefix>,
}

impl ReservationsPerIp {
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ReservationTable {
                max,
                per_ip: HashMap::new(),
                ip_of_peer: HashMap::new(),
            })),
        }
    }

    /// The limiter to push last onto `relay::Config::reservation_rate_limiters`.
    pub fn limiter(&self) -> Box<dyn relay::RateLimiter> {
        let this = self.clone();
        Box::new(move |peer: PeerId, addr: &Multiaddr, _now| this.try_reserve(peer, addr))
    }

    fn try_reserve(&self, peer: PeerId, addr: &Multiaddr) -> bool {
        let Some(ip) = prefix_of(addr) else {
            return true;
        };
        let mut table = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let max = table.max;
        let peers = table.per_ip.entry(ip).or_default();
        if !peers.contains(&peer) && peers.len() >= max {
            tracing::debug!(%peer, %ip, max, "reservation denied: too many peers behind this IP");
            return false;
        }
        peers.insert(peer);
        if let Some(previous) = table.ip_of_peer.insert(peer, ip)
            && previous != ip
        {
            table.release_ip(peer, previous);
        }
        true
    }

    /// Releases the slot of a peer whose reservation ended or failed.
    pub fn on_relay_event(&self, event: &relay::Event) {
        #[allow(deprecated)] // `ReservationReqAcceptFailed` is still emitted.
        let peer = match event {
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id }
            | relay::Event::ReservationReqAcceptFailed { src_peer_id, .. } => src_peer_id,
            _ => return,
        };
        let mut table = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ip) = table.ip_of_peer.remove(peer) {
            table.release_ip(*peer, ip);
        }
    }

    /// Peers currently counted, over all IP addresses.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .ip_of_peer
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReservationTable {
    fn release_ip(&mut self, peer: PeerId, ip: IpPrefix) {
        if let Entry::Occupied(mut peers) = self.per_ip.entry(ip) {
            peers.get_mut().remove(&peer);
            if peers.get().is_empty() {
                peers.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/5000").parse().expect("valid")
    }

    #[test]
    fn reservations_per_ip_are_bounded_and_released() {
        let limit = ReservationsPerIp::new(2);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert!(limit.try_reserve(a, &from("192.0.2.1")));
        assert!(limit.try_reserve(b, &from("192.0.2.1")));
        assert!(
            !limit.try_reserve(c, &from("192.0.2.1")),
            "third peer behind one IP"
        );
        assert!(
            limit.try_reserve(c, &from("192.0.2.2")),
            "another IP is not affected"
        );
        let v6 = |ip: &str| -> Multiaddr { format!("/ip6/{ip}/tcp/5000").parse().expect("valid") };
        let limit_v6 = ReservationsPerIp::new(1);
        assert!(limit_v6.try_reserve(a, &v6("2001:db8:1:2::1")));
        assert!(
            !limit_v6.try_reserve(b, &v6("2001:db8:1:2::2")),
            "another address of the same /64 is the same host"
        );
        assert!(
            limit.try_reserve(a, &from("192.0.2.1")),
            "a renewal is not a new peer"
        );

        limit.on_relay_event(&relay::Event::ReservationTimedOut { src_peer_id: a });
        assert!(
            limit.try_reserve(PeerId::random(), &from("192.0.2.1")),
            "slot released"
        );
        assert_eq!(limit.len(), 3);
    }

    fn limit(
        pending_per_listener: usize,
        pending_per_prefix: usize,
        established: usize,
    ) -> ConnectionLimitsPerPrefix {
        ConnectionLimitsPerPrefix::new(
            PrefixLimits {
                max_pending_per_listener: pending_per_listener,
                max_pending_per_prefix: pending_per_prefix,
                max_established_per_prefix: established,
            },
            Family::default(),
            Refusals::default(),
        )
    }

    fn id(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    #[test]
    fn connections_per_prefix_are_bounded_and_released() {
        let mut limit = limit(100, 100, 1);
        let addr = from("192.0.2.1");
        let local = from("127.0.0.1");
        assert!(
            limit
                .handle_pending_inbound_connection(id(1), &local, &addr)
                .is_ok()
        );
        assert!(
            limit
                .handle_established_inbound_connection(id(1), PeerId::random(), &local, &addr)
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(2), &local, &addr)
                .is_err()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(2), &local, &from("192.0.2.9"))
                .is_ok()
        );
        limit.forget(id(1));
        assert!(
            limit
                .handle_pending_inbound_connection(id(3), &local, &addr)
                .is_ok()
        );
    }

    #[test]
    fn handshakes_are_bounded_per_prefix_and_per_listener() {
        let mut limit = limit(3, 2, 100);
        let ws: Multiaddr = "/ip4/127.0.0.1/tcp/4002/ws".parse().expect("valid");
        let tcp = from("127.0.0.1");
        let attacker: Multiaddr = "/ip6/2001:db8:1:2::1/tcp/5000".parse().expect("valid");
        let same_64: Multiaddr = "/ip6/2001:db8:1:2::9999/tcp/5000".parse().expect("valid");
        assert!(
            limit
                .handle_pending_inbound_connection(id(1), &ws, &attacker)
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(2), &ws, &same_64)
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(3), &ws, &same_64)
                .is_err(),
            "a third handshake from one /64 on one listener"
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(4), &tcp, &attacker)
                .is_ok(),
            "another listener has its own budget"
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(5), &ws, &from("192.0.2.1"))
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(6), &ws, &from("192.0.2.2"))
                .is_err(),
            "the listener's total is reached"
        );
        // A failed handshake frees its slots; an established one too.
        limit.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &ws,
            send_back_addr: &attacker,
            error: &libp2p::swarm::ListenError::Aborted,
            connection_id: id(1),
            peer_id: None,
        }));
        assert!(
            limit
                .handle_established_inbound_connection(id(2), PeerId::random(), &ws, &same_64)
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(7), &ws, &attacker)
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(8), &ws, &attacker)
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(id(9), &ws, &attacker)
                .is_err()
        );
    }
}
