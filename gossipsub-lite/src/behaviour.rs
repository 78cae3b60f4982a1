//! The router: subscriptions, meshes, publishing and validation.
//!
//! Which connection carries a peer's traffic: every frame for a peer goes
//! on one of its connections, a direct one before a relayed one (as
//! [`Config::is_direct`] tells them apart), the newest first. So when a direct link
//! joins a relayed one, everything moves to the direct link at once, and
//! the relayed connection can close (the chat network closes it after a
//! grace) with nothing queued on it but what was sent before. Each new
//! connection's handler gets our subscriptions as its first frame, so
//! whichever connection the peer reads, it knows them.

use std::{
    collections::{HashMap, VecDeque},
    task::{Context, Poll, Waker},
};

use futures::FutureExt as _;
use futures_timer::Delay;
use libp2p::{
    Multiaddr, PeerId,
    core::{ConnectedPoint, Endpoint, transport::PortUse},
    identity::{Keypair, SigningError},
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour,
        NotifyHandler, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
        behaviour::ConnectionEstablished,
    },
};
use web_time::{Duration, Instant, SystemTime};

use crate::{
    Acceptance, Message, MessageId, Topic,
    cache::Seen,
    handler::{Handler, HandlerIn, HandlerOut},
    rpc::{self, ControlGraft, ControlMessage, ControlPrune, MAX_TRANSMIT_SIZE, Rpc, SubOpts},
    signing,
};

/// The mesh degree the heartbeat grafts up to (the spec's D).
pub const MESH_N: usize = 6;
/// Below this many mesh peers the heartbeat grafts more (D_lo).
pub const MESH_N_LOW: usize = 4;
/// Above this many the heartbeat prunes down to [`MESH_N`] (D_hi).
pub const MESH_N_HIGH: usize = 12;
/// The backoff we ask for in a PRUNE, and the one assumed when a PRUNE
/// names none (the spec's default, one minute).
pub const PRUNE_BACKOFF: Duration = Duration::from_secs(60);
/// Message ids asked for (IWANT) in answer to one RPC's IHAVEs, at most
/// (rust-libp2p offers at most 5,000 an RPC).
pub const MAX_IWANT_IDS: usize = 64;
/// The longest backoff a peer's PRUNE can set (a day): what it asks
/// beyond is cut, so that a time never overflows.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);
/// Backoffs remembered, at most; the earliest to end goes when full. Only
/// topics we subscribe to get one (a PRUNE or GRAFT for another topic
/// records nothing), so a peer cannot crowd out a real backoff with
/// made-up topics, and grafting a peer during its backoff would get us
/// penalised by its scoring (P7).
pub const MAX_BACKOFFS: usize = 1024;
/// The longest topic name taken from a peer, in bytes; subscriptions,
/// GRAFTs and PRUNEs naming a longer one are dropped. Our topics are
/// short; this bounds each peer's remembered topics to
/// [`MAX_TOPICS_PER_PEER`] of this size.
pub const MAX_TOPIC_LEN: usize = 256;
/// Topics remembered per peer; its subscriptions beyond are ignored. The
/// peers themselves are the connected ones, bounded by the swarm's
/// connection limits.
pub const MAX_TOPICS_PER_PEER: usize = 64;
/// How long a message id is remembered as seen: the spec's `seen_ttl`
/// of 2 minutes (pubsub/gossipsub/gossipsub-v1.0.md, "Parameters";
/// rust-libp2p's default is 60 s), so that a copy arriving late is still
/// recognised.
pub const SEEN_TTL: Duration = Duration::from_secs(120);
/// Message ids remembered as seen, at most; the oldest goes when full.
pub const MAX_SEEN: usize = 8192;
/// Messages handed to the application and not yet judged, at most; more
/// are dropped (and not marked seen) until it catches up.
pub const MAX_UNVALIDATED: usize = 512;
/// A message not judged within this long is dropped from the messages
/// awaiting validation.
pub const VALIDATION_TTL: Duration = Duration::from_secs(10);

/// How the router runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often the meshes are maintained (the spec's 1 s).
    pub heartbeat_interval: Duration,
    /// Whether a connection is direct (preferred for a peer's traffic)
    /// rather than relayed. The default is [`not_relayed`]; a network
    /// whose direct links are themselves negotiated over circuits (as
    /// browser-to-browser WebRTC is) passes its own rule.
    pub is_direct: fn(&ConnectedPoint) -> bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            is_direct: not_relayed,
        }
    }
}

/// The default [`Config::is_direct`]: not through a relay's circuit, as
/// libp2p sees it ([`ConnectedPoint::is_relayed`]: the dialer's address or
/// the listener's local address has `/p2p-circuit`; the listener's
/// send-back address of a relayed connection is only `/p2p/<source>`).
pub fn not_relayed(endpoint: &ConnectedPoint) -> bool {
    !endpoint.is_relayed()
}

/// What the router reports.
#[derive(Debug)]
pub enum Event {
    /// A message on one of our topics, signature checked, seen for the
    /// first time. Judge it with
    /// [`Behaviour::report_message_validation_result`].
    Message {
        propagation_source: PeerId,
        message_id: MessageId,
        message: Message,
    },
    Subscribed {
        peer_id: PeerId,
        topic: Topic,
    },
    Unsubscribed {
        peer_id: PeerId,
        topic: Topic,
    },
}

/// Why a message was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no peer is subscribed to the topic")]
    NoPeersSubscribedToTopic,
    #[error("message of {size} bytes exceeds the frame limit of {MAX_TRANSMIT_SIZE}")]
    MessageTooLarge { size: usize },
    #[error("cannot sign the message")]
    Signing(#[source] SigningError),
}

#[derive(Debug)]
struct Connection {
    id: ConnectionId,
    direct: bool,
    /// This node dialed it (see [`Behaviour::heartbeat`]'s pruning).
    dialed: bool,
    usable: bool,
}

