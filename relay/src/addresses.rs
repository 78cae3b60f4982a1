//! The relay's dialable addresses: what it prints, advertises in
//! reservations and serves to the page.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

/// A public IP address or DNS name given with `--external-address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalHost {
    Ip(IpAddr),
    Dns(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is neither an IP address nor a DNS name")]
pub struct InvalidHost(String);

impl FromStr for ExternalHost {
    type Err = InvalidHost;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if let Ok(ip) = value
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(Self::Ip(ip));
        }
        if is_dns_name(value) {
            return Ok(Self::Dns(value.trim_end_matches('.').to_ascii_lowercase()));
        }
        Err(InvalidHost(value.to_owned()))
    }
}

impl fmt::Display for ExternalHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Dns(name) => f.write_str(name),
        }
    }
}

impl ExternalHost {
    fn protocol(&self) -> Protocol<'static> {
        match self {
            Self::Ip(IpAddr::V4(ip)) => Protocol::Ip4(*ip),
            Self::Ip(IpAddr::V6(ip)) => Protocol::Ip6(*ip),
            Self::Dns(name) => Protocol::Dns(name.clone().into()),
        }
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and hyphens.
fn is_dns_name(value: &str) -> bool {
    let name = value.strip_suffix('.').unwrap_or(value);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // A name of digits and dots only is a mistyped IPv4 address.
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// The unit per-address limits count by: one IPv4 address, or one IPv6
/// /64. A /64 is what one customer (one home, one VM) is handed, so keying
/// on the whole IPv6 address would give one attacker 2^64 budgets.
/// IPv4-mapped IPv6 addresses (what a dual-stack socket reports for IPv4
/// peers) count as the IPv4 address they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpPrefix {
    V4(std::net::Ipv4Addr),
    /// The first 64 bits of the address.
    V6Slash64(u64),
}

impl IpPrefix {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6Slash64((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(ip) => write!(f, "{ip}"),
            Self::V6Slash64(high) => {
                let ip = std::net::Ipv6Addr::from_bits(u128::from(*high) << 64);
                write!(f, "{ip}/64")
            }
        }
    }
}

/// The prefix of the IP address `addr` starts with, if it starts with one.
pub fn prefix_of(addr: &Multiaddr) -> Option<IpPrefix> {
    ip_of(addr).map(IpPrefix::of)
}

/// `addr` with its host replaced by `host`, if it starts with an IP.
pub fn with_host(addr: &Multiaddr, host: &ExternalHost) -> Option<Multiaddr> {
    let mut parts = addr.iter();
    // An IP of one family takes the place of a listen address of the same
    // family only: the IPv6 listener's port may differ from the IPv4 one's.
    match (parts.next()?, host) {
        (Protocol::Ip4(_), ExternalHost::Ip(IpAddr::V6(_)))
        | (Protocol::Ip6(_), ExternalHost::Ip(IpAddr::V4(_))) => return None,
        (Protocol::Ip4(_) | Protocol::Ip6(_), _) => {}
        _ => return None,
    }
    Some(std::iter::once(host.protocol()).chain(parts).collect())
}

/// `addr` ending in `/p2p/<peer_id>`, as a user pastes it.
pub fn with_peer_id(addr: &Multiaddr, peer_id: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer_id)),
    }
}

/// The host part of `addr`, if it starts with an IP address.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}

/// Every address to print and advertise: the listen addresses as the
/// transports reported them (unspecified IPs already expanded to each
/// interface), then the same ports on every external host. Each ends in the
/// relay's peer id; duplicates are dropped, order is kept.
pub fn dialable(
    listen_addrs: &[Multiaddr],
    external_hosts: &[ExternalHost],
    peer_id: PeerId,
) -> Vec<Multiaddr> {
    let external = external_hosts.iter().flat_map(|host| {
        listen_addrs
            .iter()
            .filter_map(move |addr| with_host(addr, host))
    });
    let mut all: Vec<Multiaddr> = Vec::new();
    // External addresses first: on a cloud VM they are the ones to paste.
    for addr in external.chain(listen_addrs.iter().cloned()) {
        // An IPv6 link-local address needs an interface to be dialed,
        // which a multiaddr cannot name.
        if matches!(ip_of(&addr), Some(IpAddr::V6(ip)) if ip.is_unicast_link_local()) {
            continue;
        }
        let addr = with_peer_id(&addr, peer_id);
        if !all.contains(&addr) {
            all.push(addr);
        }
    }
    all
}

