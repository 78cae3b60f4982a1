//! Who is reserved where, and lookups for peers (issue #14, part 5).
//!
//! For each reservation it accepts, a relay puts a record into the
//! federation's DHT, sent straight to every connected member
//! ([`Behaviour::put`](super::Behaviour)): key = the reserved peer's id,
//! value = the relay's own id, publisher = the relay, expiring a little after the reservation
//! would ([`RECORD_TTL_MARGIN`]); each renewal puts it again. When the
//! peer's last connection closes, the relay puts a tombstone (an empty
//! value, expiring after [`TOMBSTONE_TTL`]) over it, so that lookups stop
//! naming it at once rather than when the record would have expired.
//!
//! Members store what other members put, checked here
//! ([`Behaviour::on_put`]): the publisher is a member, the value names the
//! publisher (or is a tombstone of the publisher's own record), and the
//! store holds at most [`Bounds::max_records`]. With up to `K` = 20
//! members, every member holds every record and a lookup is answered
//! from its own store; a member that joined after a record was put asks
//! the DHT (`get_record`).
//!
//! Peers are not members: they ask their relay over the locate protocol
//! ([`chat_protocol::locate`]), served by [`Locate`], with at most
//! [`MAX_LOOKUPS_PER_PEER`] lookups in flight per peer and
//! [`MAX_LOOKUPS`] in all.

use std::{
    collections::HashMap,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use chat_protocol::locate::{
    Codec, LocateRefusal, LocateRequest, LocateResponse, Located, MAX_LOCATE_ADDRS, PROTOCOL,
};
use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    kad::{self, Record, RecordKey, store::RecordStore as _},
    request_response::{self, ProtocolSupport, ResponseChannel},
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
    },
};

use super::members::relay_addr;
use crate::refusals::Refusals;

/// How much longer than the reservation a record lives: the peer renews
/// shortly before its reservation ends, and the new record must be out
/// before the old one expires.
pub const RECORD_TTL_MARGIN: Duration = Duration::from_secs(60);
/// How long a tombstone (a closed reservation's record) is kept: long
/// enough to reach every member and replace the record there.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(60);
/// How long a lookup in the DHT may take before the peer is told so.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lookups one peer may have in flight; one more is answered `Busy`.
pub const MAX_LOOKUPS_PER_PEER: usize = 4;
/// Lookups in flight over all peers.
pub const MAX_LOOKUPS: usize = 256;
/// Streams of the locate protocol open at once on one connection.
const MAX_STREAMS_PER_CONNECTION: usize = MAX_LOOKUPS_PER_PEER * 2;
/// This relay's own addresses kept for answers.
const MAX_OWN_ADDRS: usize = 32;

/// The record store's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Records held: `--max-reservations` times the federation's relays
    /// (`--max-federation-members` and this one), tombstones included.
    pub max_records: usize,
    /// How long a reservation lasts (`--reservation-duration`).
    pub reservation_duration: Duration,
}

impl Bounds {
    pub fn new(
        max_reservations: usize,
        max_members: usize,
        reservation_duration: Duration,
    ) -> Self {
        Self {
            max_records: max_reservations.saturating_mul(max_members.saturating_add(1)),
            reservation_duration,
        }
    }

    /// The record store, bounded: values are peer ids, no provider
    /// records.
    pub fn store(&self, local: PeerId) -> kad::store::MemoryStore {
        kad::store::MemoryStore::with_config(
            local,
            kad::store::MemoryStoreConfig {
                max_records: self.max_records,
                max_value_bytes: 64,
                max_providers_per_key: 0,
                max_provided_keys: 0,
            },
        )
    }
}

