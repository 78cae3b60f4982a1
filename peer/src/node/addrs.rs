//! What the node makes of multiaddrs: circuit or direct, which relay,
//! whether it has a transport for them.

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

pub(super) use chat_network::dial::path_of;

pub(super) fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// Whether this node has a transport for `addr`: TCP or QUIC, directly or
/// through a relay reached that way; not the browsers' WebRTC and
/// WebSocket.
pub(super) fn is_usable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| {
        matches!(
            p,
            Protocol::WebRTC
                | Protocol::WebRTCDirect
                | Protocol::Ws(_)
                | Protocol::Wss(_)
                | Protocol::WebTransport
                | Protocol::Certhash(_)
        )
    })
}

pub(super) fn with_peer_id(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("valid multiaddr")
    }

    #[test]
    fn browser_only_addresses_are_not_dialed() {
        let relay = PeerId::random();
        let peer = PeerId::random();
        assert!(is_usable(&addr("/ip4/1.2.3.4/tcp/1")));
        assert!(is_usable(&addr("/ip4/1.2.3.4/udp/1/quic-v1")));
        assert!(!is_usable(&addr(&format!(
            "/ip4/1.2.3.4/tcp/4002/ws/p2p/{relay}/p2p-circuit/webrtc/p2p/{peer}"
        ))));
    }
}
