//! A bound on what libp2p-webrtc's UDP mux remembers about strangers.
//!
//! The WebRTC-direct listener (libp2p-webrtc 0.10's `UDPMuxNewAddr`) reads
//! every datagram on its port. A STUN binding request with a username from
//! a source address it has not seen makes it report a new connection and
//! add that address to a set (`new_addrs`) so as not to report it twice.
//! The address leaves the set only when a connection from it completes
//! ICE, or when the listener closes. A connection the relay refuses (the
//! per-address handshake bound) or that never finishes its handshake leaves
//! its address there for the life of the listener: one binding request per
//! source address, from many ports of one host, from the 2^64 addresses of
//! one IPv6 /64 or from spoofed sources, grows the set without end (and an
//! address in it is never reported again, so its owner cannot retry from
//! it). Its per-ufrag state is created only for connections the swarm
//! accepted, which the handshake bounds already cap.
//!
//! The set is private to the crate, so the relay counts what it can see:
//! each incoming WebRTC-direct connection (accepted or refused) adds an
//! address, each one established takes one away. When a listener's count
//! passes `--max-webrtc-unfinished-addresses`, the relay closes that
//! listener and opens it again on the same port with the same certificate
//! (so its address and certhash stay valid): the set starts empty. The
//! price is that the listener's established connections drop with it, and
//! browsers reconnect; it is a backstop against memory exhaustion, far
//! above what legitimate traffic reaches.

use std::collections::HashMap;

use libp2p::{Multiaddr, core::transport::ListenerId, multiaddr::Protocol};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};

/// The default of `--max-webrtc-unfinished-addresses`: about 50 MB of the
/// mux's set (a socket address and its hash-table slot each). No chat
/// deployment's browsers come near it between two restarts of the relay.
pub const DEFAULT_MAX_UNFINISHED_ADDRESSES: u64 = 1_000_000;

/// Which listener a WebRTC-direct connection came in on: its socket's
/// address family and port (the local address libp2p-webrtc reports is the
/// socket's, unspecified IP included).
type ListenerKey = (bool, u16);

/// Counts, per WebRTC-direct listener, the source addresses the mux holds
/// for connections that never finished, and says when to restart it.
#[derive(Debug)]
pub struct UnfinishedAddresses {
    max: u64,
    listeners: HashMap<ListenerKey, Listener>,
    gauge: Gauge,
    restarts: Counter,
}

#[derive(Debug)]
struct Listener {
    id: ListenerId,
    /// What to listen on again: the listener's address with its port.
    listen_addr: Multiaddr,
    unfinished: u64,
}

/// What the event loop must do about a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub id: ListenerId,
    pub listen_addr: Multiaddr,
}

impl UnfinishedAddresses {
    pub fn new(max: u64, registry: &mut Registry) -> Self {
        let gauge = Gauge::default();
        let restarts = Counter::default();
        let relay = registry.sub_registry_with_prefix("relay");
        relay.register(
            "webrtc_direct_unfinished_addresses",
            "Source addresses libp2p-webrtc's UDP mux remembers for connections that never finished (estimated; the most over the WebRTC-direct listeners)",
            gauge.clone(),
        );
        relay.register(
            "webrtc_direct_listener_restarts",
            "WebRTC-direct listeners closed and opened again because their mux remembered --max-webrtc-unfinished-addresses addresses",
            restarts.clone(),
        );
        Self {
            max,
            listeners: HashMap::new(),
            gauge,
            restarts,
        }
    }

    /// A WebRTC-direct listener is up on `listen_addr` (the IP it was
    /// asked for, its real port: `/ip4/0.0.0.0/udp/4003/webrtc-direct`).
    pub fn listening(&mut self, id: ListenerId, listen_addr: Multiaddr) {
        let Some(key) = key_of(&listen_addr) else {
            return;
        };
        match self.listeners.get_mut(&key) {
            // Another of its addresses (one per interface).
            Some(listener) if listener.id == id => {}
            // Opened again: a new, empty mux.
            _ => {
                self.listeners.insert(
                    key,
                    Listener {
                        id,
                        listen_addr,
                        unfinished: 0,
                    },
                );
            }
        }
        self.update_gauge();
    }