/// How a lookup ended, for `relay_federation_lookups_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The peer is reserved on this relay.
    Here,
    /// On another relay of the federation.
    Found,
    NotFound,
    Busy,
    TimedOut,
    /// Found, but the holding relay's addresses are unknown.
    NoAddress,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Here,
        Outcome::Found,
        Outcome::NotFound,
        Outcome::Busy,
        Outcome::TimedOut,
        Outcome::NoAddress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Here => "here",
            Outcome::Found => "found",
            Outcome::NotFound => "not_found",
            Outcome::Busy => "busy",
            Outcome::TimedOut => "timed_out",
            Outcome::NoAddress => "no_address",
        }
    }

    fn of(response: &LocateResponse, local: PeerId) -> Self {
        match response {
            Ok(located) if located.relay == local => Outcome::Here,
            Ok(_) => Outcome::Found,
            Err(LocateRefusal::NotFound) => Outcome::NotFound,
            Err(LocateRefusal::Busy) => Outcome::Busy,
            Err(LocateRefusal::TimedOut) => Outcome::TimedOut,
            Err(LocateRefusal::NoAddress) => Outcome::NoAddress,
        }
    }
}

/// A lookup waiting for the DHT.
struct Pending {
    asker: PeerId,
    channel: ResponseChannel<LocateResponse>,
}

/// The locate protocol's server side, and the lookups waiting for the
/// DHT. A `NetworkBehaviour` that passes everything on to libp2p's
/// request-response and keeps this relay's own addresses for its answers.
#[allow(missing_debug_implementations)] // request-response's behaviour is not `Debug`.
pub struct Locate {
    server: request_response::Behaviour<Codec>,
    bounds: Bounds,
    refusals: Refusals,
    /// This relay's TCP and QUIC addresses (listen and external ones).
    own_addrs: Vec<Multiaddr>,
    /// Lookups waiting for the DHT, by query; at most [`MAX_LOOKUPS`].
    pending: HashMap<kad::QueryId, Pending>,
    /// Lookups in flight per asking peer (entries with a count of 0 are
    /// removed).
    per_peer: HashMap<PeerId, usize>,
    /// Lookups finished since the counts were last taken, by outcome.
    outcomes: [u64; Outcome::ALL.len()],
}

impl Locate {
    pub fn new(bounds: Bounds, refusals: Refusals) -> Self {
        let config = request_response::Config::default()
            .with_request_timeout(LOOKUP_TIMEOUT + Duration::from_secs(5))
            .with_max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
        Self {
            server: request_response::Behaviour::with_codec(
                Codec,
                [(PROTOCOL, ProtocolSupport::Inbound)],
                config,
            ),
            bounds,
            refusals,
            own_addrs: Vec::new(),
            pending: HashMap::new(),
            per_peer: HashMap::new(),
            outcomes: [0; Outcome::ALL.len()],
        }
    }

    /// The lookups finished since the last call, by outcome.
    pub fn take_outcomes(&mut self) -> impl Iterator<Item = (Outcome, u64)> {
        let counts = std::mem::take(&mut self.outcomes);
        Outcome::ALL.into_iter().zip(counts)
    }

    fn answer(
        &mut self,
        local: PeerId,
        channel: ResponseChannel<LocateResponse>,
        response: LocateResponse,
    ) {
        self.outcomes[Outcome::ALL
            .iter()
            .position(|o| *o == Outcome::of(&response, local))
            .expect("every outcome is listed")] += 1;
        // The asker may be gone: nothing to tell then.
        let _ = self.server.send_response(channel, response);
    }

    fn own_located(&self, local: PeerId) -> LocateResponse {
        if self.own_addrs.is_empty() {
            return Err(LocateRefusal::NoAddress);
        }
        Ok(Located {
            relay: local,
            addrs: self
                .own_addrs
                .iter()
                .take(MAX_LOCATE_ADDRS)
                .cloned()
                .collect(),
            browser_addrs: Vec::new(),
        })
    }

