//! Test support: a relay on loopback with ephemeral ports, and native
//! libp2p peers that talk to it over its real sockets.

#![allow(dead_code)] // Each test file uses a part of it.

use std::{future::Future, path::Path, time::Duration};

use ::relay::{Options, Relay};
use clap::Parser as _;
use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _, future::Either};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, Transport as _,
    core::{muxing::StreamMuxerBox, upgrade::Version},
    gossipsub, identify,
    identity::Keypair,
    multiaddr::Protocol,
    noise, ping, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, websocket, yamux,
};

/// Generous bound on anything a test waits for; tests never sleep for a
/// fixed time, they wait for an event and fail after this.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Options for a relay on 127.0.0.1 with every port chosen by the OS, its
/// state in `state_dir`, plus `extra` flags.
pub fn relay_options(state_dir: &Path, page_dir: &Path, extra: &[&str]) -> Options {
    let mut args = vec![
        "relay".to_owned(),
        "--listen-ip=127.0.0.1".to_owned(),
        "--port=0".to_owned(),
        "--quic-port=0".to_owned(),
        "--websocket-port=0".to_owned(),
        "--webrtc-port=0".to_owned(),
        "--stun-port=0".to_owned(),
        "--http-port=0".to_owned(),
        format!("--state-dir={}", state_dir.display()),
        format!("--page-dir={}", page_dir.display()),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    Options::try_parse_from(args).expect("test options parse")
}

pub struct TestRelay {
    pub relay: Relay,
    pub dir: tempfile::TempDir,
}

impl TestRelay {
    pub async fn start(extra: &[&str]) -> Self {
        init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let page_dir = dir.path().join("page");
        std::fs::create_dir(&page_dir).expect("page dir");
        std::fs::write(
            page_dir.join("index.html"),
            "<!doctype html><title>chat page</title>",
        )
        .expect("index.html");
        let options = relay_options(&dir.path().join("state"), &page_dir, extra);
        let relay = Relay::start(options).await.expect("relay starts");
        Self { relay, dir }
    }

    /// The relay's address for `transport` ("tcp", "websocket", "webrtc-direct").
    pub fn addr(&self, transport: &str) -> Multiaddr {
        self.relay
            .multiaddrs
            .iter()
            .find(|addr| ::relay::addresses::transport_of(addr) == transport)
            .unwrap_or_else(|| {
                panic!(
                    "relay has no {transport} address: {:?}",
                    self.relay.multiaddrs
                )
            })
            .clone()
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.relay.http_addr)
    }
}

#[derive(NetworkBehaviour)]
pub struct PeerBehaviour {
    pub relay_client: relay::client::Behaviour,
    pub gossipsub: gossipsub::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub stream: libp2p_stream::Behaviour,
}

pub type PeerSwarm = Swarm<PeerBehaviour>;

/// A native peer with every transport the relay offers and the relay client.
pub fn peer(keypair: Keypair) -> PeerSwarm {
    let noise = noise::Config::new(&keypair).expect("noise config");
    libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_other_transport(|_| {
            websocket::Config::new(tcp::tokio::Transport::new(tcp::Config::default()))
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
        })
        .expect("websocket transport")
        .with_other_transport(|key| {
            let certificate =
                libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng()).expect("certificate");
            libp2p_webrtc::tokio::Transport::new(key.clone(), certificate)
                .map(|(peer_id, connection), _| (peer_id, StreamMuxerBox::new(connection)))
        })
        .expect("webrtc transport")
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .expect("relay client")
        .with_behaviour(|key, relay_client| PeerBehaviour {
            relay_client,
            gossipsub: gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossipsub::ConfigBuilder::default()
                    .heartbeat_interval(Duration::from_millis(200))
                    .build()
                    .expect("gossipsub config"),
            )
            .expect("gossipsub"),
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/id/1.0.0".to_owned(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
        })
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}

/// Polls `swarm` until `predicate` picks a value out of one of its events.
pub async fn wait_for<T>(
    swarm: &mut PeerSwarm,
    what: &str,
    mut predicate: impl FnMut(&SwarmEvent<PeerBehaviourEvent>) -> Option<T>,
) -> T {
    let result = tokio::time::timeout(TIMEOUT, async {
        loop {
            let event = swarm.select_next_some().await;
            tracing::debug!(peer = %swarm.local_peer_id(), ?event, "test peer event");
            if let Some(value) = predicate(&event) {
                return value;
            }
        }
    })
    .await;
    result.unwrap_or_else(|_| panic!("timed out after {TIMEOUT:?} waiting for {what}"))
}

