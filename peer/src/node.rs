//! The libp2p node and its event loop.
//!
//! [`Peer::start`] builds the swarm (TCP and QUIC on one port, the relay
//! client, DCUtR, AutoNAT v2, identify, ping, gossipsub), binds its
//! listeners, dials the relay and spawns the loop. The returned
//! [`PeerHandle`] is all a terminal or a test touches: it sends commands
//! and reads [`Event`]s; it never touches the swarm.

use std::{
    collections::HashMap,
    net::IpAddr,
    pin::Pin,
    time::{Duration, Instant},
};

use chat_protocol::{ChatMessage, PeerRecord, topics};
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat,
    core::{ConnectedPoint, transport::ListenerId},
    dcutr,
    gossipsub::{self, IdentTopic, MessageAcceptance},
    identify,
    identity::{Keypair, PublicKey},
    multiaddr::Protocol,
    noise, ping, relay,
    swarm::{
        NetworkBehaviour, SwarmEvent,
        behaviour::toggle::Toggle,
        dial_opts::{DialOpts, PeerCondition},
    },
    tcp, yamux,
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::Sleep,
};

use crate::{
    ANNOUNCE_INTERVAL,
    book::PeerBook,
    events::{Command, Event, Path, PeerInfo, Reachability},
    names::short,
};

const AGENT_VERSION: &str = concat!("chat-peer/", env!("CARGO_PKG_VERSION"));
/// Events waiting for the terminal; beyond this they are dropped (and the
/// drop is logged) rather than grow without bound.
pub const EVENT_QUEUE: usize = 1024;
/// Commands waiting for the node.
const COMMAND_QUEUE: usize = 64;
/// Pings asked for and not yet answered, over all peers.
pub const MAX_PENDING_PINGS: usize = 16;
/// How long a ping asked for may take, dial included.
pub const PING_TIMEOUT: Duration = Duration::from_secs(30);
/// Announcements wait this long, so a burst of address changes or
/// newcomers makes one announcement.
const ANNOUNCE_DELAY: Duration = Duration::from_millis(300);
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
const RELAY_BACKOFF_MIN: Duration = Duration::from_secs(1);
const RELAY_BACKOFF_MAX: Duration = Duration::from_secs(15);
/// Established connections to one peer: a relayed and a direct one, and
/// room for a hole punch racing both ways.
const MAX_CONNECTIONS_PER_PEER: u32 = 4;
const MAX_CONNECTIONS: u32 = 512;

/// How a [`Peer`] starts.
#[derive(Debug, Clone)]
pub struct Config {
    pub keypair: Keypair,
    /// The relay, ending in `/p2p/<its peer id>`; TCP or QUIC.
    pub relay: Multiaddr,
    /// IP the TCP and QUIC listeners bind (DCUtR punches from their ports).
    pub listen_ip: IpAddr,
    /// Port of both listeners, TCP and UDP; 0 picks a free one.
    pub listen_port: u16,
    /// Never announce or advertise a direct address, whatever AutoNAT says.
    pub force_private: bool,
    /// Let DCUtR upgrade relayed connections to direct ones.
    pub hole_punching: bool,
    pub ping_interval: Duration,
}

impl Config {
    pub fn new(keypair: Keypair, relay: Multiaddr) -> Self {
        Self {
            keypair,
            relay,
            listen_ip: IpAddr::from([0, 0, 0, 0]),
            listen_port: 0,
            force_private: false,
            hole_punching: true,
            ping_interval: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the relay address {0} does not end in /p2p/<peer id>; paste the whole address the relay prints"
    )]
    RelayWithoutPeerId(Multiaddr),
    #[error("the relay address {0} is a circuit address; give the relay's own address")]
    RelayIsCircuit(Multiaddr),
    #[error(
        "the relay address {0} is for browsers (WebSocket or WebRTC); use the relay's TCP or QUIC address"
    )]
    RelayTransport(Multiaddr),
    #[error("cannot build the libp2p node: {0}")]
    Swarm(String),
    #[error("cannot listen on {addr}: {reason}; pick another --listen-port")]
    Listen { addr: Multiaddr, reason: String },
}

#[derive(Debug, thiserror::Error)]
#[error("the peer has stopped")]
pub struct Stopped;

#[allow(missing_debug_implementations)] // Most of its fields are not `Debug`.
#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: libp2p::connection_limits::Behaviour,
    relay_client: relay::client::Behaviour,
    dcutr: Toggle<dcutr::Behaviour>,
    autonat: autonat::v2::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
}

