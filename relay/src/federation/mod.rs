//! Federation: several relays acting as one service.
//!
//! The relays listed in one file (`--federation-peers`, the format of
//! private mode's authorized peers, re-read when it changes) are the
//! federation's members. With libp2p's own machinery, no protocol of ours:
//!
//! - a private Kademlia DHT ([`DHT_PROTOCOL`], server mode, served to
//!   members only through [`MembersOnly`], members only in its routing
//!   table): a relay that knows one member (`--federate`) asks it for the
//!   others and dials them;
//! - gossipsub on the network's topics: each connected member is an
//!   explicit (direct) peer of the relay's gossipsub, so every message one
//!   relay accepts goes to every other relay, which validates it as it
//!   validates a page's (the same dial rule, with the members' circuits
//!   trusted too) under a budget per relay; gossipsub's seen-cache drops
//!   the copies that arrive over a second path, so nothing loops and
//!   nothing is delivered twice;
//! - [`members::Members`] keeps a connection to each member (bounded by
//!   `--max-federation-members`), dials it again with backoff
//!   ([`backoff`]) when it goes away, and closes the connection of a peer
//!   that speaks the federation's DHT without being listed.
//!
//! - [`locate`] keeps who is reserved where (a DHT record per reservation)
//!   and answers peers' lookups over the locate protocol.
//!
//! How pages use the federation, and what is left, is in
//! `docs/design/federation.md`.

pub mod backoff;
pub mod keep_alive;
pub mod locate;
pub mod members;
pub mod metrics;

use std::path::PathBuf;

use libp2p::{
    Multiaddr, PeerId, StreamProtocol, identify,
    kad::{self, store::MemoryStore},
    multiaddr::Protocol,
    swarm::NetworkBehaviour,
};

use crate::{
    gossip::Gossipsub,
    private::{
        authorized_peers::{AuthorizedError, AuthorizedPeers},
        members_only::MembersOnly,
    },
    refusals::Refusals,
};

/// The federation's DHT protocol: not the public IPFS DHT's, so the two
/// never mix.
pub const DHT_PROTOCOL: StreamProtocol = StreamProtocol::new("/browser-chat/federation/kad/1.0.0");

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("--federation-peers: {0}")]
    Members(#[from] AuthorizedError),
    #[error("--federate {addr}: the address must end in /p2p/<the relay's peer id>")]
    NoPeerId { addr: String },
    #[error(
        "--federate {addr}: {peer} is not in the federation file {file}; add it there (every relay of the federation needs the same list)"
    )]
    NotListed {
        addr: String,
        peer: Box<PeerId>,
        file: PathBuf,
    },
    #[error("--federate {addr}: that is this relay's own peer id")]
    Itself { addr: String },
}

/// What the federation is started with.
#[derive(Debug, Clone)]
pub struct Setup {
    pub members: AuthorizedPeers,
    /// `--federate`, each with its peer id.
    pub bootstrap: Vec<(PeerId, Multiaddr)>,
    pub max_members: usize,
}

impl Setup {
    /// Reads the membership file and checks each `--federate` address
    /// against it.
    pub fn load(
        local: PeerId,
        file: &std::path::Path,
        federate: &[Multiaddr],
        max_members: usize,
    ) -> Result<Self, FederationError> {
        let members = AuthorizedPeers::load(file)?;
        let mut bootstrap = Vec::new();
        for addr in federate {
            let Some(Protocol::P2p(peer)) = addr.iter().last() else {
                return Err(FederationError::NoPeerId {
                    addr: addr.to_string(),
                });
            };
            if peer == local {
                return Err(FederationError::Itself {
                    addr: addr.to_string(),
                });
            }
            if !members.is_authorized(&peer) {
                return Err(FederationError::NotListed {
                    addr: addr.to_string(),
                    peer: Box::new(peer),
                    file: file.to_owned(),
                });
            }
            bootstrap.push((peer, addr.clone()));
        }
        Ok(Self {
            members,
            bootstrap,
            max_members,
        })
    }
}

#[allow(missing_debug_implementations)] // kad's behaviour is not `Debug`.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub members: members::Members,
    pub dht: MembersOnly<kad::Behaviour<MemoryStore>>,
    /// Who is reserved where: answers peers' lookups (`locate.rs`); in
    /// private mode, only listed peers' (a guest sees the protocol as
    /// unsupported, and learns nothing of who is reserved where).
    pub locate: MembersOnly<locate::Locate>,
}

impl Behaviour {
    /// `private`: the authorized peers of private relay mode, if on.
    pub fn new(
        local: PeerId,
        setup: Setup,
        bounds: locate::Bounds,
        private: Option<AuthorizedPeers>,
        refusals: Refusals,
    ) -> Self {
        let mut config = kad::Config::new(DHT_PROTOCOL);
        config
            // Only members enter the routing table, by `add_address`.
            .set_kbucket_inserts(kad::BucketInserts::Manual)
            // A member's PUT is reported, and stored by `locate` once
            // checked.
            .set_record_filtering(kad::StoreInserts::FilterBoth)
            // Records are put again on each renewal, and every member
            // holds them all: no republishing, no re-replication.
            .set_publication_interval(None)
            .set_replication_interval(None)
            .set_query_timeout(locate::LOOKUP_TIMEOUT)
            // `Members` asks for the others on its own schedule.
            .set_periodic_bootstrap_interval(None);
        let mut dht = kad::Behaviour::with_config(local, bounds.store(local), config);
        dht.set_mode(Some(kad::Mode::Server));
        for (peer, addr) in &setup.bootstrap {
            dht.add_address(peer, addr.clone());
        }
        Self {
            members: members::Members::new(
                local,
                setup.members.clone(),
                setup.bootstrap,
                setup.max_members,
                refusals.clone(),
            ),
            dht: MembersOnly::new(dht, Some(setup.members)),
            locate: MembersOnly::new(locate::Locate::new(bounds, refusals), private),
        }
    }

