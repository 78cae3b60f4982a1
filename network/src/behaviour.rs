//! The chat network behaviour: gossipsub (gossipsub-lite) and locate, and the
//! policy around them (announcing, the peer book, the dial rule, chat, the
//! relayed-to-direct hand-off). A state machine over all connections with
//! no I/O of its own: the swarm runs it, and the shell reads its events.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    task::{Context, Poll},
    time::Duration,
};

use chat_protocol::{
    ChatError, ChatMessage, Inbound, InboundError, PeerRecord, discovery::TrustedRelays,
    report::describe_error, topics,
};
use futures::FutureExt as _;
use futures_timer::Delay;
use gossipsub_lite::{Acceptance as MessageAcceptance, Topic};
use libp2p::{
    Multiaddr, PeerId,
    core::{ConnectedPoint, Endpoint, transport::PortUse},
    identity::Keypair,
    swarm::{
        CloseConnection, ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour,
        THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use web_time::Instant;

use crate::{
    Config, Path, PeerInfo,
    book::PeerBook,
    config::{ANNOUNCE_BATCH, ANNOUNCE_MIN_GAP, LIVENESS_CHECK},
    dial::{self, is_circuit},
    locate::{self, LocateError, Lookups},
};

/// This peer's own circuit addresses kept at most (the relay client
/// reports one per relay address, and the `/webrtc` transport a twin of
/// each).
const MAX_OWN_ADDRS: usize = 64;

/// What the composed behaviour does on the wire: gossipsub (lookups go
/// through `libp2p_stream`, see [`locate`]).
#[allow(missing_debug_implementations)] // the derive makes no `Debug`.
#[derive(libp2p::swarm::NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub struct Inner {
    gossipsub: gossipsub_lite::Behaviour,
}

/// What the behaviour reports.
#[derive(Debug)]
pub enum Event {
    /// A peer announced itself for the first time, or for the first time
    /// since every connection to it closed (it came back). `addrs` is what
    /// the dial rule kept of its record, `announced` what the record said.
    Discovered {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        announced: Vec<Multiaddr>,
    },
    /// What is known of a peer changed: its link, round trip or addresses.
    PeerChanged(PeerInfo),
    /// A peer stopped announcing and is not connected: forgotten.
    PeerGone { peer: PeerId },
    /// A chat message from another peer; `via` is the peer that handed
    /// it to us (its author, over a connection to it, or a relay or
    /// another peer forwarding it).
    Chat {
        from: PeerId,
        text: String,
        via: PeerId,
    },
    /// A held message (see [`Behaviour::send_chat`]) was published.
    ChatSent { text: String },
    /// A held message could not be published.
    ChatNotSent { text: String, error: SendError },
    /// A gossip message was rejected (and not forwarded).
    Rejected {
        propagation_source: PeerId,
        error: InboundError,
    },
    /// A relayed connection to `peer` is being closed: the direct one
    /// carries everything now.
    ClosingRelayed { peer: PeerId },
    /// A connection to `peer` on `path` is being closed as dead (only
    /// with a [`crate::Liveness`] rule): see [`DeadLink`] for why.
    LinkDead {
        peer: PeerId,
        connection: ConnectionId,
        path: Path,
        why: DeadLink,
    },
    /// A lookup ([`Behaviour::locate`]) found `peer` reserved on `relay`:
    /// that relay is trusted now, and `peer` is being dialed through it.
    Located { peer: PeerId, relay: PeerId },
    /// A lookup gave no relay to dial `peer` through.
    LocateFailed { peer: PeerId, error: LocateError },
}

/// Whether a chat message went out at once or waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Published,
    /// It waits for relayed connections to close; [`Event::ChatSent`] or
    /// [`Event::ChatNotSent`] follows.
    Held,
}

/// Why a chat message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("not a valid chat message")]
    Invalid(#[from] ChatError),
    #[error("nobody to send it to yet: not connected to a relay or a peer")]
    NoPeers,
    #[error("still moving to the direct connection: send it again in a moment")]
    HeldQueueFull,
    #[error("not sent")]
    Publish(#[source] gossipsub_lite::PublishError),
}

/// Why a link is closed as dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLink {
    /// Its pings went unanswered for this long ([`crate::Liveness::dead`]).
    Silent(Duration),
    /// The peer dialed us anew through a relay while this direct link
    /// stood, so it no longer knows the link (it reloaded, say).
    Stale,
}

