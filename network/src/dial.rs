//! The dial rule: which of a record's addresses a peer dials, and who of
//! two peers dials the other.
//!
//! A record is a claim anybody can make: only its circuits through a
//! trusted relay are kept, plain or as their `/webrtc` twin, each rewritten
//! to reach the relay the way this peer does
//! ([`chat_protocol::discovery`]). The behaviour dials the plain circuits
//! (a relayed connection); the `/webrtc` twins, listed first, are for the
//! upgrade to a direct link that runs over it.
//!
//! Of two peers, the one with the smaller peer id dials at once; the other
//! waits at least [`FIRST_DIALER_GRACE`], so that a pair makes one circuit.

use std::time::Duration;

use chat_protocol::{PeerRecord, discovery::TrustedRelays};
use libp2p::{Multiaddr, PeerId, core::ConnectedPoint, multiaddr::Protocol};

/// Relays of the federation a peer trusts besides its own, at most. Each
/// is a connection the peer may open (to dial a circuit through it to a
/// peer reserved there), so a federation of fifty relays does not make
/// a page open fifty sockets: the first ones its relay lists are trusted,
/// and peers reserved on the others are still heard (the relays forward
/// their records and chat) but not dialed.
pub const MAX_FEDERATION_RELAYS: usize = 4;

/// The relays a peer dials circuits through: `home`, the relay it is
/// reserved on, and the first [`MAX_FEDERATION_RELAYS`] others of
/// `members` (the federation `home` vouches for, each with the address
/// this peer reaches it by).
pub fn federation_trust(
    home: (PeerId, Multiaddr),
    members: impl IntoIterator<Item = (PeerId, Multiaddr)>,
) -> TrustedRelays {
    let mut trusted = TrustedRelays::default();
    let home_id = home.0;
    trusted.insert_home(home.0, home.1);
    for (relay, addr) in members
        .into_iter()
        .filter(|(relay, _)| *relay != home_id)
        .take(MAX_FEDERATION_RELAYS)
    {
        trusted.insert(relay, addr);
    }
    trusted
}

/// The addresses kept from `record`: circuits through `trusted` relays
/// that pass `dialable`, `/webrtc` ones first, without repeats.
pub fn kept_addrs(
    record: &PeerRecord,
    trusted: &TrustedRelays,
    dialable: fn(&Multiaddr) -> bool,
) -> Vec<Multiaddr> {
    let mut addrs: Vec<Multiaddr> = Vec::new();
    for addr in record.circuits_via(trusted) {
        if dialable(&addr) && !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    addrs.sort_by_key(|addr| !is_webrtc(addr));
    addrs
}

/// How long the peer that does not dial first leaves the other to do so,
/// from the moment it learned of it, or lost its last connection to it,
/// before dialing on its own announcement tick. Without it, a tick that
/// fell while the first dialer's circuit was on its way made a second
/// circuit, and two relayed connections for one pair: two circuits to
/// renew, and gossipsub greets only the first (rust-libp2p#5097). A
/// circuit dial takes a few round trips through the relay.
pub const FIRST_DIALER_GRACE: Duration = Duration::from_secs(5);

/// Whether this peer dials `remote` as soon as it learns of it.
pub fn dials_first(local: &PeerId, remote: &PeerId) -> bool {
    local < remote
}

/// The relayed addresses to dial `peer` at: its plain circuits among
/// `kept`, or, when it announced none, the circuit through this peer's
/// own relay (a peer reserved there can be reached so, record or not), or
/// through each trusted relay when none is named the home one (guessing
/// through every federation relay would open a socket to each).
pub fn relayed_addrs(kept: &[Multiaddr], trusted: &TrustedRelays, peer: PeerId) -> Vec<Multiaddr> {
    let plain: Vec<Multiaddr> = kept.iter().filter(|a| !is_webrtc(a)).cloned().collect();
    if !plain.is_empty() {
        return plain;
    }
    let guesses: Vec<(&PeerId, &Multiaddr)> = match trusted.home() {
        Some(home) => vec![home],
        None => trusted.iter().collect(),
    };
    guesses
        .into_iter()
        .map(|(relay, addr)| {
            let mut addr = addr.clone();
            if addr.iter().last() != Some(Protocol::P2p(*relay)) {
                addr.push(Protocol::P2p(*relay));
            }
            addr.with(Protocol::P2pCircuit).with(Protocol::P2p(peer))
        })
        .collect()
}

/// How a connection reaches its peer: a `/webrtc` connection is direct
/// even though its address names the circuit its signaling went through.
pub fn path_of(endpoint: &ConnectedPoint) -> crate::Path {
    if is_webrtc(endpoint.get_remote_address()) || !endpoint.is_relayed() {
        crate::Path::Direct
    } else {
        crate::Path::Relayed
    }
}

/// Whether `endpoint` is a direct connection (see [`path_of`]); the rule
/// gossipsub uses to pick the connection that carries a peer's traffic.
pub fn is_direct(endpoint: &ConnectedPoint) -> bool {
    path_of(endpoint) == crate::Path::Direct
}

pub fn is_webrtc(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::WebRTC)
}

