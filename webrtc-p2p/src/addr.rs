//! `/webrtc` addresses.

use libp2p_core::{Multiaddr, PeerId, multiaddr::Protocol};

/// `<relayed address>/webrtc/p2p/<peer>` split into the relayed address
/// (with the peer id) and the peer, if `addr` is a `/webrtc` address.
pub fn parse_webrtc_addr(addr: &Multiaddr) -> Option<(Multiaddr, PeerId)> {
    let mut relayed = Multiaddr::empty();
    let mut saw_circuit = false;
    let mut saw_webrtc = false;
    let mut peer = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::P2pCircuit => saw_circuit = true,
            Protocol::WebRTC if saw_circuit && !saw_webrtc => {
                saw_webrtc = true;
                continue;
            }
            Protocol::P2p(id) if saw_webrtc => peer = Some(id),
            _ if saw_webrtc => return None,
            _ => {}
        }
        relayed.push(protocol);
    }
    Some((relayed, peer?)).filter(|_| saw_webrtc)
}

/// `circuit` (one of our `/p2p-circuit` listen addresses) as the `/webrtc`
/// address peers dial us on: `<relay>/p2p-circuit/webrtc[/p2p/<us>]`.
pub fn webrtc_twin(circuit: &Multiaddr) -> Option<Multiaddr> {
    let mut twin = Multiaddr::empty();
    let mut found = false;
    for protocol in circuit.iter() {
        match protocol {
            Protocol::WebRTC => return None,
            Protocol::P2pCircuit => {
                twin.push(protocol);
                twin.push(Protocol::WebRTC);
                found = true;
            }
            other => twin.push(other),
        }
    }
    found.then_some(twin)
}

/// Whether `addr` is a circuit to `peer` through a relay, not its
/// `/webrtc` twin: `<relay>/p2p-circuit[/p2p/<peer>]`.
pub fn is_plain_circuit(addr: &Multiaddr, peer: &PeerId) -> bool {
    let mut after_circuit = false;
    for protocol in addr.iter() {
        match protocol {
            Protocol::WebRTC => return false,
            Protocol::P2pCircuit => after_circuit = true,
            Protocol::P2p(id) if after_circuit => return id == *peer,
            _ => {}
        }
    }
    after_circuit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_circuits_to_the_peer_are_told_from_other_addresses() {
        let (relay, peer) = (PeerId::random(), PeerId::random());
        let circuit = |tail: &str| -> Multiaddr {
            format!("/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}/p2p-circuit{tail}")
                .parse()
                .expect("valid")
        };
        assert!(is_plain_circuit(&circuit(&format!("/p2p/{peer}")), &peer));
        assert!(
            is_plain_circuit(&circuit(""), &peer),
            "the swarm adds the peer"
        );
        assert!(!is_plain_circuit(
            &circuit(&format!("/webrtc/p2p/{peer}")),
            &peer
        ));
        assert!(
            !is_plain_circuit(&circuit(&format!("/p2p/{relay}")), &peer),
            "another peer"
        );
        let direct: Multiaddr = format!("/ip4/1.2.3.4/tcp/1/ws/p2p/{peer}")
            .parse()
            .expect("valid");
        assert!(!is_plain_circuit(&direct, &peer));
    }

    #[test]
    fn webrtc_addresses_split_into_the_relayed_address_and_the_peer() {
        let relay = PeerId::random();
        let peer = PeerId::random();
        let addr: Multiaddr =
            format!("/ip4/198.51.100.1/tcp/4002/ws/p2p/{relay}/p2p-circuit/webrtc/p2p/{peer}")
                .parse()
                .expect("valid");
        let (relayed, found) = parse_webrtc_addr(&addr).expect("a /webrtc address");
        assert_eq!(found, peer);
        assert_eq!(
            relayed.to_string(),
            format!("/ip4/198.51.100.1/tcp/4002/ws/p2p/{relay}/p2p-circuit/p2p/{peer}")
        );
    }

    #[test]
    fn circuit_addresses_get_a_webrtc_twin_once() {
        let relay = PeerId::random();
        let circuit: Multiaddr = format!("/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}/p2p-circuit")
            .parse()
            .expect("valid");
        let twin = webrtc_twin(&circuit).expect("a circuit address");
        assert_eq!(
            twin.to_string(),
            format!("/ip4/1.2.3.4/tcp/1/ws/p2p/{relay}/p2p-circuit/webrtc")
        );
        assert_eq!(webrtc_twin(&twin), None, "already a /webrtc address");
        assert_eq!(
            webrtc_twin(&"/ip4/1.2.3.4/tcp/1".parse().expect("valid")),
            None
        );
    }

    #[test]
    fn other_addresses_are_not_webrtc() {
        let peer = PeerId::random();
        for addr in [
            format!("/ip4/1.2.3.4/tcp/1/ws/p2p/{peer}/p2p-circuit/p2p/{peer}"),
            format!("/ip4/1.2.3.4/udp/1/webrtc-direct/p2p/{peer}"),
            format!("/ip4/1.2.3.4/tcp/1/p2p/{peer}/p2p-circuit/webrtc"),
            format!("/webrtc/p2p/{peer}"),
        ] {
            assert!(
                parse_webrtc_addr(&addr.parse().expect("valid")).is_none(),
                "{addr}"
            );
        }
    }
}