/// Why a relayed connection was refused (see [`DeadLink::Stale`]).
#[derive(Debug, thiserror::Error)]
#[error("a direct link to this peer is still open, though stale; it is being closed: dial again")]
pub struct StaleLinkOpen;

type ToSwarmEvent = ToSwarm<Event, THandlerInEvent<Inner>>;

/// The chat network behaviour (see the crate docs).
pub struct Behaviour {
    inner: Inner,
    local: PeerId,
    keypair: Keypair,
    config: Config,
    book: PeerBook,
    relays: TrustedRelays,
    /// This peer's circuit addresses, as the swarm reports them.
    own_addrs: Vec<Multiaddr>,
    announce: Delay,
    announce_soon: Option<Delay>,
    /// When this peer last published its record.
    announced_at: Option<Instant>,
    /// When this peer last answered a newcomer at once (see
    /// [`Behaviour::answer_newcomer`]).
    answered_at: Option<Instant>,
    /// The last announcement found no peer subscribed to the discovery
    /// topic: the relay's subscription had not come yet (over
    /// WebRTC-direct its stream can open after the reservation). It goes
    /// out when a peer subscribes, not at the next period, 20 s later.
    announcement_unsent: bool,
    /// Fires when the next relayed connection's grace ends.
    grace: Option<Delay>,
    /// Relayed connections asked to close, until they have.
    closing: HashSet<ConnectionId>,
    /// Dials this behaviour asked for, until the swarm reports each one's
    /// outcome (a connection or a failure: bounded by the dials in flight).
    dials: HashSet<ConnectionId>,
    /// Connections closed as dead ([`crate::Liveness`]) or stale, until
    /// they have, with when they last answered a ping, or `None` when the
    /// peer is known to be alive (bounded like `closing`: by the open
    /// connections).
    dead: HashMap<ConnectionId, Option<Instant>>,
    /// Chat held while relayed connections close (bounded by
    /// [`Config::max_held_chat`]), and its deadline.
    held: Vec<ChatMessage>,
    held_timer: Option<Delay>,
    /// Fires every [`LIVENESS_CHECK`] when the config has a liveness rule.
    liveness_timer: Option<Delay>,
    /// Bounded by what one swarm event or timer produces; drained first
    /// in every poll.
    pending: VecDeque<ToSwarmEvent>,
    /// Lookups under way (at most [`locate::MAX_LOOKUPS_IN_FLIGHT`]).
    lookups: Lookups,
    /// Relays trusted because a lookup named them (at most
    /// [`locate::MAX_LOCATED_RELAYS`]; cleared with the trust set).
    located_relays: Vec<PeerId>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour")
            .field("local", &self.local)
            .field("config", &self.config)
            .field("book", &self.book)
            .finish_non_exhaustive()
    }
}

impl Behaviour {
    /// The behaviour of the peer `keypair`, subscribed to the network's
    /// topics; its lookups ([`Self::locate`]) open streams through
    /// `streams` (the swarm's `libp2p_stream::Behaviour`).
    pub fn new(keypair: &Keypair, config: Config, streams: libp2p_stream::Control) -> Self {
        let mut gossipsub = chat_protocol::gossip::peer_behaviour(keypair, dial::is_direct);
        for topic in topics::ALL {
            gossipsub.subscribe(&Topic::new(topic));
        }
        let liveness_timer = config.liveness.map(|_| Delay::new(LIVENESS_CHECK));
        Self {
            inner: Inner { gossipsub },
            lookups: Lookups::new(streams),
            located_relays: Vec::new(),
            local: keypair.public().to_peer_id(),
            keypair: keypair.clone(),
            book: PeerBook::new(config.max_peers, config.peer_expiry),
            announce: Delay::new(config.announce_interval),
            config,
            relays: TrustedRelays::default(),
            own_addrs: Vec::new(),
            announce_soon: None,
            announced_at: None,
            answered_at: None,
            announcement_unsent: false,
            grace: None,
            closing: HashSet::new(),
            dials: HashSet::new(),
            dead: HashMap::new(),
            held: Vec::new(),
            held_timer: None,
            liveness_timer,
            pending: VecDeque::new(),
        }
    }

    /// Trusts `relay`, reached at `addr`: its circuits are dialed, and
    /// its connections are not peers. The first trusted relay's circuits
    /// come first in this peer's record.
    pub fn trust_relay(&mut self, relay: PeerId, addr: Multiaddr) {
        self.relays.insert(relay, addr);
    }

