//! Reading the relay address a user pasted, and picking the one to prefill.

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

/// A relay address a browser can dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddr {
    pub addr: Multiaddr,
    pub peer_id: PeerId,
}

/// Why a pasted address cannot be used to reach a relay, in words for the
/// person who pasted it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayAddrError {
    #[error("Paste the relay's address first (it starts with /ip4/, /ip6/ or /dns).")]
    Empty,
    #[error("\"{input}\" is not a valid multiaddr: {reason}.")]
    Malformed { input: String, reason: String },
    #[error("The address must end in /p2p/<the relay's peer id>, as the relay prints it.")]
    NoPeerId,
    #[error("This is a circuit address of a peer behind a relay; paste the relay's own address.")]
    Circuit,
    #[error(
        "A browser cannot open raw {transport} connections: use the relay's /ws or /webrtc-direct address."
    )]
    Unsupported { transport: &'static str },
    #[error(
        "A /webrtc-direct address needs its /certhash/...: copy the whole line the relay printed."
    )]
    NoCerthash,
}

impl RelayAddr {
    pub fn parse(input: &str) -> Result<Self, RelayAddrError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(RelayAddrError::Empty);
        }
        let addr: Multiaddr =
            input.parse().map_err(
                |error: libp2p::multiaddr::Error| RelayAddrError::Malformed {
                    input: input.to_owned(),
                    reason: error.to_string(),
                },
            )?;
        if addr.iter().any(|protocol| protocol == Protocol::P2pCircuit) {
            return Err(RelayAddrError::Circuit);
        }
        let Some(Protocol::P2p(peer_id)) = addr.iter().last() else {
            return Err(RelayAddrError::NoPeerId);
        };
        match browser_transport(&addr) {
            Transport::WebSocket => {}
            Transport::WebRtcDirect { certhash: true } => {}
            Transport::WebRtcDirect { certhash: false } => return Err(RelayAddrError::NoCerthash),
            Transport::Other(transport) => return Err(RelayAddrError::Unsupported { transport }),
        }
        Ok(Self { addr, peer_id })
    }
}

enum Transport {
    WebSocket,
    WebRtcDirect { certhash: bool },
    Other(&'static str),
}

fn browser_transport(addr: &Multiaddr) -> Transport {
    let mut transport = Transport::Other("IP");
    for protocol in addr.iter() {
        transport = match protocol {
            Protocol::Ws(_) | Protocol::Wss(_) => Transport::WebSocket,
            Protocol::WebRTCDirect => Transport::WebRtcDirect { certhash: false },
            Protocol::Certhash(_) => match transport {
                Transport::WebRtcDirect { .. } => Transport::WebRtcDirect { certhash: true },
                other => other,
            },
            Protocol::Tcp(_) => Transport::Other("TCP"),
            Protocol::Udp(_) => Transport::Other("UDP"),
            Protocol::QuicV1 | Protocol::Quic => Transport::Other("QUIC"),
            Protocol::WebTransport => Transport::Other("WebTransport"),
            _ => continue,
        };
    }
    transport
}

/// Picks the address to prefill from the relay's list, for a page served
/// from `page_host`: a WebSocket address on the host the page came from
/// (reachable, and allowed from an `http:` page), else any WebSocket one,
/// else WebRTC-direct.
pub fn prefill<'a>(addrs: impl IntoIterator<Item = &'a str>, page_host: &str) -> Option<&'a str> {
    let usable: Vec<&str> = addrs
        .into_iter()
        .filter(|addr| RelayAddr::parse(addr).is_ok())
        .collect();
    let websocket = |addr: &&&'a str| addr.contains("/ws/") || addr.contains("/wss/");
    let on_host = |addr: &&&'a str| {
        host_of(addr).is_some_and(|host| host == page_host.trim_matches(['[', ']']))
    };
    usable
        .iter()
        .find(|addr| websocket(addr) && on_host(addr))
        .or_else(|| usable.iter().find(websocket))
        .or_else(|| usable.first())
        .copied()
}

fn host_of(addr: &str) -> Option<String> {
    let addr: Multiaddr = addr.parse().ok()?;
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(ip.to_string()),
        Protocol::Ip6(ip) => Some(ip.to_string()),
        Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => Some(name.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    #[test]
    fn websocket_and_webrtc_direct_addresses_are_accepted() {
        for addr in [
            format!("/ip4/203.0.113.7/tcp/4002/ws/p2p/{ID}"),
            format!("/dns/relay.example.org/tcp/443/wss/p2p/{ID}"),
            format!(
                "/ip4/203.0.113.7/udp/4003/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g/p2p/{ID}"
            ),
        ] {
            let parsed =
                RelayAddr::parse(&format!("  {addr}\n")).unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert_eq!(parsed.peer_id.to_string(), ID);
        }
    }

    #[test]
    fn each_wrong_address_gets_its_own_explanation() {
        assert_eq!(RelayAddr::parse(" "), Err(RelayAddrError::Empty));
        assert!(matches!(
            RelayAddr::parse("/ip4/1.2.3.4/tcp/notaport/ws"),
            Err(RelayAddrError::Malformed { .. })
        ));
        assert!(matches!(
            RelayAddr::parse("hello"),
            Err(RelayAddrError::Malformed { .. })
        ));
        assert_eq!(
            RelayAddr::parse("/ip4/1.2.3.4/tcp/1/ws"),
            Err(RelayAddrError::NoPeerId)
        );
        assert_eq!(
            RelayAddr::parse(&format!("/ip4/1.2.3.4/tcp/4001/p2p/{ID}")),
            Err(RelayAddrError::Unsupported { transport: "TCP" })
        );
        assert_eq!(
            RelayAddr::parse(&format!("/ip4/1.2.3.4/udp/1/webrtc-direct/p2p/{ID}")),
            Err(RelayAddrError::NoCerthash)
        );
        assert_eq!(
            RelayAddr::parse(&format!(
                "/ip4/1.2.3.4/tcp/1/ws/p2p/{ID}/p2p-circuit/p2p/{ID}"
            )),
            Err(RelayAddrError::Circuit)
        );
    }

    #[test]
    fn malformed_message_quotes_the_input_as_text() {
        let error = RelayAddr::parse("<script>").expect_err("malformed");
        assert!(
            error
                .to_string()
                .contains("\"<script>\" is not a valid multiaddr"),
            "{error}"
        );
    }

    #[test]
    fn prefill_prefers_websocket_on_the_page_host() {
        let addrs = [
            format!(
                "/ip4/203.0.113.7/udp/4003/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g/p2p/{ID}"
            ),
            format!("/ip4/10.0.0.5/tcp/4002/ws/p2p/{ID}"),
            format!("/ip4/203.0.113.7/tcp/4002/ws/p2p/{ID}"),
            format!("/ip4/203.0.113.7/tcp/4001/p2p/{ID}"),
        ];
        let refs = addrs.iter().map(String::as_str);
        assert_eq!(
            prefill(refs.clone(), "203.0.113.7"),
            Some(addrs[2].as_str())
        );
        assert_eq!(
            prefill(refs.clone(), "chat.example.org"),
            Some(addrs[1].as_str())
        );
        assert_eq!(prefill(refs.clone().take(1), "x"), Some(addrs[0].as_str()));
        assert_eq!(prefill(refs.skip(3), "x"), None, "TCP is never prefilled");
    }
}