/// Awaits `future` while keeping `swarm` polled.
pub async fn drive<T>(swarm: &mut PeerSwarm, future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let result = tokio::time::timeout(TIMEOUT, async {
        loop {
            match futures::future::select(future.as_mut(), swarm.select_next_some()).await {
                Either::Left((value, _)) => return value,
                Either::Right((event, _)) => tracing::debug!(?event, "test peer event"),
            }
        }
    })
    .await;
    result.expect("timed out driving the swarm")
}

/// Keeps `swarm` running in the background for the rest of the test.
pub fn spawn(mut swarm: PeerSwarm) {
    tokio::spawn(async move {
        loop {
            let event = swarm.select_next_some().await;
            tracing::debug!(?event, "background peer event");
        }
    });
}

/// Makes a reservation on the relay at `relay_addr` and waits until it is
/// accepted. Returns the peer's circuit address.
pub async fn reserve(swarm: &mut PeerSwarm, relay_addr: &Multiaddr) -> Multiaddr {
    swarm
        .listen_on(relay_addr.clone().with(Protocol::P2pCircuit))
        .expect("circuit listen address");
    wait_for(swarm, "reservation accepted", |event| match event {
        SwarmEvent::Behaviour(PeerBehaviourEvent::RelayClient(
            relay::client::Event::ReservationReqAccepted { .. },
        )) => Some(()),
        SwarmEvent::ListenerClosed {
            reason: Err(error), ..
        } => panic!("reservation refused: {error}"),
        _ => None,
    })
    .await;
    relay_addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(*swarm.local_peer_id()))
}

/// Tries to make a reservation and reports whether the relay refused it.
pub async fn try_reserve(swarm: &mut PeerSwarm, relay_addr: &Multiaddr) -> Result<(), String> {
    swarm
        .listen_on(relay_addr.clone().with(Protocol::P2pCircuit))
        .expect("circuit listen address");
    wait_for(swarm, "reservation outcome", |event| match event {
        SwarmEvent::Behaviour(PeerBehaviourEvent::RelayClient(
            relay::client::Event::ReservationReqAccepted { .. },
        )) => Some(Ok(())),
        SwarmEvent::ListenerClosed {
            reason: Err(error), ..
        } => Some(Err(format!("{error:?}"))),
        _ => None,
    })
    .await
}

/// Subscribes to `topic` and waits until the relay is known to be
/// subscribed too, so that a publish reaches it.
pub async fn join_topic(swarm: &mut PeerSwarm, topic: &str, relay: PeerId) {
    let topic = gossipsub::IdentTopic::new(topic);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .expect("subscribe");
    let hash = topic.hash();
    if swarm
        .behaviour()
        .gossipsub
        .all_peers()
        .any(|(peer, topics)| *peer == relay && topics.contains(&&hash))
    {
        return;
    }
    wait_for(swarm, "the relay's subscription", |event| match event {
        SwarmEvent::Behaviour(PeerBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
            peer_id,
            topic,
        })) if *peer_id == relay && *topic == hash => Some(()),
        _ => None,
    })
    .await;
}

pub fn relay_peer_id(addr: &Multiaddr) -> PeerId {
    match addr.iter().last() {
        Some(Protocol::P2p(peer_id)) => peer_id,
        _ => panic!("{addr} does not end in /p2p"),
    }
}

/// Dials `addr` and waits until the connection to its peer is established.
pub async fn connect(swarm: &mut PeerSwarm, addr: &Multiaddr) -> PeerId {
    let target = relay_peer_id(addr);
    swarm.dial(addr.clone()).expect("dial");
    wait_for(swarm, "connection established", |event| match event {
        SwarmEvent::ConnectionEstablished { peer_id, .. } if *peer_id == target => Some(*peer_id),
        SwarmEvent::OutgoingConnectionError {
            peer_id: Some(peer_id),
            error,
            ..
        } if *peer_id == target => {
            panic!("dial {target} failed: {error}")
        }
        _ => None,
    })
    .await
}

/// The protocol of [`serve_echo`].
pub const ECHO: StreamProtocol = StreamProtocol::new("/test/echo/1.0.0");

/// Makes `swarm` answer every `ECHO` stream with the bytes it carried.
pub fn serve_echo(swarm: &PeerSwarm) {
    let mut incoming = swarm
        .behaviour()
        .stream
        .new_control()
        .accept(ECHO)
        .expect("accept echo");
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            let mut buffer = Vec::new();
            if stream.read_to_end(&mut buffer).await.is_ok() {
                let _ = stream.write_all(&buffer).await;
                let _ = stream.close().await;
            }
        }
    });
}