/// A running peer.
#[derive(Debug)]
pub struct PeerHandle {
    pub peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// The next event; `None` once the node has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Publishes a chat message; the outcome comes back as
    /// [`Event::Chat`] (with `own`) or [`Event::ChatNotSent`].
    pub async fn send_chat(&self, text: impl Into<String>) -> Result<(), Stopped> {
        self.command(Command::SendChat(text.into())).await
    }

    /// Asks for one round trip to `peer` (dialing it through the relay if
    /// needed); the answer is [`Event::Ping`] or [`Event::PingFailed`].
    pub async fn ping(&self, peer: PeerId) -> Result<(), Stopped> {
        self.command(Command::Ping(peer)).await
    }

    /// Every peer known: discovered, connected, or both.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Peers(reply)).await?;
        answer.await.map_err(|_| Stopped)
    }

    async fn command(&self, command: Command) -> Result<(), Stopped> {
        self.commands.send(command).await.map_err(|_| Stopped)
    }

    /// Closes every connection and waits for the node to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// Entry point: see [`Peer::start`].
#[derive(Debug)]
pub struct Peer;

impl Peer {
    /// Builds the node, binds its listeners, dials the relay and runs the
    /// node in a task. Returns once the listeners are up.
    pub async fn start(config: Config) -> Result<PeerHandle, StartError> {
        let relay_id = match config.relay.iter().last() {
            Some(Protocol::P2p(id)) => id,
            _ => return Err(StartError::RelayWithoutPeerId(config.relay.clone())),
        };
        if is_circuit(&config.relay) {
            return Err(StartError::RelayIsCircuit(config.relay.clone()));
        }
        if !is_usable(&config.relay) {
            return Err(StartError::RelayTransport(config.relay.clone()));
        }
        let swarm = build_swarm(&config)?;
        let peer_id = *swarm.local_peer_id();
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let mut node = Node {
            swarm,
            public_key: config.keypair.public(),
            relay_id,
            relay_addr: config.relay.clone(),
            force_private: config.force_private,
            circuit_listener: None,
            book: PeerBook::default(),
            events: event_tx,
            dropped_events: 0,
            pings: HashMap::new(),
            relay_backoff: RELAY_BACKOFF_MIN,
            relay_retry: Timer::default(),
            announce_soon: Timer::default(),
        };
        node.listen(&config).await?;
        node.dial_relay();
        let task = tokio::spawn(node.run(command_rx, shutdown_rx));
        Ok(PeerHandle {
            peer_id,
            commands,
            events,
            shutdown,
            task,
        })
    }
}

fn build_swarm(config: &Config) -> Result<Swarm<Behaviour>, StartError> {
    let setup = |error: &dyn std::fmt::Display| StartError::Swarm(error.to_string());
    let hole_punching = config.hole_punching;
    let ping_interval = config.ping_interval;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            // Dials reuse the listening port (libp2p's default `PortUse`),
            // so the relay observes the port DCUtR punches from.
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(|key, relay_client| {
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                // What matters for the browsers and the relay: strict
                // signing, explicit validation, the default message id.
                gossipsub::ConfigBuilder::default()
                    .validation_mode(gossipsub::ValidationMode::Strict)
                    .validate_messages()
                    .publish_queue_duration(Duration::from_secs(30))
                    .build()
                    .map_err(|e| e.to_string())?,
            )?;
            let local_peer_id = key.public().to_peer_id();
            Ok(Behaviour {
                limits: libp2p::connection_limits::Behaviour::new(
                    libp2p::connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(MAX_CONNECTIONS))
                        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
                ),
                relay_client,
                dcutr: Toggle::from(hole_punching.then(|| dcutr::Behaviour::new(local_peer_id))),
                autonat: autonat::v2::client::Behaviour::default(),
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs/id/1.0.0".to_owned(), key.public())
                        .with_agent_version(AGENT_VERSION.to_owned()),
                ),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(ping_interval)),
                gossipsub,
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    for topic in [topics::DISCOVERY, topics::CHAT] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(topic))
            .map_err(|e| setup(&e))?;
    }
    Ok(swarm)
}

/// A one-shot timer that can be disarmed.
#[derive(Debug)]
struct Timer {
    sleep: Pin<Box<Sleep>>,
    armed: bool,
}

impl Default for Timer {
    fn default() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
        }
    }
}