#[derive(Debug, Default)]
struct PeerState {
    /// In the order they were established.
    connections: Vec<Connection>,
    topics: Vec<Topic>,
    /// Our topics this peer unsubscribed from while connected. Such a peer
    /// is grafted by the heartbeat, never at its next SUBSCRIBE: leaving,
    /// it PRUNEs us with a backoff, and rust-libp2p sends subscriptions
    /// ahead of control messages, so a quick SUBSCRIBE overtakes that
    /// PRUNE, and a GRAFT answering it would fall in the backoff (a
    /// penalty). Bounded by our own topics.
    left: Vec<Topic>,
    /// What the handlers were last told (see [`HandlerIn::InMesh`]).
    in_mesh: bool,
}

#[derive(Debug)]
struct Unvalidated {
    id: MessageId,
    /// The peer that handed it to us (the author is `author`).
    propagation_source: PeerId,
    raw: rpc::Message,
    topic: Topic,
    author: PeerId,
    at: Instant,
}

/// The router (see the crate docs).
pub struct Behaviour {
    keypair: Keypair,
    local: PeerId,
    config: Config,
    subscriptions: Vec<Topic>,
    /// One mesh per subscribed topic.
    mesh: HashMap<Topic, Vec<PeerId>>,
    /// Connected peers only.
    peers: HashMap<PeerId, PeerState>,
    /// Until when we must not GRAFT a peer on a topic.
    backoffs: HashMap<(Topic, PeerId), Instant>,
    seen: Seen,
    unvalidated: VecDeque<Unvalidated>,
    seqno: u64,
    heartbeat: Delay,
    /// Drained first in every poll; each call adds what one RPC, publish
    /// or heartbeat produces.
    events: VecDeque<ToSwarm<Event, HandlerIn>>,
    waker: Option<Waker>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour")
            .field("local", &self.local)
            .field("subscriptions", &self.subscriptions)
            .field("mesh", &self.mesh)
            .finish_non_exhaustive()
    }
}

impl Behaviour {
    /// The router of the peer `keypair`, which signs what it publishes.
    pub fn new(keypair: Keypair, config: Config) -> Self {
        // Sequence numbers start at the clock, so that a peer restarted
        // with the same key does not reuse ids others still remember.
        let seqno = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or_default();
        Self {
            local: keypair.public().to_peer_id(),
            keypair,
            heartbeat: Delay::new(config.heartbeat_interval),
            config,
            subscriptions: Vec::new(),
            mesh: HashMap::new(),
            peers: HashMap::new(),
            backoffs: HashMap::new(),
            seen: Seen::new(SEEN_TTL, MAX_SEEN),
            unvalidated: VecDeque::new(),
            seqno,
            events: VecDeque::new(),
            waker: None,
        }
    }