/// Sends `payload` over an `ECHO` stream to `target` and returns what came
/// back, or the error that ended it.
pub async fn echo(
    swarm: &mut PeerSwarm,
    target: PeerId,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let mut control = swarm.behaviour().stream.new_control();
    drive(swarm, async {
        let mut stream = control
            .open_stream(target, ECHO)
            .await
            .map_err(|error| error.to_string())?;
        stream.write_all(payload).await.map_err(|e| e.to_string())?;
        stream.close().await.map_err(|e| e.to_string())?;
        let mut echoed = Vec::new();
        stream
            .read_to_end(&mut echoed)
            .await
            .map_err(|e| e.to_string())?;
        Ok(echoed)
    })
    .await
}

/// The protocol of [`serve_count`].
pub const COUNT: StreamProtocol = StreamProtocol::new("/test/count/1.0.0");

/// How one `COUNT` stream ended: the bytes it carried in, and whether it
/// ended cleanly (`Ok`) or was cut (`Err`, with the error).
pub type Counted = (u64, Result<(), String>);

/// Makes `swarm` read every `COUNT` stream to its end, discarding the
/// bytes; reports, per stream, how many arrived and how it ended.
pub fn serve_count(swarm: &PeerSwarm) -> futures::channel::mpsc::UnboundedReceiver<Counted> {
    let mut incoming = swarm
        .behaviour()
        .stream
        .new_control()
        .accept(COUNT)
        .expect("accept count");
    let (report, reports) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            let report = report.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut total = 0u64;
                let end = loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) => break Ok(()),
                        Ok(read) => total += read as u64,
                        Err(error) => break Err(error.to_string()),
                    }
                };
                let _ = report.unbounded_send((total, end));
            });
        }
    });
    reports
}

/// Opens a `COUNT` stream to `target` and writes `total` bytes to it in
/// `chunk`-byte writes, then closes it; the error that cut it, if any.
pub async fn send_count(
    swarm: &mut PeerSwarm,
    target: PeerId,
    total: usize,
    chunk: usize,
) -> Result<(), String> {
    let mut control = swarm.behaviour().stream.new_control();
    drive(swarm, async {
        let mut stream = control
            .open_stream(target, COUNT)
            .await
            .map_err(|error| error.to_string())?;
        let bytes = vec![0x5a; chunk];
        let mut sent = 0;
        while sent < total {
            let now = chunk.min(total - sent);
            stream
                .write_all(&bytes[..now])
                .await
                .map_err(|error| format!("after {sent} bytes: {error}"))?;
            sent += now;
        }
        stream
            .close()
            .await
            .map_err(|error| format!("closing after {sent} bytes: {error}"))
    })
    .await
}

/// A STUN binding request as a WebRTC-direct dialer sends it: username
/// `ufrag:ufrag`, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY keyed with
/// the ufrag.
pub fn binding_request(ufrag: &str, transaction: [u8; 12]) -> Vec<u8> {
    signed_binding_request(ufrag, transaction, false)
}

/// [`binding_request`], with USE-CANDIDATE when `nominate` (what
/// Chromium puts on its checks of the connection it selected, once that
/// connection is writable; not on its first checks).
pub fn signed_binding_request(ufrag: &str, transaction: [u8; 12], nominate: bool) -> Vec<u8> {
    let username = format!("{ufrag}:{ufrag}");
    let mut attributes = Vec::new();
    attributes.extend(0x0006u16.to_be_bytes());
    attributes.extend((username.len() as u16).to_be_bytes());
    attributes.extend(username.as_bytes());
    while attributes.len() % 4 != 0 {
        attributes.push(0);
    }
    // PRIORITY, which ICE requires in a binding request.
    attributes.extend(0x0024u16.to_be_bytes());
    attributes.extend(4u16.to_be_bytes());
    attributes.extend(0x6e00_1effu32.to_be_bytes());
    // ICE-CONTROLLING, as a browser dialing an ICE-lite server sends.
    attributes.extend(0x802Au16.to_be_bytes());
    attributes.extend(8u16.to_be_bytes());
    attributes.extend(transaction[..8].iter());
    if nominate {
        attributes.extend(0x0025u16.to_be_bytes());
        attributes.extend(0u16.to_be_bytes());
    }
    let mut message = Vec::new();
    message.extend(0x0001u16.to_be_bytes());
    // The length counts MESSAGE-INTEGRITY (4 + 20 bytes) already, as its
    // HMAC requires.
    message.extend(((attributes.len() + 24) as u16).to_be_bytes());
    message.extend(0x2112_A442u32.to_be_bytes());
    message.extend(transaction);
    message.extend(&attributes);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, ufrag.as_bytes());
    let tag = ring::hmac::sign(&key, &message);
    message.extend(0x0008u16.to_be_bytes());
    message.extend(20u16.to_be_bytes());
    message.extend(tag.as_ref());
    message
}