    /// Trusts these relays and no others.
    pub fn set_relays(&mut self, relays: TrustedRelays) {
        self.relays = relays;
        self.located_relays.clear();
    }

    /// Trusts `home`, the relay this peer is reserved on, and the
    /// federation it vouches for (`members`, each at the address this peer
    /// reaches it by), within [`dial::MAX_FEDERATION_RELAYS`]: circuits
    /// through those relays are dialed, over a connection this peer opens
    /// to the relay. Peers already known get their addresses again at
    /// their next record.
    pub fn set_federation(
        &mut self,
        home: (PeerId, Multiaddr),
        members: impl IntoIterator<Item = (PeerId, Multiaddr)>,
    ) {
        self.relays = dial::federation_trust(home, members);
        self.located_relays.clear();
    }

    /// The relayed addresses `peer` is dialed at (see [`dial::relayed_addrs`]).
    pub fn relayed_addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        dial::relayed_addrs(self.book.addrs(peer), &self.relays, *peer)
    }

    pub fn relays(&self) -> &TrustedRelays {
        &self.relays
    }

    pub fn is_relay(&self, peer: &PeerId) -> bool {
        self.relays.contains(peer)
    }

    /// Every peer known, sorted by id.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.book.infos()
    }

    pub fn peer(&self, peer: &PeerId) -> Option<PeerInfo> {
        self.book.info(peer)
    }

    /// Publishes a chat message, unless a peer reached directly still has
    /// a relayed connection: those connections close at once and the
    /// message waits for them, then goes out on the direct links (at the
    /// latest after the grace). gossipsub-lite sends a peer's traffic on
    /// its direct connection already; the hold was for rust-libp2p's
    /// gossipsub, whose handlers shared a peer's send queue, so that the
    /// relayed connection's could take the message into a circuit whose
    /// relay had just died. It stays until the policy is revisited.
    pub fn send_chat(&mut self, text: impl Into<String>) -> Result<Sent, SendError> {
        let message = ChatMessage::new(text)?;
        let relayed = self.book.relayed_to_direct_peers();
        if relayed.is_empty() {
            self.publish(message)?;
            return Ok(Sent::Published);
        }
        if self.held.len() >= self.config.max_held_chat {
            return Err(SendError::HeldQueueFull);
        }
        self.held.push(message);
        self.close(relayed);
        if self.held_timer.is_none() {
            self.held_timer = Some(Delay::new(self.config.relayed_grace));
        }
        Ok(Sent::Held)
    }

    /// Dials `peer` through a trusted relay (its announced circuits, or the
    /// circuit through each trusted relay). Returns whether a dial started.
    pub fn dial(&mut self, peer: PeerId) -> bool {
        let addrs = dial::relayed_addrs(self.book.addrs(&peer), &self.relays, peer);
        self.dial_at(peer, addrs)
    }

    /// Dials `peer` at `addrs` (an address a person pasted, say), unless
    /// it is connected or being dialed. Returns whether a dial started.
    pub fn dial_at(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> bool {
        if peer == self.local || self.is_relay(&peer) || addrs.is_empty() {
            return false;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        self.dials.insert(opts.connection_id());
        self.pending.push_back(ToSwarm::Dial { opts });
        self.book.on_dialing(peer, Instant::now());
        self.peer_changed(&peer);
        true
    }

    /// Asks `relay` (this peer's own: only its answers are followed) which
    /// relay holds `peer`'s reservation; on the answer, trusts that relay
    /// and dials `peer`'s circuit through it ([`Event::Located`], or
    /// [`Event::LocateFailed`]).
    pub fn locate(&mut self, relay: PeerId, peer: PeerId) -> Result<(), LocateError> {
        self.lookups.ask(relay, peer).map(|_| ())
    }

    /// Whether `relay`'s answers to lookups are followed: it is this
    /// peer's home relay or, for a peer that named none, a relay it was
    /// told to trust (not one a lookup named).
    fn vouches(&self, relay: &PeerId) -> bool {
        match self.relays.home() {
            Some((home, _)) => home == relay,
            None => self.relays.contains(relay) && !self.located_relays.contains(relay),
        }
    }

    fn on_located(
        &mut self,
        peer: PeerId,
        answered_by: PeerId,
        result: Result<chat_protocol::locate::Located, LocateError>,
    ) {
        let dialable = self.config.dialable;
        let event = match result.and_then(|located| {
            if !self.vouches(&answered_by) {
                return Err(LocateError::NotHome { from: answered_by });
            }
            let relay_addr = match self.relays.addr_of(&located.relay) {
                Some(addr) => dial::with_peer_id(addr, located.relay),
                None => locate::relay_addrs(&located, dialable)
                    .into_iter()
                    .next()
                    .ok_or(LocateError::NoDialableAddress {
                        relay: located.relay,
                    })?,
            };
            if !self.relays.contains(&located.relay) {
                if self.located_relays.len() >= locate::MAX_LOCATED_RELAYS {
                    return Err(LocateError::TooManyRelays {
                        relay: located.relay,
                    });
                }
                self.located_relays.push(located.relay);
                self.relays.insert(located.relay, relay_addr.clone());
            }
            Ok((located.relay, locate::circuits(&relay_addr, peer, dialable)))
        }) {
            Ok((relay, circuits)) => {
                let plain = circuits
                    .iter()
                    .filter(|a| !dial::is_webrtc(a))
                    .cloned()
                    .collect();
                if !self.book.is_connected(&peer) {
                    self.book.on_located(peer, circuits, Instant::now());
                }
                self.dial_at(peer, plain);
                Event::Located { peer, relay }
            }
            Err(error) => Event::LocateFailed { peer, error },
        };
        self.pending.push_back(ToSwarm::GenerateEvent(event));
    }

    /// The relayed connections to `peer` in the book.
    pub fn relayed_connections(&self, peer: &PeerId) -> Vec<ConnectionId> {
        self.book.relayed_connections(peer)
    }

    /// The path `connection` to `peer` takes, if it is in the book.
    pub fn path_of(&self, peer: &PeerId, connection: ConnectionId) -> Option<crate::Path> {
        self.book.path_of(peer, connection)
    }

    /// Records a round trip measured on `connection` (by the shell's ping).
    pub fn on_rtt(&mut self, peer: &PeerId, connection: ConnectionId, rtt: Duration) {
        if self.book.on_rtt(peer, connection, rtt, Instant::now()) {
            self.peer_changed(peer);
        }
    }

    /// Records the agent a peer identified itself with.
    pub fn on_agent(&mut self, peer: &PeerId, agent: &str) {
        self.book.on_agent(peer, agent);
    }

    /// The connections whose pings went unanswered for longer than
    /// `silence`: the shell closes them as dead.
    pub fn silent_connections(&self, silence: Duration) -> Vec<(PeerId, ConnectionId)> {
        self.book.silent(Instant::now(), silence)
    }

    /// The circuit addresses this peer announces, each ending in its id,
    /// those through a trusted relay's address first.
    pub fn announced_addrs(&self) -> Vec<Multiaddr> {
        let preferred: Vec<Multiaddr> = self.relays.iter().map(|(_, a)| a.clone()).collect();
        dial::announced_addrs(
            &self.own_addrs,
            self.local,
            &preferred,
            self.config.announceable,
        )
    }

    /// Announces soon: after [`ANNOUNCE_BATCH`] (a burst of reasons makes
    /// one record), and no sooner than [`ANNOUNCE_MIN_GAP`] after the last
    /// announcement.
    pub fn announce_soon(&mut self) {
        if self.announce_soon.is_none() {
            let wait = announce_wait(self.announced_at.map(|at| at.elapsed()));
            self.announce_soon = Some(Delay::new(wait));
        }
    }

    /// Answers a newcomer's first record with ours: at once if the last
    /// announcement is [`ANNOUNCE_MIN_GAP`] old (or there was none), or
    /// the last answer given at once is, as a newcomer's record comes
    /// alone and there is nothing to batch; else after the rest of the
    /// gap, like any announcement. Why the answer has a gap of its own:
    /// two pages that connect together each announce as soon as they hold
    /// a reservation, the first before the second is in the relay's mesh;
    /// the second lists the first only from its answer, which waited for
    /// the rest of the first's gap (BENCHMARKS.md, "Time to a direct
    /// browser link": 0.23 s of the second page's 0.3 s to list the
    /// first). So records for a reason are at most two a gap, one of them
    /// an answer.
    fn answer_newcomer(&mut self) {
        let since = |at: Option<Instant>| at.map(|at| at.elapsed());
        if answer_at_once(since(self.announced_at), since(self.answered_at)) && self.announce() {
            // Whatever was waiting to be announced is in this record.
            self.announce_soon = None;
            self.answered_at = self.announced_at;
        } else {
            self.announce_soon();
        }
    }

    fn publish(&mut self, message: ChatMessage) -> Result<(), SendError> {
        let result = self
            .inner
            .gossipsub
            .publish(Topic::new(topics::CHAT), message.into_bytes());
        match result {
            Ok(_) => Ok(()),
            Err(gossipsub_lite::PublishError::NoPeersSubscribedToTopic) => Err(SendError::NoPeers),
            Err(error) => Err(SendError::Publish(error)),
        }
    }

    /// Publishes this peer's record, if it has addresses to announce.
    /// Returns whether it was published.
    fn announce(&mut self) -> bool {
        let addrs = self.announced_addrs();
        if addrs.is_empty() {
            return false;
        }
        let record = match PeerRecord::new(self.keypair.public(), addrs) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(%error, "own discovery record is invalid");
                return false;
            }
        };
        match self
            .inner
            .gossipsub
            .publish(Topic::new(topics::DISCOVERY), record.encode())
        {
            Ok(_) => {
                self.announcement_unsent = false;
                self.announced_at = Some(Instant::now());
                (self.config.on_announced)();
                tracing::debug!("announced");
                true
            }
            Err(error) => {
                self.announcement_unsent = matches!(
                    error,
                    gossipsub_lite::PublishError::NoPeersSubscribedToTopic
                );
                tracing::debug!(%error, "announcement not published");
                false
            }
        }
    }

    /// The period's work: announce, dial the peers that did not dial us
    /// (the larger id waits a period), forget the silent.
    fn on_announce_tick(&mut self) {
        let _ = self.announce();
        // Expired first: a silent peer's failing dial must not keep it.
        for peer in self.book.expire(Instant::now()) {
            self.pending
                .push_back(ToSwarm::GenerateEvent(Event::PeerGone { peer }));
        }
        let now = Instant::now();
        for (peer, quiet) in self.book.idle(now) {
            if dial::dials_first(&self.local, &peer) || quiet >= dial::FIRST_DIALER_GRACE {
                self.dial(peer);
            }
        }
    }

    fn on_gossip(&mut self, event: gossipsub_lite::Event) {
        let (propagation_source, message_id, message) = match event {
            gossipsub_lite::Event::Message {
                propagation_source,
                message_id,
                message,
            } => (propagation_source, message_id, message),
            gossipsub_lite::Event::Subscribed { topic, .. } => {
                if self.announcement_unsent && topic.as_str() == topics::DISCOVERY {
                    self.announce_soon();
                }
                return;
            }
            gossipsub_lite::Event::Unsubscribed { .. } => return,
        };
        let acceptance = match Inbound::decode(
            message.topic.as_str(),
            Some(message.source),
            &message.data,
        ) {
            Ok(Inbound::Record(record)) => {
                // Used here either way (the dial rule keeps only trusted
                // circuits), but forwarded only if the relay would forward
                // it too: the relay rejects a record naming a circuit
                // through a relay it does not trust, and penalises the
                // peer that handed it over, enough to stop listening to
                // it. A direct peer could otherwise get us cut off.
                let forward = record
                    .check_circuits(|relay| self.relays.contains(relay))
                    .is_ok();
                self.on_record(record, propagation_source);
                if forward {
                    MessageAcceptance::Accept
                } else {
                    MessageAcceptance::Ignore
                }
            }
            Ok(Inbound::Chat { from, message }) => {
                let text = message.text().to_owned();
                self.pending.push_back(ToSwarm::GenerateEvent(Event::Chat {
                    from,
                    text,
                    via: propagation_source,
                }));
                MessageAcceptance::Accept
            }
            Err(InboundError::UnknownTopic(_)) => MessageAcceptance::Ignore,
            Err(error) => {
                tracing::debug!(from = %propagation_source, error = %describe_error(&error), "rejected a gossip message");
                self.pending
                    .push_back(ToSwarm::GenerateEvent(Event::Rejected {
                        propagation_source,
                        error,
                    }));
                MessageAcceptance::Reject
            }
        };
        self.inner.gossipsub.report_message_validation_result(
            &message_id,
            &propagation_source,
            acceptance,
        );
    }

    fn on_record(&mut self, record: PeerRecord, propagation_source: PeerId) {
        let peer = record.peer_id();
        if peer == self.local || self.is_relay(&peer) {
            return;
        }
        if self.config.liveness.is_some()
            && propagation_source != peer
            && self.book.is_connected(&peer)
        {
            // A connected peer's record came the long way round: the
            // copy over our own link to it was slower, or there was none,
            // since the peer no longer knows that link (it reloaded, and
            // our link to its old incarnation has not been found dead
            // yet). It gets our record soon, so that it can dial us.
            self.announce_soon();
        }
        let addrs = dial::kept_addrs(&record, &self.relays, self.config.dialable);
        if self.book.on_record(peer, addrs.clone(), Instant::now()) {
            let announced = record.dialable_addrs().collect();
            self.pending
                .push_back(ToSwarm::GenerateEvent(Event::Discovered {
                    peer,
                    addrs,
                    announced,
                }));
            // The newcomer missed our earlier announcements, and waits
            // for ours to list us (and, if it has the smaller id, to dial).
            self.answer_newcomer();
        }
        if !self.book.contains(&peer) {
            return; // The book is full of connected peers.
        }
        let idle = !self.book.is_connected(&peer) && !self.book.is_dialing(&peer);
        if idle && dial::dials_first(&self.local, &peer) {
            self.dial(peer);
        } else {
            self.peer_changed(&peer);
        }
    }

    fn peer_changed(&mut self, peer: &PeerId) {
        if let Some(info) = self.book.info(peer) {
            self.pending
                .push_back(ToSwarm::GenerateEvent(Event::PeerChanged(info)));
        }
    }

    /// Asks the swarm to close `connections` (once each).
    fn close(&mut self, connections: Vec<(PeerId, ConnectionId)>) {
        let mut peers: Vec<PeerId> = Vec::new();
        for (peer, connection) in connections {
            if !self.closing.insert(connection) {
                continue;
            }
            self.pending.push_back(ToSwarm::CloseConnection {
                peer_id: peer,
                connection: CloseConnection::One(connection),
            });
            if !peers.contains(&peer) {
                peers.push(peer);
            }
        }
        for peer in peers {
            self.pending
                .push_back(ToSwarm::GenerateEvent(Event::ClosingRelayed { peer }));
        }
    }

    /// Closes the relayed connections whose grace is over and sets the
    /// timer for the next.
    fn close_relayed_after_grace(&mut self) {
        let now = Instant::now();
        let (due, next) = self.book.relayed_to_close(now, self.config.relayed_grace);
        self.close(due);
        self.grace = next.map(|at| Delay::new(at.saturating_duration_since(now)));
    }

    /// Publishes the held chat once no relayed connection can take it, or
    /// in any case when `force`.
    fn release_held_chat(&mut self, force: bool) {
        if self.held.is_empty() || (!force && !self.book.relayed_to_direct_peers().is_empty()) {
            return;
        }
        self.held_timer = None;
        for message in std::mem::take(&mut self.held) {
            let text = message.text().to_owned();
            let event = match self.publish(message) {
                Ok(()) => Event::ChatSent { text },
                Err(error) => Event::ChatNotSent { text, error },
            };
            self.pending.push_back(ToSwarm::GenerateEvent(event));
        }
    }

    /// The liveness rule's look: links that stalled or revived change
    /// what the list shows; dead connections are closed (once each).
    fn check_liveness(&mut self) {
        let Some(liveness) = self.config.liveness else {
            return;
        };
        let now = Instant::now();
        for peer in self.book.check_liveness(now, liveness.stall) {
            self.peer_changed(&peer);
        }
        for (peer, connection) in self.book.silent(now, liveness.dead) {
            if self.dead.contains_key(&connection) || self.closing.contains(&connection) {
                continue;
            }
            let answered = self.book.answered(&peer, connection).unwrap_or(now);
            self.dead.insert(connection, Some(answered));
            self.book.on_link_dead(&peer);
            let path = self
                .book
                .path_of(&peer, connection)
                .unwrap_or(Path::Relayed);
            self.pending.push_back(ToSwarm::CloseConnection {
                peer_id: peer,
                connection: CloseConnection::One(connection),
            });
            self.pending
                .push_back(ToSwarm::GenerateEvent(Event::LinkDead {
                    peer,
                    connection,
                    path,
                    why: DeadLink::Silent(liveness.dead),
                }));
        }
    }

    /// A connection closed as dead or stale has closed. If it was the peer's last,
    /// the peer may have come back as a new incarnation (a reload with
    /// the same key) whose record arrived while the dead link still
    /// stood, and so was no news: it gets our record soon, and is dialed
    /// at once by the rule's dialer if it announced after the link went
    /// silent. One that did not (frozen, asleep) is left to the expiry.
    fn on_dead_closed(&mut self, peer: PeerId, answered: Option<Instant>) {
        if self.book.is_connected(&peer) {
            return;
        }
        self.announce_soon();
        // A stale link's peer is alive: it just dialed us.
        let alive = answered.is_none_or(|answered| {
            self.book
                .last_seen(&peer)
                .is_some_and(|seen| seen > answered)
        });
        if alive && dial::dials_first(&self.local, &peer) {
            self.dial(peer);
        }
    }

    /// A relayed connection from `peer` comes in while we hold a direct
    /// one to it. A peer that knows of a link to us never dials another
    /// (every dial waits for the peer to be disconnected), so that link
    /// is stale: the peer reloaded or restarted with the same key, and our
    /// link goes to its old incarnation. The stale link is closed, and the
    /// new connection refused until it is: accepted beside it, gossipsub
    /// would count it as a second connection and never tell the new
    /// incarnation what we subscribe to. The peer gets our record soon and
    /// dials again (or is dialed, by the rule's dialer).
    fn refuse_beside_stale_link(&mut self, peer: PeerId) -> Result<(), ConnectionDenied> {
        let stale = self.book.direct_connections(&peer);
        if self.config.liveness.is_none() || stale.is_empty() {
            return Ok(());
        }
        for connection in stale {
            if self.dead.insert(connection, None).is_none() {
                self.pending.push_back(ToSwarm::CloseConnection {
                    peer_id: peer,
                    connection: CloseConnection::One(connection),
                });
                self.pending
                    .push_back(ToSwarm::GenerateEvent(Event::LinkDead {
                        peer,
                        connection,
                        path: Path::Direct,
                        why: DeadLink::Stale,
                    }));
            }
        }
        Err(ConnectionDenied::new(StaleLinkOpen))
    }

    fn on_dial_failure(&mut self, peer: PeerId, connection: ConnectionId, error: &DialError) {
        let ours = self.dials.remove(&connection);
        if self.is_relay(&peer) {
            return;
        }
        if matches!(error, DialError::DialPeerConditionFalse(_)) {
            // Other behaviours' dials are refused too (the `/webrtc`
            // upgrade's, when a connection stands): only a refusal of our
            // own says that no dial of ours is in flight.
            if !ours {
                return;
            }
            self.book.on_dial_refused(&peer);
            self.peer_changed(&peer);
            return;
        }
        self.book
            .on_dial_failed(&peer, describe_error(error), Instant::now());
        self.peer_changed(&peer);
    }
}