    /// Subscribes to `topic` and tells every connected peer. Returns
    /// whether it is new.
    pub fn subscribe(&mut self, topic: &Topic) -> bool {
        if self.subscriptions.contains(topic) {
            return false;
        }
        self.subscriptions.push(topic.clone());
        self.mesh.insert(topic.clone(), Vec::new());
        let body = Rpc {
            subscriptions: vec![SubOpts {
                subscribe: Some(true),
                topic_id: Some(topic.0.clone()),
            }],
            ..Rpc::default()
        }
        .to_body();
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            self.send(peer, body.clone());
        }
        true
    }

    /// Our mesh peers on `topic`.
    pub fn mesh_peers(&self, topic: &Topic) -> impl Iterator<Item = &PeerId> {
        self.mesh.get(topic).into_iter().flatten()
    }

    /// The connected peers subscribed to `topic`.
    pub fn subscribed_peers<'a>(&'a self, topic: &'a Topic) -> impl Iterator<Item = &'a PeerId> {
        self.peers
            .iter()
            .filter(move |(_, state)| state.topics.contains(topic))
            .map(|(peer, _)| peer)
    }

    /// Signs `data` and sends it to every peer subscribed to `topic`.
    pub fn publish(
        &mut self,
        topic: Topic,
        data: impl Into<Vec<u8>>,
    ) -> Result<MessageId, PublishError> {
        let recipients: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, state)| state.topics.contains(&topic) && route(state).is_some())
            .map(|(peer, _)| *peer)
            .collect();
        if recipients.is_empty() {
            return Err(PublishError::NoPeersSubscribedToTopic);
        }
        self.seqno = self.seqno.wrapping_add(1);
        let mut raw = rpc::Message {
            from: Some(self.local.to_bytes()),
            data: Some(data.into()),
            seqno: Some(self.seqno.to_be_bytes().to_vec()),
            topic: Some(topic.0.clone()),
            signature: None,
            key: None,
        };
        signing::sign(&self.keypair, &mut raw).map_err(PublishError::Signing)?;
        let body = Rpc {
            publish: vec![raw.clone()],
            ..Rpc::default()
        }
        .to_body();
        if body.len() > MAX_TRANSMIT_SIZE {
            return Err(PublishError::MessageTooLarge { size: body.len() });
        }
        let id = signing::message_id(&self.local, self.seqno);
        let now = Instant::now();
        self.seen.insert(id.clone(), now);
        for peer in recipients {
            self.send(peer, body.clone());
        }
        Ok(id)
    }

    /// The application's verdict on a message it got as
    /// [`Event::Message`]: accepted, it is forwarded to the mesh peers on
    /// its topic but its author and the peer it came from. Returns whether
    /// the message was still waiting for it.
    pub fn report_message_validation_result(
        &mut self,
        id: &MessageId,
        propagation_source: &PeerId,
        acceptance: Acceptance,
    ) -> bool {
        let Some(index) = self.unvalidated.iter().position(|waiting| {
            waiting.id == *id && waiting.propagation_source == *propagation_source
        }) else {
            return false;
        };
        let Some(message) = self.unvalidated.remove(index) else {
            return false;
        };
        if acceptance != Acceptance::Accept {
            return true;
        }
        let body = Rpc {
            publish: vec![message.raw.clone()],
            ..Rpc::default()
        }
        .to_body();
        let targets: Vec<PeerId> = self
            .mesh_peers(&message.topic)
            .filter(|peer| **peer != message.propagation_source && **peer != message.author)
            .copied()
            .collect();
        for peer in targets {
            self.send(peer, body.clone());
        }
        true
    }

    /// Queues `body` for `peer` on its chosen connection (see the module
    /// docs); dropped when it has none that speaks meshsub.
    fn send(&mut self, peer: PeerId, body: Vec<u8>) {
        let Some(connection) = self.peers.get(&peer).and_then(route) else {
            return;
        };
        self.push(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(connection),
            event: HandlerIn::Send(body),
        });
    }

    fn push(&mut self, event: ToSwarm<Event, HandlerIn>) {
        self.events.push_back(event);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn control(&mut self, peer: PeerId, control: ControlMessage) {
        self.send(
            peer,
            Rpc {
                control: Some(control),
                ..Rpc::default()
            }
            .to_body(),
        );
    }

    fn prune(&mut self, peer: PeerId, topic: &Topic, now: Instant) {
        self.set_backoff(topic.clone(), peer, now + PRUNE_BACKOFF);
        self.control(
            peer,
            ControlMessage {
                prune: vec![ControlPrune {
                    topic_id: Some(topic.0.clone()),
                    backoff: Some(PRUNE_BACKOFF.as_secs()),
                }],
                ..ControlMessage::default()
            },
        );
    }

    fn set_backoff(&mut self, topic: Topic, peer: PeerId, until: Instant) {
        let key = (topic, peer);
        if let Some(existing) = self.backoffs.get_mut(&key) {
            *existing = (*existing).max(until);
            return;
        }
        if self.backoffs.len() >= MAX_BACKOFFS {
            let earliest = self
                .backoffs
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(key, _)| key.clone());
            if let Some(earliest) = earliest {
                self.backoffs.remove(&earliest);
            }
        }
        self.backoffs.insert(key, until);
    }

    /// Whether `peer` may not be grafted on `topic` yet: its backoff, plus
    /// a heartbeat of slack (rust-libp2p's `backoff_slack`), so that a
    /// GRAFT never reaches the peer before its own backoff ends.
    fn in_backoff(&self, topic: &Topic, peer: &PeerId, now: Instant) -> bool {
        self.backoffs
            .get(&(topic.clone(), *peer))
            .is_some_and(|until| now < *until + self.config.heartbeat_interval)
    }

    fn on_rpc(&mut self, peer: PeerId, rpc: Rpc) {
        let now = Instant::now();
        let named = |topic: Option<String>| topic.filter(|t| t.len() <= MAX_TOPIC_LEN).map(Topic);
        for sub in rpc.subscriptions {
            let Some(topic) = named(sub.topic_id) else {
                continue;
            };
            if self.on_subscription(peer, topic.clone(), sub.subscribe.unwrap_or(false)) {
                self.graft_if_mesh_low(peer, &topic, now);
            }
        }
        for raw in rpc.publish {
            self.on_message(peer, raw, now);
        }
        if let Some(control) = rpc.control {
            for graft in control.graft {
                let Some(topic) = named(graft.topic_id) else {
                    continue;
                };
                self.on_graft(peer, topic, now);
            }
            for prune in control.prune {
                let Some(topic) = named(prune.topic_id) else {
                    continue;
                };
                if !self.subscriptions.contains(&topic) {
                    // Not our topic: no mesh to leave, no backoff to keep.
                    continue;
                }
                let backoff = prune
                    .backoff
                    .map_or(PRUNE_BACKOFF, Duration::from_secs)
                    .min(MAX_BACKOFF);
                self.remove_from_mesh(&topic, &peer);
                self.set_backoff(topic, peer, now + backoff);
            }
            self.on_ihave(peer, control.ihave);
            // IWANT is ignored: an honest peer sends it only after our
            // IHAVE, which we never send.
        }
        self.refresh_mesh_flags();
    }

    /// Asks for the messages a peer offers (IHAVE) on our topics that we
    /// have not seen, at most [`MAX_IWANT_IDS`] an RPC. Why: a router
    /// whose own mesh is full (a relay with many pages) does not graft a
    /// newcomer, and offers it what it forwards only as IHAVE until the
    /// newcomer's own GRAFT; without asking, a page would miss the first
    /// records and chat sent right after it joined.
    fn on_ihave(&mut self, peer: PeerId, offers: Vec<rpc::ControlIHave>) {
        let mut wanted: Vec<Vec<u8>> = Vec::new();
        for offer in offers {
            let ours = offer
                .topic_id
                .is_some_and(|topic| self.subscriptions.iter().any(|t| t.0 == topic));
            if !ours {
                continue;
            }
            for id in offer.message_ids {
                if wanted.len() >= MAX_IWANT_IDS {
                    break;
                }
                let id = MessageId(id);
                if !self.seen.contains(&id) && !wanted.contains(&id.0) {
                    wanted.push(id.0);
                }
            }
        }
        if !wanted.is_empty() {
            self.control(
                peer,
                ControlMessage {
                    iwant: vec![rpc::ControlIWant {
                        message_ids: wanted,
                    }],
                    ..ControlMessage::default()
                },
            );
        }
    }

    /// Records a peer's subscription or its end. Returns whether it is a
    /// new subscription to one of our topics that the peer has not left
    /// while connected (see [`PeerState::left`]).
    fn on_subscription(&mut self, peer: PeerId, topic: Topic, subscribe: bool) -> bool {
        let Some(state) = self.peers.get_mut(&peer) else {
            return false;
        };
        let ours = self.subscriptions.contains(&topic);
        let known = state.topics.iter().position(|t| *t == topic);
        match (subscribe, known) {
            (true, None) if state.topics.len() < MAX_TOPICS_PER_PEER => {
                let first = ours && !state.left.contains(&topic);
                state.topics.push(topic.clone());
                self.push(ToSwarm::GenerateEvent(Event::Subscribed {
                    peer_id: peer,
                    topic,
                }));
                first
            }
            (false, Some(index)) => {
                state.topics.swap_remove(index);
                if ours && !state.left.contains(&topic) {
                    state.left.push(topic.clone());
                }
                self.remove_from_mesh(&topic, &peer);
                self.push(ToSwarm::GenerateEvent(Event::Unsubscribed {
                    peer_id: peer,
                    topic,
                }));
                false
            }
            _ => false,
        }
    }

    /// Grafts a peer that just subscribed to one of our topics, if that
    /// topic's mesh is below [`MESH_N_LOW`], at once rather than at the
    /// next heartbeat (as rust-libp2p does on a subscription). Why: a
    /// router whose mesh is at its own D_lo (a relay with many pages) does
    /// not graft us, and forwards only to its mesh; what we publish next
    /// (a discovery record) makes others answer at once (the first chat
    /// message), and with our GRAFT still waiting for the heartbeat, the
    /// answer reached us only by lazy gossip, which the relay sends only
    /// outside its mesh: a GRAFT landing before its next heartbeat lost
    /// the message. Sent now, the GRAFT goes before anything we publish
    /// on the same stream.
    fn graft_if_mesh_low(&mut self, peer: PeerId, topic: &Topic, now: Instant) {
        let Some(mesh) = self.mesh.get(topic) else {
            return; // Not our topic.
        };
        let graftable = mesh.len() < MESH_N_LOW
            && !mesh.contains(&peer)
            && !self.in_backoff(topic, &peer, now)
            && self
                .peers
                .get(&peer)
                .is_some_and(|state| state.topics.contains(topic) && route(state).is_some());
        if !graftable {
            return;
        }
        if let Some(mesh) = self.mesh.get_mut(topic) {
            mesh.push(peer);
        }
        self.send_graft(peer, topic);
    }

    fn send_graft(&mut self, peer: PeerId, topic: &Topic) {
        self.control(
            peer,
            ControlMessage {
                graft: vec![ControlGraft {
                    topic_id: Some(topic.0.clone()),
                }],
                ..ControlMessage::default()
            },
        );
    }

    fn on_message(&mut self, peer: PeerId, raw: rpc::Message, now: Instant) {
        // The cheap checks first (our topic, not ours, not seen), from the
        // unverified fields; the signature only for what passes them.
        let topic_is_ours = raw
            .topic
            .as_ref()
            .is_some_and(|topic| self.subscriptions.iter().any(|t| t.0 == *topic));
        if !topic_is_ours {
            return;
        }
        let claimed_source = raw
            .from
            .as_deref()
            .and_then(|from| PeerId::from_bytes(from).ok());
        let claimed_seqno = raw
            .seqno
            .as_deref()
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map(u64::from_be_bytes);
        if let (Some(source), Some(seqno)) = (claimed_source, claimed_seqno)
            && (source == self.local || self.seen.contains(&signing::message_id(&source, seqno)))
        {
            return;
        }
        let message = match signing::verify(&raw) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(from = %peer, %error, "invalid gossip message dropped");
                return;
            }
        };
        let id = signing::message_id(&message.source, message.sequence_number);
        while self
            .unvalidated
            .front()
            .is_some_and(|waiting| now.duration_since(waiting.at) > VALIDATION_TTL)
        {
            self.unvalidated.pop_front();
        }
        if self.unvalidated.len() >= MAX_UNVALIDATED {
            // Not marked seen: a copy arriving once there is room is taken.
            tracing::debug!("too many messages awaiting validation: one dropped");
            return;
        }
        self.seen.insert(id.clone(), now);
        self.unvalidated.push_back(Unvalidated {
            id: id.clone(),
            propagation_source: peer,
            raw,
            topic: message.topic.clone(),
            author: message.source,
            at: now,
        });
        self.push(ToSwarm::GenerateEvent(Event::Message {
            propagation_source: peer,
            message_id: id,
            message,
        }));
    }

    fn on_graft(&mut self, peer: PeerId, topic: Topic, now: Instant) {
        if !self.subscriptions.contains(&topic) {
            // Not our topic: ignored (as rust-libp2p does), so that it
            // records no backoff (see [`MAX_BACKOFFS`]).
            return;
        }
        if self
            .backoffs
            .get(&(topic.clone(), peer))
            .is_some_and(|until| now < *until)
        {
            // The peer grafts before the backoff ends (the bare backoff:
            // the slack of [`Self::in_backoff`] is for our own GRAFTs):
            // PRUNE, with a fresh backoff, as the spec asks.
            self.prune(peer, &topic, now);
            return;
        }
        // A GRAFT implies the subscription (a peer may graft before its
        // subscription arrives, as rust-libp2p allows), within the peer's
        // topic bound; beyond it, the GRAFT is ignored.
        let _ = self.on_subscription(peer, topic.clone(), true);
        if !self
            .peers
            .get(&peer)
            .is_some_and(|state| state.topics.contains(&topic))
        {
            return;
        }
        let mesh = self.mesh.entry(topic).or_default();
        if !mesh.contains(&peer) {
            // Above D_hi, the heartbeat trims.
            mesh.push(peer);
        }
    }

    fn remove_from_mesh(&mut self, topic: &Topic, peer: &PeerId) {
        if let Some(mesh) = self.mesh.get_mut(topic) {
            mesh.retain(|p| p != peer);
        }
    }

    fn heartbeat(&mut self) {
        let now = Instant::now();
        self.seen.expire(now);
        while self
            .unvalidated
            .front()
            .is_some_and(|waiting| now.duration_since(waiting.at) > VALIDATION_TTL)
        {
            self.unvalidated.pop_front();
        }
        let slack = self.config.heartbeat_interval;
        self.backoffs.retain(|_, until| now < *until + slack);

        for topic in self.subscriptions.clone() {
            let mut mesh = self.mesh.remove(&topic).unwrap_or_default();
            mesh.retain(|peer| {
                self.peers
                    .get(peer)
                    .is_some_and(|state| state.topics.contains(&topic) && route(state).is_some())
            });
            if mesh.len() < MESH_N_LOW {
                let candidates: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(peer, state)| {
                        state.topics.contains(&topic)
                            && route(state).is_some()
                            && !mesh.contains(peer)
                            && !self.in_backoff(&topic, peer, now)
                    })
                    .map(|(peer, _)| *peer)
                    .take(MESH_N - mesh.len())
                    .collect();
                for peer in candidates {
                    mesh.push(peer);
                    self.send_graft(peer, &topic);
                }
            }
            // Over D_hi, the peers this node dialed stay first, then the
            // oldest: a leaf always dials its relay, which must not be
            // pruned for newer direct peers (outside the relay's mesh, a
            // leaf that ignores IHAVE would get only what its direct peers
            // forward), and dialed peers are the ones an attacker cannot
            // crowd out by dialing in (rust-libp2p's mesh_outbound_min).
            let excess = if mesh.len() > MESH_N_HIGH {
                let dialed = |peer: &PeerId| {
                    self.peers.get(peer).is_some_and(|state| {
                        state.connections.iter().any(|connection| connection.dialed)
                    })
                };
                mesh.sort_by_key(|peer| !dialed(peer));
                mesh.split_off(MESH_N)
            } else {
                Vec::new()
            };
            self.mesh.insert(topic.clone(), mesh);
            for peer in excess {
                self.prune(peer, &topic, now);
            }
        }
        self.refresh_mesh_flags();
    }

    /// Tells each peer's connections whether it is in a mesh now (they
    /// keep the connection open while it is).
    fn refresh_mesh_flags(&mut self) {
        let mut notices = Vec::new();
        for (peer, state) in &mut self.peers {
            let in_mesh = self.mesh.values().any(|mesh| mesh.contains(peer));
            if in_mesh != state.in_mesh {
                state.in_mesh = in_mesh;
                notices.extend(
                    state
                        .connections
                        .iter()
                        .map(|connection| (*peer, connection.id, in_mesh)),
                );
            }
        }
        for (peer_id, connection, in_mesh) in notices {
            self.push(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: HandlerIn::InMesh(in_mesh),
            });
        }
    }

    fn new_handler(&self, peer: &PeerId) -> Handler {
        let subscriptions = (!self.subscriptions.is_empty()).then(|| {
            Rpc {
                subscriptions: self
                    .subscriptions
                    .iter()
                    .map(|topic| SubOpts {
                        subscribe: Some(true),
                        topic_id: Some(topic.0.clone()),
                    })
                    .collect(),
                ..Rpc::default()
            }
            .to_body()
        });
        let in_mesh = self.peers.get(peer).is_some_and(|state| state.in_mesh);
        Handler::new(subscriptions, in_mesh)
    }
}