    fn finish(&mut self, asker: PeerId) {
        if let Some(count) = self.per_peer.get_mut(&asker) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_peer.remove(&asker);
            }
        }
    }

    fn learn_own(&mut self, addr: &Multiaddr) {
        if let Some(addr) = relay_addr(addr.clone())
            && !self.own_addrs.contains(&addr)
            && self.own_addrs.len() < MAX_OWN_ADDRS
        {
            self.own_addrs.push(addr);
        }
    }

    fn forget_own(&mut self, addr: &Multiaddr) {
        if let Some(addr) = relay_addr(addr.clone()) {
            self.own_addrs.retain(|a| a != &addr);
        }
    }
}

impl NetworkBehaviour for Locate {
    type ConnectionHandler = THandler<request_response::Behaviour<Codec>>;
    type ToSwarm = request_response::Event<LocateRequest, LocateResponse>;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.server
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.server.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.server.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.server.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::NewListenAddr(new) => self.learn_own(new.addr),
            FromSwarm::ExternalAddrConfirmed(confirmed) => {
                // The operator's public addresses come first in answers.
                self.forget_own(confirmed.addr);
                self.learn_own(confirmed.addr);
                if let Some(last) = self.own_addrs.pop() {
                    self.own_addrs.insert(0, last);
                }
            }
            FromSwarm::ExpiredListenAddr(expired) => self.forget_own(expired.addr),
            FromSwarm::ExternalAddrExpired(expired) => self.forget_own(expired.addr),
            _ => {}
        }
        self.server.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.server
            .on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.server.poll(cx)
    }
}

/// The record saying `peer` is reserved on `relay` (an empty value: no
/// longer).
fn record(peer: PeerId, relay: Option<PeerId>, expires: Instant) -> Record {
    Record {
        key: RecordKey::new(&peer.to_bytes()),
        value: relay.map(|relay| relay.to_bytes()).unwrap_or_default(),
        publisher: None,
        expires: Some(expires),
    }
}

/// The relay a stored record names, if it is live and well-formed.
fn holder(record: &Record, now: Instant) -> Option<PeerId> {
    if record.is_expired(now) || record.value.is_empty() {
        return None;
    }
    let relay = PeerId::from_bytes(&record.value).ok()?;
    (record.publisher == Some(relay)).then_some(relay)
}

impl super::Behaviour {
    /// `peer`'s reservation was accepted (or renewed): the federation
    /// learns it is here. Returns the member the federation last saw it
    /// reserved on, when that is another relay: the peer moved here, its
    /// relay having died (whose record is still live) or let it go (a
    /// tombstone).
    pub fn reserved(&mut self, peer: PeerId) -> Option<PeerId> {
        let local = self.members.local_peer_id();
        let now = Instant::now();
        let moved_from = self
            .dht
            .store_mut()
            .get(&RecordKey::new(&peer.to_bytes()))
            .filter(|stored| !stored.is_expired(now))
            .and_then(|stored| stored.publisher)
            .filter(|publisher| *publisher != local);
        let expires = now + self.locate.bounds.reservation_duration + RECORD_TTL_MARGIN;
        self.put(record(peer, Some(local), expires));
        moved_from
    }

    /// `peer`'s last connection closed: if this relay said it held its
    /// reservation, it now says it does not.
    pub fn unreserved(&mut self, peer: PeerId) {
        let local = self.members.local_peer_id();
        let key = RecordKey::new(&peer.to_bytes());
        let ours = self
            .dht
            .store_mut()
            .get(&key)
            .is_some_and(|record| holder(&record, Instant::now()) == Some(local));
        if ours {
            self.put(record(peer, None, Instant::now() + TOMBSTONE_TTL));
        }
    }