impl Timer {
    fn arm(&mut self, after: Duration) {
        self.sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + after);
        self.armed = true;
    }

    /// Arms the timer unless it is already running.
    fn arm_if_idle(&mut self, after: Duration) {
        if !self.armed {
            self.arm(after);
        }
    }
}

struct Node {
    swarm: Swarm<Behaviour>,
    public_key: PublicKey,
    relay_id: PeerId,
    relay_addr: Multiaddr,
    force_private: bool,
    circuit_listener: Option<ListenerId>,
    book: PeerBook,
    events: mpsc::Sender<Event>,
    dropped_events: u64,
    /// Pings asked for: peer and when. At most [`MAX_PENDING_PINGS`].
    pings: HashMap<PeerId, Instant>,
    relay_backoff: Duration,
    relay_retry: Timer,
    announce_soon: Timer,
}

impl Node {
    /// Binds TCP and QUIC on the configured port and waits for both.
    async fn listen(&mut self, config: &Config) -> Result<(), StartError> {
        let ip = Multiaddr::from(config.listen_ip);
        let tcp = ip.clone().with(Protocol::Tcp(config.listen_port));
        let tcp_id = self.listen_on(tcp)?;
        // With port 0, QUIC takes the port TCP got, when it is free.
        let tcp_port = self.await_listener(tcp_id).await?;
        let port = if config.listen_port == 0 {
            tcp_port
        } else {
            config.listen_port
        };
        let quic = ip.with(Protocol::Udp(port)).with(Protocol::QuicV1);
        let quic_id = match self.listen_on(quic.clone()) {
            Ok(id) => id,
            Err(_) if config.listen_port == 0 => {
                let any = quic.replace(1, |_| Some(Protocol::Udp(0))).unwrap_or(quic);
                self.listen_on(any)?
            }
            Err(error) => return Err(error),
        };
        self.await_listener(quic_id).await?;
        Ok(())
    }

    fn listen_on(&mut self, addr: Multiaddr) -> Result<ListenerId, StartError> {
        self.swarm
            .listen_on(addr.clone())
            .map_err(|error| StartError::Listen {
                addr,
                reason: error.to_string(),
            })
    }

