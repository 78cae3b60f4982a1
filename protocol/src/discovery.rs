//! The discovery record: who a peer is and where it can be dialed.
//!
//! Wire format: the `Peer` message of libp2p's pubsub peer discovery
//! (`discovery.proto` beside this file), published as the data of a
//! gossipsub message on [`crate::topics::DISCOVERY`]. The record itself is
//! not signed; the gossipsub message carrying it is (strict signing), and a
//! record is only valid when that signature's author is the peer the record
//! describes. [`PeerRecord::decode_signed`] checks exactly that.
//!
//! # The dial rule
//!
//! A record is a claim anybody can make, so its addresses are not dialed
//! as they stand: a forged `/ip4/VICTIM/tcp/80/ws/p2p/<relay>/p2p-circuit`
//! would make every browser that reads it open a socket to VICTIM. A peer
//! dials only the circuits a record names through a relay it trusts
//! ([`TrustedRelays`]: the relay it connected to, and those that relay
//! vouches for), plain or as their `/webrtc` twin, and it reaches that
//! relay by the address it itself uses for it, never by the host and port
//! in the record ([`PeerRecord::circuits_via`]). The relay refuses to
//! forward a record with any other address ([`PeerRecord::check_circuits`]),
//! so both sides apply one rule.

use std::collections::HashMap;

use libp2p::{Multiaddr, PeerId, identity::PublicKey, multiaddr::Protocol};
use prost::Message as _;

/// Largest encoded record accepted. A browser announces a handful of
/// circuit addresses of about 150 bytes each; 4 KiB leaves room for a few
/// relays without letting a record grow the relay's buffers.
pub const MAX_RECORD_BYTES: usize = 4096;

/// Most addresses one record may carry.
pub const MAX_RECORD_ADDRS: usize = 32;

/// A peer and the addresses it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    public_key: PublicKey,
    addrs: Vec<Multiaddr>,
}

/// Why bytes are not a valid [`PeerRecord`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("discovery record is {len} bytes; the limit is {max} bytes", max = MAX_RECORD_BYTES)]
    TooLarge { len: usize },
    #[error("discovery record is not a valid protobuf Peer message: {0}")]
    Malformed(String),
    #[error("discovery record has no valid public key: {0}")]
    InvalidPublicKey(String),
    #[error("discovery record carries {count} addresses; the limit is {max}", max = MAX_RECORD_ADDRS)]
    TooManyAddrs { count: usize },
    #[error("address #{index} of the discovery record is not a multiaddr: {reason}")]
    InvalidAddr { index: usize, reason: String },
    #[error(
        "address #{index} of the discovery record ends in peer {found}, not in the peer it describes"
    )]
    ForeignAddr { index: usize, found: PeerId },
    #[error("discovery record is not signed (gossipsub message without a source)")]
    Unsigned,
    #[error("discovery record describes peer {described} but was published by {publisher}")]
    PublisherMismatch {
        described: PeerId,
        publisher: PeerId,
    },
    #[error("address #{index} of the discovery record is not one peers dial: {reason}")]
    Undialable { index: usize, reason: AddrRefusal },
}

/// Why a record's address is not one a peer dials (see the module's dial
/// rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrRefusal {
    #[error("{addr} is not a circuit address (`.../p2p/<relay>/p2p-circuit`)")]
    NotACircuit { addr: Multiaddr },
    #[error("{addr} goes through relay {relay}, which is not trusted")]
    UntrustedRelay { addr: Multiaddr, relay: PeerId },
    #[error("{addr} has more after `/p2p-circuit` than `/webrtc` and the peer's id")]
    UnexpectedTail { addr: Multiaddr },
}

/// A circuit named by a record: through which relay, and whether it is the
/// `/webrtc` twin (a direct browser-to-browser connection signaled over
/// that circuit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Circuit {
    pub relay: PeerId,
    pub webrtc: bool,
}