    /// Stores `record` here and sends it straight to every connected
    /// member. Not kad's `put_record`: that one first walks the DHT for
    /// the closest peers and waits, before it sends anything, for each
    /// member in its routing table to answer or fail, a dead one included
    /// (kad keeps a member that went away in its table; its dial fails
    /// only at a timeout, we believe the QUIC handshake's). Seen in
    /// `browser_federation`: a page reserved on A just after B was killed,
    /// A was killed a few seconds later, and C never got that page's
    /// record (it counted 1 of the 2 pages that moved to it; 2 since).
    /// Every member holds every record anyway (at most `K` members), so
    /// the connected ones are the peers to put it to; one that connects
    /// later asks the DHT (`get_record`) for what it lacks.
    fn put(&mut self, mut record: Record) {
        let local = self.members.local_peer_id();
        record.publisher = Some(local);
        if let Err(error) = self.dht.store_mut().put(record.clone()) {
            self.locate.refusals.refused("federation-records-full", || {
                format!(
                    "a reservation record was not stored ({error}): the store holds {} records at most",
                    self.locate.bounds.max_records
                )
            });
            return;
        }
        let members: Vec<PeerId> = self.members.connected_members().copied().collect();
        if !members.is_empty() {
            self.dht
                .put_record_to(record, members.into_iter(), kad::Quorum::One);
        }
    }

    /// A member put a record: stored if its publisher is a member and its
    /// value names that publisher (or is a tombstone over the publisher's
    /// own record).
    pub(super) fn on_put(&mut self, source: PeerId, record: Record) {
        let local = self.members.local_peer_id();
        let Some(publisher) = record.publisher else {
            return self.refuse_record(source, "names no publisher");
        };
        if publisher == local || !self.members.is_member(&publisher) {
            return self.refuse_record(source, "was published by a relay that is not a member");
        }
        if !self.members.is_member(&source) {
            return self.refuse_record(source, "came from a relay that is not a member");
        }
        if PeerId::from_bytes(record.key.as_ref()).is_err() {
            return self.refuse_record(source, "is not keyed by a peer id");
        }
        let now = Instant::now();
        if record.value.is_empty() {
            // A tombstone replaces only its own publisher's record: a peer
            // that moved on to another relay stays found there.
            let replaces_other = self
                .dht
                .store_mut()
                .get(&record.key)
                .and_then(|stored| holder(&stored, now))
                .is_some_and(|holder| holder != publisher);
            if replaces_other {
                return;
            }
        } else if PeerId::from_bytes(&record.value).ok() != Some(publisher) {
            return self.refuse_record(source, "names a relay other than its publisher");
        }
        if let Err(error) = self.dht.store_mut().put(record) {
            self.locate.refusals.refused("federation-records-full", || {
                format!(
                    "a record from {source} was not stored ({error}): the store holds {} records at most",
                    self.locate.bounds.max_records
                )
            });
        }
    }

    fn refuse_record(&self, source: PeerId, why: &'static str) {
        self.locate
            .refusals
            .refused("federation-record-invalid", || {
                format!("a DHT record from {source} {why}")
            });
    }

    /// Records held, tombstones and not yet purged expired ones included.
    pub fn records(&mut self) -> usize {
        self.dht.store_mut().records().len()
    }

    /// Drops expired records (kad drops them only when read).
    pub(super) fn purge_expired_records(&mut self) {
        let now = Instant::now();
        self.dht
            .store_mut()
            .retain(|_, record| !record.is_expired(now));
    }

