//! Relays federate: three relay processes on loopback, B federated with A
//! and C only. A and C find each other through the federation's DHT; a
//! peer on A and a peer on C see each other's records and chat both ways;
//! B is killed (SIGKILL) and A and C stay federated, and dial B again when
//! it is back; a relay that is not in the federation file cannot join; a
//! private relay still gossips with its federation, and answers lookups
//! (the locate protocol) of its listed peers only.
//!
//! The relays are the real binary; the peers are native libp2p test
//! clients (`common::peer`) over TCP.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use chat_protocol::{PeerRecord, topics};
use common::{PeerBehaviourEvent, TIMEOUT, connect, join_topic};
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId,
    gossipsub::{self, IdentTopic},
    identity::Keypair,
    swarm::SwarmEvent,
};
use relay::{addresses::transport_of, state::seeded_keypair};
use tokio::sync::mpsc;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// A relay binary running on loopback with every port chosen by the OS.
struct RelayProcess {
    name: &'static str,
    child: Child,
    peer_id: PeerId,
    tcp: Multiaddr,
    websocket: Multiaddr,
    http: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RelayProcess {
    /// Starts relay `name` with identity `seed`, the federation file
    /// `members`, and `extra` flags; returns once it has printed its
    /// addresses.
    fn start(name: &'static str, seed: u8, members: &Path, extra: &[String]) -> Self {
        Self::start_on(name, seed, 0, members, extra)
    }

    /// As [`Self::start`], with its TCP listener on `port`.
    fn start_on(name: &'static str, seed: u8, port: u16, members: &Path, extra: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let page = dir.path().join("page");
        std::fs::create_dir(&page).expect("page dir");
        std::fs::write(
            page.join("index.html"),
            "<!doctype html><title>chat</title>",
        )
        .expect("index.html");
        let log = dir.path().join("relay.log");
        let mut child = Command::new(RELAY)
            .env_clear()
            .env("RUST_LOG", "info,relay::federation=debug")
            .args([
                "--listen-ip=127.0.0.1",
                "--quic-port=0",
                "--websocket-port=0",
                "--webrtc-port=0",
                "--stun-port=0",
                "--http-port=0",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--secret-key-seed={seed}"))
            .arg(format!(
                "--state-dir={}",
                dir.path().join("state").display()
            ))
            .arg(format!("--page-dir={}", page.display()))
            .arg(format!("--federation-peers={}", members.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("relay starts");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        for line in stdout.lines() {
            let line = line.expect("utf-8 output");
            let done = line.starts_with("Page: ");
            lines.push(line);
            if done {
                break;
            }
        }
        let text = lines.join("\n");
        let find = |transport: &str| {
            lines
                .iter()
                .filter_map(|line| line.parse::<Multiaddr>().ok())
                .find(|addr| transport_of(addr) == transport)
                .unwrap_or_else(|| {
                    panic!(
                        "relay {name} printed no {transport} address:\n{text}\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )
                })
        };
        let (tcp, websocket) = (find("tcp"), find("websocket"));
        let http = lines
            .iter()
            .find_map(|line| line.strip_prefix("Page: "))
            .expect("page URL")
            .trim_end_matches('/')
            .to_owned();
        Self {
            name,
            child,
            peer_id: seeded_keypair(seed).public().to_peer_id(),
            tcp,
            websocket,
            http,
            log,
            _dir: dir,
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The value of the metric line that starts with `series` (name and
    /// labels, exactly as the relay writes them); 0 if absent.
    async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.http))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |value| value.parse().expect("a number"))
    }

    /// Waits until `series` satisfies `check`; fails with the relay's log.
    async fn wait_for_metric(&self, series: &str, what: &str, check: impl Fn(f64) -> bool) -> f64 {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let value = self.metric(series).await;
            if check(value) {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "relay {}: expected {what}, but {series} is {value} after {TIMEOUT:?}; its log ends:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        // std's kill is SIGKILL: the relay gets no chance to say goodbye.
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONNECTED: &str = "relay_federation_members{state=\"connected\"}";
const KNOWN: &str = "relay_federation_members{state=\"known\"}";
const CHAT_ACCEPTED: &str = "relay_gossip_messages_total{topic=\"chat\",verdict=\"accepted\"}";
const DISCOVERY_REJECTED: &str =
    "relay_gossip_messages_total{topic=\"discovery\",verdict=\"rejected\"}";
const NOT_MEMBER: &str = "relay_refusals_total{kind=\"federation-not-member\"}";

/// A federation file listing the relays of `seeds`.
fn members_file(dir: &Path, seeds: &[u8]) -> PathBuf {
    let path = dir.join("federation");
    let text: String = seeds
        .iter()
        .map(|seed| {
            format!(
                "{}  # relay {seed}\n",
                seeded_keypair(*seed).public().to_peer_id()
            )
        })
        .collect();
    std::fs::write(&path, text).expect("federation file");
    path
}

fn federate(relay: &RelayProcess) -> String {
    format!("--federate={}", relay.tcp)
}

/// A native peer connected to one relay, subscribed to both topics, run in
/// a task: it publishes what it is told and passes on what it receives.
struct TestPeer {
    id: PeerId,
    key: Keypair,
    /// `None` once it stopped publishing.
    publish: Option<mpsc::UnboundedSender<(&'static str, Vec<u8>)>>,
    received: mpsc::UnboundedReceiver<gossipsub::Message>,
    /// Chat messages published, sent once publishing has stopped.
    chats_published: Option<tokio::sync::oneshot::Receiver<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestPeer {
    async fn on(relay: &RelayProcess) -> Self {
        Self::with_key(relay, Keypair::generate_ed25519()).await
    }

    async fn with_key(relay: &RelayProcess, key: Keypair) -> Self {
        let mut swarm = common::peer(key.clone());
        let relay_id = connect(&mut swarm, &relay.tcp).await;
        join_topic(&mut swarm, topics::DISCOVERY, relay_id).await;
        join_topic(&mut swarm, topics::CHAT, relay_id).await;
        let (publish, mut to_publish) = mpsc::unbounded_channel::<(&'static str, Vec<u8>)>();
        let (deliver, received) = mpsc::unbounded_channel();
        let (report, chats_published) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut chats = 0u64;
            let mut report = Some(report);
            loop {
                tokio::select! {
                    command = to_publish.recv(), if report.is_some() => {
                        let Some((topic, data)) = command else {
                            // Every queued command is done: report, and go
                            // on carrying what is in flight.
                            if let Some(report) = report.take() {
                                let _ = report.send(chats);
                            }
                            continue;
                        };
                        let result = swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(topic), data);
                        match result {
                            Ok(_) if topic == topics::CHAT => chats += 1,
                            Ok(_) => {}
                            Err(error) => tracing::debug!(%error, "publish failed"),
                        }
                    }
                    event = swarm.select_next_some() => {
                        if let SwarmEvent::Behaviour(PeerBehaviourEvent::Gossipsub(
                            gossipsub::Event::Message { message, .. },
                        )) = event
                        {
                            let _ = deliver.send(message);
                        }
                    }
                }
            }
        });
        Self {
            id: key.public().to_peer_id(),
            key,
            publish: Some(publish),
            received,
            chats_published: Some(chats_published),
            task,
        }
    }

    /// Its discovery record: a circuit through `relay`'s WebSocket address.
    fn record(&self, relay: &RelayProcess) -> Vec<u8> {
        let circuit = format!("{}/p2p-circuit/webrtc/p2p/{}", relay.websocket, self.id);
        PeerRecord::new(self.key.public(), vec![circuit.parse().expect("circuit")])
            .expect("valid record")
            .encode()
    }

    fn send(&self, topic: &'static str, data: Vec<u8>) {
        self.publish
            .as_ref()
            .expect("still publishing")
            .send((topic, data))
            .expect("peer runs");
    }

    /// Stops publishing (the peer stays connected) and returns how many
    /// chat messages it published.
    async fn stop_publishing(&mut self) -> u64 {
        self.publish = None;
        self.chats_published
            .take()
            .expect("stopped once")
            .await
            .expect("peer runs")
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Has `sender` publish `data` on `topic` every 300 ms (meshes form within
/// a few heartbeats) until `receiver` gets a message on it from `sender`;
/// returns that message and the others `receiver` got meanwhile.
async fn until_received(
    sender: &TestPeer,
    receiver: &mut TestPeer,
    topic: &'static str,
    data: &[u8],
    what: &str,
) -> (gossipsub::Message, Vec<gossipsub::Message>) {
    let mut others = Vec::new();
    let hash = IdentTopic::new(topic).hash();
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    let deadline = tokio::time::sleep(TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => panic!("{what}: nothing from {} arrived within {TIMEOUT:?}", sender.id),
            _ = tick.tick() => {
                sender.send(topic, data.to_vec());
            }
            message = receiver.received.recv() => {
                let message = message.expect("peer runs");
                if message.source == Some(sender.id) && message.topic == hash {
                    return (message, others);
                }
                others.push(message);
            }
        }
    }
}

/// `receiver` gets `sender`'s discovery record, signed by `sender`, with
/// its circuit through `relay`.
async fn sees_record(sender: &TestPeer, receiver: &mut TestPeer, relay: &RelayProcess, what: &str) {
    let (message, _) = until_received(
        sender,
        receiver,
        topics::DISCOVERY,
        &sender.record(relay),
        what,
    )
    .await;
    let record =
        PeerRecord::decode_signed(&message.data, message.source.as_ref()).expect("a valid record");
    assert_eq!(record.peer_id(), sender.id, "{what}: the record's peer");
    assert!(
        record.addrs()[0]
            .to_string()
            .contains(&relay.peer_id.to_string()),
        "{what}: the circuit goes through {}: {:?}",
        relay.name,
        record.addrs()
    );
}

/// `sender`'s chat `text` reaches `receiver`, as sent.
async fn chats(sender: &TestPeer, receiver: &mut TestPeer, text: &str) {
    let (message, _) = until_received(sender, receiver, topics::CHAT, text.as_bytes(), text).await;
    assert_eq!(message.data, text.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relays_find_each_other_carry_records_and_chat_and_survive_one_killed() {
    common::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let members = members_file(dir.path(), &[1, 2, 3]);
    let mut b = RelayProcess::start("B", 2, &members, &[]);
    let a = RelayProcess::start("A", 1, &members, &[federate(&b)]);
    a.wait_for_metric(CONNECTED, "A linked to B", |n| n >= 1.0)
        .await;
    let started = std::time::Instant::now();
    let c = RelayProcess::start("C", 3, &members, &[federate(&b)]);

    // A and C were told only of B: they find each other through the DHT.
    a.wait_for_metric(CONNECTED, "A linked to B and C", |n| n == 2.0)
        .await;
    c.wait_for_metric(CONNECTED, "C linked to B and A", |n| n == 2.0)
        .await;
    b.wait_for_metric(CONNECTED, "B linked to A and C", |n| n == 2.0)
        .await;
    eprintln!(
        "measured: C started and linked to B and A (found through B) in {:?}",
        started.elapsed()
    );

    // A peer on A and a peer on C see each other's records and chat.
    let mut on_a = TestPeer::on(&a).await;
    let mut on_c = TestPeer::on(&c).await;
    let started = std::time::Instant::now();
    sees_record(&on_a, &mut on_c, &a, "A's peer's record at C's peer").await;
    eprintln!(
        "measured: first record from a peer on A at a peer on C in {:?} (republished every 300 ms)",
        started.elapsed()
    );
    sees_record(&on_c, &mut on_a, &c, "C's peer's record at A's peer").await;
    chats(&on_a, &mut on_c, "hello from A").await;
    chats(&on_c, &mut on_a, "hello from C").await;
    assert!(
        a.metric("relay_federation_messages_total{direction=\"from_relays\",topic=\"chat\"}")
            .await
            >= 1.0,
        "A counts the chat that came from C"
    );
    // A handed its own peer's chat to both other relays.
    assert!(
        a.metric("relay_federation_messages_total{direction=\"to_relays\",topic=\"chat\"}")
            .await
            >= 2.0,
        "A counts its peer's chat handed to B and C"
    );

    // A's peer is done; what it published reaches C over two paths
    // (straight from A, and through B) while B lives.
    let from_a = on_a.stop_publishing().await;
    c.wait_for_metric(CHAT_ACCEPTED, "A's peer's chat accepted at C", |n| {
        n >= from_a as f64
    })
    .await;

    // B dies without a word; A and C keep their own link.
    b.kill();
    let killed = std::time::Instant::now();
    a.wait_for_metric(CONNECTED, "A linked to C only", |n| n == 1.0)
        .await;
    eprintln!(
        "measured: A saw B gone {:?} after SIGKILL",
        killed.elapsed()
    );
    c.wait_for_metric(CONNECTED, "C linked to A only", |n| n == 1.0)
        .await;
    let mut newcomer = TestPeer::on(&a).await;
    sees_record(&newcomer, &mut on_c, &a, "a new peer's record at C, B dead").await;
    sees_record(
        &on_c,
        &mut newcomer,
        &c,
        "C's peer's record at the new peer, B dead",
    )
    .await;
    chats(&newcomer, &mut on_c, "hello from A again").await;
    chats(&on_c, &mut newcomer, "hello from C again").await;

    // No copies: C validated exactly the messages that were published, the
    // ones B carried before it died included.
    let published = from_a + newcomer.stop_publishing().await + on_c.stop_publishing().await;
    let accepted = c
        .wait_for_metric(CHAT_ACCEPTED, "every chat message accepted at C", |n| {
            n >= published as f64
        })
        .await;
    assert_eq!(
        accepted, published as f64,
        "C accepted {accepted} chat messages; {published} were published (a copy was validated twice)"
    );

    // B comes back on its address: A and C dial it again by themselves
    // (B was told of nobody).
    let port = b.tcp.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    drop(b);
    let b = RelayProcess::start_on("B", 2, port.expect("a TCP port"), &members, &[]);
    let restarted = std::time::Instant::now();
    a.wait_for_metric(CONNECTED, "A linked to B again", |n| n == 2.0)
        .await;
    c.wait_for_metric(CONNECTED, "C linked to B again", |n| n == 2.0)
        .await;
    eprintln!(
        "measured: A and C linked to B again {:?} after it printed its addresses ({:?} after it was killed)",
        restarted.elapsed(),
        killed.elapsed()
    );
    b.wait_for_metric(CONNECTED, "B linked to A and C again", |n| n == 2.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_not_in_the_federation_file_cannot_join() {
    common::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let members = members_file(dir.path(), &[11, 12]);
    let a = RelayProcess::start("A", 11, &members, &[]);
    let b = RelayProcess::start("B", 12, &members, &[federate(&a)]);
    a.wait_for_metric(CONNECTED, "A linked to B", |n| n == 1.0)
        .await;

    // The stranger lists A, B and itself, and knows A's address.
    let stranger_dir = tempfile::tempdir().expect("temp dir");
    let its_list = members_file(stranger_dir.path(), &[11, 12, 13]);
    let stranger = RelayProcess::start("S", 13, &its_list, &[federate(&a)]);

    // A closes its connection each time it dials (with backoff: the first
    // retry comes a second later).
    a.wait_for_metric(NOT_MEMBER, "the stranger refused twice", |n| n >= 2.0)
        .await;
    // It learned nothing from A's DHT: B is still unknown to it.
    assert_eq!(
        stranger.metric(KNOWN).await,
        1.0,
        "the stranger knows only A, from --federate; its log ends:\n{}",
        stranger.log_tail()
    );
    assert_eq!(
        b.metric(NOT_MEMBER).await,
        0.0,
        "the stranger never found B"
    );

    // A record of a peer on the stranger (a circuit through it) is refused
    // by the federation's relays; the same peer's record through B (a
    // member) is not.
    let mut on_b = TestPeer::on(&b).await;
    let liar = TestPeer::on(&a).await;
    liar.send(topics::DISCOVERY, liar.record(&stranger));
    a.wait_for_metric(
        DISCOVERY_REJECTED,
        "the record through the stranger refused",
        |n| n >= 1.0,
    )
    .await;
    let honest = TestPeer::on(&a).await;
    let (message, others) = until_received(
        &honest,
        &mut on_b,
        topics::DISCOVERY,
        &honest.record(&b),
        "a record through member B, published on A",
    )
    .await;
    assert_eq!(message.source, Some(honest.id));
    let from_liar: Vec<_> = others
        .iter()
        .filter(|message| message.source == Some(liar.id))
        .collect();
    assert!(
        from_liar.is_empty(),
        "the record through the stranger reached B's peer: {from_liar:?}"
    );
    drop(stranger);

    // A stranger that asks A's DHT without saying it is a relay (a Kademlia
    // client, no identify) gets no answer either.
    let peers = ask_dht(&a).await;
    assert!(
        !peers.contains(&b.peer_id),
        "A's DHT told a stranger about B: {peers:?}"
    );
}

/// Asks `relay`'s federation DHT, as a Kademlia client that is not a
/// member, for the peers closest to a random key; returns what it learned.
async fn ask_dht(relay: &RelayProcess) -> Vec<PeerId> {
    use libp2p::kad;
    let key = Keypair::generate_ed25519();
    let local = key.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|_| {
            let mut dht = kad::Behaviour::with_config(
                local,
                kad::store::MemoryStore::new(local),
                kad::Config::new(relay::federation::DHT_PROTOCOL),
            );
            dht.set_mode(Some(kad::Mode::Client));
            dht
        })
        .expect("behaviour")
        .build();
    let addr = relay::federation::members::relay_addr(relay.tcp.clone()).expect("tcp address");
    swarm.behaviour_mut().add_address(&relay.peer_id, addr);
    swarm.behaviour_mut().get_closest_peers(PeerId::random());
    let result = tokio::time::timeout(TIMEOUT, async {
        loop {
            if let SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetClosestPeers(result),
                ..
            }) = swarm.select_next_some().await
            {
                return result;
            }
        }
    })
    .await
    .expect("the query ends");
    let peers = match result {
        Ok(kad::GetClosestPeersOk { peers, .. }) => peers,
        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
    };
    peers.into_iter().map(|info| info.peer_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_relay_gossips_with_the_relays_of_its_federation() {
    common::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let members = members_file(dir.path(), &[21, 22]);
    // A is private: its authorized peers file lists one page, not B.
    let listed = Keypair::generate_ed25519();
    let authorized = dir.path().join("authorized");
    std::fs::write(&authorized, format!("{}\n", listed.public().to_peer_id()))
        .expect("authorized peers");
    let a = RelayProcess::start(
        "A",
        21,
        &members,
        &[format!("--authorized-peers={}", authorized.display())],
    );
    let b = RelayProcess::start("B", 22, &members, &[federate(&a)]);
    a.wait_for_metric(CONNECTED, "A linked to B", |n| n == 1.0)
        .await;

    let mut on_a = TestPeer::with_key(&a, listed).await;
    let mut on_b = TestPeer::on(&b).await;
    chats(&on_a, &mut on_b, "from the private relay").await;
    chats(&on_b, &mut on_a, "to the private relay").await;
}

/// `relay`'s `/api/relay` federation list: each member's peer id and the
/// addresses (with their transports) a browser can dial it at.
async fn federation_list(relay: &RelayProcess) -> Vec<(String, Vec<(String, String)>)> {
    let info: serde_json::Value = reqwest::get(format!("{}/api/relay", relay.http))
        .await
        .expect("/api/relay")
        .json()
        .await
        .expect("/api/relay is JSON");
    let members = info["federation"].as_array().unwrap_or_else(|| {
        panic!(
            "relay {}: /api/relay has no federation list: {info}",
            relay.name
        )
    });
    members
        .iter()
        .map(|member| {
            let addrs = member["multiaddrs"]
                .as_array()
                .expect("a member's multiaddrs")
                .iter()
                .map(|entry| {
                    let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
                    (text("multiaddr"), text("transport"))
                })
                .collect();
            (
                member["peer_id"].as_str().unwrap_or_default().to_owned(),
                addrs,
            )
        })
        .collect()
}

/// Polls `relay`'s federation list until `check` passes; fails with the
/// list and the relay's log.
async fn wait_for_list(
    relay: &RelayProcess,
    what: &str,
    check: impl Fn(&[(String, Vec<(String, String)>)]) -> bool,
) -> Vec<(String, Vec<(String, String)>)> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let list = federation_list(relay).await;
        if check(&list) {
            return list;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "relay {}: expected {what} in /api/relay's federation list within {TIMEOUT:?}, got {list:?}; its log ends:\n{}",
                relay.name,
                relay.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_relay_lists_the_connected_members_at_the_addresses_a_browser_dials() {
    common::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let members = members_file(dir.path(), &[21, 22]);
    let mut b = RelayProcess::start("B", 22, &members, &[]);
    let a = RelayProcess::start("A", 21, &members, &[federate(&b)]);

    let list = wait_for_list(&a, "B", |list| {
        list.iter().any(|(peer, _)| *peer == b.peer_id.to_string())
    })
    .await;
    assert_eq!(list.len(), 1, "A lists B alone (not itself): {list:?}");
    let addrs = &list[0].1;
    assert!(
        addrs
            .iter()
            .any(|(addr, transport)| *addr == b.websocket.to_string() && transport == "websocket"),
        "B's WebSocket address {} is listed: {addrs:?}",
        b.websocket
    );
    assert!(
        addrs
            .iter()
            .any(|(addr, transport)| transport == "webrtc-direct" && addr.contains("/certhash/")),
        "B's WebRTC-direct address is listed with its certhash: {addrs:?}"
    );
    for (addr, transport) in addrs {
        assert!(
            matches!(
                transport.as_str(),
                "websocket" | "websocket-secure" | "webrtc-direct"
            ),
            "only addresses a browser dials are listed, not {transport} ({addr}): {addrs:?}"
        );
        assert!(
            addr.ends_with(&format!("/p2p/{}", b.peer_id)),
            "{addr} names its relay"
        );
    }

    // B dies: A no longer offers it to pages.
    b.kill();
    wait_for_list(&a, "no member once B is gone", |list| list.is_empty()).await;
}

/// Asks `relay` (connected) over the locate protocol where `peer` is
/// reserved, on a stream of its own; `Err` when the relay does not serve
/// the protocol to this peer.
async fn ask_locate(
    swarm: common::PeerSwarm,
    relay: PeerId,
    peer: PeerId,
) -> Result<chat_protocol::locate::LocateResponse, String> {
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut control = swarm.behaviour().stream.new_control();
    let driver = tokio::spawn(async move {
        let mut swarm = swarm;
        loop {
            swarm.select_next_some().await;
        }
    });
    let answer = tokio::time::timeout(TIMEOUT, async move {
        let mut stream = control
            .open_stream(relay, chat_protocol::locate::PROTOCOL)
            .await
            .map_err(|error| error.to_string())?;
        let request = chat_protocol::locate::LocateRequest { peer };
        stream.write_all(&request.encode()).await.expect("write");
        stream.close().await.expect("close");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.expect("read");
        Ok(chat_protocol::locate::decode_response(&bytes).expect("a valid answer"))
    })
    .await
    .expect("the relay answers or refuses within the timeout");
    driver.abort();
    answer
}

/// A private relay answers lookups of its listed peers only: a guest sees
/// the locate protocol as unsupported and learns nothing of who is
/// reserved where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_relay_answers_lookups_of_listed_peers_only() {
    common::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let members = members_file(dir.path(), &[23, 24]);
    let (reserved, asker) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let authorized = dir.path().join("authorized");
    std::fs::write(
        &authorized,
        format!(
            "{}\n{}\n",
            reserved.public().to_peer_id(),
            asker.public().to_peer_id()
        ),
    )
    .expect("authorized peers");
    let a = RelayProcess::start(
        "A-private-locate",
        23,
        &members,
        &[format!("--authorized-peers={}", authorized.display())],
    );
    let _b = RelayProcess::start("B-private-locate", 24, &members, &[federate(&a)]);
    a.wait_for_metric(CONNECTED, "A linked to B", |n| n == 1.0)
        .await;
    let mut on_a = common::peer(reserved.clone());
    connect(&mut on_a, &a.tcp).await;
    common::reserve(&mut on_a, &a.tcp).await;
    let target = reserved.public().to_peer_id();
    let keep_reserved = tokio::spawn(async move {
        loop {
            on_a.select_next_some().await;
        }
    });

    let mut listed = common::peer(asker);
    connect(&mut listed, &a.tcp).await;
    let answer = ask_locate(listed, a.peer_id, target).await;
    let Ok(Ok(located)) = answer else {
        panic!("a listed peer's lookup of a peer reserved on A: {answer:?}");
    };
    assert_eq!(located.relay, a.peer_id, "{located:?}");

    let mut guest = common::peer(Keypair::generate_ed25519());
    connect(&mut guest, &a.tcp).await;
    let answer = ask_locate(guest, a.peer_id, target).await;
    let Err(error) = answer else {
        panic!("a guest of the private relay was answered: {answer:?}");
    };
    assert!(error.contains("not support"), "{error}");
    keep_reserved.abort();
}
