//! The libp2p node of the page and its event loop: the swarm, its
//! transports, the relay session, perf, and the mapping from what the
//! network reports to what the page shows.
//!
//! Discovery, the peer book, the dial rule, chat and the hand-off from
//! relayed to direct are the shared behaviour's (`chat_network`); when to
//! upgrade to a direct WebRTC connection is `libp2p_webrtc_p2p::upgrade`'s.
//! Commands from the UI come in on one channel, events for the UI go out
//! on another; nothing else reaches the swarm.

use std::time::Duration;

use chat_network::{Link, Path, PeerInfo, SendError, Sent, short};
use chat_protocol::report;
use futures::{FutureExt as _, StreamExt as _, channel::mpsc, future::Fuse};
use gloo_timers::future::{IntervalStream, TimeoutFuture};
use libp2p::{
    Multiaddr, PeerId, Swarm, Transport as _,
    core::{
        ConnectedPoint,
        muxing::{StreamMuxerBox, SubstreamBox},
        transport::ListenerId,
        upgrade::Version,
    },
    identity::Keypair,
    multiaddr::Protocol,
    noise, ping,
    swarm::{
        ConnectionId, DialError, NetworkBehaviour, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
    websocket_websys, yamux,
};
use libp2p_webrtc_p2p::{
    alongside::{self, Alongside},
    small_map::SmallMap,
    upgrade,
};

mod failover;
mod lookup;

use crate::{
    ANNOUNCE_INTERVAL, announce,
    backoff::Backoff,
    boxed_io::{BoxedOutput, OnBoxedIo},
    events::{Command, Event, RelayStatus, Via},
    federation::Federation,
    page_config,
    perf_service::{self, Perf},
    relay_addr::RelayAddr,
    relay_liveness::{self, RelayLiveness},
    timing, websocket,
};

/// How often each connection is pinged: the page shows each link's
/// round-trip time, and it should be fresh; and a link whose pings go
/// unanswered is found out within a few of them ([`LIVENESS`]). One ping
/// stream per connection carries them all (a data channel on a direct
/// link, a few dozen bytes a second on a circuit).
const PING_INTERVAL: Duration = Duration::from_secs(1);
/// A ping unanswered this long fails, and the next goes out on a new
/// stream: a stream that stalled (a data channel whose message nobody
/// woke up for) must not pass for a dead link, so this is well below
/// [`LIVENESS`]'s dead bound (one interval, this, one interval, an answer).
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// A link to a peer whose pings go unanswered for 3 s shows
/// `reconnecting` (without its old round trip); after 8 s it is closed as
/// dead, and the peer falls back to its relayed connection, is dialed
/// again if it announced since (a reload), or is forgotten after the
/// expiry (a frozen or sleeping laptop). WebRTC's own consent checks would
/// call a dead link `failed` only after 30 s and more.
const LIVENESS: chat_network::Liveness = chat_network::Liveness {
    stall: Duration::from_secs(3),
    dead: Duration::from_secs(8),
};

/// Events waiting for the UI. The UI runs on the same thread and drains
/// them at once; if it ever falls this far behind, log lines are dropped.
pub const EVENT_QUEUE: usize = 1024;
const AGENT_VERSION: &str = concat!("browser-chat-web-peer/", env!("CARGO_PKG_VERSION"));

#[derive(NetworkBehaviour)]
struct Behaviour {
    /// Browser-to-browser WebRTC: signaling over relayed connections
    /// (`first.first`), and when to upgrade a relayed connection to a
    /// direct `/webrtc` one (`first.second`, `upgrade`), which needs no
    /// handler of its own. The signaling's raw streams (`new_control`)
    /// carry the page's own too: the perf protocol, served on direct
    /// connections, the network's lookups (`chat_network::locate`), and
    /// the circuit relay client's HOP and STOP streams, with one handler
    /// per connection. The relay client's behaviour (`second`,
    /// `circuit_client`: the relays' connections, the reservation's
    /// events) has no handler either.
    webrtc: Alongside<
        Alongside<libp2p_webrtc_p2p::Behaviour, upgrade::Behaviour>,
        circuit_client::Behaviour,
    >,
    /// Discovery, the peer book, chat and the relayed-to-direct hand-off.
    network: chat_network::Behaviour,
    /// Answers identify (js-libp2p starts gossipsub to a peer once its
    /// answer names the protocol) and asks each peer's agent version: the
    /// lean one (`chat_network::identify`), not libp2p-identify.
    identify: chat_network::identify::Behaviour,
    ping: ping::Behaviour,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot set up the libp2p node")]
    Setup(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The relay this node uses, its connections and its circuit listener.
struct Relay {
    addr: RelayAddr,
    /// Whether a connection to it was ever established; only then does a
    /// lost connection start the reconnect loop.
    was_connected: bool,
    circuit_listener: Option<ListenerId>,
    /// The open connections to it that still count, and when each was
    /// last heard from.
    liveness: RelayLiveness,
    /// Connections given up as silent and closing. The relay client
    /// reserves and dials circuits on any of a relay's connections, which
    /// could be one of these: no reservation is asked for until they have
    /// closed.
    given_up: SmallMap<ConnectionId, ()>,
    /// Our dial to the relay under way, if any.
    dialing: Option<ConnectionId>,
}

impl Relay {
    /// Whether a connection to the relay that still counts is open, and
    /// none given up is still closing: circuits and reservations go over
    /// a live connection.
    fn ready(&self) -> bool {
        !self.liveness.is_empty() && self.given_up.is_empty()
    }
}

pub struct Node {
    swarm: Swarm<Behaviour>,
    events: mpsc::Sender<Event>,
    relay: Option<Relay>,
    status: RelayStatus,
    backoff: Backoff,
    reconnect_timer: Fuse<TimeoutFuture>,
    /// Once a second: the relay connections' liveness check.
    liveness_tick: futures::stream::Fuse<IntervalStream>,
    /// UI events dropped since the last report of them (see `emit`).
    dropped_events: u64,
    ice_servers: libp2p_webrtc_p2p::IceServers,
    /// The perf protocol, for the benchmarks.
    perf: Perf,
    /// The federation's relays, as last listed.
    federation: Federation,
    /// While moving to another relay of the federation: the relay that
    /// went away.
    moving_from: Option<RelayAddr>,
    /// The relay this page last moved away from, shown beside the one it
    /// is on.
    moved_from: Option<PeerId>,
    /// Fires when a relay dialed after ours went away has not answered
    /// in time (see `failover::MOVE_AFTER`).
    move_timer: Fuse<TimeoutFuture>,
}

// One is built and consumed per turn of the loop: its size costs nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    Command(Option<Command>),
    Swarm(SwarmEvent<BehaviourEvent>),
    Reconnect,
    MoveDue,
    LivenessCheck,
    Perf(perf_service::Step),
}

/// The chat network's configuration for the page: its record carries only
/// circuits another browser can open, and it dials only those this page
/// can (no plain `/ws` from an `https:` page).
fn network_config() -> chat_network::Config {
    let dialable = if page_config::served_over_https() {
        announce::is_secure_page_dialable_circuit
    } else {
        announce::is_browser_dialable_circuit
    };
    chat_network::Config::default()
        .with_announce_interval(ANNOUNCE_INTERVAL)
        .with_announceable(announce::is_browser_dialable_circuit)
        // What a lookup's answer is dialed at, too (records' circuits are
        // rewritten to the page's own way to each relay).
        .with_dialable(dialable)
        .with_liveness(LIVENESS)
        .with_on_announced(|| timing::phase(timing::ANNOUNCED))
}

impl Node {
    pub fn new(keypair: Keypair, events: mpsc::Sender<Event>) -> Result<Self, NodeError> {
        let setup = |error: Box<dyn std::error::Error + Send + Sync>| NodeError::Setup(error);
        let noise = noise::Config::new(&keypair).map_err(|e| setup(e.into()))?;
        let local_peer_id = keypair.public().to_peer_id();
        let ice_servers = libp2p_webrtc_p2p::IceServers::default();
        let (webrtc_transport, webrtc) = libp2p_webrtc_p2p::new(local_peer_id, ice_servers.clone());
        // The circuit relay client (`circuit_client`, lean) opens its HOP
        // and STOP streams through the signaling's stream control; it is
        // added by hand so that it comes after the `/webrtc` transport
        // (see the order below).
        let (relay_transport, relay_client) =
            circuit_client::new(local_peer_id, webrtc.new_control());
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
            .map_err(|e| setup(e.into()))?
            .with_other_transport(|_| {
                // Circuits and WebSockets share one upgrade (multistream,
                // Noise, yamux), so the wasm holds one copy of its code
                // instead of one per transport (9.6 KB gzipped; BENCHMARKS,
                // "Page weight"); the relay client is tried first. The
                // WebSocket flushes at once: see `websocket` for the 100 ms
                // each handshake message would wait otherwise.
                let websocket = websocket_websys::Transport::default()
                    .map(|connection, _| websocket::Connection::from(connection));
                // Every layer runs on a boxed stream (`boxed_io`): the
                // connection's multistream-select is then the substreams'
                // own code, and Noise and yamux's are compiled once.
                relay_transport
                    .or_transport(websocket)
                    .map(|connection, _| SubstreamBox::new(connection))
                    .upgrade(Version::V1Lazy)
                    .authenticate(BoxedOutput(OnBoxedIo(noise)))
                    .multiplex(OnBoxedIo(yamux::Config::default()))
            })
            .map_err(|e| setup(e.into()))?
            .with_other_transport(|key| {
                // WebRTC-direct to the relay through the `/webrtc` crate's
                // data channels, not libp2p-webrtc-websys's: see
                // `libp2p_webrtc_p2p::direct` for the stalls and the
                // callback errors those had.
                libp2p_webrtc_p2p::direct::Transport::new(key.clone())
                    .map(|(peer_id, connection), _| (peer_id, StreamMuxerBox::new(connection)))
            })
            .map_err(|e| setup(e.into()))?
            .with_behaviour(|key| {
                let streams = webrtc.new_control();
                Ok(Behaviour {
                    webrtc: Alongside {
                        first: Alongside {
                            first: webrtc,
                            second: upgrade::Behaviour::new(
                                local_peer_id,
                                upgrade::Config::default(),
                            ),
                        },
                        second: relay_client,
                    },
                    network: chat_network::Behaviour::new(key, network_config(), streams),
                    identify: chat_network::identify::Behaviour::new(
                        chat_network::identify::Config {
                            protocol_version: "/ipfs/id/1.0.0".to_owned(),
                            agent_version: AGENT_VERSION.to_owned(),
                            public_key: key.public(),
                        },
                    ),
                    ping: ping::Behaviour::new(
                        ping::Config::new()
                            .with_interval(PING_INTERVAL)
                            .with_timeout(PING_TIMEOUT),
                    ),
                })
            })
            .map_err(|e| setup(e.into()))?
            .with_swarm_config(|config| {
                config
                    .with_idle_connection_timeout(Duration::from_secs(60))
                    // Every stream's first message goes out with its
                    // protocol's proposal instead of a round trip later
                    // (multistream-select's "lazy" dialer): the HOP streams
                    // of the reservation and the circuit, the signaling
                    // stream over the circuit, gossipsub's. A peer without
                    // the protocol refuses at the first read instead.
                    .with_substream_upgrade_protocol_override(Version::V1Lazy)
            })
            .build();
        // Peers reach us directly through our circuit addresses + /webrtc.
        swarm
            .listen_on(Protocol::WebRTC.into())
            .map_err(|e| setup(e.into()))?;
        let streams = swarm.behaviour().webrtc.first.first.new_control();
        Ok(Self {
            swarm,
            events,
            relay: None,
            status: RelayStatus::Idle,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(15)),
            reconnect_timer: Fuse::terminated(),
            liveness_tick: IntervalStream::new(relay_liveness::CHECK_INTERVAL.as_millis() as u32)
                .fuse(),
            dropped_events: 0,
            ice_servers,
            perf: Perf::new(streams),
            federation: Federation::default(),
            moving_from: None,
            moved_from: None,
            move_timer: Fuse::terminated(),
        })
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.emit(Event::Identity {
            peer_id: *self.swarm.local_peer_id(),
        });
        self.emit(Event::Status(RelayStatus::Idle));
        loop {
            let step = futures::select! {
                command = commands.next() => Step::Command(command),
                event = self.swarm.select_next_some() => Step::Swarm(event),
                _ = &mut self.reconnect_timer => Step::Reconnect,
                _ = &mut self.move_timer => Step::MoveDue,
                _ = self.liveness_tick.select_next_some() => Step::LivenessCheck,
                step = self.perf.next().fuse() => Step::Perf(step),
            };
            match step {
                Step::Command(Some(command)) => self.on_command(command),
                Step::Command(None) => break,
                Step::Swarm(event) => self.on_swarm_event(event),
                Step::Reconnect => {
                    self.federation.new_round();
                    self.dial_relay()
                }
                Step::MoveDue => self.on_move_due(),
                Step::LivenessCheck => self.check_relay_liveness(),
                Step::Perf(perf_service::Step::Incoming(peer, stream)) => {
                    let direct = self
                        .peer_info(&peer)
                        .is_some_and(|info| info.link == Link::Connected(Path::Direct));
                    if let Err(reason) = self.perf.serve(peer, stream, direct) {
                        self.log(format!(
                            "refused a perf stream from {}: {reason}",
                            short(&peer)
                        ));
                    }
                }
                Step::Perf(perf_service::Step::Done(line)) => self.log(line),
            }
        }
    }

    /// Hands an event to the UI. With the queue full the event is
    /// dropped and counted; the count goes to the event log as soon as
    /// there is room again (a release page has no console log to say it).
    fn emit(&mut self, event: Event) {
        if self.dropped_events > 0 {
            let notice = Event::Log(format!(
                "{} events were dropped: the page fell behind",
                self.dropped_events
            ));
            if self.events.try_send(notice).is_err() {
                self.dropped_events += 1;
                return;
            }
            self.dropped_events = 0;
        }
        if self.events.try_send(event).is_err() {
            self.dropped_events += 1;
            tracing::warn!("UI event queue full; event dropped");
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
            } => {
                let only_direct = self.only_direct(&peer);
                self.perf.start(peer, upload, download, reply, only_direct);
            }
            Command::Federation {
                relays,
                secure_page,
            } => self.on_federation_list(&relays, secure_page),
            Command::ServePerf => match self.perf.accept_streams() {
                Ok(()) => {
                    self.log("serving /perf/1.0.0 to directly connected peers (benchmark page)")
                }
                Err(error) => self.log(format!("cannot serve /perf/1.0.0: {error}")),
            },
        }
    }

    /// Whether `peer` is connected directly and only directly (its relayed
    /// connection closed): a perf stream then takes the direct path.
    fn only_direct(&self, peer: &PeerId) -> bool {
        self.peer_info(peer)
            .is_some_and(|info| info.link == Link::Connected(Path::Direct) && info.relayed == 0)
    }

    fn peer_info(&self, peer: &PeerId) -> Option<PeerInfo> {
        self.swarm.behaviour().network.peer(peer)
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
        self.moving_from = None;
        self.moved_from = None;
        self.federation.new_round();
        self.backoff.reset();
        self.connect_to(addr);
    }

    /// Makes `addr` this page's relay and dials it; the relay it was on
    /// is let go (not its peers: direct links stay).
    fn connect_to(&mut self, addr: RelayAddr) {
        // The same relay again (Connect clicked twice): its connections,
        // their liveness and its reservation stay as they are.
        let mut same_relay = None;
        if let Some(old) = self.relay.take() {
            if old.addr.peer_id == addr.peer_id {
                same_relay = Some(old);
            } else {
                if let Some(listener) = old.circuit_listener {
                    self.swarm.remove_listener(listener);
                }
                let _ = self.swarm.disconnect_peer_id(old.addr.peer_id);
            }
        }
        if self.ice_servers.get().is_empty()
            && let Some(url) = default_stun_url(&addr.addr)
        {
            // A relay we were not served by: its STUN service on the default port.
            self.ice_servers.set(vec![url]);
        }
        self.relay = Some(match same_relay {
            Some(relay) => Relay { addr, ..relay },
            None => Relay {
                addr,
                was_connected: false,
                circuit_listener: None,
                liveness: RelayLiveness::new(relay_liveness::RELAY_SILENCE),
                given_up: SmallMap::new(),
                dialing: None,
            },
        });
        self.trust_federation();
        self.reconnect_timer = Fuse::terminated();
        self.dial_relay();
    }

    /// Dials the relay, unless a connection to it that still counts is
    /// open or a dial is under way. A new connection, even while one given
    /// up is still closing (its WebSocket may take a minute to).
    fn dial_relay(&mut self) {
        let Some(relay) = &self.relay else { return };
        if !relay.liveness.is_empty() {
            self.reserve();
            return;
        }
        if relay.dialing.is_some() {
            return;
        }
        let (addr, peer_id) = (relay.addr.addr.clone(), relay.addr.peer_id);
        self.set_status(RelayStatus::Connecting { relay: peer_id });
        self.log(format!("dialing the relay at {addr}"));
        let opts = DialOpts::peer_id(peer_id)
            .addresses(vec![addr.clone()])
            .condition(PeerCondition::Always)
            .build();
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                if let Some(relay) = &mut self.relay {
                    relay.dialing = Some(connection);
                }
                self.arm_move_timer();
            }
            Err(error) => self.relay_dial_failed(format!(
                "cannot dial {addr}: {}",
                describe_dial_error(&error)
            )),
        }
    }

    /// Gives up the relay connections whose pings went unanswered for
    /// [`relay_liveness::RELAY_SILENCE`] (a network change: see
    /// `relay_liveness`): closes them, drops the reservation made on them,
    /// and dials the relay anew at once. The reservation is asked for
    /// again on the new connection once the old ones have closed.
    fn check_relay_liveness(&mut self) {
        let Some(relay) = &mut self.relay else { return };
        let silent = relay.liveness.silent(web_time::Instant::now());
        if silent.is_empty() {
            return;
        }
        let silence = relay.liveness.silence();
        for connection in &silent {
            relay.liveness.forget(*connection);
            relay.given_up.insert(*connection, ());
        }
        let listener = relay.circuit_listener.take();
        self.log(format!(
            "relay connection lost: no answer for {} s; reconnecting",
            silence.as_secs()
        ));
        for connection in silent {
            self.swarm.close_connection(connection);
        }
        if let Some(listener) = listener {
            self.swarm.remove_listener(listener);
        }
        self.emit(Event::Addresses(self.circuit_addrs()));
        self.backoff.reset();
        self.reconnect_timer = Fuse::terminated();
        self.dial_relay();
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

    /// Asks the relay for a reservation by listening on its circuit
    /// address, once it is [`Relay::ready`].
    fn reserve(&mut self) {
        let Some(relay) = &mut self.relay else { return };
        if relay.circuit_listener.is_some() || !relay.ready() {
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

    /// A connection to the relay closed. The last one: reconnect (unless a
    /// dial is already under way: a connection given up as silent, closing
    /// after its replacement was dialed). One given up whose replacement
    /// is up: the reservation can now be made on the new one.
    fn on_relay_connection_closed(
        &mut self,
        connection: ConnectionId,
        num_established: u32,
        reason: String,
    ) {
        let Some(relay) = &mut self.relay else { return };
        relay.liveness.forget(connection);
        relay.given_up.remove(&connection);
        let dialing = relay.dialing.is_some();
        if num_established > 0 {
            self.reserve();
            return;
        }
        if let Some(listener) = relay.circuit_listener.take() {
            self.swarm.remove_listener(listener);
        }
        self.emit(Event::Addresses(Vec::new()));
        if dialing {
            self.log(format!(
                "the old relay connection closed ({reason}); a new one is being dialed"
            ));
            return;
        }
        self.emit(Event::Notice(format!(
            "Lost the connection to the relay ({reason}). Reconnecting…"
        )));
        self.relay_unreachable(reason);
    }

    /// Dials, through the relay, each peer in the book we have no
    /// connection to, whichever side the dial rule names. After a
    /// reconnection to the relay (a network change) our circuits went with
    /// the old connection, while the peers may still hold theirs, dead
    /// without their knowing: our dial is the news that replaces them (the
    /// chat network closes a relayed link a peer dialed anew as stale).
    fn dial_disconnected_peers(&mut self) {
        let disconnected: Vec<PeerId> = self
            .swarm
            .behaviour()
            .network
            .peers()
            .into_iter()
            .map(|info| info.peer)
            .filter(|peer| !self.swarm.is_connected(peer))
            .collect();
        if disconnected.is_empty() {
            return;
        }
        self.log(format!(
            "dialing {} known peers again through the relay",
            disconnected.len()
        ));
        for peer in disconnected {
            self.swarm.behaviour_mut().network.dial(peer);
        }
    }

    /// `peer`'s last connection, a relayed one, ended: a circuit reached
    /// the relay's duration or byte limit (2 minutes, 1 MiB by default),
    /// or the relay lost one side. A peer still in the book is dialed
    /// again at once by the side that dials first (the dial rule), so a
    /// pair that cannot go direct is back on a fresh circuit within a
    /// round trip, not at the next announcement (20 s); a peer that has
    /// gone fails the dial and is forgotten when its record expires.
    ///
    /// Only over a relay connection that counts ([`Relay::ready`]): while
    /// the page reconnects to the relay, the new reservation's
    /// announcement brings the peers back. The dial only asks that the peer
    /// be disconnected: a WebRTC upgrade that cannot succeed may still be
    /// dialing it, and a dial that waits for that would be dropped.
    fn redial_after_relayed(&mut self, peer: PeerId, reason: String) {
        let known = self.peer_info(&peer).is_some();
        if !known || !dials_first(self.swarm.local_peer_id(), &peer) {
            return;
        }
        let Some(relay) = self.relay.as_ref().filter(|relay| relay.ready()) else {
            return;
        };
        // Through the relay its record names (ours, or another of the
        // federation's).
        let _ = relay;
        let circuits = self.swarm.behaviour().network.relayed_addrs(&peer);
        let opts = DialOpts::peer_id(peer)
            .addresses(circuits)
            .condition(PeerCondition::Disconnected)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => self.log(format!(
                "the relayed connection to {} ended ({reason}; a circuit ends at the relay's \
                 time or data limit); dialing it again",
                short(&peer)
            )),
            Err(error) => tracing::debug!(%peer, %error, "no redial"),
        }
    }

    /// A pasted multiaddr is dialed; a bare peer id is looked up first.
    fn dial_pasted(&mut self, input: &str) {
        let input = input.trim();
        if !input.starts_with('/') {
            match input.parse::<PeerId>() {
                Ok(peer) => self.reach_by_id(peer),
                Err(error) => self.emit(Event::Notice(format!(
                    "\"{input}\" is neither a multiaddr nor a peer id: {error}."
                ))),
            }
            return;
        }
        let addr: Multiaddr = match input.parse() {
            Ok(addr) => addr,
            Err(error) => {
                self.emit(Event::Notice(format!(
                    "\"{input}\" is not a valid multiaddr: {error}."
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
        if self.swarm.behaviour_mut().network.dial_at(peer, addrs) {
            self.log(format!("dialing {}", short(&peer)));
        }
    }

    /// Publishes `text`; while a relayed connection to a peer reached
    /// directly closes, it waits (see `chat_network::Behaviour::send_chat`).
    fn send_chat(&mut self, text: String) {
        match self.swarm.behaviour_mut().network.send_chat(text.clone()) {
            Ok(Sent::Published) => self.own_chat(text),
            Ok(Sent::Held) => self.log("message waits for the relayed connection to close"),
            Err(error) => self.emit(Event::ChatNotSent {
                text,
                reason: not_sent_reason(&error),
            }),
        }
    }

    fn own_chat(&mut self, text: String) {
        let from = *self.swarm.local_peer_id();
        self.emit(Event::Chat {
            from,
            text,
            own: true,
            via: None,
        });
    }

    /// This peer's circuit addresses that a browser can dial, the one
    /// through the relay address the user connected with first.
    fn circuit_addrs(&self) -> Vec<Multiaddr> {
        self.swarm.behaviour().network.announced_addrs()
    }

    fn emit_peer(&mut self, info: PeerInfo) {
        let direct_failed = self
            .swarm
            .behaviour()
            .webrtc
            .first
            .second
            .given_up(&info.peer)
            .map(str::to_owned);
        self.emit(Event::Peer {
            peer: info.peer,
            link: info.link,
            rtt: info.rtt,
            direct_failed,
            relayed: info.relayed,
            incarnation: info.incarnation,
            link_id: info.link_id.map(|id| id.to_string()),
        });
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
                endpoint,
                connection_id,
                ..
            } => {
                if self.is_relay(&peer_id) {
                    timing::phase(timing::RELAY_CONNECTION);
                    if let Some(relay) = &mut self.relay {
                        relay.was_connected = true;
                        relay
                            .liveness
                            .heard(connection_id, web_time::Instant::now());
                        if relay.dialing == Some(connection_id) {
                            relay.dialing = None;
                        }
                    }
                    self.backoff.reset();
                    self.reconnect_timer = Fuse::terminated();
                    self.move_timer = Fuse::terminated();
                    self.emit(Event::ClearNotice);
                    self.on_moved(peer_id);
                    self.set_status(RelayStatus::Connected {
                        relay: peer_id,
                        moved_from: self.moved_from,
                    });
                    self.log(format!("connected to the relay {}", short(&peer_id)));
                    self.reserve();
                } else {
                    let phase = match path_of(&endpoint) {
                        Path::Relayed => timing::CIRCUIT,
                        Path::Direct => timing::DIRECT,
                    };
                    timing::peer_phase(phase, &peer_id);
                    self.log(format!(
                        "connected to {} ({}; connection {connection_id})",
                        short(&peer_id),
                        describe(&endpoint)
                    ));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } if self.is_relay(&peer_id) => {
                let reason = cause
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "closed".to_owned());
                self.on_relay_connection_closed(connection_id, num_established, reason);
            }
            // The peers' connections are the chat network's to track; a
            // relayed one that was a peer's last is dialed again.
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established: 0,
                cause,
                ..
            } if path_of(&endpoint) == Path::Relayed => {
                let reason = cause
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "closed".to_owned());
                self.redial_after_relayed(peer_id, reason);
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                connection_id,
                error,
            } => {
                if self.is_relay(&peer_id) {
                    if let Some(relay) = &mut self.relay
                        && relay.dialing == Some(connection_id)
                    {
                        relay.dialing = None;
                    }
                    self.relay_dial_failed(describe_dial_error(&error));
                } else if let DialError::Transport(attempts) = &error
                    && attempts.iter().any(|(addr, _)| is_webrtc(addr))
                {
                    // The upgrade policy reports it.
                } else {
                    self.log(format!(
                        "could not reach {}: {}",
                        short(&peer_id),
                        describe_dial_error(&error)
                    ));
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                self.log(format!("listening on {address}"));
                self.emit(Event::Addresses(self.circuit_addrs()));
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
            SwarmEvent::Behaviour(BehaviourEvent::Webrtc(alongside::Event::Second(
                circuit_client::Event::ReservationAccepted {
                    relay: relay_peer_id,
                    renewal: false,
                },
            ))) => {
                timing::phase(timing::RESERVATION);
                self.log(format!("reservation accepted by {}", short(&relay_peer_id)));
                self.dial_disconnected_peers();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Network(event)) => self.on_network_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Webrtc(alongside::Event::First(
                alongside::Event::Second(event),
            ))) => self.on_upgrade_event(event),
            // The dialer's failures also end its dial (handled above).
            SwarmEvent::Behaviour(BehaviourEvent::Webrtc(alongside::Event::First(
                alongside::Event::First(libp2p_webrtc_p2p::Event::Failed {
                    peer,
                    dialer: false,
                    error,
                }),
            ))) => self.log(format!(
                "{} could not connect to us directly: {error}",
                short(&peer)
            )),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Ok(_),
            })) if self.is_relay(&peer) => {
                if let Some(relay) = &mut self.relay
                    && relay.liveness.is_watched(connection)
                {
                    relay.liveness.heard(connection, web_time::Instant::now());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Ok(rtt),
            })) => {
                self.swarm
                    .behaviour_mut()
                    .network
                    .on_rtt(&peer, connection, rtt);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                chat_network::identify::Event::Received {
                    peer,
                    agent_version,
                },
            )) => {
                tracing::debug!(%peer, agent = %agent_version, "identified");
                let network = &mut self.swarm.behaviour_mut().network;
                network.on_agent(&peer, &agent_version);
            }
            _ => {}
        }
    }

    fn on_network_event(&mut self, event: chat_network::Event) {
        use chat_network::Event as Network;
        match event {
            Network::Discovered { peer, addrs, .. } => {
                timing::peer_phase(timing::RECORD, &peer);
                self.log(format!(
                    "discovered {} ({} addresses)",
                    short(&peer),
                    addrs.len()
                ))
            }
            Network::PeerChanged(info) => {
                // The upgrade dials one `/webrtc` address: any will do,
                // the signaling runs on the relayed connection we have
                // (with none, it takes that connection's own twin).
                let webrtc = info.addrs.iter().find(|addr| is_webrtc(addr)).cloned();
                self.swarm
                    .behaviour_mut()
                    .webrtc
                    .first
                    .second
                    .set_webrtc_addr(info.peer, webrtc);
                self.emit_peer(info);
            }
            Network::PeerGone { peer } => {
                self.swarm
                    .behaviour_mut()
                    .webrtc
                    .first
                    .second
                    .set_webrtc_addr(peer, None);
                self.emit(Event::PeerGone { peer });
            }
            Network::Chat { from, text, via } => {
                let via = self.chat_via(&from, &via);
                self.emit(Event::Chat {
                    from,
                    text,
                    own: false,
                    via: Some(via),
                })
            }
            Network::ChatSent { text } => self.own_chat(text),
            Network::ChatNotSent { text, error } => self.emit(Event::ChatNotSent {
                text,
                reason: not_sent_reason(&error),
            }),
            Network::Rejected {
                propagation_source,
                error,
            } => self.log(format!(
                "ignored a message from {}: {}",
                short(&propagation_source),
                report::describe_error(&error)
            )),
            Network::ClosingRelayed { peer } => self.log(format!(
                "closing the relayed connection to {}: the direct one carries everything now",
                short(&peer)
            )),
            Network::Located { peer, relay } => self.located(peer, relay),
            Network::LocateFailed { peer, error } => self.locate_failed(peer, error),
            Network::LinkDead {
                peer,
                connection,
                path,
                why,
            } => {
                let why = match why {
                    chat_network::DeadLink::Silent(silence) => {
                        format!("no answer for {} s", silence.as_secs())
                    }
                    chat_network::DeadLink::Stale => {
                        "it dialed us anew through the relay (a reload?)".to_owned()
                    }
                };
                self.log(format!(
                    "closing the {path} link to {} (connection {connection}): {why}",
                    short(&peer)
                ))
            }
        }
    }

    /// How a chat message from `from`, handed to us by `via`, arrived:
    /// straight from its author over a direct or relayed link (or either,
    /// while both are open), or forwarded by the relay or another peer.
    fn chat_via(&self, from: &PeerId, via: &PeerId) -> Via {
        if from != via {
            return Via::Forwarded;
        }
        match self.peer_info(from) {
            Some(info) if info.relayed == 0 && info.link.path() == Some(Path::Direct) => {
                Via::Direct
            }
            Some(info) if info.link.path() == Some(Path::Relayed) => Via::Relayed,
            _ => Via::Peer,
        }
    }

    fn on_upgrade_event(&mut self, event: upgrade::Event) {
        match event {
            upgrade::Event::Attempt { peer, .. } => self.log(format!(
                "upgrading to a direct WebRTC connection with {}",
                short(&peer)
            )),
            upgrade::Event::Failed {
                peer,
                error,
                retry_in,
            } => {
                let note = match retry_in {
                    Some(_) => "will retry",
                    None => "giving up; chat stays relayed",
                };
                self.log(format!(
                    "no direct connection with {}: {error}; {note}",
                    short(&peer)
                ));
                if let Some(info) = self.peer_info(&peer) {
                    self.emit_peer(info);
                }
            }
        }
    }
}

/// What the page says of a message that was not sent.
fn not_sent_reason(error: &SendError) -> String {
    match error {
        SendError::Invalid(error) => error.to_string(),
        SendError::NoPeers => "Nobody to send it to yet: connect to a relay first.".to_owned(),
        SendError::HeldQueueFull => {
            "Still moving to the direct connection: send it again in a moment.".to_owned()
        }
        SendError::Publish(error) => format!("Not sent: {error}."),
    }
}

use chat_network::dial::{dials_first, is_webrtc, path_of};

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
    format!("{}, {}", path_of(endpoint), endpoint.get_remote_address())
}

/// A dial error as the page shows it. libp2p-swarm prints the address of a
/// wrong or local peer id with `{:?}`, which prints nothing in the page's
/// release build (`-Zfmt-debug=none`, scripts/lib.sh): those two are
/// written out here.
fn describe_dial_error(error: &DialError) -> String {
    match error {
        DialError::WrongPeerId { obtained, address } => {
            format!("Dial error: Unexpected peer ID {obtained} at {address}.")
        }
        DialError::LocalPeerId { address } => {
            format!("Dial error: tried to dial local peer id at {address}.")
        }
        other => other.to_string(),
    }
}