impl Circuit {
    /// Reads `addr`, an address of `peer`, as
    /// `<any>/p2p/<relay>/p2p-circuit[/webrtc][/p2p/<peer>]`. What comes
    /// before `/p2p/<relay>` is ignored: a peer reaches the relay its own
    /// way. `trusted` says which relays may carry the circuit.
    pub fn parse(
        addr: &Multiaddr,
        peer: PeerId,
        trusted: impl Fn(&PeerId) -> bool,
    ) -> Result<Self, AddrRefusal> {
        let protocols: Vec<Protocol> = addr.iter().collect();
        let not_a_circuit = || AddrRefusal::NotACircuit { addr: addr.clone() };
        let at = protocols
            .iter()
            .position(|p| *p == Protocol::P2pCircuit)
            .ok_or_else(not_a_circuit)?;
        let relay = match at.checked_sub(1).map(|before| &protocols[before]) {
            Some(Protocol::P2p(relay)) => *relay,
            _ => return Err(not_a_circuit()),
        };
        if !trusted(&relay) {
            return Err(AddrRefusal::UntrustedRelay {
                addr: addr.clone(),
                relay,
            });
        }
        let webrtc = match &protocols[at + 1..] {
            [] => false,
            [Protocol::P2p(id)] if *id == peer => false,
            [Protocol::WebRTC] => true,
            [Protocol::WebRTC, Protocol::P2p(id)] if *id == peer => true,
            _ => return Err(AddrRefusal::UnexpectedTail { addr: addr.clone() }),
        };
        Ok(Self { relay, webrtc })
    }

    /// The address that dials this circuit to `peer` over `relay_addr`,
    /// the address this peer itself uses for the relay.
    pub fn via(&self, relay_addr: &Multiaddr, peer: PeerId) -> Multiaddr {
        let mut addr = relay_addr.clone();
        if addr.iter().last() != Some(Protocol::P2p(self.relay)) {
            addr.push(Protocol::P2p(self.relay));
        }
        addr.push(Protocol::P2pCircuit);
        if self.webrtc {
            addr.push(Protocol::WebRTC);
        }
        addr.with(Protocol::P2p(peer))
    }
}

/// The relays a peer dials circuits through, each with the address the
/// peer itself reaches it by: the relay it connected to and, once relays
/// federate, the relays that one vouches for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedRelays {
    relays: HashMap<PeerId, Multiaddr>,
    /// The relay this peer is reserved on, if it said which: a peer that
    /// announced no circuit is dialed through it alone.
    home: Option<PeerId>,
}

impl TrustedRelays {
    /// Trusts `relay`, reached at `addr`, as the relay this peer is
    /// reserved on.
    pub fn insert_home(&mut self, relay: PeerId, addr: Multiaddr) {
        self.relays.insert(relay, addr);
        self.home = Some(relay);
    }

    /// The relay this peer is reserved on, and how it reaches it.
    pub fn home(&self) -> Option<(&PeerId, &Multiaddr)> {
        let home = self.home.as_ref()?;
        Some((home, self.relays.get(home)?))
    }

    pub fn len(&self) -> usize {
        self.relays.len()
    }

    /// Trusts `relay`, reached at `addr`.
    pub fn insert(&mut self, relay: PeerId, addr: Multiaddr) {
        self.relays.insert(relay, addr);
    }

    pub fn contains(&self, relay: &PeerId) -> bool {
        self.relays.contains_key(relay)
    }

    pub fn addr_of(&self, relay: &PeerId) -> Option<&Multiaddr> {
        self.relays.get(relay)
    }

    /// Each trusted relay and the address it is reached at.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &Multiaddr)> {
        self.relays.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.relays.is_empty()
    }
}

impl FromIterator<(PeerId, Multiaddr)> for TrustedRelays {
    fn from_iter<I: IntoIterator<Item = (PeerId, Multiaddr)>>(iter: I) -> Self {
        Self {
            relays: iter.into_iter().collect(),
            home: None,
        }
    }
}

/// The protobuf message, as declared in `discovery.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct PeerProto {
    #[prost(bytes = "vec", tag = "1")]
    public_key: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    addrs: Vec<Vec<u8>>,
}

