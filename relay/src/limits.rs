//! Per-IP limits that rust-libp2p does not provide out of the box.
//!
//! - [`PerIpConnectionLimit`]: a behaviour that denies an inbound connection
//!   when its IP address already has the maximum number of established ones.
//! - [`ReservationsPerIp`]: a relay "rate limiter" that counts the peers
//!   holding a reservation behind each IP address, so one address cannot
//!   take every slot (total, per-peer and rate limits are `libp2p-relay`'s).

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    convert::Infallible,
    net::IpAddr,
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

use crate::addresses::ip_of;

/// Denies inbound connections beyond `max` per remote IP address.
#[derive(Debug)]
pub struct PerIpConnectionLimit {
    max: usize,
    per_ip: HashMap<IpAddr, usize>,
    by_connection: HashMap<ConnectionId, IpAddr>,
}

#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {max} connections, the most one IP address may have")]
pub struct PerIpLimitExceeded {
    pub ip: IpAddr,
    pub max: usize,
}

impl PerIpConnectionLimit {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            per_ip: HashMap::new(),
            by_connection: HashMap::new(),
        }
    }

    fn check(&self, remote_addr: &Multiaddr) -> Result<Option<IpAddr>, ConnectionDenied> {
        let Some(ip) = ip_of(remote_addr) else {
            return Ok(None);
        };
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.max {
            return Err(ConnectionDenied::new(PerIpLimitExceeded {
                ip,
                max: self.max,
            }));
        }
        Ok(Some(ip))
    }

    fn forget(&mut self, connection_id: ConnectionId) {
        let Some(ip) = self.by_connection.remove(&connection_id) else {
            return;
        };
        if let Entry::Occupied(mut count) = self.per_ip.entry(ip) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

impl NetworkBehaviour for PerIpConnectionLimit {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        // Refuse early, before the handshake costs anything.
        self.check(remote_addr).map(|_| ())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Check again: several handshakes from one IP may have raced.
        if let Some(ip) = self.check(remote_addr)? {
            *self.per_ip.entry(ip).or_default() += 1;
            self.by_connection.insert(connection_id, ip);
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
            // Another behaviour denied a connection this one had counted.
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
    per_ip: HashMap<IpAddr, HashSet<PeerId>>,
    ip_of_peer: HashMap<PeerId, IpAddr>,
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
        let Some(ip) = ip_of(addr) else { return true };
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
    fn release_ip(&mut self, peer: PeerId, ip: IpAddr) {
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

    #[test]
    fn connections_per_ip_are_bounded_and_released() {
        let mut limit = PerIpConnectionLimit::new(1);
        let addr = from("192.0.2.1");
        let local = from("127.0.0.1");
        let first = ConnectionId::new_unchecked(1);
        assert!(
            limit
                .handle_pending_inbound_connection(first, &local, &addr)
                .is_ok()
        );
        assert!(
            limit
                .handle_established_inbound_connection(first, PeerId::random(), &local, &addr)
                .is_ok()
        );
        let second = ConnectionId::new_unchecked(2);
        assert!(
            limit
                .handle_pending_inbound_connection(second, &local, &addr)
                .is_err()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(second, &local, &from("192.0.2.9"))
                .is_ok()
        );
        limit.forget(first);
        assert!(
            limit
                .handle_pending_inbound_connection(second, &local, &addr)
                .is_ok()
        );
    }
}