    /// Runs the swarm until `id` reports an address; returns its port.
    async fn await_listener(&mut self, id: ListenerId) -> Result<u16, StartError> {
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| StartError::Listen {
                    addr: Multiaddr::empty(),
                    reason: format!("no address reported within {LISTEN_TIMEOUT:?}"),
                })?;
            match &event {
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } if *listener_id == id => {
                    let port = address.iter().find_map(|p| match p {
                        Protocol::Tcp(port) | Protocol::Udp(port) => Some(port),
                        _ => None,
                    });
                    let port = port.unwrap_or_default();
                    self.on_swarm_event(event);
                    return Ok(port);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    addresses,
                    reason,
                } if *listener_id == id => {
                    return Err(StartError::Listen {
                        addr: addresses.first().cloned().unwrap_or_else(Multiaddr::empty),
                        reason: format!("{reason:?}"),
                    });
                }
                _ => {}
            }
            self.on_swarm_event(event);
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: oneshot::Receiver<()>,
    ) {
        let mut announce = tokio::time::interval(ANNOUNCE_INTERVAL);
        announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = &mut self.relay_retry.sleep, if self.relay_retry.armed => {
                    self.relay_retry.armed = false;
                    self.dial_relay();
                }
                _ = &mut self.announce_soon.sleep, if self.announce_soon.armed => {
                    self.announce_soon.armed = false;
                    self.announce();
                }
                _ = announce.tick() => self.on_announce_tick(),
                _ = housekeeping.tick() => self.expire_pings(),
            }
        }
        tracing::debug!("peer shutting down");
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn emit(&mut self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.dropped_events += 1;
            tracing::warn!(
                dropped = self.dropped_events,
                "event queue full or closed; event dropped"
            );
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::SendChat(text) => self.send_chat(text),
            Command::Ping(peer) => self.request_ping(peer),
            Command::Peers(reply) => {
                let _ = reply.send(self.book.infos());
            }
        }
    }

    fn send_chat(&mut self, text: String) {
        let message = match ChatMessage::new(text.clone()) {
            Ok(message) => message,
            Err(error) => {
                let reason = error.to_string();
                return self.emit(Event::ChatNotSent { text, reason });
            }
        };
        let result = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(topics::CHAT), message.into_bytes());
        let event = match result {
            Ok(_) => Event::Chat {
                from: *self.swarm.local_peer_id(),
                text,
                own: true,
            },
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Event::ChatNotSent {
                text,
                reason: "nobody to send it to yet: not connected to the relay".to_owned(),
            },
            Err(error) => Event::ChatNotSent {
                text,
                reason: format!("not sent: {error}"),
            },
        };
        self.emit(event);
    }

    fn request_ping(&mut self, peer: PeerId) {
        if peer == *self.swarm.local_peer_id() || peer == self.relay_id {
            let reason = "pick another peer than this one or the relay".to_owned();
            return self.emit(Event::PingFailed { peer, reason });
        }
        if !self.pings.contains_key(&peer) && self.pings.len() >= MAX_PENDING_PINGS {
            let reason = format!("{MAX_PENDING_PINGS} pings are already waiting");
            return self.emit(Event::PingFailed { peer, reason });
        }
        self.pings.insert(peer, Instant::now());
        // Without the relay there is no circuit yet: the dial waits for it
        // (see `ConnectionEstablished`), or the relay client's own dial of
        // the relay would race ours and cancel the circuit.
        if !self.swarm.is_connected(&peer) && self.swarm.is_connected(&self.relay_id) {
            self.dial_peer(peer);
        }
    }

    fn expire_pings(&mut self) {
        let now = Instant::now();
        let late: Vec<PeerId> = self
            .pings
            .iter()
            .filter(|(_, asked)| now.saturating_duration_since(**asked) > PING_TIMEOUT)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in late {
            self.pings.remove(&peer);
            let reason = format!("no answer within {PING_TIMEOUT:?}");
            self.emit(Event::PingFailed { peer, reason });
        }
    }

    fn dial_relay(&mut self) {
        if self.swarm.is_connected(&self.relay_id) {
            return self.reserve();
        }
        tracing::info!(relay = %self.relay_addr, "dialing the relay");
        if let Err(error) = self.swarm.dial(self.relay_addr.clone()) {
            self.relay_unreachable(error.to_string());
        }
    }

    fn relay_unreachable(&mut self, reason: String) {
        let retry_in = self.relay_backoff;
        self.relay_backoff = (self.relay_backoff * 2).min(RELAY_BACKOFF_MAX);
        self.relay_retry.arm(retry_in);
        self.emit(Event::RelayLost { reason, retry_in });
    }

    /// Asks the relay for a reservation by listening on its circuit address.
    fn reserve(&mut self) {
        if self.circuit_listener.is_some() {
            return;
        }
        let circuit = self.relay_addr.clone().with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit) {
            Ok(id) => self.circuit_listener = Some(id),
            Err(error) => {
                let reason = error.to_string();
                self.emit(Event::ReservationRefused { reason });
            }
        }
    }

    /// Dials `peer` at every address of its record this node can use,
    /// through our relay first.
    fn dial_peer(&mut self, peer: PeerId) {
        let addrs = self.dial_addrs(peer);
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => self.book.on_dialing(peer, Instant::now()),
            Err(error) => tracing::debug!(peer = %peer, %error, "not dialed"),
        }
    }

    fn dial_addrs(&self, peer: PeerId) -> Vec<Multiaddr> {
        let via_our_relay = self
            .relay_addr
            .clone()
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(peer));
        let mut addrs = Vec::new();
        let announced = self
            .book
            .get(&peer)
            .map(|e| e.addrs.as_slice())
            .unwrap_or(&[]);
        for addr in announced {
            let candidate = if relay_of(addr) == Some(self.relay_id) {
                // Whatever transport the peer reached the relay with, we
                // reach it with ours.
                via_our_relay.clone()
            } else if is_usable(addr) {
                addr.clone()
            } else {
                continue;
            };
            if !addrs.contains(&candidate) {
                addrs.push(candidate);
            }
        }
        if addrs.is_empty() {
            addrs.push(via_our_relay);
        }
        addrs
    }

    fn on_announce_tick(&mut self) {
        self.announce();
        if self.swarm.is_connected(&self.relay_id) {
            self.reserve();
        }
        // Peers that did not dial us (the larger id waits one period).
        let idle: Vec<PeerId> = self
            .book
            .ids()
            .filter(|peer| {
                self.book
                    .get(peer)
                    .is_some_and(|e| e.discovered && !e.dialing)
                    && !self.swarm.is_connected(peer)
            })
            .collect();
        for peer in idle {
            self.dial_peer(peer);
        }
        for peer in self.book.expire(Instant::now()) {
            self.emit(Event::PeerGone { peer });
        }
    }

    /// Publishes this peer's discovery record: its circuit addresses and,
    /// unless private, the direct addresses AutoNAT confirmed.
    fn announce(&mut self) {
        let me = *self.swarm.local_peer_id();
        let mut addrs: Vec<Multiaddr> = self
            .swarm
            .listeners()
            .filter(|addr| is_circuit(addr))
            .map(|addr| with_peer_id(addr, me))
            .collect();
        if addrs.is_empty() {
            return;
        }
        if !self.force_private {
            addrs.extend(
                self.swarm
                    .external_addresses()
                    .filter(|addr| !is_circuit(addr))
                    .map(|addr| with_peer_id(addr, me)),
            );
        }
        addrs.truncate(chat_protocol::MAX_RECORD_ADDRS);
        let record = match PeerRecord::new(self.public_key.clone(), addrs) {
            Ok(record) => record,
            Err(error) => return tracing::error!(%error, "own discovery record is invalid"),
        };
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(topics::DISCOVERY), record.encode())
        {
            Ok(_) => tracing::debug!("announced"),
            Err(error) => tracing::debug!(%error, "announcement not published"),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                if is_circuit(&address) {
                    let circuit_addr = with_peer_id(&address, *self.swarm.local_peer_id());
                    self.emit(Event::Reserved { circuit_addr });
                    self.announce_soon.arm_if_idle(ANNOUNCE_DELAY);
                } else {
                    self.emit(Event::Listening { addr: address });
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } if Some(listener_id) == self.circuit_listener => {
                self.circuit_listener = None;
                if let Err(error) = reason {
                    let reason = describe_error(&error);
                    self.emit(Event::ReservationRefused { reason });
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if peer_id == self.relay_id {
                    self.relay_backoff = RELAY_BACKOFF_MIN;
                    self.relay_retry.armed = false;
                    self.emit(Event::RelayConnected { relay: peer_id });
                    self.reserve();
                    let waiting: Vec<PeerId> = self.pings.keys().copied().collect();
                    for peer in waiting {
                        if !self.swarm.is_connected(&peer) {
                            self.dial_peer(peer);
                        }
                    }
                    return;
                }
                let path = path_of(&endpoint);
                self.book
                    .on_connected(peer_id, connection_id, path, Instant::now());
                self.emit(Event::Connected {
                    peer: peer_id,
                    path,
                    remote_addr: endpoint.get_remote_address().clone(),
                });
                if path == Path::Direct {
                    self.close_relayed(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                if peer_id == self.relay_id {
                    if num_established == 0 {
                        let reason = cause.map_or_else(|| "closed".to_owned(), |c| c.to_string());
                        self.relay_unreachable(reason);
                    }
                    return;
                }
                if let Some(path) = self.book.on_disconnected(&peer_id, connection_id) {
                    self.emit(Event::Disconnected {
                        peer: peer_id,
                        path,
                    });
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                let reason = describe_error(&error);
                if peer == self.relay_id {
                    if !self.swarm.is_connected(&peer) {
                        self.relay_unreachable(reason);
                    }
                } else if !self.swarm.is_connected(&peer) {
                    // A failed hole punch while the relayed connection
                    // stands is DCUtR's to report.
                    self.book.on_dial_failed(&peer);
                    if self.pings.remove(&peer).is_some() {
                        self.emit(Event::PingFailed {
                            peer,
                            reason: reason.clone(),
                        });
                    }
                    self.emit(Event::Unreachable { peer, reason });
                }
            }
            // The relay client confirms circuit addresses (`Reserved` says
            // so); the others come from AutoNAT.
            SwarmEvent::ExternalAddrConfirmed { address } if !is_circuit(&address) => {
                if self.force_private {
                    self.swarm.remove_external_address(&address);
                    self.emit(Event::Reachability(Reachability::ForcedPrivate {
                        ignored: Some(address),
                    }));
                } else {
                    self.emit(Event::Reachability(Reachability::Reachable {
                        addr: address,
                    }));
                    self.announce_soon.arm_if_idle(ANNOUNCE_DELAY);
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(event) => self.on_gossip(event),
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result,
            }) => {
                if peer == self.relay_id {
                    return;
                }
                match result {
                    Ok(rtt) => {
                        self.book.on_rtt(&peer, rtt);
                        if self.pings.remove(&peer).is_some() {
                            let path = self
                                .book
                                .path_of(&peer, connection)
                                .unwrap_or(Path::Relayed);
                            self.emit(Event::Ping { peer, path, rtt });
                        }
                    }
                    Err(error) => tracing::debug!(peer = %peer, %error, "ping failed"),
                }
            }
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => self.emit(Event::HolePunch {
                peer: remote_peer_id,
                result: result.map(|_| ()).map_err(|error| describe_error(&error)),
            }),
            BehaviourEvent::Autonat(autonat::v2::client::Event {
                tested_addr,
                result: Err(error),
                ..
            }) => self.emit(Event::Reachability(Reachability::Unreachable {
                addr: tested_addr,
                reason: error.to_string(),
            })),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                tracing::debug!(peer = %peer_id, agent = %info.agent_version, "identified");
                self.book.on_agent(&peer_id, &info.agent_version);
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => tracing::debug!(relay = %relay_peer_id, renewal, "reservation accepted"),
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let acceptance = if message.topic == IdentTopic::new(topics::DISCOVERY).hash() {
            match PeerRecord::decode_signed(&message.data, message.source.as_ref()) {
                Ok(record) => {
                    self.on_record(record);
                    MessageAcceptance::Accept
                }
                Err(error) => {
                    tracing::warn!(from = %propagation_source, source = ?message.source, %error, "rejected a discovery record");
                    MessageAcceptance::Reject
                }
            }
        } else if message.topic == IdentTopic::new(topics::CHAT).hash() {
            match (ChatMessage::decode(&message.data), message.source) {
                (Ok(chat), Some(from)) => {
                    self.emit(Event::Chat {
                        from,
                        text: chat.text().to_owned(),
                        own: false,
                    });
                    MessageAcceptance::Accept
                }
                (Err(error), _) => {
                    tracing::warn!(from = %propagation_source, %error, "rejected a chat message");
                    MessageAcceptance::Reject
                }
                (Ok(_), None) => MessageAcceptance::Reject,
            }
        } else {
            MessageAcceptance::Ignore
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
    }

    fn on_record(&mut self, record: PeerRecord) {
        let peer = record.peer_id();
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        let addrs: Vec<Multiaddr> = record.dialable_addrs().collect();
        if self.book.on_record(peer, addrs.clone(), Instant::now()) {
            tracing::info!(peer = %short(&peer), addrs = addrs.len(), "discovered");
            self.emit(Event::Discovered { peer, addrs });
            // The newcomer missed our earlier announcements.
            self.announce_soon.arm_if_idle(ANNOUNCE_DELAY);
        }
        // Of two peers, the smaller id dials at once; the other waits an
        // announcement period, so a pair usually makes one circuit.
        let dialing = self.book.get(&peer).is_some_and(|e| e.dialing);
        if *self.swarm.local_peer_id() < peer && !dialing && !self.swarm.is_connected(&peer) {
            self.dial_peer(peer);
        }
    }

    /// Once a peer is reached directly, its relayed connections only cost
    /// the relay: close them.
    fn close_relayed(&mut self, peer: PeerId) {
        let relayed: Vec<_> = self
            .book
            .get(&peer)
            .map(|entry| {
                entry
                    .connections
                    .iter()
                    .filter(|(_, path)| **path == Path::Relayed)
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        for connection in relayed {
            self.swarm.close_connection(connection);
        }
    }
}

/// An error and its sources on one line.
fn describe_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

fn path_of(endpoint: &ConnectedPoint) -> Path {
    if endpoint.is_relayed() {
        Path::Relayed
    } else {
        Path::Direct
    }
}

pub(crate) fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// The relay a circuit address goes through.
fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::P2p(id) => relay = Some(id),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

/// Whether this node has a transport for `addr`: TCP or QUIC, directly or
/// through a relay reached that way; not the browsers' WebRTC and
/// WebSocket.
fn is_usable(addr: &Multiaddr) -> bool {
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

fn with_peer_id(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            relay_of(&addr(&format!(
                "/ip4/1.2.3.4/tcp/4002/ws/p2p/{relay}/p2p-circuit/p2p/{peer}"
            ))),
            Some(relay)
        );
        assert_eq!(
            relay_of(&addr(&format!("/ip4/1.2.3.4/tcp/1/p2p/{peer}"))),
            None
        );
    }
}