/// Which of the relay's transports an address is for, so the page and the
/// printout can label it.
pub fn transport_of(addr: &Multiaddr) -> &'static str {
    let mut kind = "tcp";
    let mut tls = false;
    for protocol in addr.iter() {
        match protocol {
            Protocol::Tls => tls = true,
            Protocol::Ws(_) if tls => kind = "websocket-secure",
            Protocol::Ws(_) => kind = "websocket",
            Protocol::Wss(_) => kind = "websocket-secure",
            Protocol::WebRTCDirect => kind = "webrtc-direct",
            Protocol::QuicV1 => kind = "quic",
            _ => {}
        }
    }
    kind
}

/// `stun:` URLs (RFC 7064) for ICE, one per host the relay is reachable on.
pub fn stun_urls(
    listen_addrs: &[Multiaddr],
    external_hosts: &[ExternalHost],
    stun_addr: SocketAddr,
) -> Vec<String> {
    let port = stun_addr.port();
    let mut urls: Vec<String> = external_hosts
        .iter()
        .map(|host| format!("stun:{host}:{port}"))
        .collect();
    for ip in listen_addrs.iter().filter_map(ip_of) {
        let host = ExternalHost::Ip(ip);
        let url = format!("stun:{host}:{port}");
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("valid multiaddr")
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_prefix_and_mapped_ipv4_is_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            IpPrefix::of(ip("2001:db8:1:2::1")),
            IpPrefix::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            IpPrefix::of(ip("2001:db8:1:2::1")),
            IpPrefix::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            IpPrefix::of(ip("::ffff:192.0.2.7")),
            IpPrefix::of(ip("192.0.2.7"))
        );
        assert_ne!(IpPrefix::of(ip("192.0.2.7")), IpPrefix::of(ip("192.0.2.8")));
        assert_eq!(
            IpPrefix::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn external_hosts_parse_as_ip_or_dns_name() {
        assert_eq!(
            "203.0.113.9".parse(),
            Ok(ExternalHost::Ip("203.0.113.9".parse().expect("ip")))
        );
        assert_eq!(
            "[2001:db8::1]".parse(),
            Ok(ExternalHost::Ip("2001:db8::1".parse().expect("ip")))
        );
        assert_eq!(
            "Relay.Example.org.".parse(),
            Ok(ExternalHost::Dns("relay.example.org".into()))
        );
        for bad in [
            "",
            "a b",
            "-x.org",
            "x..org",
            "300.1.1.1",
            "http://x.org",
            "x_y.org",
        ] {
            assert!(
                bad.parse::<ExternalHost>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn external_host_replaces_the_ip_and_keeps_ports_and_certhash() {
        let peer_id = PeerId::random();
        let listen = [
            addr("/ip4/10.0.0.5/tcp/4001"),
            addr(
                "/ip4/10.0.0.5/udp/4003/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
            ),
        ];
        let hosts = [
            "203.0.113.9".parse().expect("ip"),
            "relay.example.org".parse().expect("dns"),
        ];
        let all = dialable(&listen, &hosts, peer_id);
        assert_eq!(all.len(), 6);
        assert_eq!(
            all[0],
            addr(&format!("/ip4/203.0.113.9/tcp/4001/p2p/{peer_id}"))
        );
        assert_eq!(
            all[3],
            addr(&format!(
                "/dns/relay.example.org/udp/4003/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g/p2p/{peer_id}"
            ))
        );
        assert!(
            all.iter()
                .all(|a| matches!(a.iter().last(), Some(Protocol::P2p(p)) if p == peer_id))
        );
    }

    #[test]
    fn duplicates_are_dropped() {
        let peer_id = PeerId::random();
        let listen = [addr("/ip4/203.0.113.9/tcp/4001")];
        let hosts = ["203.0.113.9".parse().expect("ip")];
        assert_eq!(dialable(&listen, &hosts, peer_id).len(), 1);
    }

    #[test]
    fn stun_urls_bracket_ipv6() {
        let urls = stun_urls(
            &[addr("/ip6/::1/tcp/1"), addr("/ip4/127.0.0.1/tcp/1")],
            &["relay.example.org".parse().expect("dns")],
            "0.0.0.0:3478".parse().expect("socket addr"),
        );
        assert_eq!(
            urls,
            [
                "stun:relay.example.org:3478",
                "stun:[::1]:3478",
                "stun:127.0.0.1:3478"
            ]
        );
    }

    #[test]
    fn transports_are_named() {
        assert_eq!(transport_of(&addr("/ip4/1.2.3.4/tcp/1/ws")), "websocket");
        assert_eq!(
            transport_of(&addr("/dns4/relay.example.org/tcp/443/tls/ws")),
            "websocket-secure"
        );
        assert_eq!(transport_of(&addr("/ip4/1.2.3.4/tcp/1")), "tcp");
        assert_eq!(transport_of(&addr("/ip4/1.2.3.4/udp/1/quic-v1")), "quic");
    }
}
