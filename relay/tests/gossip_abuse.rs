//! What one peer cannot make the relay do with gossip, against the relay
//! with its defaults, on loopback: flood the others with chat, spread a
//! record that points browsers at a host and port, reach guests in private
//! mode, or have the relay dial a non-global address for AutoNAT.
//!
//! Every attack is bounded in count and time.

mod common;

use std::time::{Duration, Instant};

use chat_protocol::{MAX_CHAT_MESSAGE_BYTES, PeerRecord, topics};
use common::{PeerBehaviourEvent, PeerSwarm, TIMEOUT, TestRelay, connect, join_topic, spawn};
use futures::{FutureExt as _, StreamExt as _};
use libp2p::{
    Multiaddr, PeerId, autonat,
    gossipsub::{self, IdentTopic},
    identify,
    identity::Keypair,
    noise,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use tokio::sync::mpsc;

/// The relay's default chat budget per peer (`--chat-rate-per-peer`): a
/// bucket of 60 messages, refilled at 60 a minute.
const CHAT_PER_PEER_PER_MINUTE: f64 = 60.0;
/// The flood: this many 4 KiB messages, as fast as the flooder can sign
/// them (a debug build on a busy machine signs a few dozen a second), for
/// at most this long.
const FLOOD_MESSAGES: usize = 400;
const FLOOD_TIME: Duration = Duration::from_secs(40);

/// A peer connected to the relay over `transport` and subscribed to `topic`.
async fn subscribed_peer(relay: &TestRelay, transport: &str, topic: &str) -> PeerSwarm {
    let mut swarm = common::peer(Keypair::generate_ed25519());
    let relay_id = connect(&mut swarm, &relay.addr(transport)).await;
    join_topic(&mut swarm, topic, relay_id).await;
    swarm
}

/// Runs `swarm` in the background, passing on every gossip message it
/// receives with the time it arrived.
fn collect_messages(
    mut swarm: PeerSwarm,
) -> mpsc::UnboundedReceiver<(gossipsub::Message, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(PeerBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) = swarm.select_next_some().await
                && tx.send((message, Instant::now())).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Publishes each `(topic, data)` from `swarm` every 300 ms (gossip meshes
/// form within a few heartbeats) and keeps it polled, for at most
/// [`TIMEOUT`] or until the task is aborted.
fn publish_repeatedly(
    mut swarm: PeerSwarm,
    messages: Vec<(&'static str, Vec<u8>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        let deadline = tokio::time::sleep(TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tick.tick() => {
                    for (topic, data) in &messages {
                        let _ = swarm
                            .behaviour_mut()
                            .gossipsub
                            .publish(IdentTopic::new(*topic), data.clone());
                    }
                }
                _ = swarm.select_next_some() => {}
            }
        }
    })
}

/// Waits until `messages` holds one from `author`, and returns it with the
/// others received meanwhile.
async fn receive_from(
    messages: &mut mpsc::UnboundedReceiver<(gossipsub::Message, Instant)>,
    author: PeerId,
    what: &str,
) -> (gossipsub::Message, Instant, Vec<gossipsub::Message>) {
    let mut others = Vec::new();
    let result = tokio::time::timeout(TIMEOUT, async {
        loop {
            let (message, at) = messages.recv().await.expect("collector runs");
            if message.source == Some(author) {
                return (message, at);
            }
            others.push(message);
        }
    })
    .await;
    let (message, at) =
        result.unwrap_or_else(|_| panic!("{what} did not arrive within {TIMEOUT:?}"));
    (message, at, others)
}

