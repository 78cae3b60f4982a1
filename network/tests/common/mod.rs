//! Real swarms in memory: a relay (circuit relay v2 server and a gossipsub
//! that forwards the network's topics, as the real relay does) and peers
//! that run [`chat_network::Behaviour`] beside the relay client, over
//! libp2p's memory transport, as rust-libp2p's own relay tests do.
//!
//! Each swarm runs in its own task; a test sends it closures to run on the
//! swarm and reads its events, each stamped with when the swarm reported it.

#![allow(dead_code)] // Each test binary uses a part.

use std::time::Duration;

use chat_network::{Behaviour, Config, Event};
use chat_protocol::{locate, topics};
use futures::{StreamExt as _, channel::oneshot};
use libp2p::{
    Multiaddr, PeerId, Swarm, Transport as _,
    core::{
        muxing::StreamMuxerBox,
        transport::{Boxed, MemoryTransport, choice::OrTransport},
        upgrade,
    },
    gossipsub::{self, IdentTopic},
    identity::Keypair,
    multiaddr::Protocol,
    noise, relay,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle},
    yamux,
};
use tokio::{sync::mpsc, time::Instant};

/// How long any one step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(15);

#[derive(NetworkBehaviour)]
pub struct RelayBehaviour {
    relay: relay::Behaviour,
    gossipsub: gossipsub::Behaviour,
    /// The relay's lookup server (the real relay's codec), when it answers
    /// lookups.
    locate: Toggle<request_response::Behaviour<locate::Codec>>,
}

#[derive(NetworkBehaviour)]
pub struct PeerBehaviour {
    pub relay: relay::client::Behaviour,
    pub network: Behaviour,
    /// The streams the network's lookups open.
    pub stream: libp2p_stream::Behaviour,
}

pub type PeerSwarm = Swarm<PeerBehaviour>;
pub type Seen = (Instant, SwarmEvent<PeerBehaviourEvent>);
type Job = Box<dyn FnOnce(&mut PeerSwarm) + Send>;
type ForgerJob = Box<dyn FnOnce(&mut Swarm<gossipsub::Behaviour>) + Send>;

fn memory_addr() -> Multiaddr {
    Multiaddr::empty().with(Protocol::Memory(rand_port()))
}

fn rand_port() -> u64 {
    // Unique within the process: the memory transport's ports are global.
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = u64::from(std::process::id()) << 20;
    base + NEXT.fetch_add(1, Ordering::Relaxed) + 1
}

fn upgraded<S>(transport: Boxed<S>, key: &Keypair) -> Boxed<(PeerId, StreamMuxerBox)>
where
    S: futures::AsyncRead + futures::AsyncWrite + Send + Unpin + 'static,
{
    transport
        .upgrade(upgrade::Version::V1)
        .authenticate(noise::Config::new(key).expect("noise keys"))
        .multiplex(yamux::Config::default())
        .boxed()
}

fn swarm_config() -> libp2p::swarm::Config {
    libp2p::swarm::Config::with_tokio_executor()
        .with_idle_connection_timeout(Duration::from_secs(60))
        // As the page, chat-peer and the relay open their streams.
        .with_substream_upgrade_protocol_override(upgrade::Version::V1Lazy)
}

/// A relay in memory; it runs until the test ends.
pub struct TestRelay {
    pub id: PeerId,
    /// Its address, ending in `/p2p/<id>`.
    pub addr: Multiaddr,
}

impl TestRelay {
    pub fn start() -> Self {
        Self::start_answering(None)
    }

    /// A relay that answers every lookup with `answer` (as the real
    /// relay's request-response server does), or, with `None`, does not
    /// serve the locate protocol.
    pub fn start_answering(answer: Option<locate::LocateResponse>) -> Self {
        Self::start_with(answer, Duration::ZERO)
    }

    /// A relay that subscribes to the network's topics only `after` this
    /// long: its subscription reaches the peers after their reservation,
    /// as a relay's gossip stream over WebRTC-direct can.
    pub fn start_subscribing_after(after: Duration) -> Self {
        Self::start_with(None, after)
    }