    /// A peer asks where another one is reserved.
    pub(super) fn on_locate(
        &mut self,
        event: request_response::Event<LocateRequest, LocateResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer: asker,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_request(asker, request, channel),
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "locate request failed");
            }
            event => tracing::trace!(?event, "locate"),
        }
    }

    /// Answered from this relay's store when it holds the peer's record
    /// (the common case: every member holds every record), else from the
    /// DHT.
    fn on_request(
        &mut self,
        asker: PeerId,
        request: LocateRequest,
        channel: ResponseChannel<LocateResponse>,
    ) {
        let local = self.members.local_peer_id();
        let key = RecordKey::new(&request.peer.to_bytes());
        let now = Instant::now();
        let stored = self
            .dht
            .store_mut()
            .get(&key)
            .map(std::borrow::Cow::into_owned)
            .filter(|record| !record.is_expired(now));
        if let Some(record) = stored {
            let response = match holder(&record, now) {
                Some(relay) => self.located(relay),
                // A tombstone: the peer left that relay.
                None => Err(LocateRefusal::NotFound),
            };
            return self.locate.answer(local, channel, response);
        }
        let in_flight = self.locate.per_peer.get(&asker).copied().unwrap_or(0);
        if in_flight >= MAX_LOOKUPS_PER_PEER || self.locate.pending.len() >= MAX_LOOKUPS {
            return self.locate.answer(local, channel, Err(LocateRefusal::Busy));
        }
        let id = self.dht.get_record(key);
        *self.locate.per_peer.entry(asker).or_default() += 1;
        self.locate.pending.insert(id, Pending { asker, channel });
    }

    /// The DHT answered a lookup: the first live record of a member
    /// answers it; a tombstone or a stranger's record is passed over.
    pub(super) fn on_get_record(
        &mut self,
        id: kad::QueryId,
        result: Result<kad::GetRecordOk, kad::GetRecordError>,
    ) {
        if !self.locate.pending.contains_key(&id) {
            return;
        }
        let local = self.members.local_peer_id();
        let response = match result {
            Ok(kad::GetRecordOk::FoundRecord(found)) => {
                match holder(&found.record, Instant::now()) {
                    Some(relay) if relay == local || self.members.is_member(&relay) => {
                        self.located(relay)
                    }
                    _ => return,
                }
            }
            Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. })
            | Err(kad::GetRecordError::NotFound { .. }) => Err(LocateRefusal::NotFound),
            Err(kad::GetRecordError::Timeout { .. }) => Err(LocateRefusal::TimedOut),
        };
        if let Some(mut query) = self.dht.query_mut(&id) {
            query.finish();
        }
        if let Some(Pending { asker, channel }) = self.locate.pending.remove(&id) {
            self.locate.finish(asker);
            self.locate.answer(local, channel, response);
        }
    }

    /// Where `relay` is dialed: this relay's own addresses, or a member's
    /// from the DHT's routing table, and where a browser dials it (what
    /// `/api/relay` lists of it). This relay's own browser addresses are
    /// not given: the asker is connected to it already.
    fn located(&mut self, relay: PeerId) -> LocateResponse {
        let local = self.members.local_peer_id();
        if relay == local {
            return self.locate.own_located(local);
        }
        let addrs: Vec<Multiaddr> = self
            .dht
            .kbucket(relay)
            .into_iter()
            .flat_map(|bucket| {
                bucket
                    .iter()
                    .filter(|entry| *entry.node.key.preimage() == relay)
                    .flat_map(|entry| entry.node.value.iter().cloned().collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            })
            .take(MAX_LOCATE_ADDRS)
            .collect();
        let mut browser_addrs = self.members.browser_addrs(&relay);
        browser_addrs.truncate(MAX_LOCATE_ADDRS);
        if addrs.is_empty() && browser_addrs.is_empty() {
            return Err(LocateRefusal::NoAddress);
        }
        Ok(Located {
            relay,
            addrs,
            browser_addrs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::{Behaviour, Setup};

    fn peer(seed: u8) -> PeerId {
        crate::state::seeded_keypair(seed).public().to_peer_id()
    }

    /// The federation of relay 1, with relays 2 and 3 listed, holding at
    /// most `max_records` records.
    fn federation(max_records: usize) -> (Behaviour, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("federation");
        std::fs::write(&file, format!("{}\n{}\n{}\n", peer(1), peer(2), peer(3))).expect("write");
        let setup = Setup::load(peer(1), &file, &[], 32).expect("valid");
        let bounds = Bounds {
            max_records,
            reservation_duration: Duration::from_secs(3600),
        };
        let behaviour = Behaviour::new(peer(1), setup, bounds, None, Refusals::default());
        (behaviour, dir)
    }

    fn put_by(publisher: PeerId, reserved: PeerId, value: Option<PeerId>) -> Record {
        let mut record = record(reserved, value, Instant::now() + Duration::from_secs(60));
        record.publisher = Some(publisher);
        record
    }

    fn held(federation: &mut Behaviour, reserved: PeerId) -> Option<Record> {
        let key = RecordKey::new(&reserved.to_bytes());
        federation
            .dht
            .store_mut()
            .get(&key)
            .map(std::borrow::Cow::into_owned)
    }

    #[tokio::test]
    async fn a_members_record_naming_itself_is_stored_and_others_are_not() {
        let (mut federation, _dir) = federation(16);
        let (page, other) = (PeerId::random(), PeerId::random());
        federation.on_put(peer(2), put_by(peer(2), page, Some(peer(2))));
        let stored = held(&mut federation, page).expect("stored");
        assert_eq!(holder(&stored, Instant::now()), Some(peer(2)));

        // Naming another relay than its publisher, published by a stranger,
        // or keyed by something that is not a peer id: refused.
        federation.on_put(peer(2), put_by(peer(2), other, Some(peer(3))));
        federation.on_put(peer(2), put_by(peer(9), other, Some(peer(9))));
        let mut not_a_peer = put_by(peer(2), other, Some(peer(2)));
        not_a_peer.key = RecordKey::new(b"not a peer id");
        federation.on_put(peer(2), not_a_peer);
        assert!(
            held(&mut federation, other).is_none(),
            "a bad record was stored"
        );
        assert_eq!(federation.records(), 1);
    }

    #[tokio::test]
    async fn a_reservation_says_whether_the_peer_moved_here_from_another_relay() {
        let (mut federation, _dir) = federation(16);
        let (moved, stayed, new) = (PeerId::random(), PeerId::random(), PeerId::random());
        // Relay 2 held `moved` and died: its record is still live.
        federation.on_put(peer(2), put_by(peer(2), moved, Some(peer(2))));
        assert_eq!(federation.reserved(moved), Some(peer(2)));
        assert_eq!(federation.reserved(moved), None, "a renewal is no move");
        // Relay 3 let `stayed` go (a tombstone), then it reserved here.
        federation.on_put(peer(3), put_by(peer(3), stayed, None));
        assert_eq!(federation.reserved(stayed), Some(peer(3)));
        assert_eq!(federation.reserved(new), None, "never seen elsewhere");
    }

    #[tokio::test]
    async fn a_tombstone_replaces_only_its_own_publishers_record() {
        let (mut federation, _dir) = federation(16);
        let page = PeerId::random();
        // The page moved from relay 2 to relay 3; relay 2's tombstone
        // arrives late.
        federation.on_put(peer(3), put_by(peer(3), page, Some(peer(3))));
        federation.on_put(peer(2), put_by(peer(2), page, None));
        let stored = held(&mut federation, page).expect("stored");
        assert_eq!(
            holder(&stored, Instant::now()),
            Some(peer(3)),
            "relay 2's tombstone hid relay 3's record"
        );
        // Relay 3's own tombstone: the page is gone.
        federation.on_put(peer(3), put_by(peer(3), page, None));
        let stored = held(&mut federation, page).expect("stored");
        assert_eq!(holder(&stored, Instant::now()), None);
    }

    #[tokio::test]
    async fn the_store_holds_at_most_its_bound() {
        let (mut federation, _dir) = federation(2);
        for _ in 0..3 {
            federation.on_put(peer(2), put_by(peer(2), PeerId::random(), Some(peer(2))));
        }
        assert_eq!(federation.records(), 2);
        assert_eq!(
            Bounds::new(1024, 32, Duration::from_secs(3600)).max_records,
            1024 * 33,
            "every member's reservations and this relay's own"
        );
    }
}