/// The value of the metric line starting with `name{` and containing every
/// label in `labels`, from the relay's `/metrics`; 0 if absent.
async fn metric(relay: &TestRelay, name: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(relay.http_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A chat message of exactly the largest size, numbered.
fn big_chat(n: usize) -> Vec<u8> {
    let mut text = format!("flood {n:06} ").into_bytes();
    text.resize(MAX_CHAT_MESSAGE_BYTES, b'x');
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_flood_is_cut_to_the_budget_and_a_third_peers_chat_still_arrives() {
    let relay = TestRelay::start(&[]).await;
    let observer = subscribed_peer(&relay, "websocket", topics::CHAT).await;
    let mut messages = collect_messages(observer);
    let mut flooder = subscribed_peer(&relay, "tcp", topics::CHAT).await;
    let flooder_id = *flooder.local_peer_id();

    // A peer's chat before the flood: the reference.
    let early = subscribed_peer(&relay, "tcp", topics::CHAT).await;
    let early_id = *early.local_peer_id();
    let before = Instant::now();
    let publisher = publish_repeatedly(early, vec![(topics::CHAT, b"before the flood".to_vec())]);
    let (_, arrived, _) = receive_from(&mut messages, early_id, "chat before the flood").await;
    println!("a peer's chat before the flood: {:?}", arrived - before);
    publisher.abort();
    let third = subscribed_peer(&relay, "tcp", topics::CHAT).await;
    let third_id = *third.local_peer_id();

    // The flood: 4 KiB messages as fast as the flooder's swarm takes them.
    let topic = IdentTopic::new(topics::CHAT);
    let flood_start = Instant::now();
    let (flood_done_tx, flood_done) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut published = 0;
        while published < FLOOD_MESSAGES && flood_start.elapsed() < FLOOD_TIME {
            if flooder
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), big_chat(published))
                .is_ok()
            {
                published += 1;
            }
            // Let the swarm send what it queued, without waiting.
            while let Some(Some(_)) = flooder.next().now_or_never() {}
            tokio::task::yield_now().await;
        }
        let _ = flood_done_tx.send(published);
        loop {
            flooder.select_next_some().await;
        }
    });

    // Mid-flood, the third peer says something.
    let sent_at = Instant::now();
    let publisher = publish_repeatedly(third, vec![(topics::CHAT, b"during the flood".to_vec())]);
    let (message, arrived, during) = receive_from(
        &mut messages,
        third_id,
        "the third peer's chat during the flood",
    )
    .await;
    publisher.abort();
    assert_eq!(message.data, b"during the flood");
    println!(
        "third peer's chat during the flood: {:?} ({} flood messages arrived first)",
        arrived - sent_at,
        during.len()
    );

    let published = tokio::time::timeout(TIMEOUT, flood_done)
        .await
        .expect("the flood ends within its bounds")
        .expect("flooder ran");
    // Wait until the relay has taken in what the flooder sent: its count of
    // chat messages stops growing.
    let mut seen = -1.0;
    let settle_deadline = Instant::now() + TIMEOUT;
    loop {
        let now_seen = metric(&relay, "relay_gossip_messages_total", &["topic=\"chat\""]).await;
        if now_seen == seen || Instant::now() > settle_deadline {
            break;
        }
        seen = now_seen;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut forwarded = during
        .iter()
        .filter(|m| m.source == Some(flooder_id))
        .count();
    while let Ok((message, _)) = messages.try_recv() {
        if message.source == Some(flooder_id) {
            forwarded += 1;
        }
    }
    // Measured after the count: the budget covers every message counted.
    let elapsed = flood_start.elapsed();
    let budget = CHAT_PER_PEER_PER_MINUTE * (1.0 + elapsed.as_secs_f64() / 60.0);
    let over = metric(
        &relay,
        "relay_gossip_messages_total",
        &["topic=\"chat\"", "verdict=\"over_peer_budget\""],
    )
    .await;
    let refusals = metric(
        &relay,
        "relay_refusals_total",
        &["kind=\"gossip-over-budget\""],
    )
    .await;
    println!(
        "flood: {published} messages published in {:?}; the relay counted {seen} chat messages, {over} over budget; the observer got {forwarded} of the flooder's within {elapsed:?} (budget {budget:.0})",
        flood_start.elapsed()
    );
    assert!(
        published > 2 * budget as usize,
        "the flood ({published} messages) must exceed the budget ({budget:.0}) to prove anything"
    );
    assert!(
        (forwarded as f64) <= budget + 1.0,
        "the relay forwarded {forwarded} of the flooder's messages, over its budget of {budget:.0} in {elapsed:?}"
    );
    assert!(
        over >= 1.0 && refusals >= 1.0,
        "the flood does not show in /metrics (over budget: {over}, refusals: {refusals})"
    );
}