    /// A peer said who it is: a member's listen addresses go into the DHT
    /// and the address book; a stranger that speaks the federation's DHT
    /// is a relay trying to join, and is refused.
    pub fn on_identified(&mut self, peer: PeerId, info: &identify::Info) {
        if self.members.is_member(&peer) {
            let addrs: Vec<Multiaddr> = info
                .listen_addrs
                .iter()
                .cloned()
                .filter_map(members::relay_addr)
                .collect();
            for addr in &addrs {
                self.dht.add_address(&peer, addr.clone());
            }
            self.members.learn(peer, addrs);
            let browser = info.listen_addrs.iter().cloned();
            self.members
                .learn_browser_addrs(peer, browser.filter_map(members::browser_addr));
            self.lookup();
        } else if peer != self.members.local_peer_id() && info.protocols.contains(&DHT_PROTOCOL) {
            self.members.refuse(peer);
        }
    }

    /// Acts on what the federation's parts report: members become (and
    /// stop being) explicit peers of `gossipsub`; the DHT's answers feed
    /// the address book.
    pub fn on_event(&mut self, event: BehaviourEvent, gossipsub: &mut Gossipsub) {
        match event {
            BehaviourEvent::Members(members::Event::Connected { peer }) => {
                gossipsub.add_explicit_peer(&peer);
            }
            BehaviourEvent::Members(members::Event::Disconnected { peer }) => {
                gossipsub.remove_explicit_peer(&peer);
            }
            BehaviourEvent::Members(members::Event::LookupDue) => {
                self.purge_expired_records();
                self.lookup();
            }
            BehaviourEvent::Dht(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetClosestPeers(result),
                ..
            }) => {
                let peers = match result {
                    Ok(kad::GetClosestPeersOk { peers, .. }) => peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                for info in peers {
                    if self.members.is_member(&info.peer_id) {
                        for addr in info.addrs.iter().cloned().filter_map(members::relay_addr) {
                            self.dht.add_address(&info.peer_id, addr);
                        }
                    }
                    let addrs = info.addrs.into_iter().filter_map(members::relay_addr);
                    self.members.learn(info.peer_id, addrs);
                }
            }
            BehaviourEvent::Dht(kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            }) => self.on_put(source, record),
            BehaviourEvent::Dht(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetRecord(result),
                ..
            }) => self.on_get_record(id, result),
            BehaviourEvent::Dht(event) => tracing::trace!(?event, "federation DHT"),
            BehaviourEvent::Locate(event) => self.on_locate(event),
        }
    }

    /// Asks the DHT for the members closest to this relay, which in a
    /// federation of a few dozen relays is all of them; one query at a time.
    fn lookup(&mut self) {
        let finding_members = self
            .dht
            .iter_queries()
            .any(|query| matches!(query.info(), kad::QueryInfo::GetClosestPeers { .. }));
        if finding_members {
            return;
        }
        let local = self.members.local_peer_id();
        self.dht.get_closest_peers(local);
    }

    pub fn is_member(&self, peer: &PeerId) -> bool {
        self.members.is_member(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(seed: u8) -> PeerId {
        crate::state::seeded_keypair(seed).public().to_peer_id()
    }

    fn addr(peer: Option<PeerId>) -> Multiaddr {
        let addr: Multiaddr = "/ip4/192.0.2.1/tcp/4001".parse().expect("valid");
        match peer {
            Some(peer) => addr.with(Protocol::P2p(peer)),
            None => addr,
        }
    }

    #[test]
    fn federate_addresses_must_name_a_listed_relay_other_than_this_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("federation");
        std::fs::write(&file, format!("{}\n{}\n", peer(1), peer(2))).expect("write");
        let setup = Setup::load(peer(1), &file, &[addr(Some(peer(2)))], 32).expect("valid");
        assert_eq!(setup.bootstrap, [(peer(2), addr(Some(peer(2))))]);

        let error = Setup::load(peer(1), &file, &[addr(Some(peer(3)))], 32).expect_err("unlisted");
        let message = error.to_string();
        assert!(
            message.contains(&peer(3).to_string()) && message.contains(&file.display().to_string()),
            "{message}"
        );
        assert!(matches!(
            Setup::load(peer(1), &file, &[addr(None)], 32),
            Err(FederationError::NoPeerId { .. })
        ));
        assert!(matches!(
            Setup::load(peer(1), &file, &[addr(Some(peer(1)))], 32),
            Err(FederationError::Itself { .. })
        ));
        assert!(matches!(
            Setup::load(peer(1), &dir.path().join("missing"), &[], 32),
            Err(FederationError::Members(_))
        ));
    }
}