/// How long an announcement for a reason waits, `since_last` the last
/// announcement (`None`: there was none): [`ANNOUNCE_BATCH`], or what is
/// left of [`ANNOUNCE_MIN_GAP`] if that is longer.
fn announce_wait(since_last: Option<Duration>) -> Duration {
    let gap_left = since_last.map_or(Duration::ZERO, |since| {
        ANNOUNCE_MIN_GAP.saturating_sub(since)
    });
    gap_left.max(ANNOUNCE_BATCH)
}

/// Whether an answer to a newcomer goes out at once, `since_announced`
/// the last announcement and `since_answered` the last answer given at
/// once (`None`: there was none): when either is [`ANNOUNCE_MIN_GAP`] old.
fn answer_at_once(since_announced: Option<Duration>, since_answered: Option<Duration>) -> bool {
    let gap_over = |since: Option<Duration>| since.is_none_or(|since| since >= ANNOUNCE_MIN_GAP);
    gap_over(since_announced) || gap_over(since_answered)
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = THandler<Inner>;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let endpoint = ConnectedPoint::Listener {
            local_addr: local_addr.clone(),
            send_back_addr: remote_addr.clone(),
        };
        if !self.is_relay(&peer) && dial::path_of(&endpoint) == Path::Relayed {
            self.refuse_beside_stale_link(peer)?;
        }
        self.inner.handle_established_inbound_connection(
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
        self.inner.handle_pending_outbound_connection(
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
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
        match event {
            FromSwarm::ConnectionEstablished(e) if !self.is_relay(&e.peer_id) => {
                self.dials.remove(&e.connection_id);
                let path = dial::path_of(e.endpoint);
                let back = self
                    .book
                    .on_connected(e.peer_id, e.connection_id, path, Instant::now());
                if back {
                    // It came back: it missed our announcements.
                    self.announce_soon();
                }
                // A direct connection starts the grace of the relayed
                // ones; a relayed one to a peer reached directly has its own.
                self.close_relayed_after_grace();
                self.peer_changed(&e.peer_id);
            }
            FromSwarm::ConnectionClosed(e) if !self.is_relay(&e.peer_id) => {
                self.closing.remove(&e.connection_id);
                if self
                    .book
                    .on_disconnected(&e.peer_id, e.connection_id, Instant::now())
                    .is_some()
                {
                    self.peer_changed(&e.peer_id);
                }
                if let Some(answered) = self.dead.remove(&e.connection_id) {
                    self.on_dead_closed(e.peer_id, answered);
                }
                self.release_held_chat(false);
                self.close_relayed_after_grace();
            }
            FromSwarm::DialFailure(e) => {
                if let Some(peer) = e.peer_id {
                    self.on_dial_failure(peer, e.connection_id, e.error);
                }
            }
            FromSwarm::NewListenAddr(e) if is_circuit(e.addr) => {
                if !self.own_addrs.contains(e.addr) && self.own_addrs.len() < MAX_OWN_ADDRS {
                    self.own_addrs.push(e.addr.clone());
                }
                self.announce_soon();
            }
            FromSwarm::ExpiredListenAddr(e) => self.own_addrs.retain(|a| a != e.addr),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Poll::Ready(event);
            }
            if self.announce.poll_unpin(cx).is_ready() {
                self.announce.reset(self.config.announce_interval);
                self.on_announce_tick();
                continue;
            }
            if let Some(timer) = &mut self.announce_soon
                && timer.poll_unpin(cx).is_ready()
            {
                self.announce_soon = None;
                let _ = self.announce();
                continue;
            }
            if let Some(timer) = &mut self.grace
                && timer.poll_unpin(cx).is_ready()
            {
                self.grace = None;
                self.close_relayed_after_grace();
                continue;
            }
            if let Some(timer) = &mut self.held_timer
                && timer.poll_unpin(cx).is_ready()
            {
                self.held_timer = None;
                self.release_held_chat(true);
                continue;
            }
            if let Some(timer) = &mut self.liveness_timer
                && timer.poll_unpin(cx).is_ready()
            {
                timer.reset(LIVENESS_CHECK);
                self.check_liveness();
                continue;
            }
            if let Some(locate::Outcome {
                peer,
                relay: answered_by,
                result,
            }) = self.lookups.poll(cx)
            {
                self.on_located(peer, answered_by, result);
                continue;
            }
            match self.inner.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(InnerEvent::Gossipsub(event))) => {
                    self.on_gossip(event);
                }
                Poll::Ready(other) => {
                    return Poll::Ready(other.map_out(|_| unreachable!("handled above")));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_waits_for_the_batch_and_then_for_the_rest_of_the_gap() {
        // The first record, or one long after the last: only the batch.
        assert_eq!(announce_wait(None), ANNOUNCE_BATCH);
        assert_eq!(announce_wait(Some(Duration::from_secs(5))), ANNOUNCE_BATCH);
        // Right after an announcement: the rest of the gap.
        assert_eq!(
            announce_wait(Some(Duration::from_millis(100))),
            ANNOUNCE_MIN_GAP - Duration::from_millis(100)
        );
        // Never less than the batch, even at the gap's end.
        assert_eq!(
            announce_wait(Some(ANNOUNCE_MIN_GAP - Duration::from_millis(1))),
            ANNOUNCE_BATCH
        );
    }

    #[test]
    fn a_newcomer_is_answered_at_once_unless_an_answer_went_out_within_the_gap() {
        let just = Some(Duration::from_millis(100));
        let almost = Some(ANNOUNCE_MIN_GAP - Duration::from_millis(1));
        // Nothing to batch with a newcomer's record: no wait at all.
        assert!(answer_at_once(None, None));
        assert!(answer_at_once(Some(ANNOUNCE_MIN_GAP), just));
        assert!(answer_at_once(Some(Duration::from_secs(5)), None));
        // Right after an announcement that answered nobody (the first
        // record, on a reservation): a newcomer is answered at once.
        assert!(answer_at_once(just, None));
        assert!(answer_at_once(almost, Some(ANNOUNCE_MIN_GAP)));
        // Right after an answer given at once: it waits like any other.
        assert!(!answer_at_once(just, just));
        assert!(!answer_at_once(almost, almost));
    }
}