    /// A connection came in on `local_addr` (accepted for its handshake or
    /// refused at once): the mux now remembers its source address. Returns
    /// the listener to restart if that was one too many.
    pub fn incoming(&mut self, local_addr: &Multiaddr) -> Option<Restart> {
        let listener = self.listeners.get_mut(&key_of(local_addr)?)?;
        listener.unfinished += 1;
        let restart = (listener.unfinished > self.max).then(|| {
            listener.unfinished = 0;
            Restart {
                id: listener.id,
                listen_addr: listener.listen_addr.clone(),
            }
        });
        if restart.is_some() {
            self.restarts.inc();
        }
        self.update_gauge();
        restart
    }

    /// A connection on `local_addr` finished its handshake: the mux forgot
    /// its address.
    pub fn established(&mut self, local_addr: &Multiaddr) {
        if let Some(listener) = key_of(local_addr).and_then(|key| self.listeners.get_mut(&key)) {
            listener.unfinished = listener.unfinished.saturating_sub(1);
        }
        self.update_gauge();
    }

    fn update_gauge(&self) {
        let most = self
            .listeners
            .values()
            .map(|listener| listener.unfinished)
            .max()
            .unwrap_or(0);
        self.gauge.set(i64::try_from(most).unwrap_or(i64::MAX));
    }
}

fn key_of(addr: &Multiaddr) -> Option<ListenerKey> {
    let mut parts = addr.iter();
    let ipv4 = match parts.next()? {
        Protocol::Ip4(_) => true,
        Protocol::Ip6(_) => false,
        _ => return None,
    };
    let Protocol::Udp(port) = parts.next()? else {
        return None;
    };
    addr.iter()
        .any(|protocol| protocol == Protocol::WebRTCDirect)
        .then_some((ipv4, port))
}

/// `requested` (`/ip4/0.0.0.0/udp/0/webrtc-direct`) with the port the
/// listener reported in `reported`.
pub fn with_port_of(requested: &Multiaddr, reported: &Multiaddr) -> Option<Multiaddr> {
    let port = reported.iter().find_map(|protocol| match protocol {
        Protocol::Udp(port) => Some(port),
        _ => None,
    })?;
    Some(
        requested
            .iter()
            .map(|protocol| match protocol {
                Protocol::Udp(_) => Protocol::Udp(port),
                other => other,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    #[test]
    fn a_listener_is_restarted_once_it_holds_more_than_the_bound_and_starts_again_from_zero() {
        let mut registry = Registry::default();
        let mut guard = UnfinishedAddresses::new(3, &mut registry);
        let first = ListenerId::next();
        let requested = addr("/ip4/0.0.0.0/udp/0/webrtc-direct");
        let reported = addr(
            "/ip4/127.0.0.1/udp/4003/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
        );
        let listen_addr = with_port_of(&requested, &reported).expect("a port");
        guard.listening(first, listen_addr.clone());
        // Its other interfaces' addresses change nothing.
        guard.listening(first, listen_addr.clone());
        let local = addr(
            "/ip4/0.0.0.0/udp/4003/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
        );
        for _ in 0..3 {
            assert_eq!(guard.incoming(&local), None);
        }
        // One established connection took its address away.
        guard.established(&local);
        assert_eq!(guard.incoming(&local), None);
        assert_eq!(
            guard.incoming(&local),
            Some(Restart {
                id: first,
                listen_addr: addr("/ip4/0.0.0.0/udp/4003/webrtc-direct"),
            })
        );
        assert_eq!(guard.restarts.get(), 1);
        // Opened again under a new id: counted afresh.
        let second = ListenerId::next();
        guard.listening(second, listen_addr);
        for _ in 0..3 {
            assert_eq!(guard.incoming(&local), None);
        }
        assert_eq!(guard.gauge.get(), 3);
        // Other transports and other listeners are not counted here.
        assert_eq!(guard.incoming(&addr("/ip4/127.0.0.1/tcp/4003")), None);
        assert_eq!(
            guard.incoming(&addr("/ip6/::/udp/4003/webrtc-direct")),
            None
        );
        assert_eq!(guard.gauge.get(), 3);
    }
}
