//! The libp2p node of the page and its event loop.
//!
//! It owns the swarm. Commands from the UI come in on one channel, events
//! for the UI go out on another; nothing else reaches the swarm.

use std::time::Duration;

use chat_protocol::{
    ChatMessage, PeerRecord, discovery::TrustedRelays, perf, report, topics, wake,
};
use futures::{
    FutureExt as _, StreamExt as _,
    channel::{mpsc, oneshot},
    future::{Fuse, FusedFuture as _, LocalBoxFuture},
    stream::{FuturesUnordered, LocalBoxStream},
};
use gloo_timers::future::{IntervalStream, TimeoutFuture};
use libp2p::{
    Multiaddr, PeerId, Swarm, Transport as _,
    core::{ConnectedPoint, muxing::StreamMuxerBox, transport::ListenerId, upgrade::Version},
    gossipsub::{self, IdentTopic, MessageAcceptance},
    identify,
    identity::Keypair,
    multiaddr::Protocol,
    noise, ping, relay,
    swarm::{
        DialError, NetworkBehaviour, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
    webrtc_websys, websocket_websys, yamux,
};
use web_time::Instant;

use crate::{
    ANNOUNCE_INTERVAL,
    backoff::Backoff,
    events::{Command, Event, RelayStatus},
    peers::{Link, Path, PeerBook, short},
    relay_addr::RelayAddr,
    websocket,
};

/// How often each connection is pinged: the page shows each link's
/// round-trip time, and it should be fresh.
const PING_INTERVAL: Duration = Duration::from_secs(5);

/// How long a relayed connection outlives the direct one that replaces it.
/// rust-libp2p's gossipsub keeps one outbound queue per peer, shared by all
/// of that peer's connections: whichever connection's handler takes a
/// message sends it, and a connection closed meanwhile loses what it took.
/// The first connection to a peer is the relayed one, and it takes the
/// subscriptions exchanged when peers meet; closed at the moment the direct
/// link comes up (often within 100 ms), it lost them about one time in
/// five, and the peer then believed we subscribe to nothing: once the relay
/// went away, it had nobody to send chat to. This gives the relayed
/// connection time to flush.
const RELAYED_GRACE_MS: u32 = 3_000;

/// Perf transfers (`/perf/1.0.0`) at once, served and started together:
/// each one keeps a connection busy, so a peer gets no more.
const MAX_PERF_TRANSFERS: usize = 2;

/// What one peer may ask of our perf server on one stream (the benchmarks
/// move up to 64 MB).
const PERF_LIMITS: perf::Limits = perf::Limits {
    max_send: 128 << 20,
    max_receive: 128 << 20,
};

/// Bytes the perf server moves (both ways) over the page's life, after
/// which it refuses streams: a benchmark run moves a few hundred MB. The
/// streams in flight may pass it by at most their [`PERF_LIMITS`].
const MAX_PERF_SERVED_BYTES: u64 = 2 << 30;

/// Events waiting for the UI. The UI runs on the same thread and drains
/// them at once; if it ever falls this far behind, log lines are dropped.
pub const EVENT_QUEUE: usize = 1024;
const AGENT_VERSION: &str = concat!("browser-chat-web-peer/", env!("CARGO_PKG_VERSION"));

#[derive(NetworkBehaviour)]
struct Behaviour {
    relay_client: relay::client::Behaviour,
    /// Browser-to-browser WebRTC: signaling over relayed connections.
    webrtc: libp2p_webrtc_p2p::Behaviour,
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Makes gossipsub send at once on every connection (see [`wake`]).
    wake: wake::Behaviour,
    /// Raw streams: the perf protocol, served on direct connections.
    stream: libp2p_stream::Behaviour,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot set up the libp2p node: {0}")]
    Setup(String),
}

/// The relay this node uses, and its circuit listener.
struct Relay {
    addr: RelayAddr,
    /// Whether a connection to it was ever established; only then does a
    /// lost connection start the reconnect loop.
    was_connected: bool,
    circuit_listener: Option<ListenerId>,
}

pub struct Node {
    swarm: Swarm<Behaviour>,
    public_key: libp2p::identity::PublicKey,
    events: mpsc::Sender<Event>,
    relay: Option<Relay>,
    status: RelayStatus,
    peers: PeerBook,
    backoff: Backoff,
    reconnect_timer: Fuse<TimeoutFuture>,
    announce_timer: Fuse<TimeoutFuture>,
    /// Fires [`RELAYED_GRACE_MS`] after a peer became direct.
    close_relayed_timer: Fuse<TimeoutFuture>,
    dropped_events: u64,
    ice_servers: libp2p_webrtc_p2p::IceServers,
    streams: libp2p_stream::Control,
    /// Perf streams from peers: none until [`Command::ServePerf`].
    perf_incoming: futures::stream::Fuse<LocalBoxStream<'static, (PeerId, libp2p::Stream)>>,
    /// Perf transfers in flight, both ways (at most [`MAX_PERF_TRANSFERS`]);
    /// each ends with a line for the event log and the bytes it served.
    perf_transfers: FuturesUnordered<LocalBoxFuture<'static, (String, u64)>>,
    /// Bytes served so far (see [`MAX_PERF_SERVED_BYTES`]).
    perf_served: u64,
}

// One is built and consumed per turn of the loop: its size costs nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    Command(Option<Command>),
    Swarm(SwarmEvent<BehaviourEvent>),
    Announce,
    AnnounceSoon,
    Reconnect,
    CloseRelayed,
    PerfStream(PeerId, libp2p::Stream),
    PerfDone(String, u64),
}