    fn start_with(answer: Option<locate::LocateResponse>, subscribe_after: Duration) -> Self {
        let key = Keypair::generate_ed25519();
        let id = key.public().to_peer_id();
        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_initial_delay(Duration::from_millis(100))
            .heartbeat_interval(Duration::from_millis(200))
            .build()
            .expect("valid gossipsub config");
        let mut gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .expect("gossipsub");
        let subscribe = |gossipsub: &mut gossipsub::Behaviour| {
            for topic in topics::ALL {
                gossipsub
                    .subscribe(&IdentTopic::new(topic))
                    .expect("subscribed");
            }
        };
        if subscribe_after.is_zero() {
            subscribe(&mut gossipsub);
        }
        let mut swarm = Swarm::new(
            upgraded(MemoryTransport::default().boxed(), &key),
            RelayBehaviour {
                relay: relay::Behaviour::new(id, relay::Config::default()),
                gossipsub,
                locate: Toggle::from(answer.is_some().then(|| {
                    request_response::Behaviour::new(
                        [(locate::PROTOCOL, ProtocolSupport::Inbound)],
                        request_response::Config::default(),
                    )
                })),
            },
            id,
            swarm_config(),
        );
        let addr = memory_addr();
        swarm.listen_on(addr.clone()).expect("relay listens");
        swarm.add_external_address(addr.clone());
        tokio::spawn(async move {
            let subscribing = tokio::time::sleep(subscribe_after);
            tokio::pin!(subscribing);
            let mut subscribed = subscribe_after.is_zero();
            loop {
                let event = tokio::select! {
                    () = &mut subscribing, if !subscribed => {
                        subscribed = true;
                        subscribe(&mut swarm.behaviour_mut().gossipsub);
                        continue;
                    }
                    event = swarm.next() => match event {
                        Some(event) => event,
                        None => break,
                    },
                };
                if let SwarmEvent::Behaviour(RelayBehaviourEvent::Locate(
                    request_response::Event::Message {
                        message: request_response::Message::Request { channel, .. },
                        ..
                    },
                )) = event
                    && let Some(answer) = &answer
                    && let Some(server) = swarm.behaviour_mut().locate.as_mut()
                {
                    let _ = server.send_response(channel, answer.clone());
                }
            }
        });
        Self {
            id,
            addr: addr.with(Protocol::P2p(id)),
        }
    }

    /// The circuit address of `peer` through this relay.
    pub fn circuit_to(&self, peer: PeerId) -> Multiaddr {
        self.addr
            .clone()
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(peer))
    }
}