#[tokio::test]
async fn a_record_with_a_bare_address_is_refused_and_not_forwarded() {
    let relay = TestRelay::start(&[]).await;
    let receiver = subscribed_peer(&relay, "websocket", topics::DISCOVERY).await;
    let mut messages = collect_messages(receiver);
    // A listener the test owns: what a forged record would aim browsers at.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = target.local_addr().expect("address").port();

    let key = Keypair::generate_ed25519();
    let mut forger = common::peer(key.clone());
    let relay_id = connect(&mut forger, &relay.addr("tcp")).await;
    join_topic(&mut forger, topics::DISCOVERY, relay_id).await;
    let bare: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/ws")
        .parse()
        .expect("valid");
    let record = PeerRecord::new(key.public(), vec![bare]).expect("a well-formed record");
    forger
        .behaviour_mut()
        .gossipsub
        .publish(IdentTopic::new(topics::DISCOVERY), record.encode())
        .expect("published to the relay");
    spawn(forger);
    let deadline = Instant::now() + TIMEOUT;
    while metric(
        &relay,
        "relay_gossip_messages_total",
        &["topic=\"discovery\"", "verdict=\"rejected\""],
    )
    .await
        < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the relay did not reject the record with a bare address"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An honest record, a circuit through this relay, still passes.
    let honest_key = Keypair::generate_ed25519();
    let honest_id = honest_key.public().to_peer_id();
    let mut honest = common::peer(honest_key.clone());
    connect(&mut honest, &relay.addr("tcp")).await;
    join_topic(&mut honest, topics::DISCOVERY, relay_id).await;
    let circuit: Multiaddr = format!("{}/p2p-circuit/p2p/{honest_id}", relay.addr("websocket"))
        .parse()
        .expect("valid");
    let honest_record = PeerRecord::new(honest_key.public(), vec![circuit]).expect("valid");
    let publisher = publish_repeatedly(honest, vec![(topics::DISCOVERY, honest_record.encode())]);
    let (_, _, before) = receive_from(&mut messages, honest_id, "the honest record").await;
    publisher.abort();
    let forged: Vec<_> = before
        .iter()
        .filter(|m| m.source == Some(key.public().to_peer_id()))
        .collect();
    assert!(
        forged.is_empty(),
        "the relay forwarded the record with a bare address: {forged:?}"
    );
    assert!(
        target.accept().now_or_never().is_none(),
        "somebody connected to the address in the forged record"
    );
}

#[tokio::test]
async fn a_guest_in_private_mode_receives_no_record_and_no_chat() {
    let (member_a, member_b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("authorized-peers");
    std::fs::write(
        &file,
        format!(
            "{}  # a\n{}  # b\n",
            member_a.public().to_peer_id(),
            member_b.public().to_peer_id()
        ),
    )
    .expect("file written");
    let flag = format!("--authorized-peers={}", file.display());
    let relay = TestRelay::start(&[&flag]).await;

    // The guest subscribes to both topics (it is never told the relay's).
    let mut guest = common::peer(Keypair::generate_ed25519());
    let relay_id = connect(&mut guest, &relay.addr("tcp")).await;
    for topic in topics::ALL {
        guest
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(topic))
            .expect("subscribed");
    }
    // It tries to speak all along, and keeps what reaches it.
    let guest_published = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (guest_tx, mut guest_messages) = mpsc::unbounded_channel();
    let guest_task = {
        let published = guest_published.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(300));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if guest
                            .behaviour_mut()
                            .gossipsub
                            .publish(IdentTopic::new(topics::CHAT), b"a guest speaks".to_vec())
                            .is_ok()
                        {
                            published.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    event = guest.select_next_some() => {
                        if let SwarmEvent::Behaviour(PeerBehaviourEvent::Gossipsub(
                            gossipsub::Event::Message { message, .. },
                        )) = event
                        {
                            let _ = guest_tx.send(message);
                        }
                    }
                }
            }
        })
    };

    let mut b = common::peer(member_b);
    connect(&mut b, &relay.addr("websocket")).await;
    for topic in topics::ALL {
        join_topic(&mut b, topic, relay_id).await;
    }
    let mut b_messages = collect_messages(b);
    let a_id = member_a.public().to_peer_id();
    let mut a = common::peer(member_a.clone());
    connect(&mut a, &relay.addr("tcp")).await;
    for topic in topics::ALL {
        join_topic(&mut a, topic, relay_id).await;
    }
    // A member's record and chat reach the other member...
    let circuit: Multiaddr = format!("{}/p2p-circuit/p2p/{a_id}", relay.addr("websocket"))
        .parse()
        .expect("valid");
    let record = PeerRecord::new(member_a.public(), vec![circuit]).expect("valid");
    let publisher = publish_repeatedly(
        a,
        vec![
            (topics::DISCOVERY, record.encode()),
            (topics::CHAT, b"members only".to_vec()),
        ],
    );
    let mut topics_seen = std::collections::HashSet::new();
    let mut from_guest = Vec::new();
    while topics_seen.len() < 2 {
        let (message, _, others) =
            receive_from(&mut b_messages, a_id, "a member's record and chat").await;
        topics_seen.insert(message.topic);
        from_guest.extend(others);
    }
    publisher.abort();

    // ...and nothing reaches the guest, nor does it reach anyone.
    guest_task.abort();
    let mut to_guest = Vec::new();
    while let Ok(message) = guest_messages.try_recv() {
        to_guest.push(message);
    }
    assert!(
        to_guest.is_empty(),
        "the guest received gossip: {to_guest:?}"
    );
    while let Ok((message, _)) = b_messages.try_recv() {
        if message.source != Some(a_id) {
            from_guest.push(message);
        }
    }
    let published = guest_published.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        published == 0 && from_guest.is_empty(),
        "the guest could publish ({published} messages accepted; delivered: {from_guest:?})"
    );
}

