//! The relay attacks no one: it dials only global unicast addresses.
//!
//! The relay dials out for one reason, AutoNAT's dial-backs, and the client
//! names the address. Without a check, anybody could have the relay open
//! connections to its own loopback services, its cloud provider's metadata
//! service (169.254.169.254), or the private network it sits in.
//! [`GlobalDialsOnly`] denies every outbound dial that names an address
//! that is not global unicast (and every DNS name, which could resolve to
//! one); AutoNAT then answers the client that the dial-back failed.
//!
//! `--dial-back-non-global` lifts the rule, for tests on one machine.
//!
//! The relays of a federation are the exception: their addresses come from
//! the operator (`--federate`) or from the members themselves, and two
//! relays on one private network or one host are a fair setup, so a dial
//! of a listed member may name any address.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    task::{Context, Poll},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    multiaddr::Protocol,
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm, dummy,
    },
};

use crate::{private::authorized_peers::AuthorizedPeers, refusals::Refusals};

/// Why a dial was denied.
#[derive(Debug, thiserror::Error)]
#[error("the relay dials only global unicast addresses, not {addr}")]
pub struct NotGlobal {
    pub addr: Multiaddr,
}

/// Denies dials to addresses that are not global unicast, unless `allow_any`.
#[derive(Debug)]
pub struct GlobalDialsOnly {
    allow_any: bool,
    refusals: Refusals,
    /// The federation's relays, dialed wherever they are.
    members: Option<AuthorizedPeers>,
}

impl GlobalDialsOnly {
    pub fn new(allow_any: bool, refusals: Refusals) -> Self {
        Self {
            allow_any,
            refusals,
            members: None,
        }
    }

    /// Lets dials of the relays listed in `members` name any address.
    pub fn except_members(mut self, members: Option<AuthorizedPeers>) -> Self {
        self.members = members;
        self
    }
}

/// Whether `addr` starts with a global unicast IP address.
pub fn is_global(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => is_global_v4(ip),
        Some(Protocol::Ip6(ip)) => is_global_v6(ip),
        _ => false,
    }
}

pub fn is_global_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_global_v4(ip),
        IpAddr::V6(ip) => is_global_v6(ip),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata services
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    let segments = ip.segments();
    // Global unicast is 2000::/3; of it, leave out documentation
    // (2001:db8::/32), 6to4 (2002::/16) and the IETF assignments
    // (2001::/23, Teredo among them), which embed or reach IPv4 addresses
    // this check would not see.
    (segments[0] & 0xe000) == 0x2000
        && !(segments[0] == 0x2001 && segments[1] == 0x0db8)
        && segments[0] != 0x2002
        && !(segments[0] == 0x2001 && segments[1] < 0x0200)
}

impl NetworkBehaviour for GlobalDialsOnly {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if self.allow_any {
            return Ok(Vec::new());
        }
        if let (Some(peer), Some(members)) = (maybe_peer, &self.members)
            && members.contains(&peer)
        {
            return Ok(Vec::new());
        }
        if let Some(addr) = addresses.iter().find(|addr| !is_global(addr)) {
            self.refusals.refused("dial-not-global", || {
                format!("did not dial {addr} (peer {maybe_peer:?}): not a global unicast address")
            });
            return Err(ConnectionDenied::new(NotGlobal { addr: addr.clone() }));
        }
        Ok(Vec::new())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
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

    fn on_swarm_event(&mut self, _event: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(text: &str) -> bool {
        is_global(&text.parse().expect("valid multiaddr"))
    }

    #[test]
    fn public_addresses_are_global() {
        assert!(global("/ip4/8.8.8.8/tcp/4001"));
        assert!(global("/ip4/198.51.99.1/udp/1/quic-v1"));
        assert!(global("/ip6/2a00:1450:4001:80b::200e/tcp/4001"));
    }

    #[test]
    fn loopback_private_metadata_and_names_are_not() {
        for addr in [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/10.1.2.3/tcp/22",
            "/ip4/172.16.0.1/tcp/22",
            "/ip4/192.168.1.1/tcp/80",
            "/ip4/169.254.169.254/tcp/80",
            "/ip4/100.64.0.1/tcp/80",
            "/ip4/0.0.0.0/tcp/80",
            "/ip4/224.0.0.1/udp/5353",
            "/ip4/255.255.255.255/udp/1",
            "/ip4/192.0.2.1/tcp/1",
            "/ip6/::1/tcp/4001",
            "/ip6/::/tcp/4001",
            "/ip6/fe80::1/tcp/4001",
            "/ip6/fd00::1/tcp/4001",
            "/ip6/ff02::1/udp/1",
            "/ip6/2001:db8::1/tcp/1",
            "/ip6/2002:7f00:1::/tcp/1",
            "/ip6/::ffff:127.0.0.1/tcp/1",
            "/dns4/localhost/tcp/80",
            "/dns/metadata.google.internal/tcp/80",
        ] {
            assert!(!global(addr), "{addr} counted as global");
        }
    }
}