/// Announcements wait this long, so that a burst of address changes (a
/// reservation reports several) or of newcomers makes one announcement.
const ANNOUNCE_DELAY_MS: u32 = 300;

impl Node {
    pub fn new(keypair: Keypair, events: mpsc::Sender<Event>) -> Result<Self, NodeError> {
        let setup = |error: &dyn std::fmt::Display| NodeError::Setup(error.to_string());
        let noise = noise::Config::new(&keypair).map_err(|e| setup(&e))?;
        let relay_noise = noise::Config::new(&keypair).map_err(|e| setup(&e))?;
        // The relay client is added by hand so that it comes after the
        // `/webrtc` transport (see the order below).
        let (relay_transport, relay_client) = relay::client::new(keypair.public().to_peer_id());
        let public_key = keypair.public();
        let ice_servers = libp2p_webrtc_p2p::IceServers::default();
        let (webrtc_transport, webrtc) = libp2p_webrtc_p2p::new(ice_servers.clone());
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_wasm_bindgen()
            // Tried in this order, the most specific first: the relay client
            // would take `/p2p-circuit/webrtc` addresses for plain circuits,
            // and the WebSocket transport any address with `/ws` in it,
            // circuits through a relay's WebSocket address included.
            .with_other_transport(|_| {
                webrtc_transport
                    .map(|(peer_id, connection), _| (peer_id, StreamMuxerBox::new(connection)))
            })
            .map_err(|e| setup(&e))?
            .with_other_transport(|_| {
                relay_transport
                    .upgrade(Version::V1Lazy)
                    .authenticate(relay_noise)
                    .multiplex(yamux::Config::default())
            })
            .map_err(|e| setup(&e))?
            .with_other_transport(|_| {
                // Flushes at once: see `websocket` for the 100 ms each
                // handshake message would wait otherwise.
                websocket_websys::Transport::default()
                    .map(|connection, _| websocket::Connection::from(connection))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
            })
            .map_err(|e| setup(&e))?
            .with_other_transport(|key| {
                webrtc_websys::Transport::new(webrtc_websys::Config::new(key))
                    .map(|(peer_id, connection), _| (peer_id, StreamMuxerBox::new(connection)))
            })
            .map_err(|e| setup(&e))?
            .with_behaviour(|key| {
                let gossipsub = chat_protocol::gossip::peer_behaviour(key)?;
                Ok(Behaviour {
                    relay_client,
                    webrtc,
                    gossipsub,
                    identify: identify::Behaviour::new(
                        identify::Config::new("/ipfs/id/1.0.0".to_owned(), key.public())
                            .with_agent_version(AGENT_VERSION.to_owned()),
                    ),
                    ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
                    wake: wake::Behaviour::default(),
                    stream: libp2p_stream::Behaviour::new(),
                })
            })
            .map_err(|e| setup(&e))?
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(60))
            })
            .build();
        // Peers reach us directly through our circuit addresses + /webrtc.
        swarm
            .listen_on(Protocol::WebRTC.into())
            .map_err(|e| setup(&e))?;
        for topic in [topics::DISCOVERY, topics::CHAT] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&IdentTopic::new(topic))
                .map_err(|e| setup(&e))?;
        }
        let streams = swarm.behaviour().stream.new_control();
        Ok(Self {
            swarm,
            public_key,
            events,
            relay: None,
            status: RelayStatus::Idle,
            peers: PeerBook::default(),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(15)),
            reconnect_timer: Fuse::terminated(),
            announce_timer: Fuse::terminated(),
            close_relayed_timer: Fuse::terminated(),
            dropped_events: 0,
            ice_servers,
            streams,
            perf_incoming: futures::stream::pending().boxed_local().fuse(),
            perf_transfers: FuturesUnordered::new(),
            perf_served: 0,
        })
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.emit(Event::Identity {
            peer_id: *self.swarm.local_peer_id(),
        });
        self.emit(Event::Status(RelayStatus::Idle));
        let mut announce = IntervalStream::new(ANNOUNCE_INTERVAL.as_millis() as u32).fuse();
        loop {
            let step = futures::select! {
                command = commands.next() => Step::Command(command),
                event = self.swarm.select_next_some() => Step::Swarm(event),
                _ = announce.next() => Step::Announce,
                _ = &mut self.reconnect_timer => Step::Reconnect,
                _ = &mut self.announce_timer => Step::AnnounceSoon,
                _ = &mut self.close_relayed_timer => Step::CloseRelayed,
                (peer, stream) = self.perf_incoming.select_next_some() => Step::PerfStream(peer, stream),
                (line, served) = self.perf_transfers.select_next_some() => Step::PerfDone(line, served),
            };
            match step {
                Step::Command(Some(command)) => self.on_command(command),
                Step::Command(None) => break,
                Step::Swarm(event) => self.on_swarm_event(event),
                Step::Announce => {
                    self.announce();
                    for peer in self.peers.ids() {
                        self.try_direct(peer);
                    }
                    for peer in self.peers.expire(Instant::now()) {
                        self.emit(Event::PeerGone { peer });
                    }
                }
                Step::AnnounceSoon => self.announce(),
                Step::Reconnect => self.dial_relay(),
                Step::CloseRelayed => self.close_relayed(),
                Step::PerfStream(peer, stream) => self.serve_perf(peer, stream),
                Step::PerfDone(line, served) => {
                    self.perf_served = self.perf_served.saturating_add(served);
                    self.log(line);
                }
            }
        }
    }

    fn emit(&mut self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.dropped_events += 1;
            tracing::warn!(
                dropped = self.dropped_events,
                "UI event queue full; event dropped"
            );
        }
    }

    fn log(&mut self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!("{line}");
        self.emit(Event::Log(line));
    }

    fn set_status(&mut self, status: RelayStatus) {
        if self.status != status {
            self.status = status.clone();
            self.emit(Event::Status(status));
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Connect(input) => self.connect(&input),
            Command::Dial(input) => self.dial_pasted(&input),
            Command::SendChat(text) => self.send_chat(text),
            Command::SetIceServers(urls) => {
                self.log(format!(
                    "ICE servers for direct connections: {}",
                    urls.join(" ")
                ));
                self.ice_servers.set(urls);
            }
            Command::Perf {
                peer,
                upload,
                download,
                reply,
            } => self.start_perf(peer, upload, download, reply),
            Command::ServePerf => self.serve_perf_streams(),
        }
    }

    /// Starts taking perf streams (a page opened for benchmarking).
    fn serve_perf_streams(&mut self) {
        match self.streams.accept(perf::PROTOCOL) {
            Ok(incoming) => {
                self.perf_incoming = incoming.boxed_local().fuse();
                self.log("serving /perf/1.0.0 to directly connected peers (benchmark page)");
            }
            Err(error) => self.log(format!("cannot serve /perf/1.0.0: {error}")),
        }
    }

    /// Whether `peer` is connected directly and only directly (its relayed
    /// connection closed): a perf stream then takes the direct path.
    fn only_direct(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|entry| {
            entry.link() == Link::Connected(Path::Direct) && entry.relayed_connections().is_empty()
        })
    }

    /// Serves a peer's perf stream, within [`PERF_LIMITS`], if it came from
    /// a directly connected peer and a transfer slot is free; else drops
    /// it (the peer sees the stream reset).
    fn serve_perf(&mut self, peer: PeerId, stream: libp2p::Stream) {
        let direct = self
            .peers
            .get(&peer)
            .is_some_and(|entry| entry.link() == Link::Connected(Path::Direct));
        let refused = if !direct {
            Some("not connected directly")
        } else if self.perf_transfers.len() >= MAX_PERF_TRANSFERS {
            Some("too many transfers at once")
        } else if self.perf_served >= MAX_PERF_SERVED_BYTES {
            Some("the page's perf budget is spent")
        } else {
            None
        };
        if let Some(reason) = refused {
            self.log(format!(
                "refused a perf stream from {}: {reason}",
                short(&peer)
            ));
            return;
        }
        self.perf_transfers.push(
            async move {
                match perf::serve(stream, PERF_LIMITS).await {
                    Ok(served) => (
                        format!(
                            "perf: {} bytes from {}, {} bytes sent back",
                            served.received,
                            short(&peer),
                            served.sent
                        ),
                        served.received.saturating_add(served.sent),
                    ),
                    // What a failed stream moved is not known: count it
                    // as its limits, the most it could have.
                    Err(error) => (
                        format!("perf stream from {}: {error}", short(&peer)),
                        PERF_LIMITS.max_send + PERF_LIMITS.max_receive,
                    ),
                }
            }
            .boxed_local(),
        );
    }

    /// Runs a perf transfer with `peer` over its direct connection and
    /// replies with the time it took.
    fn start_perf(
        &mut self,
        peer: PeerId,
        upload: u64,
        download: u64,
        reply: oneshot::Sender<Result<Duration, String>>,
    ) {
        let refused = if !self.only_direct(&peer) {
            Some(format!(
                "{} is not connected directly only (yet)",
                short(&peer)
            ))
        } else if self.perf_transfers.len() >= MAX_PERF_TRANSFERS {
            Some("too many perf transfers at once".to_owned())
        } else {
            None
        };
        if let Some(reason) = refused {
            let _ = reply.send(Err(reason));
            return;
        }
        let mut streams = self.streams.clone();
        self.perf_transfers.push(
            async move {
                let result = match streams.open_stream(peer, perf::PROTOCOL).await {
                    Ok(stream) => perf::client(stream, upload, download)
                        .await
                        .map_err(|error| error.to_string()),
                    Err(error) => Err(format!("cannot open a perf stream: {error}")),
                };
                let line = match &result {
                    Ok(took) => format!(
                        "perf with {}: {upload} bytes up, {download} bytes down in {} ms",
                        short(&peer),
                        took.as_millis()
                    ),
                    Err(error) => format!("perf with {} failed: {error}", short(&peer)),
                };
                let _ = reply.send(result);
                (line, 0)
            }
            .boxed_local(),
        );
    }

    fn connect(&mut self, input: &str) {
        let addr = match RelayAddr::parse(input) {
            Ok(addr) => addr,
            Err(error) => {
                self.emit(Event::Notice(error.to_string()));
                return;
            }
        };
        self.emit(Event::ClearNotice);
        if let Some(old) = self.relay.take()
            && old.addr.peer_id != addr.peer_id
        {
            if let Some(listener) = old.circuit_listener {
                self.swarm.remove_listener(listener);
            }
            let _ = self.swarm.disconnect_peer_id(old.addr.peer_id);
        }
        if self.ice_servers.get().is_empty()
            && let Some(url) = default_stun_url(&addr.addr)
        {
            // A relay we were not served by: its STUN service on the default port.
            self.ice_servers.set(vec![url]);
        }
        self.relay = Some(Relay {
            addr,
            was_connected: false,
            circuit_listener: None,
        });
        self.backoff.reset();
        self.reconnect_timer = Fuse::terminated();
        self.dial_relay();
    }

    fn dial_relay(&mut self) {
        let Some(relay) = &self.relay else { return };
        let (addr, peer_id) = (relay.addr.addr.clone(), relay.addr.peer_id);
        if self.swarm.is_connected(&peer_id) {
            self.reserve();
            return;
        }
        self.set_status(RelayStatus::Connecting { relay: peer_id });
        self.log(format!("dialing the relay at {addr}"));
        if let Err(error) = self.swarm.dial(addr.clone()) {
            self.relay_unreachable(format!("cannot dial {addr}: {error}"));
        }
    }

    /// The relay could not be reached: retry if it worked before, else
    /// tell the user and wait for a corrected address.
    fn relay_unreachable(&mut self, reason: String) {
        let Some(relay) = &self.relay else { return };
        let peer_id = relay.addr.peer_id;
        if relay.was_connected {
            let retry_in = self.backoff.next_delay();
            self.log(format!(
                "relay unreachable ({reason}); retrying in {} s",
                retry_in.as_secs()
            ));
            self.reconnect_timer = TimeoutFuture::new(retry_in.as_millis() as u32).fuse();
            self.set_status(RelayStatus::Reconnecting {
                relay: peer_id,
                retry_in,
            });
        } else {
            let message = format!(
                "Could not reach the relay: {reason}. Check the address, and that the relay is running."
            );
            self.emit(Event::Notice(message.clone()));
            self.set_status(RelayStatus::Failed { reason: message });
        }
    }

    /// Asks the relay for a reservation by listening on its circuit address.
    fn reserve(&mut self) {
        let Some(relay) = &mut self.relay else { return };
        if relay.circuit_listener.is_some() {
            return;
        }
        let circuit = relay.addr.addr.clone().with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit.clone()) {
            Ok(id) => {
                if let Some(relay) = &mut self.relay {
                    relay.circuit_listener = Some(id);
                }
                self.log(format!("asking the relay for a reservation ({circuit})"));
            }
            Err(error) => self.emit(Event::Notice(format!(
                "Cannot ask the relay for a reservation: {error}"
            ))),
        }
    }

    fn dial_pasted(&mut self, input: &str) {
        let addr: Multiaddr = match input.trim().parse() {
            Ok(addr) => addr,
            Err(error) => {
                self.emit(Event::Notice(format!(
                    "\"{}\" is not a valid multiaddr: {error}.",
                    input.trim()
                )));
                return;
            }
        };
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            self.emit(Event::Notice(
                "The address must end in /p2p/<peer id>.".to_owned(),
            ));
            return;
        };
        self.emit(Event::ClearNotice);
        self.dial_peer(peer, vec![addr]);
    }

    fn dial_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() || addrs.is_empty() {
            return;
        }
        let opts = DialOpts::peer_id(peer).addresses(addrs).build();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.peers.on_dialing(peer, Instant::now());
                self.log(format!("dialing {}", short(&peer)));
            }
            Err(error) => self.peers.on_dial_failed(&peer, error.to_string()),
        }
        self.emit_peer(&peer);
    }

    fn send_chat(&mut self, text: String) {
        let message = match ChatMessage::new(text.clone()) {
            Ok(message) => message,
            Err(error) => {
                self.emit(Event::ChatNotSent {
                    text,
                    reason: error.to_string(),
                });
                return;
            }
        };
        let topic = IdentTopic::new(topics::CHAT);
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, message.into_bytes())
        {
            Ok(_) => {
                self.swarm.behaviour_mut().wake.wake_all();
                let from = *self.swarm.local_peer_id();
                self.emit(Event::Chat {
                    from,
                    text,
                    own: true,
                });
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                self.emit(Event::ChatNotSent {
                    text,
                    reason: "Nobody to send it to yet: connect to a relay first.".to_owned(),
                })
            }
            Err(error) => self.emit(Event::ChatNotSent {
                text,
                reason: format!("Not sent: {error}."),
            }),
        }
    }

    /// Announces shortly, unless an announcement is already due.
    fn announce_soon(&mut self) {
        if self.announce_timer.is_terminated() {
            self.announce_timer = TimeoutFuture::new(ANNOUNCE_DELAY_MS).fuse();
        }
    }

    /// Publishes this peer's discovery record, if it has circuit addresses.
    fn announce(&mut self) {
        let addrs = self.circuit_addrs();
        if addrs.is_empty() {
            return;
        }
        let record = match PeerRecord::new(self.public_key.clone(), addrs) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(%error, "own discovery record is invalid");
                return;
            }
        };
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(topics::DISCOVERY), record.encode())
        {
            Ok(_) => {
                self.swarm.behaviour_mut().wake.wake_all();
                tracing::debug!("announced");
            }
            Err(error) => tracing::debug!(%error, "announcement not published"),
        }
    }

    /// This peer's circuit addresses, the one through the address the
    /// user connected to the relay with first: it is known to be reachable
    /// from a browser, unlike some of the relay's other addresses.
    fn circuit_addrs(&self) -> Vec<Multiaddr> {
        let me = *self.swarm.local_peer_id();
        let mut addrs: Vec<Multiaddr> = self
            .swarm
            .listeners()
            .filter(|addr| addr.iter().any(|p| p == Protocol::P2pCircuit))
            .map(|addr| with_peer_id(addr, me))
            .collect();
        if let Some(relay) = &self.relay {
            let preferred = relay.addr.addr.to_vec();
            addrs.sort_by_key(|addr| !addr.to_vec().starts_with(&preferred));
        }
        addrs
    }

    fn emit_peer(&mut self, peer: &PeerId) {
        if let Some(entry) = self.peers.get(peer) {
            let event = Event::Peer {
                peer: *peer,
                link: entry.link(),
                rtt: entry.rtt,
                direct_failed: entry.direct_given_up().map(str::to_owned),
            };
            self.emit(event);
        }
    }

    fn is_relay(&self, peer: &PeerId) -> bool {
        self.relay
            .as_ref()
            .is_some_and(|relay| relay.addr.peer_id == *peer)
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if self.is_relay(&peer_id) {
                    if let Some(relay) = &mut self.relay {
                        relay.was_connected = true;
                    }
                    self.backoff.reset();
                    self.reconnect_timer = Fuse::terminated();
                    self.emit(Event::ClearNotice);
                    self.set_status(RelayStatus::Connected { relay: peer_id });
                    self.log(format!("connected to the relay {}", short(&peer_id)));
                    self.reserve();
                } else {
                    let path = path_of(&endpoint);
                    self.peers
                        .on_connected(peer_id, connection_id, path, Instant::now());
                    self.log(format!(
                        "connected to {} ({})",
                        short(&peer_id),
                        describe(&endpoint)
                    ));
                    // Once direct, no relayed connection is kept: one that
                    // arrives later (the peer dialing us through the relay)
                    // is closed as well.
                    let direct = self
                        .peers
                        .get(&peer_id)
                        .is_some_and(|entry| entry.link() == Link::Connected(Path::Direct));
                    if direct {
                        self.close_relayed_soon();
                    } else {
                        self.try_direct(peer_id);
                    }
                    self.emit_peer(&peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                if self.is_relay(&peer_id) {
                    if num_established == 0 {
                        let reason = cause
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "closed".to_owned());
                        self.emit(Event::Notice(format!(
                            "Lost the connection to the relay ({reason}). Reconnecting…"
                        )));
                        if let Some(relay) = &mut self.relay
                            && let Some(listener) = relay.circuit_listener.take()
                        {
                            self.swarm.remove_listener(listener);
                        }
                        self.emit(Event::Addresses(Vec::new()));
                        self.relay_unreachable(reason);
                    }
                } else {
                    self.peers.on_disconnected(&peer_id, connection_id);
                    self.emit_peer(&peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } => {
                if self.is_relay(&peer_id) {
                    self.relay_unreachable(error.to_string());
                } else if let DialError::Transport(attempts) = &error
                    && attempts.iter().any(|(addr, _)| is_webrtc(addr))
                {
                    self.peers
                        .on_direct_failed(&peer_id, error.to_string(), Instant::now());
                    let note = match self.peers.get(&peer_id).and_then(|p| p.direct_given_up()) {
                        Some(_) => "giving up; chat stays relayed",
                        None => "will retry",
                    };
                    self.log(format!(
                        "no direct connection with {}: {error}; {note}",
                        short(&peer_id)
                    ));
                    self.emit_peer(&peer_id);
                } else {
                    self.peers.on_dial_failed(&peer_id, error.to_string());
                    self.log(format!("could not reach {}: {error}", short(&peer_id)));
                    self.emit_peer(&peer_id);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                self.log(format!("listening on {address}"));
                self.emit(Event::Addresses(self.circuit_addrs()));
                self.announce_soon();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.log(format!("no longer listening on {address}"));
                self.emit(Event::Addresses(self.circuit_addrs()));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                let ours = self
                    .relay
                    .as_ref()
                    .is_some_and(|r| r.circuit_listener == Some(listener_id));
                if ours {
                    if let Some(relay) = &mut self.relay {
                        relay.circuit_listener = None;
                    }
                    if let Err(error) = reason {
                        let description = report::describe_error(&error);
                        let hint = report::reservation_refusal_hint(&description)
                            .map(|hint| format!(" ({hint})"))
                            .unwrap_or_default();
                        self.emit(Event::Notice(format!(
                            "The relay refused a reservation: {description}{hint}. Chat still works, and you can still reach others; they cannot dial you through this relay."
                        )));
                    }
                    self.emit(Event::Addresses(self.circuit_addrs()));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal: false,
                    ..
                },
            )) => self.log(format!("reservation accepted by {}", short(&relay_peer_id))),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            // The dialer's failures also end its dial (handled above).
            SwarmEvent::Behaviour(BehaviourEvent::Webrtc(libp2p_webrtc_p2p::Event::Failed {
                peer,
                dialer: false,
                error,
            })) => self.log(format!(
                "{} could not connect to us directly: {error}",
                short(&peer)
            )),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) if !self.is_relay(&peer) => {
                self.peers.on_rtt(&peer, rtt);
                self.emit_peer(&peer);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                tracing::debug!(peer = %peer_id, agent = %info.agent_version, "identified");
            }
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
                    self.log(format!(
                        "ignored a discovery record from {}: {error}",
                        short(&propagation_source)
                    ));
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
                    self.log(format!(
                        "ignored a chat message from {}: {error}",
                        short(&propagation_source)
                    ));
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
        let known = self.peers.get(&peer).is_some();
        let trusted = self.trusted_relays();
        let should_dial = self.peers.on_record(&record, &trusted, Instant::now());
        if !known {
            // A newcomer missed our earlier announcements: repeat ours now
            // rather than at the next period.
            self.announce_soon();
            self.log(format!(
                "discovered {} ({} addresses)",
                short(&peer),
                record.addrs().len()
            ));
        }
        if should_dial {
            // Relayed first; the direct upgrade follows once it is up. Only
            // what the dial rule kept (see `PeerBook::on_record`), never
            // the record's own addresses.
            let relayed = self
                .peers
                .get(&peer)
                .map(|entry| {
                    entry
                        .addrs
                        .iter()
                        .filter(|addr| !is_webrtc(addr))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            self.dial_peer(peer, relayed);
        } else {
            self.try_direct(peer);
            self.emit_peer(&peer);
        }
    }

    /// The relays whose circuits this page dials, each by the address the
    /// page reaches it at: the relay it connected to. (Relays it vouches
    /// for join here once relays federate.)
    fn trusted_relays(&self) -> TrustedRelays {
        self.relay
            .iter()
            .map(|relay| (relay.addr.peer_id, relay.addr.addr.clone()))
            .collect()
    }

    /// Closes relayed connections after [`RELAYED_GRACE_MS`], unless a
    /// closing is already due.
    fn close_relayed_soon(&mut self) {
        if self.close_relayed_timer.is_terminated() {
            self.close_relayed_timer = TimeoutFuture::new(RELAYED_GRACE_MS).fuse();
        }
    }

    /// Closes the relayed connections to the peers we now reach directly,
    /// so that everything, gossip included, takes the direct path and no
    /// longer depends on the relay (or its circuit limits).
    fn close_relayed(&mut self) {
        for peer in self.peers.ids() {
            let relayed = match self.peers.get(&peer) {
                Some(entry) if entry.link() == Link::Connected(Path::Direct) => {
                    entry.relayed_connections()
                }
                _ => continue,
            };
            if relayed.is_empty() {
                continue;
            }
            for connection in relayed {
                self.swarm.close_connection(connection);
            }
            self.log(format!(
                "closing the relayed connection to {}: the direct one carries everything now",
                short(&peer)
            ));
        }
    }

    /// Dials `peer`'s `/webrtc` address, if it announced one and the
    /// attempt budget allows. Of two pages only the one with the smaller
    /// peer id dials, so that a pair makes one peer connection, not two.
    fn try_direct(&mut self, peer: PeerId) {
        if *self.swarm.local_peer_id() > peer || !self.swarm.is_connected(&peer) {
            return;
        }
        let Some(entry) = self.peers.get(&peer) else {
            return;
        };
        // One address only: each `/webrtc` address is a whole signaling
        // exchange and peer connection, and the swarm would race them and
        // drop all but one, leaving the peer with connections we closed.
        // Any will do: the signaling runs on the relayed connection we have.
        let Some(webrtc) = entry.addrs.iter().find(|addr| is_webrtc(addr)).cloned() else {
            return;
        };
        if !self.peers.start_direct_attempt(&peer, Instant::now()) {
            return;
        }
        self.log(format!(
            "upgrading to a direct WebRTC connection with {}",
            short(&peer)
        ));
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![webrtc])
            .condition(PeerCondition::Always)
            .build();
        if let Err(error) = self.swarm.dial(opts) {
            self.peers
                .on_direct_failed(&peer, error.to_string(), Instant::now());
        }
    }
}

/// `addr` ending in `/p2p/<peer>`.
fn with_peer_id(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

/// A `/webrtc` connection is direct even though its address names the
/// relay circuit its signaling went through.
fn path_of(endpoint: &ConnectedPoint) -> Path {
    if is_webrtc(endpoint.get_remote_address()) || !endpoint.is_relayed() {
        Path::Direct
    } else {
        Path::Relayed
    }
}

fn is_webrtc(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::WebRTC)
}

/// `stun:<host>:3478` for the relay at `addr`.
fn default_stun_url(addr: &Multiaddr) -> Option<String> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(format!("stun:{ip}:3478")),
        Protocol::Ip6(ip) => Some(format!("stun:[{ip}]:3478")),
        Protocol::Dns(host) | Protocol::Dns4(host) | Protocol::Dns6(host) => {
            Some(format!("stun:{host}:3478"))
        }
        _ => None,
    }
}

fn describe(endpoint: &ConnectedPoint) -> String {
    let path = match path_of(endpoint) {
        Path::Direct => "direct",
        Path::Relayed => "relayed",
    };
    format!("{path}, {}", endpoint.get_remote_address())
}
