//! The dial address of a WebRTC-direct server.

use std::net::{IpAddr, SocketAddr};

use libp2p_core::{Multiaddr, multiaddr::Protocol};

use crate::Fingerprint;

/// `/ip4|ip6/<ip>/udp/<port>/webrtc-direct/certhash/<hash>[/p2p/<id>]` as
/// the server's socket address and certificate fingerprint; `None` for
/// any other address.
pub fn parse_webrtc_dial_addr(addr: &Multiaddr) -> Option<(SocketAddr, Fingerprint)> {
    let mut parts = addr.iter();
    let ip = match parts.next()? {
        Protocol::Ip4(ip) => IpAddr::V4(ip),
        Protocol::Ip6(ip) => IpAddr::V6(ip),
        _ => return None,
    };
    let Protocol::Udp(port) = parts.next()? else {
        return None;
    };
    let Protocol::WebRTCDirect = parts.next()? else {
        return None;
    };
    let Protocol::Certhash(hash) = parts.next()? else {
        return None;
    };
    let fingerprint = Fingerprint::try_from_multihash(hash)?;
    match parts.next() {
        None | Some(Protocol::P2p(_)) if parts.next().is_none() => {}
        _ => return None,
    }
    Some((SocketAddr::new(ip, port), fingerprint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certhash() -> String {
        let hash = Fingerprint::raw([3; 32]).to_multihash();
        Multiaddr::empty()
            .with(Protocol::Certhash(hash))
            .to_string()
    }

    #[test]
    fn ipv4_and_ipv6_with_and_without_peer_id() {
        let peer = "/p2p/12D3KooWGQmdpzHXCqLno4mMxWXKNFQHASBeF99gTm2JR8Vu5Bdc";
        for (text, expected) in [
            (
                format!("/ip4/127.0.0.1/udp/39901/webrtc-direct{}", certhash()),
                "127.0.0.1:39901",
            ),
            (
                format!("/ip6/::1/udp/4003/webrtc-direct{}{peer}", certhash()),
                "[::1]:4003",
            ),
        ] {
            let addr: Multiaddr = text.parse().expect("multiaddr");
            let (socket, fingerprint) = parse_webrtc_dial_addr(&addr).expect("a dial address");
            assert_eq!(socket.to_string(), expected);
            assert_eq!(fingerprint, Fingerprint::raw([3; 32]));
        }
    }

    #[test]
    fn other_addresses_are_refused() {
        for text in [
            "/ip4/127.0.0.1/udp/1/webrtc-direct".to_owned(),
            format!("/ip4/127.0.0.1/tcp/1/webrtc-direct{}", certhash()),
            format!("/dns4/example.com/udp/1/webrtc-direct{}", certhash()),
            format!(
                "/ip4/127.0.0.1/udp/1/webrtc-direct{}/p2p-circuit",
                certhash()
            ),
        ] {
            let addr: Multiaddr = text.parse().expect("multiaddr");
            assert_eq!(parse_webrtc_dial_addr(&addr), None, "{text}");
        }
    }
}