impl PeerRecord {
    /// A record of `public_key`'s peer. Addresses that end in another
    /// peer's id or exceed the limits are refused, so that every record we
    /// publish passes our own validation.
    pub fn new(public_key: PublicKey, addrs: Vec<Multiaddr>) -> Result<Self, RecordError> {
        let record = Self { public_key, addrs };
        record.check()?;
        let len = record.encoded_len();
        if len > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge { len });
        }
        Ok(record)
    }

    pub fn peer_id(&self) -> PeerId {
        self.public_key.to_peer_id()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    pub fn addrs(&self) -> &[Multiaddr] {
        &self.addrs
    }

    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes a record without asking who published it. Use
    /// [`PeerRecord::decode_signed`] for records received from the network.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge { len: bytes.len() });
        }
        let proto =
            PeerProto::decode(bytes).map_err(|error| RecordError::Malformed(error.to_string()))?;
        let public_key = PublicKey::try_decode_protobuf(&proto.public_key)
            .map_err(|error| RecordError::InvalidPublicKey(error.to_string()))?;
        if proto.addrs.len() > MAX_RECORD_ADDRS {
            return Err(RecordError::TooManyAddrs {
                count: proto.addrs.len(),
            });
        }
        let addrs = proto
            .addrs
            .into_iter()
            .enumerate()
            .map(|(index, bytes)| {
                Multiaddr::try_from(bytes).map_err(|error| RecordError::InvalidAddr {
                    index,
                    reason: error.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let record = Self { public_key, addrs };
        record.check()?;
        Ok(record)
    }

    /// Decodes a record received as the data of a gossipsub message whose
    /// verified author is `publisher`, and checks that the record describes
    /// its publisher: nobody may announce addresses for someone else.
    pub fn decode_signed(bytes: &[u8], publisher: Option<&PeerId>) -> Result<Self, RecordError> {
        let publisher = publisher.ok_or(RecordError::Unsigned)?;
        let record = Self::decode(bytes)?;
        let described = record.peer_id();
        if &described != publisher {
            return Err(RecordError::PublisherMismatch {
                described,
                publisher: *publisher,
            });
        }
        Ok(record)
    }

    /// The record's addresses, each ending in `/p2p/<peer id>`, ready to dial.
    pub fn dialable_addrs(&self) -> impl Iterator<Item = Multiaddr> + '_ {
        let peer_id = self.peer_id();
        self.addrs.iter().map(move |addr| match addr.iter().last() {
            Some(Protocol::P2p(_)) => addr.clone(),
            _ => addr.clone().with(Protocol::P2p(peer_id)),
        })
    }

    /// The addresses to dial this record's peer at: its circuits through
    /// `trusted` relays, each rewritten to reach the relay by the address
    /// we use for it. Every other address is left out.
    pub fn circuits_via<'a>(
        &'a self,
        trusted: &'a TrustedRelays,
    ) -> impl Iterator<Item = Multiaddr> + 'a {
        let peer = self.peer_id();
        self.addrs.iter().filter_map(move |addr| {
            let circuit = Circuit::parse(addr, peer, |relay| trusted.contains(relay)).ok()?;
            let relay_addr = trusted.addr_of(&circuit.relay)?;
            Some(circuit.via(relay_addr, peer))
        })
    }

    /// Checks that every address is one a peer trusting `trusted` relays
    /// would dial: what the relay forwards, pages use.
    pub fn check_circuits(&self, trusted: impl Fn(&PeerId) -> bool) -> Result<(), RecordError> {
        let peer = self.peer_id();
        for (index, addr) in self.addrs.iter().enumerate() {
            Circuit::parse(addr, peer, &trusted)
                .map_err(|reason| RecordError::Undialable { index, reason })?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), RecordError> {
        if self.addrs.len() > MAX_RECORD_ADDRS {
            return Err(RecordError::TooManyAddrs {
                count: self.addrs.len(),
            });
        }
        let peer_id = self.peer_id();
        for (index, addr) in self.addrs.iter().enumerate() {
            if let Some(Protocol::P2p(found)) = addr.iter().last()
                && found != peer_id
            {
                return Err(RecordError::ForeignAddr { index, found });
            }
        }
        Ok(())
    }

    fn to_proto(&self) -> PeerProto {
        PeerProto {
            public_key: self.public_key.encode_protobuf(),
            addrs: self.addrs.iter().map(|addr| addr.to_vec()).collect(),
        }
    }

    fn encoded_len(&self) -> usize {
        self.to_proto().encoded_len()
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn circuit_addr(relay: PeerId, peer: PeerId) -> Multiaddr {
        format!("/ip4/198.51.100.7/tcp/4002/ws/p2p/{relay}/p2p-circuit/webrtc/p2p/{peer}")
            .parse()
            .expect("valid multiaddr")
    }

    #[test]
    fn record_round_trips_through_its_encoding() {
        let key = Keypair::generate_ed25519();
        let relay = PeerId::random();
        let record = PeerRecord::new(
            key.public(),
            vec![circuit_addr(relay, key.public().to_peer_id())],
        )
        .expect("valid record");
        let decoded =
            PeerRecord::decode_signed(&record.encode(), Some(&record.peer_id())).expect("decodes");
        assert_eq!(decoded, record);
    }

    #[test]
    fn encoding_matches_the_pubsub_peer_discovery_wire_format() {
        // Field 1 (bytes): the protobuf public key; field 2 (bytes, repeated): addrs.
        let key = Keypair::ed25519_from_bytes([7; 32]).expect("valid secret");
        let addr: Multiaddr = "/ip4/1.2.3.4/tcp/1".parse().expect("valid");
        let record = PeerRecord::new(key.public(), vec![addr.clone()]).expect("valid");
        let public_key = key.public().encode_protobuf();
        let mut expected = vec![0x0a, public_key.len() as u8];
        expected.extend_from_slice(&public_key);
        expected.extend_from_slice(&[0x12, addr.to_vec().len() as u8]);
        expected.extend_from_slice(&addr.to_vec());
        assert_eq!(record.encode(), expected);
    }

    #[test]
    fn record_published_by_another_peer_is_rejected() {
        let key = Keypair::generate_ed25519();
        let record = PeerRecord::new(key.public(), vec![]).expect("valid");
        let forger = PeerId::random();
        assert_eq!(
            PeerRecord::decode_signed(&record.encode(), Some(&forger)),
            Err(RecordError::PublisherMismatch {
                described: record.peer_id(),
                publisher: forger
            })
        );
        assert_eq!(
            PeerRecord::decode_signed(&record.encode(), None),
            Err(RecordError::Unsigned)
        );
    }

    #[test]
    fn garbage_is_rejected_as_malformed_or_keyless() {
        assert!(matches!(
            PeerRecord::decode(&[0xff, 0xff, 0xff]),
            Err(RecordError::Malformed(_))
        ));
        // A well-formed protobuf whose key field holds no key.
        assert!(matches!(
            PeerRecord::decode(&[0x0a, 0x02, 0x01, 0x02]),
            Err(RecordError::InvalidPublicKey(_))
        ));
    }

    #[test]
    fn oversized_record_is_rejected_before_decoding() {
        let bytes = vec![0u8; MAX_RECORD_BYTES + 1];
        assert_eq!(
            PeerRecord::decode(&bytes),
            Err(RecordError::TooLarge {
                len: MAX_RECORD_BYTES + 1
            })
        );
    }

    #[test]
    fn unparsable_address_is_rejected() {
        let key = Keypair::generate_ed25519();
        let proto = PeerProto {
            public_key: key.public().encode_protobuf(),
            addrs: vec![vec![0xde, 0xad, 0xbe, 0xef]],
        };
        assert!(matches!(
            PeerRecord::decode(&proto.encode_to_vec()),
            Err(RecordError::InvalidAddr { index: 0, .. })
        ));
    }

    #[test]
    fn address_of_another_peer_is_rejected() {
        let key = Keypair::generate_ed25519();
        let other = PeerId::random();
        let result = PeerRecord::new(key.public(), vec![circuit_addr(PeerId::random(), other)]);
        assert_eq!(
            result,
            Err(RecordError::ForeignAddr {
                index: 0,
                found: other
            })
        );
    }

    #[test]
    fn too_many_addresses_are_rejected() {
        let key = Keypair::generate_ed25519();
        let addrs = (0..=MAX_RECORD_ADDRS as u16)
            .map(|port| format!("/ip4/1.2.3.4/tcp/{port}").parse().expect("valid"))
            .collect();
        assert_eq!(
            PeerRecord::new(key.public(), addrs),
            Err(RecordError::TooManyAddrs {
                count: MAX_RECORD_ADDRS + 1
            })
        );
    }

    #[test]
    fn dialable_addrs_end_in_the_peer_id() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let bare: Multiaddr = "/ip4/1.2.3.4/tcp/1".parse().expect("valid");
        let record = PeerRecord::new(
            key.public(),
            vec![bare.clone(), bare.clone().with(Protocol::P2p(peer))],
        )
        .expect("valid");
        let dialable: Vec<_> = record.dialable_addrs().collect();
        assert_eq!(
            dialable,
            vec![
                bare.clone().with(Protocol::P2p(peer)),
                bare.with(Protocol::P2p(peer))
            ]
        );
    }

    fn parse(text: &str) -> Multiaddr {
        text.parse().expect("valid multiaddr")
    }

    #[test]
    fn circuits_through_a_trusted_relay_are_dialed_over_our_own_relay_address() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let relay = PeerId::random();
        let ours = parse(&format!("/ip4/127.0.0.1/tcp/4002/ws/p2p/{relay}"));
        let trusted: TrustedRelays = [(relay, ours.clone())].into_iter().collect();
        let record = PeerRecord::new(
            key.public(),
            vec![
                // The host and port in the record are the forger's choice:
                // they are replaced by ours.
                parse(&format!(
                    "/ip4/192.0.2.9/tcp/80/ws/p2p/{relay}/p2p-circuit/p2p/{peer}"
                )),
                parse(&format!("/p2p/{relay}/p2p-circuit/webrtc")),
            ],
        )
        .expect("valid");
        assert_eq!(
            record.circuits_via(&trusted).collect::<Vec<_>>(),
            vec![
                parse(&format!("{ours}/p2p-circuit/p2p/{peer}")),
                parse(&format!("{ours}/p2p-circuit/webrtc/p2p/{peer}")),
            ]
        );
        assert_eq!(record.check_circuits(|id| *id == relay), Ok(()));
    }

    #[test]
    fn bare_hosts_untrusted_relays_and_odd_tails_are_not_dialed_and_refused() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let relay = PeerId::random();
        let stranger = PeerId::random();
        let trusted: TrustedRelays = [(
            relay,
            parse(&format!("/ip4/127.0.0.1/tcp/1/ws/p2p/{relay}")),
        )]
        .into_iter()
        .collect();
        let refused = [
            parse("/ip4/127.0.0.1/tcp/8080/ws"),
            parse(&format!("/ip4/10.0.0.1/tcp/22/p2p/{peer}")),
            parse(&format!("/ip4/1.2.3.4/udp/1/webrtc-direct/p2p/{peer}")),
            parse(&format!(
                "/ip4/1.2.3.4/tcp/1/p2p/{stranger}/p2p-circuit/p2p/{peer}"
            )),
            parse("/p2p-circuit/webrtc"),
            parse(&format!("/p2p/{relay}/p2p-circuit/ip4/10.0.0.1/tcp/22")),
            parse(&format!(
                "/p2p/{relay}/p2p-circuit/p2p/{stranger}/p2p-circuit"
            )),
        ];
        for addr in refused {
            let record = PeerRecord::new(key.public(), vec![addr.clone()]).expect("valid");
            assert_eq!(
                record.circuits_via(&trusted).count(),
                0,
                "{addr} was dialable"
            );
            assert!(
                matches!(
                    record.check_circuits(|id| *id == relay),
                    Err(RecordError::Undialable { index: 0, .. })
                ),
                "{addr} passed the relay's check"
            );
        }
    }

    #[test]
    fn secp256k1_keys_from_js_peers_are_accepted() {
        let key = Keypair::generate_secp256k1();
        let record = PeerRecord::new(key.public(), vec![]).expect("valid");
        assert_eq!(
            PeerRecord::decode(&record.encode())
                .expect("decodes")
                .peer_id(),
            key.public().to_peer_id()
        );
    }
}