#[derive(NetworkBehaviour)]
struct AutonatClient {
    identify: identify::Behaviour,
    autonat: autonat::v2::client::Behaviour,
}

/// A peer listening on 127.0.0.1 that asks the relay to dial it back there,
/// and what came of it: the AutoNAT result, and whether the relay's dial
/// reached its listener.
async fn ask_for_dial_back(relay: &TestRelay) -> (Result<(), String>, bool) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|key| AutonatClient {
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/id/1.0.0".to_owned(),
                key.public(),
            )),
            autonat: autonat::v2::client::Behaviour::new(
                rand::make_rng::<rand::rngs::StdRng>(),
                autonat::v2::client::Config::default()
                    .with_probe_interval(Duration::from_millis(200)),
            ),
        })
        .expect("behaviour")
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("valid"))
        .expect("listen");
    // The relay must see the listening port (port reuse): wait for it.
    tokio::time::timeout(TIMEOUT, async {
        loop {
            if let SwarmEvent::NewListenAddr { .. } = swarm.select_next_some().await {
                return;
            }
        }
    })
    .await
    .expect("listening");
    let relay_addr = relay.addr("tcp");
    let relay_id = common::relay_peer_id(&relay_addr);
    swarm.dial(relay_addr).expect("dial");
    let mut dialed_back = false;
    let result = tokio::time::timeout(TIMEOUT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::IncomingConnection { .. } => dialed_back = true,
                SwarmEvent::Behaviour(AutonatClientEvent::Autonat(
                    autonat::v2::client::Event {
                        server,
                        result,
                        tested_addr,
                        ..
                    },
                )) if server == relay_id => {
                    println!("AutoNAT tested {tested_addr}: {result:?}");
                    return result.map_err(|error| error.to_string());
                }
                _ => {}
            }
        }
    })
    .await
    .expect("an AutoNAT result within the timeout");
    (result, dialed_back)
}

#[tokio::test]
async fn autonat_does_not_dial_back_a_non_global_address() {
    let relay = TestRelay::start(&[]).await;
    let (result, dialed_back) = ask_for_dial_back(&relay).await;
    assert!(
        result.is_err() && !dialed_back,
        "the relay dialed back a loopback address: result {result:?}, connection seen: {dialed_back}"
    );
    let refusals = metric(
        &relay,
        "relay_refusals_total",
        &["kind=\"dial-not-global\""],
    )
    .await;
    assert!(refusals >= 1.0, "the refusal is not counted in /metrics");

    // The same request succeeds where the rule is lifted: the test would
    // see a dial-back if there were one.
    let lifted = TestRelay::start(&["--dial-back-non-global"]).await;
    let (result, dialed_back) = ask_for_dial_back(&lifted).await;
    assert!(
        result.is_ok() && dialed_back,
        "with --dial-back-non-global the dial-back should succeed: {result:?}, connection seen: {dialed_back}"
    );
}