pub fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// The addresses this peer announces among its `own` listen addresses:
/// circuits that pass `announceable`, each ending in `/p2p/<me>`, those
/// through a `preferred` relay address first, at most as many as a record
/// holds.
pub fn announced_addrs<'a>(
    own: impl IntoIterator<Item = &'a Multiaddr>,
    me: PeerId,
    preferred: &[Multiaddr],
    announceable: fn(&Multiaddr) -> bool,
) -> Vec<Multiaddr> {
    let mut addrs: Vec<Multiaddr> = own
        .into_iter()
        .filter(|addr| is_circuit(addr) && announceable(addr))
        .map(|addr| with_peer_id(addr, me))
        .collect();
    let preferred: Vec<Vec<u8>> = preferred.iter().map(|a| a.to_vec()).collect();
    addrs.sort_by_key(|addr| {
        let bytes = addr.to_vec();
        !preferred.iter().any(|p| bytes.starts_with(p))
    });
    addrs.truncate(chat_protocol::MAX_RECORD_ADDRS);
    addrs
}

/// `addr` ending in `/p2p/<peer>`.
pub fn with_peer_id(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("valid multiaddr")
    }

    #[test]
    fn only_circuits_through_our_relay_are_kept_over_our_address_webrtc_first() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let relay = PeerId::random();
        let ours = addr(&format!("/ip4/127.0.0.1/tcp/4002/ws/p2p/{relay}"));
        let trusted: TrustedRelays = [(relay, ours.clone())].into_iter().collect();
        let record = PeerRecord::new(
            key.public(),
            vec![
                addr("/ip4/127.0.0.1/tcp/9/ws"),
                addr(&format!("/ip4/192.0.2.1/tcp/80/ws/p2p/{relay}/p2p-circuit")),
                addr(&format!(
                    "/ip4/192.0.2.1/tcp/80/ws/p2p/{relay}/p2p-circuit/webrtc"
                )),
                addr(&format!(
                    "/ip4/192.0.2.1/tcp/80/ws/p2p/{}/p2p-circuit",
                    PeerId::random()
                )),
            ],
        )
        .expect("valid");
        let kept = kept_addrs(&record, &trusted, |_| true);
        assert_eq!(
            kept,
            vec![
                addr(&format!("{ours}/p2p-circuit/webrtc/p2p/{peer}")),
                addr(&format!("{ours}/p2p-circuit/p2p/{peer}")),
            ]
        );
        assert_eq!(
            relayed_addrs(&kept, &trusted, peer),
            vec![addr(&format!("{ours}/p2p-circuit/p2p/{peer}"))]
        );
        let native = kept_addrs(&record, &trusted, |a| !is_webrtc(a));
        assert_eq!(native.len(), 1, "{native:?}");
    }

    #[test]
    fn a_peer_without_circuits_is_dialed_through_each_trusted_relay() {
        let relay = PeerId::random();
        let peer = PeerId::random();
        let trusted: TrustedRelays = [(relay, addr(&format!("/ip4/10.0.0.1/tcp/1/p2p/{relay}")))]
            .into_iter()
            .collect();
        assert_eq!(
            relayed_addrs(&[], &trusted, peer),
            vec![addr(&format!(
                "/ip4/10.0.0.1/tcp/1/p2p/{relay}/p2p-circuit/p2p/{peer}"
            ))]
        );
    }

    #[test]
    fn a_federation_is_trusted_up_to_its_bound_and_guesses_go_through_home_alone() {
        let home = PeerId::random();
        let home_addr = addr(&format!("/ip4/10.0.0.1/tcp/1/ws/p2p/{home}"));
        let members: Vec<(PeerId, Multiaddr)> = (0..MAX_FEDERATION_RELAYS + 2)
            .map(|i| {
                let relay = PeerId::random();
                (
                    relay,
                    addr(&format!("/ip4/10.0.1.{i}/tcp/1/ws/p2p/{relay}")),
                )
            })
            .chain([(home, home_addr.clone())])
            .collect();
        let trusted = federation_trust((home, home_addr.clone()), members.clone());
        assert_eq!(trusted.len(), 1 + MAX_FEDERATION_RELAYS, "{trusted:?}");
        assert_eq!(trusted.home(), Some((&home, &home_addr)));
        for (relay, _) in &members[..MAX_FEDERATION_RELAYS] {
            assert!(trusted.contains(relay), "the first members are trusted");
        }
        assert!(!trusted.contains(&members[MAX_FEDERATION_RELAYS].0));

        // A peer reserved on a member is dialed through that member, at
        // the address we reach the member by.
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let (member, member_addr) = &members[0];
        let record = PeerRecord::new(
            key.public(),
            vec![addr(&format!(
                "/ip4/192.0.2.9/tcp/9/ws/p2p/{member}/p2p-circuit"
            ))],
        )
        .expect("valid");
        let kept = kept_addrs(&record, &trusted, |_| true);
        assert_eq!(
            relayed_addrs(&kept, &trusted, peer),
            vec![addr(&format!("{member_addr}/p2p-circuit/p2p/{peer}"))]
        );
        // One that announced nothing: through home only.
        assert_eq!(
            relayed_addrs(&[], &trusted, peer),
            vec![addr(&format!("{home_addr}/p2p-circuit/p2p/{peer}"))]
        );
    }

    #[test]
    fn the_smaller_peer_id_dials_first() {
        let (a, b) = (PeerId::random(), PeerId::random());
        assert_ne!(dials_first(&a, &b), dials_first(&b, &a));
    }
}