/// A peer running the chat network behaviour in its own task.
pub struct TestPeer {
    pub id: PeerId,
    pub key: Keypair,
    /// Its own memory address (a direct dial reaches it there).
    pub addr: Multiaddr,
    jobs: mpsc::UnboundedSender<Job>,
    pub events: mpsc::UnboundedReceiver<Seen>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestPeer {
    /// Starts a peer with a new key, connected to `relay` and reserved on it.
    pub async fn start(relay: &TestRelay, config: Config) -> Self {
        Self::start_with_key(relay, config, Keypair::generate_ed25519()).await
    }

    pub async fn start_with_key(relay: &TestRelay, config: Config, key: Keypair) -> Self {
        let id = key.public().to_peer_id();
        let (relay_transport, relay_client) = relay::client::new(id);
        let transport = upgraded(
            OrTransport::new(relay_transport, MemoryTransport::default()).boxed(),
            &key,
        );
        let stream = libp2p_stream::Behaviour::new();
        let mut network = Behaviour::new(&key, config, stream.new_control());
        network.trust_relay(relay.id, relay.addr.clone());
        let mut swarm = Swarm::new(
            transport,
            PeerBehaviour {
                relay: relay_client,
                network,
                stream,
            },
            id,
            swarm_config(),
        );
        let addr = memory_addr();
        swarm.listen_on(addr.clone()).expect("peer listens");
        // The relay client dials the relay itself for the reservation.
        swarm
            .listen_on(relay.addr.clone().with(Protocol::P2pCircuit))
            .expect("circuit listener");
        let (jobs, mut job_rx) = mpsc::unbounded_channel::<Job>();
        let (event_tx, events) = mpsc::unbounded_channel();
        let (stop, mut stopped) = oneshot::channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    Some(job) = job_rx.recv() => job(&mut swarm),
                    event = swarm.select_next_some() => {
                        let _ = event_tx.send((Instant::now(), event));
                    }
                }
            }
        });
        let mut peer = Self {
            id,
            key,
            addr: addr.with(Protocol::P2p(id)),
            jobs,
            events,
            stop: Some(stop),
        };
        peer.wait("its reservation", |event| match event {
            SwarmEvent::Behaviour(PeerBehaviourEvent::Relay(
                relay::client::Event::ReservationReqAccepted { .. },
            )) => Some(()),
            _ => None,
        })
        .await;
        peer
    }

    /// Runs `job` on the swarm and returns what it returned.
    pub async fn with<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut PeerSwarm) -> R + Send + 'static,
    ) -> R {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |swarm| {
            let _ = reply.send(job(swarm));
        });
        self.jobs.send(job).expect("peer task running");
        answer.await.expect("peer task answered")
    }

    /// The first event `matches` picks within [`STEP`], with when it was
    /// seen; events before it are dropped.
    pub async fn wait<T>(
        &mut self,
        what: &str,
        mut matches: impl FnMut(&SwarmEvent<PeerBehaviourEvent>) -> Option<T>,
    ) -> (Instant, T) {
        let deadline = Instant::now() + STEP;
        loop {
            let next = tokio::time::timeout_at(deadline, self.events.recv()).await;
            match next {
                Ok(Some((at, event))) => {
                    if let Some(found) = matches(&event) {
                        return (at, found);
                    }
                }
                Ok(None) => panic!("{}: the peer stopped before {what}", self.id),
                Err(_) => panic!("{}: no {what} within {STEP:?}", self.id),
            }
        }
    }

    /// Like [`TestPeer::wait`], for the network behaviour's events.
    pub async fn wait_network<T>(
        &mut self,
        what: &str,
        mut matches: impl FnMut(&Event) -> Option<T>,
    ) -> (Instant, T) {
        self.wait(what, |event| match event {
            SwarmEvent::Behaviour(PeerBehaviourEvent::Network(event)) => matches(event),
            _ => None,
        })
        .await
    }

    /// Stops the swarm: its connections drop as a killed process's would.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A peer with a bare gossipsub and no validation of its own: it publishes
/// whatever a test gives it, as a hostile peer would.
pub struct Forger {
    pub id: PeerId,
    pub key: Keypair,
    jobs: mpsc::UnboundedSender<ForgerJob>,
}

impl Forger {
    /// Connects straight to `victim` (its memory address).
    pub fn start(victim: &Multiaddr) -> Self {
        Self::start_with_key(victim, Keypair::generate_ed25519())
    }

    pub fn start_with_key(victim: &Multiaddr, key: Keypair) -> Self {
        let id = key.public().to_peer_id();
        let mut gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossipsub::Config::default(),
        )
        .expect("gossipsub");
        gossipsub
            .subscribe(&IdentTopic::new(topics::DISCOVERY))
            .expect("subscribed");
        let mut swarm = Swarm::new(
            upgraded(MemoryTransport::default().boxed(), &key),
            gossipsub,
            id,
            swarm_config(),
        );
        swarm.dial(victim.clone()).expect("victim dialed");
        let (jobs, mut job_rx) =
            mpsc::unbounded_channel::<Box<dyn FnOnce(&mut Swarm<gossipsub::Behaviour>) + Send>>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    job = job_rx.recv() => match job {
                        Some(job) => job(&mut swarm),
                        None => break,
                    },
                    _ = swarm.select_next_some() => {}
                }
            }
        });
        Self { id, key, jobs }
    }

    /// Publishes `data` on the discovery topic (if anyone listens yet).
    pub fn publish(&self, data: Vec<u8>) {
        let _ = self.jobs.send(Box::new(move |swarm| {
            let _ = swarm
                .behaviour_mut()
                .publish(IdentTopic::new(topics::DISCOVERY), data);
        }));
    }
}