/// The connection that carries a peer's traffic: a usable direct one
/// before a relayed one, the newest first.
fn route(state: &PeerState) -> Option<ConnectionId> {
    let usable = || state.connections.iter().rev().filter(|c| c.usable);
    usable()
        .find(|c| c.direct)
        .or_else(|| usable().next())
        .map(|c| c.id)
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.new_handler(&peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.new_handler(&peer))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                let direct = (self.config.is_direct)(endpoint);
                self.peers
                    .entry(peer_id)
                    .or_default()
                    .connections
                    .push(Connection {
                        id: connection_id,
                        direct,
                        dialed: endpoint.is_dialer(),
                        usable: true,
                    });
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => {
                let Some(state) = self.peers.get_mut(&peer_id) else {
                    return;
                };
                state.connections.retain(|c| c.id != connection_id);
                if state.connections.is_empty() {
                    self.peers.remove(&peer_id);
                    for mesh in self.mesh.values_mut() {
                        mesh.retain(|peer| *peer != peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            HandlerOut::Rpc(rpc) => self.on_rpc(peer, rpc),
            HandlerOut::Unusable => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    for c in &mut state.connections {
                        if c.id == connection {
                            c.usable = false;
                        }
                    }
                }
            }
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(event);
        }
        while self.heartbeat.poll_unpin(cx).is_ready() {
            self.heartbeat.reset(self.config.heartbeat_interval);
            self.heartbeat();
        }
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(event);
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use libp2p::swarm::ConnectionId;

    use super::*;

    const TOPIC: &str = "chat";

    fn connect(router: &mut Behaviour, peer: PeerId, id: usize, address: &str) -> ConnectionId {
        let endpoint = ConnectedPoint::Dialer {
            address: address.parse().expect("multiaddr"),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        connect_at(router, peer, id, endpoint)
    }

    /// A connection we accepted, on `local_addr` from `send_back_addr`.
    fn accept(
        router: &mut Behaviour,
        peer: PeerId,
        id: usize,
        local_addr: &str,
        send_back_addr: &str,
    ) -> ConnectionId {
        let endpoint = ConnectedPoint::Listener {
            local_addr: local_addr.parse().expect("multiaddr"),
            send_back_addr: send_back_addr.parse().expect("multiaddr"),
        };
        connect_at(router, peer, id, endpoint)
    }

    fn connect_at(
        router: &mut Behaviour,
        peer: PeerId,
        id: usize,
        endpoint: ConnectedPoint,
    ) -> ConnectionId {
        let connection = ConnectionId::new_unchecked(id);
        router.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: connection,
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: id,
        }));
        router.on_connection_handler_event(
            peer,
            connection,
            HandlerOut::Rpc(Rpc {
                subscriptions: vec![SubOpts {
                    subscribe: Some(true),
                    topic_id: Some(TOPIC.into()),
                }],
                ..Rpc::default()
            }),
        );
        connection
    }

    /// The RPCs queued for handlers, by connection.
    fn sent(router: &mut Behaviour) -> Vec<(ConnectionId, Rpc)> {
        router
            .events
            .drain(..)
            .filter_map(|event| match event {
                ToSwarm::NotifyHandler {
                    handler: NotifyHandler::One(connection),
                    event: HandlerIn::Send(body),
                    ..
                } => Some((connection, Rpc::decode_frame(&body).expect("valid RPC"))),
                _ => None,
            })
            .collect()
    }

    fn router() -> Behaviour {
        let mut router = Behaviour::new(Keypair::generate_ed25519(), Config::default());
        router.subscribe(&Topic::new(TOPIC));
        router
    }

    /// Where `router` sends a message it publishes.
    fn publish_goes_to(router: &mut Behaviour) -> Vec<ConnectionId> {
        // What came before (a GRAFT on a subscription) is not the publish.
        sent(router);
        router
            .publish(Topic::new(TOPIC), b"hi".to_vec())
            .expect("publish");
        sent(router).iter().map(|(c, _)| *c).collect()
    }

    const RELAY: &str = "/memory/9/p2p/12D3KooWLo9q3BdjBPcgmzXBmuZjRnX2bwd7K16Ww2mnaLQLpLnh";

    #[test]
    fn a_direct_connection_carries_a_peers_traffic() {
        let mut router = router();
        let peer = PeerId::random();
        let relayed = connect(&mut router, peer, 1, &format!("{RELAY}/p2p-circuit"));
        let direct = connect(&mut router, peer, 2, "/memory/2");
        // A relayed connection opened after the direct one (a peer dialing
        // again through the relay) does not take the traffic either.
        let late_relayed = connect(&mut router, peer, 3, &format!("{RELAY}/p2p-circuit"));
        // Nor one the peer opened to us through the relay: its send-back
        // address is only `/p2p/<peer>`, the circuit is in our local one.
        let inbound_relayed = accept(
            &mut router,
            peer,
            4,
            &format!("{RELAY}/p2p-circuit"),
            &format!("/p2p/{peer}"),
        );
        assert_eq!(
            publish_goes_to(&mut router),
            vec![direct],
            "not on {relayed:?}, {late_relayed:?} or {inbound_relayed:?}"
        );
    }

    #[test]
    fn the_network_decides_which_connection_is_direct() {
        // Browser-to-browser WebRTC: negotiated through a circuit, so both
        // its addresses have `/p2p-circuit/webrtc`, yet the link is direct.
        let webrtc = format!("{RELAY}/p2p-circuit/webrtc");
        let is_webrtc_or_not_relayed = |endpoint: &ConnectedPoint| {
            endpoint
                .get_remote_address()
                .iter()
                .any(|p| p == libp2p::core::multiaddr::Protocol::WebRTC)
                || !endpoint.is_relayed()
        };
        let mut router = Behaviour::new(
            Keypair::generate_ed25519(),
            Config {
                is_direct: is_webrtc_or_not_relayed,
                ..Config::default()
            },
        );
        router.subscribe(&Topic::new(TOPIC));
        let peer = PeerId::random();
        let dialed = connect(&mut router, peer, 1, &webrtc);
        let relayed = connect(&mut router, peer, 2, &format!("{RELAY}/p2p-circuit"));
        assert_eq!(
            publish_goes_to(&mut router),
            vec![dialed],
            "not {relayed:?}"
        );

        let mut router = Behaviour::new(
            Keypair::generate_ed25519(),
            Config {
                is_direct: is_webrtc_or_not_relayed,
                ..Config::default()
            },
        );
        router.subscribe(&Topic::new(TOPIC));
        let accepted = accept(&mut router, peer, 1, &webrtc, &webrtc);
        let relayed = connect(&mut router, peer, 2, &format!("{RELAY}/p2p-circuit"));
        assert_eq!(
            publish_goes_to(&mut router),
            vec![accepted],
            "not {relayed:?}"
        );
    }

    fn prune_rpc(topic: String, backoff: u64) -> HandlerOut {
        HandlerOut::Rpc(Rpc {
            control: Some(ControlMessage {
                prune: vec![ControlPrune {
                    topic_id: Some(topic),
                    backoff: Some(backoff),
                }],
                ..ControlMessage::default()
            }),
            ..Rpc::default()
        })
    }

    #[test]
    fn prunes_for_unknown_topics_do_not_evict_a_real_backoff() {
        let mut router = router();
        let relay = PeerId::random();
        let attacker = PeerId::random();
        let relay_connection = connect(&mut router, relay, 1, "/memory/1");
        let attacker_connection = connect(&mut router, attacker, 2, "/memory/2");
        router.on_connection_handler_event(relay, relay_connection, prune_rpc(TOPIC.into(), 60));
        for n in 0..=MAX_BACKOFFS {
            router.on_connection_handler_event(
                attacker,
                attacker_connection,
                prune_rpc(format!("made-up-{n}"), 30),
            );
        }
        router.on_connection_handler_event(
            attacker,
            attacker_connection,
            prune_rpc("x".repeat(MAX_TOPIC_LEN + 1), 30),
        );
        assert_eq!(
            router.backoffs.keys().collect::<Vec<_>>(),
            vec![&(Topic::new(TOPIC), relay)],
            "only the relay's backoff on our topic"
        );
        // So the heartbeat does not graft the relay during it.
        sent(&mut router);
        router.heartbeat();
        assert!(
            sent(&mut router)
                .iter()
                .all(|(c, rpc)| *c != relay_connection
                    || rpc.control.as_ref().is_none_or(|c| c.graft.is_empty()))
        );
    }

    fn graft_rpc(topic: &str) -> HandlerOut {
        HandlerOut::Rpc(Rpc {
            control: Some(ControlMessage {
                graft: vec![ControlGraft {
                    topic_id: Some(topic.into()),
                }],
                ..ControlMessage::default()
            }),
            ..Rpc::default()
        })
    }

    fn message_rpc(author: &Keypair, seqno: u64) -> HandlerOut {
        let mut raw = rpc::Message {
            from: Some(author.public().to_peer_id().to_bytes()),
            data: Some(b"hi".to_vec()),
            seqno: Some(seqno.to_be_bytes().to_vec()),
            topic: Some(TOPIC.into()),
            signature: None,
            key: None,
        };
        signing::sign(author, &mut raw).expect("sign");
        HandlerOut::Rpc(Rpc {
            publish: vec![raw],
            ..Rpc::default()
        })
    }

    /// The messages `router` handed to the application.
    fn delivered(router: &mut Behaviour) -> Vec<MessageId> {
        router
            .events
            .drain(..)
            .filter_map(|event| match event {
                ToSwarm::GenerateEvent(Event::Message { message_id, .. }) => Some(message_id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_message_dropped_for_a_full_queue_is_taken_later() {
        let mut router = router();
        let peer = PeerId::random();
        let connection = connect(&mut router, peer, 1, "/memory/1");
        let author = Keypair::generate_ed25519();
        for seqno in 0..MAX_UNVALIDATED as u64 {
            router.on_connection_handler_event(peer, connection, message_rpc(&author, seqno));
        }
        let waiting = delivered(&mut router);
        assert_eq!(waiting.len(), MAX_UNVALIDATED);
        let late = MAX_UNVALIDATED as u64;
        router.on_connection_handler_event(peer, connection, message_rpc(&author, late));
        assert!(delivered(&mut router).is_empty(), "the queue is full");

        router.report_message_validation_result(&waiting[0], &peer, Acceptance::Accept);
        router.on_connection_handler_event(peer, connection, message_rpc(&author, late));
        assert_eq!(
            delivered(&mut router),
            vec![signing::message_id(&author.public().to_peer_id(), late)],
            "not marked seen when dropped"
        );
        // And a copy of a message taken is not taken again.
        router.on_connection_handler_event(peer, connection, message_rpc(&author, late));
        assert!(delivered(&mut router).is_empty());
    }

    #[test]
    fn pruning_down_to_d_keeps_the_peers_we_dialed() {
        let mut router = router();
        let topic = Topic::new(TOPIC);
        // MESH_N_HIGH peers that dialed us join the mesh by their GRAFTs;
        // then the relay we dialed (after a reconnect, say) joins last.
        for id in 0..MESH_N_HIGH {
            let peer = PeerId::random();
            let connection = accept(&mut router, peer, id, "/memory/1", "/memory/2");
            router.on_connection_handler_event(peer, connection, graft_rpc(TOPIC));
        }
        let relay = PeerId::random();
        let connection = connect(&mut router, relay, MESH_N_HIGH, RELAY);
        router.on_connection_handler_event(relay, connection, graft_rpc(TOPIC));
        assert_eq!(router.mesh_peers(&topic).count(), MESH_N_HIGH + 1);

        router.heartbeat();
        assert_eq!(router.mesh_peers(&topic).count(), MESH_N);
        assert!(
            router.mesh_peers(&topic).any(|peer| *peer == relay),
            "the peer we dialed stays in the mesh"
        );
    }

    #[test]
    fn unseen_offers_on_our_topics_are_asked_for() {
        let mut router = router();
        let relay = PeerId::random();
        let connection = connect(&mut router, relay, 1, RELAY);
        sent(&mut router);
        let author = Keypair::generate_ed25519();
        let author_id = author.public().to_peer_id();
        // One message seen already (delivered), one not.
        router.on_connection_handler_event(relay, connection, message_rpc(&author, 1));
        let seen = signing::message_id(&author_id, 1);
        let unseen = signing::message_id(&author_id, 2);
        sent(&mut router);
        let offer = |topic: &str| {
            HandlerOut::Rpc(Rpc {
                control: Some(ControlMessage {
                    ihave: vec![rpc::ControlIHave {
                        topic_id: Some(topic.into()),
                        message_ids: vec![seen.0.clone(), unseen.0.clone(), unseen.0.clone()],
                    }],
                    ..ControlMessage::default()
                }),
                ..Rpc::default()
            })
        };
        router.on_connection_handler_event(relay, connection, offer("other"));
        assert!(sent(&mut router).is_empty(), "not our topic: nothing asked");
        router.on_connection_handler_event(relay, connection, offer(TOPIC));
        let asked: Vec<Vec<u8>> = sent(&mut router)
            .into_iter()
            .filter_map(|(_, rpc)| rpc.control)
            .flat_map(|control| control.iwant)
            .flat_map(|iwant| iwant.message_ids)
            .collect();
        assert_eq!(asked, vec![unseen.0], "only the unseen id, once");
    }

    /// The GRAFTs among the RPCs queued, by peer.
    fn grafts_sent(router: &mut Behaviour) -> Vec<PeerId> {
        router
            .events
            .drain(..)
            .filter_map(|event| match event {
                ToSwarm::NotifyHandler {
                    peer_id,
                    event: HandlerIn::Send(body),
                    ..
                } => {
                    let rpc = Rpc::decode_frame(&body).expect("valid RPC");
                    rpc.control
                        .is_some_and(|control| !control.graft.is_empty())
                        .then_some(peer_id)
                }
                _ => None,
            })
            .collect()
    }

    fn subscription(subscribe: bool) -> HandlerOut {
        HandlerOut::Rpc(Rpc {
            subscriptions: vec![SubOpts {
                subscribe: Some(subscribe),
                topic_id: Some(TOPIC.into()),
            }],
            ..Rpc::default()
        })
    }

    #[test]
    fn a_subscriber_is_grafted_at_once_while_the_mesh_is_below_d_lo() {
        let mut router = router();
        let topic = Topic::new(TOPIC);
        let peers: Vec<PeerId> = (0..MESH_N_LOW + 1).map(|_| PeerId::random()).collect();
        for (id, peer) in peers.iter().enumerate() {
            // `connect` hands over the peer's subscription; no heartbeat.
            connect(&mut router, *peer, id, &format!("/memory/{id}"));
            let grafted = grafts_sent(&mut router);
            if id < MESH_N_LOW {
                assert_eq!(grafted, vec![*peer], "subscriber {id} grafted at once");
                assert!(router.mesh_peers(&topic).any(|p| p == peer));
            } else {
                assert!(
                    grafted.is_empty(),
                    "the mesh is at D_lo: left to the heartbeat"
                );
            }
        }
        // A repeated SUBSCRIBE is no news.
        let connection = ConnectionId::new_unchecked(0);
        router.on_connection_handler_event(peers[0], connection, subscription(true));
        assert!(grafts_sent(&mut router).is_empty(), "grafted once");
    }

    #[test]
    fn a_peer_subscribing_again_is_left_to_the_heartbeat() {
        let mut router = router();
        let peer = PeerId::random();
        let connection = connect(&mut router, peer, 1, "/memory/1");
        assert_eq!(grafts_sent(&mut router), vec![peer]);
        // It leaves and comes back at once; its PRUNE (and backoff) may
        // come after the SUBSCRIBE, as rust-libp2p sends them.
        router.on_connection_handler_event(peer, connection, subscription(false));
        router.on_connection_handler_event(peer, connection, subscription(true));
        assert!(
            grafts_sent(&mut router).is_empty(),
            "no GRAFT that could fall in the backoff of the PRUNE still to come"
        );
    }

    #[test]
    fn a_graft_implies_the_subscription() {
        let mut router = router();
        let peer = PeerId::random();
        let connection = connect(&mut router, peer, 1, "/memory/1");
        // Forget its subscription: as if the GRAFT came first.
        router.on_connection_handler_event(
            peer,
            connection,
            HandlerOut::Rpc(Rpc {
                subscriptions: vec![SubOpts {
                    subscribe: Some(false),
                    topic_id: Some(TOPIC.into()),
                }],
                ..Rpc::default()
            }),
        );
        router.on_connection_handler_event(peer, connection, graft_rpc(TOPIC));
        router.heartbeat();
        let topic = Topic::new(TOPIC);
        assert!(router.subscribed_peers(&topic).any(|p| *p == peer));
        assert!(
            router.mesh_peers(&topic).any(|p| *p == peer),
            "kept in the mesh by the heartbeat"
        );
    }

    #[test]
    fn a_graft_right_after_the_backoff_is_accepted() {
        let mut router = router();
        let peer = PeerId::random();
        let connection = connect(&mut router, peer, 1, "/memory/1");
        // A backoff of 0 s has ended by the GRAFT; only our own GRAFTs
        // wait a heartbeat of slack more.
        router.on_connection_handler_event(peer, connection, prune_rpc(TOPIC.into(), 0));
        sent(&mut router);
        router.on_connection_handler_event(peer, connection, graft_rpc(TOPIC));
        assert!(router.mesh_peers(&Topic::new(TOPIC)).any(|p| *p == peer));
        assert!(
            sent(&mut router)
                .iter()
                .all(|(_, rpc)| rpc.control.as_ref().is_none_or(|c| c.prune.is_empty())),
            "not pruned"
        );
    }

    #[test]
    fn graft_out_of_topic_is_ignored_and_in_backoff_pruned() {
        let mut router = router();
        let peer = PeerId::random();
        connect(&mut router, peer, 1, "/memory/1");
        sent(&mut router); // Our GRAFT answering its subscription.
        let graft = |topic: &str| {
            HandlerOut::Rpc(Rpc {
                control: Some(ControlMessage {
                    graft: vec![ControlGraft {
                        topic_id: Some(topic.into()),
                    }],
                    ..ControlMessage::default()
                }),
                ..Rpc::default()
            })
        };
        let pruned = |sent: Vec<(ConnectionId, Rpc)>, topic: &str| {
            sent.iter().any(|(_, rpc)| {
                rpc.control.as_ref().is_some_and(|control| {
                    control.prune.iter().any(|prune| {
                        prune.topic_id.as_deref() == Some(topic)
                            && prune.backoff == Some(PRUNE_BACKOFF.as_secs())
                    })
                })
            })
        };
        let connection = ConnectionId::new_unchecked(1);
        router.on_connection_handler_event(peer, connection, graft("other"));
        assert!(sent(&mut router).is_empty(), "not our topic: ignored");
        assert!(router.backoffs.is_empty(), "and nothing recorded");

        router.on_connection_handler_event(peer, connection, graft(TOPIC));
        assert!(router.mesh_peers(&Topic::new(TOPIC)).any(|p| *p == peer));
        // The peer prunes us, then grafts again at once: too early.
        router.on_connection_handler_event(
            peer,
            connection,
            HandlerOut::Rpc(Rpc {
                control: Some(ControlMessage {
                    prune: vec![ControlPrune {
                        topic_id: Some(TOPIC.into()),
                        backoff: Some(60),
                    }],
                    ..ControlMessage::default()
                }),
                ..Rpc::default()
            }),
        );
        assert!(!router.mesh_peers(&Topic::new(TOPIC)).any(|p| *p == peer));
        sent(&mut router);
        router.on_connection_handler_event(peer, connection, graft(TOPIC));
        assert!(pruned(sent(&mut router), TOPIC));
        assert!(!router.mesh_peers(&Topic::new(TOPIC)).any(|p| *p == peer));
        // Nor does our heartbeat graft it meanwhile.
        router.heartbeat();
        assert!(
            sent(&mut router)
                .iter()
                .all(|(_, rpc)| rpc.control.as_ref().is_none_or(|c| c.graft.is_empty()))
        );
    }
}
