//! Which of this page's addresses its discovery record carries.
//!
//! The chat network announces the circuits this predicate lets through
//! (`chat_network::Config::announceable`).
//!
//! The relay client reports a circuit address through every address the
//! relay has, its TCP and QUIC ones included, and the `/webrtc` transport a
//! twin of each. A browser can open none through TCP or QUIC, and the other
//! browsers are the ones reading the record: it carries only circuits
//! through the relay's `/ws`, `/wss` and `/webrtc-direct` addresses, and
//! their `/webrtc` twins.

use libp2p::{Multiaddr, multiaddr::Protocol};

/// Whether `addr` is a circuit address (plain or `/webrtc`) whose relay
/// part a browser can dial: it goes over `/ws`, `/wss` or `/webrtc-direct`.
pub fn is_browser_dialable_circuit(addr: &Multiaddr) -> bool {
    relay_transport(addr).is_some()
}

/// Like [`is_browser_dialable_circuit`], for a page served over `https:`:
/// the browser refuses it a plain `ws:` WebSocket (mixed content), so only
/// circuits through `/wss` (or `/tls/ws`) and `/webrtc-direct` are left.
pub fn is_secure_page_dialable_circuit(addr: &Multiaddr) -> bool {
    relay_transport(addr).is_some_and(|transport| transport != RelayTransport::PlainWebSocket)
}

/// The browser transports a relay can be reached by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayTransport {
    PlainWebSocket,
    SecureWebSocket,
    WebRtcDirect,
}

/// The browser transport of the relay part of a circuit address (before
/// `/p2p-circuit`), if it is a circuit and has one.
fn relay_transport(addr: &Multiaddr) -> Option<RelayTransport> {
    if !addr.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    browser_transport(addr)
}

/// The browser transport of `addr` (of its relay part, for a circuit):
/// `/wss` and `/tls/ws` are secure WebSockets, `/ws` a plain one.
pub(crate) fn browser_transport(addr: &Multiaddr) -> Option<RelayTransport> {
    let relay_part = || addr.iter().take_while(|p| *p != Protocol::P2pCircuit);
    let tls = relay_part().any(|p| p == Protocol::Tls);
    relay_part().find_map(|p| match p {
        Protocol::Wss(_) => Some(RelayTransport::SecureWebSocket),
        Protocol::Ws(_) if tls => Some(RelayTransport::SecureWebSocket),
        Protocol::Ws(_) => Some(RelayTransport::PlainWebSocket),
        Protocol::WebRTCDirect => Some(RelayTransport::WebRtcDirect),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use chat_network::dial::announced_addrs;
    use libp2p::PeerId;

    use super::*;

    const RELAY: &str = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    const CERTHASH: &str = "uEiDikp5KVUgkLta1EjUN-IKbHk-dUBg8VzKgf5nXxLK46w";

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("a multiaddr")
    }

    #[test]
    fn only_circuits_through_browser_transports_are_announced_the_connected_one_first() {
        let me = PeerId::random();
        let ws = format!("/ip4/203.0.113.7/tcp/4002/ws/p2p/{RELAY}");
        let direct =
            format!("/ip4/203.0.113.7/udp/4003/webrtc-direct/certhash/{CERTHASH}/p2p/{RELAY}");
        let listeners = [
            addr(&format!(
                "/ip4/203.0.113.7/tcp/4001/p2p/{RELAY}/p2p-circuit"
            )),
            addr(&format!(
                "/ip4/203.0.113.7/tcp/4001/p2p/{RELAY}/p2p-circuit/webrtc"
            )),
            addr(&format!(
                "/ip4/203.0.113.7/udp/4004/quic-v1/p2p/{RELAY}/p2p-circuit"
            )),
            addr(&format!("{ws}/p2p-circuit")),
            addr(&format!("{ws}/p2p-circuit/webrtc")),
            addr(&format!(
                "/dns/relay.example/tcp/443/wss/p2p/{RELAY}/p2p-circuit"
            )),
            addr(&format!("{direct}/p2p-circuit")),
            addr(&format!("{direct}/p2p-circuit/webrtc")),
            // Not a circuit: never ours to announce.
            addr(&ws),
            addr("/webrtc"),
        ];
        let announced = announced_addrs(
            &listeners,
            me,
            &[addr(&direct)],
            is_browser_dialable_circuit,
        );
        let expected: Vec<Multiaddr> = [
            format!("{direct}/p2p-circuit/p2p/{me}"),
            format!("{direct}/p2p-circuit/webrtc/p2p/{me}"),
            format!("{ws}/p2p-circuit/p2p/{me}"),
            format!("{ws}/p2p-circuit/webrtc/p2p/{me}"),
            format!("/dns/relay.example/tcp/443/wss/p2p/{RELAY}/p2p-circuit/p2p/{me}"),
        ]
        .iter()
        .map(|text| addr(text))
        .collect();
        assert_eq!(announced, expected);
    }

    #[test]
    fn a_secure_page_dials_circuits_through_secure_websockets_and_webrtc_direct_only() {
        let me = PeerId::random();
        let circuit = |relay: &str| addr(&format!("{relay}/p2p/{RELAY}/p2p-circuit/p2p/{me}"));
        let plain = circuit("/ip4/203.0.113.7/tcp/4002/ws");
        let wss = circuit("/dns/relay.example/tcp/443/wss");
        let tls_ws = circuit("/dns/relay.example/tcp/443/tls/sni/relay.example/ws");
        let direct = circuit(&format!(
            "/ip4/203.0.113.7/udp/4003/webrtc-direct/certhash/{CERTHASH}"
        ));
        let tcp = circuit("/ip4/203.0.113.7/tcp/4001");
        for (circuit, from_http, from_https) in [
            (&plain, true, false),
            (&wss, true, true),
            (&tls_ws, true, true),
            (&direct, true, true),
            (&tcp, false, false),
        ] {
            assert_eq!(is_browser_dialable_circuit(circuit), from_http, "{circuit}");
            assert_eq!(
                is_secure_page_dialable_circuit(circuit),
                from_https,
                "{circuit}"
            );
        }
        let webrtc_twin =
            addr(&format!("{plain}").replace("/p2p-circuit/", "/p2p-circuit/webrtc/"));
        assert!(!is_secure_page_dialable_circuit(&webrtc_twin));
    }

    #[test]
    fn ws_after_the_circuit_does_not_make_a_tcp_relay_dialable() {
        // Only the relay's own part counts.
        let tricky = addr(&format!(
            "/ip4/203.0.113.7/tcp/4001/p2p/{RELAY}/p2p-circuit/ws"
        ));
        assert!(!is_browser_dialable_circuit(&tricky));
    }
}
