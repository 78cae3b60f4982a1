//! What the node makes of multiaddrs: circuit or direct, which relay,
//! whether it has a transport for them.

use libp2p::{Multiaddr, multiaddr::Protocol};

pub(super) use chat_network::dial::{is_circuit, path_of, with_peer_id};

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

#[cfg(test)]
mod tests {
    use libp2p::PeerId;

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
