//! gossipsub-lite against rust-libp2p's gossipsub configured like the
//! relay (relay/src/gossip.rs: strict signing, application validation,
//! 64 KiB frames, a 1 s heartbeat and the same peer scoring), over
//! libp2p's memory transport; and two lite peers through the hand-off from
//! one connection to another.
#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;

use futures::StreamExt as _;
use gossipsub_lite::{Acceptance, Topic};
use libp2p::{
    Multiaddr, PeerId, Swarm, Transport as _,
    core::{transport::MemoryTransport, upgrade::Version},
    gossipsub::{
        self, IdentTopic, MessageAcceptance, MessageAuthenticity, PeerScoreParams,
        PeerScoreThresholds, TopicScoreParams, ValidationMode,
    },
    identity::Keypair,
    multiaddr::Protocol,
    noise,
    swarm::{
        ConnectionId, NetworkBehaviour, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
    yamux,
};

const TOPIC: &str = "test-chat";
/// A bound on each step; in memory a step takes a heartbeat or two.
const STEP: Duration = Duration::from_secs(10);

fn swarm<B: NetworkBehaviour + Send>(behaviour: impl FnOnce(&Keypair) -> B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise config"))
                .multiplex(yamux::Config::default())
        })
        .expect("transport")
        .with_behaviour(|key| behaviour(key))
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

fn lite() -> Swarm<gossipsub_lite::Behaviour> {
    let mut swarm =
        swarm(|key| gossipsub_lite::Behaviour::new(key.clone(), gossipsub_lite::Config::default()));
    swarm.behaviour_mut().subscribe(&Topic::new(TOPIC));
    swarm
}

/// The relay's gossipsub (relay/src/gossip.rs), reproduced: its builder
/// lives in the relay binary's crate.
fn relay_like() -> Swarm<gossipsub::Behaviour> {
    relay_like_with(|_| {})
}

/// [`relay_like`], with `adjust` applied to its configuration.
fn relay_like_with(
    adjust: impl FnOnce(&mut gossipsub::ConfigBuilder),
) -> Swarm<gossipsub::Behaviour> {
    let mut swarm = swarm(|key| {
        let mut builder = gossipsub::ConfigBuilder::default();
        builder
            .validation_mode(ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(64 * 1024)
            .mesh_n_high(12)
            .heartbeat_interval(Duration::from_secs(1));
        adjust(&mut builder);
        let config = builder.build().expect("config");
        let mut behaviour =
            gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
                .expect("behaviour");
        let topic = TopicScoreParams {
            topic_weight: 1.0,
            time_in_mesh_weight: 0.0,
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            first_message_deliveries_weight: 1.0,
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.99,
            ..TopicScoreParams::default()
        };
        let params = PeerScoreParams {
            topics: [(IdentTopic::new(TOPIC).hash(), topic)]
                .into_iter()
                .collect(),
            ip_colocation_factor_weight: 0.0,
            ..PeerScoreParams::default()
        };
        let thresholds = PeerScoreThresholds {
            gossip_threshold: -10.0,
            publish_threshold: -50.0,
            graylist_threshold: -80.0,
            ..PeerScoreThresholds::default()
        };
        behaviour
            .with_peer_score(params, thresholds)
            .expect("scoring");
        behaviour
    });
    swarm
        .behaviour_mut()
        .subscribe(&IdentTopic::new(TOPIC))
        .expect("subscribe");
    swarm
}

fn memory_addr() -> Multiaddr {
    Protocol::Memory(rand_port()).into()
}

fn rand_port() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) | 1
}

/// A lite peer and a relay-like rust-libp2p peer, connected, both
/// accepting every message and recording what they got.
struct Pair {
    lite: Swarm<gossipsub_lite::Behaviour>,
    rust: Swarm<gossipsub::Behaviour>,
    lite_got: Vec<gossipsub_lite::Message>,
    rust_got: Vec<gossipsub::Message>,
}

impl Pair {
    async fn connected() -> Self {
        let mut pair = Self {
            lite: lite(),
            rust: relay_like(),
            lite_got: Vec::new(),
            rust_got: Vec::new(),
        };
        let addr = memory_addr();
        pair.rust.listen_on(addr.clone()).expect("listen");
        let rust_peer = *pair.rust.local_peer_id();
        pair.lite
            .dial(DialOpts::peer_id(rust_peer).addresses(vec![addr]).build())
            .expect("dial");
        pair.until("connected", |pair| pair.lite.is_connected(&rust_peer))
            .await;
        pair
    }

    fn lite_peer(&self) -> PeerId {
        *self.lite.local_peer_id()
    }

    fn rust_peer(&self) -> PeerId {
        *self.rust.local_peer_id()
    }

    /// Runs both swarms until `done` holds (checked after every event).
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let run = async {
            while !done(self) {
                self.step().await;
            }
        };
        tokio::time::timeout(STEP, run)
            .await
            .unwrap_or_else(|_| panic!("timed out after {STEP:?} waiting until {what}"));
    }

    /// Runs both swarms for `time`, checking `always` after every event.
    async fn during(&mut self, time: Duration, what: &str, mut always: impl FnMut(&Self) -> bool) {
        let run = async {
            loop {
                assert!(always(self), "{what}");
                self.step().await;
            }
        };
        let _ = tokio::time::timeout(time, run).await;
        assert!(always(self), "{what}");
    }

    /// One event of either swarm, or a tick: a heartbeat changes state
    /// without an event.
    async fn step(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            event = self.lite.select_next_some() => {
                if let SwarmEvent::Behaviour(gossipsub_lite::Event::Message {
                    propagation_source, message_id, message,
                }) = event {
                    self.lite.behaviour_mut().report_message_validation_result(
                        &message_id, &propagation_source, Acceptance::Accept);
                    self.lite_got.push(message);
                }
            }
            event = self.rust.select_next_some() => {
                if let SwarmEvent::Behaviour(gossipsub::Event::Message {
                    propagation_source, message_id, message,
                }) = event {
                    self.rust.behaviour_mut().report_message_validation_result(
                        &message_id, &propagation_source, MessageAcceptance::Accept);
                    self.rust_got.push(message);
                }
            }
        }
    }

    fn meshed_both_ways(&self) -> bool {
        let (lite, rust) = (self.lite_peer(), self.rust_peer());
        self.lite
            .behaviour()
            .mesh_peers(&Topic::new(TOPIC))
            .any(|peer| *peer == rust)
            && self
                .rust
                .behaviour()
                .mesh_peers(&IdentTopic::new(TOPIC).hash())
                .any(|peer| *peer == lite)
    }

    fn lite_score(&self) -> f64 {
        self.rust
            .behaviour()
            .peer_score(&self.lite_peer())
            .expect("the lite peer is scored")
    }
}

#[tokio::test]
async fn meshes_and_messages_both_ways_with_no_penalty() {
    let mut pair = Pair::connected().await;
    let (lite, rust) = (pair.lite_peer(), pair.rust_peer());
    pair.until("each knows the other subscribes", |pair| {
        pair.lite
            .behaviour()
            .subscribed_peers(&Topic::new(TOPIC))
            .any(|peer| *peer == rust)
            && pair
                .rust
                .behaviour()
                .all_peers()
                .any(|(peer, topics)| *peer == lite && !topics.is_empty())
    })
    .await;
    pair.until("the mesh forms both ways", Pair::meshed_both_ways)
        .await;

    // Lite to rust: signed by us, verified by rust-libp2p (strict).
    pair.lite
        .behaviour_mut()
        .publish(Topic::new(TOPIC), b"from lite".to_vec())
        .expect("publish");
    pair.until("rust-libp2p gets the lite peer's message", |pair| {
        !pair.rust_got.is_empty()
    })
    .await;
    assert_eq!(pair.rust_got[0].data, b"from lite");
    assert_eq!(pair.rust_got[0].source, Some(lite));

    // Rust to lite: signed by rust-libp2p, verified by us.
    pair.rust
        .behaviour_mut()
        .publish(IdentTopic::new(TOPIC), b"from rust".to_vec())
        .expect("publish");
    pair.until("the lite peer gets rust-libp2p's message", |pair| {
        !pair.lite_got.is_empty()
    })
    .await;
    assert_eq!(pair.lite_got[0].data, b"from rust");
    assert_eq!(pair.lite_got[0].source, rust);

    // A few heartbeats more: nothing we did or do costs score.
    pair.during(
        Duration::from_secs(3),
        "the lite peer's score stays >= 0",
        |pair| pair.lite_score() >= 0.0,
    )
    .await;
    assert!(pair.meshed_both_ways(), "the mesh holds");
}

#[tokio::test]
async fn prune_backoff_is_respected() {
    let mut pair = Pair::connected().await;
    let lite = pair.lite_peer();
    pair.until("the mesh forms both ways", Pair::meshed_both_ways)
        .await;
    // Each side put the other in its mesh on its subscription; their
    // GRAFTs may still be on the wire. A leave crossing our GRAFT would
    // make it one "during the backoff", as with any gossipsub: let them
    // land first.
    pair.during(
        Duration::from_secs(1),
        "the mesh holds while the GRAFTs land",
        Pair::meshed_both_ways,
    )
    .await;
    // Leaving sends PRUNE with rust-libp2p's unsubscribe backoff (10 s);
    // joining again right away gives the lite peer every reason to GRAFT
    // at its next heartbeat, but it must wait.
    let topic = IdentTopic::new(TOPIC);
    pair.rust.behaviour_mut().unsubscribe(&topic);
    pair.until("the lite peer leaves rust's mesh", |pair| {
        !pair
            .rust
            .behaviour()
            .mesh_peers(&topic.hash())
            .any(|peer| *peer == lite)
    })
    .await;
    pair.rust
        .behaviour_mut()
        .subscribe(&topic)
        .expect("subscribe");
    pair.during(
        Duration::from_secs(8),
        "no GRAFT during the backoff: the lite peer stays out of the mesh, unpenalised",
        |pair| {
            pair.lite_score() >= 0.0
                && !pair
                    .rust
                    .behaviour()
                    .mesh_peers(&topic.hash())
                    .any(|peer| *peer == lite)
        },
    )
    .await;
    // After it (10 s and a heartbeat of slack), the mesh forms again.
    pair.until(
        "the mesh forms again after the backoff",
        Pair::meshed_both_ways,
    )
    .await;
    pair.during(
        Duration::from_secs(2),
        "the lite peer's score stays >= 0",
        |pair| pair.lite_score() >= 0.0,
    )
    .await;
}

/// Two lite peers; the first connection carries the subscriptions, then a
/// second opens and the first closes (the relayed-to-direct hand-off). A
/// message published then must arrive at once: nothing but the publish
/// happens on the second connection.
#[tokio::test]
async fn publish_goes_out_at_once_on_the_remaining_connection() {
    let (mut a, mut b) = (lite(), lite());
    let addr = memory_addr();
    a.listen_on(addr.clone()).expect("listen");
    let a_peer = *a.local_peer_id();
    let b_peer = *b.local_peer_id();
    let dial = |b: &mut Swarm<gossipsub_lite::Behaviour>| {
        b.dial(
            DialOpts::peer_id(a_peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .build(),
        )
        .expect("dial");
    };
    async fn drive<T>(
        a: &mut Swarm<gossipsub_lite::Behaviour>,
        b: &mut Swarm<gossipsub_lite::Behaviour>,
        bound: Duration,
        what: &str,
        mut done: impl FnMut(
            &mut Swarm<gossipsub_lite::Behaviour>,
            SwarmEvent<gossipsub_lite::Event>,
        ) -> Option<T>,
    ) -> T {
        let run = async {
            loop {
                tokio::select! {
                    event = a.select_next_some() => {
                        if let Some(value) = done(a, event) {
                            return value;
                        }
                    }
                    _ = b.select_next_some() => {}
                }
            }
        };
        tokio::time::timeout(bound, run)
            .await
            .unwrap_or_else(|_| panic!("timed out after {bound:?} waiting until {what}"))
    }

    dial(&mut b);
    let first: ConnectionId =
        drive(
            &mut a,
            &mut b,
            STEP,
            "the first connection",
            |_, event| match event {
                SwarmEvent::ConnectionEstablished { connection_id, .. } => Some(connection_id),
                _ => None,
            },
        )
        .await;
    drive(
        &mut a,
        &mut b,
        STEP,
        "a learns that b subscribes",
        |a, _| {
            a.behaviour()
                .subscribed_peers(&Topic::new(TOPIC))
                .any(|peer| *peer == b_peer)
                .then_some(())
        },
    )
    .await;
    dial(&mut b);
    drive(&mut a, &mut b, STEP, "the second connection", |_, event| {
        matches!(event, SwarmEvent::ConnectionEstablished { .. }).then_some(())
    })
    .await;
    assert!(a.close_connection(first), "the first connection is open");
    drive(&mut a, &mut b, STEP, "the first connection closes", |_, event| {
        matches!(event, SwarmEvent::ConnectionClosed { connection_id, .. } if connection_id == first)
            .then_some(())
    })
    .await;

    a.behaviour_mut()
        .publish(Topic::new(TOPIC), b"over the second connection".to_vec())
        .expect("b is subscribed, over the connection left");
    // In memory it takes milliseconds; a message left waiting for an
    // unrelated event on the connection would never come here.
    let run = async {
        loop {
            tokio::select! {
                _ = a.select_next_some() => {}
                event = b.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub_lite::Event::Message { message, .. }) = event {
                        return message;
                    }
                }
            }
        }
    };
    let message = tokio::time::timeout(Duration::from_secs(1), run)
        .await
        .expect("the message arrives within 1 s");
    assert_eq!(message.data, b"over the second connection");
    assert_eq!(message.source, a_peer);
}

/// A lite peer whose heartbeat never comes within a test: whatever it
/// does, it does on the messages it gets.
fn lite_without_heartbeat() -> Swarm<gossipsub_lite::Behaviour> {
    let config = gossipsub_lite::Config {
        heartbeat_interval: Duration::from_secs(3600),
        ..gossipsub_lite::Config::default()
    };
    let mut swarm = swarm(|key| gossipsub_lite::Behaviour::new(key.clone(), config));
    swarm.behaviour_mut().subscribe(&Topic::new(TOPIC));
    swarm
}

/// Runs a lite peer for the rest of the test, accepting every message.
fn spawn_accepting(mut swarm: Swarm<gossipsub_lite::Behaviour>) {
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(gossipsub_lite::Event::Message {
                propagation_source,
                message_id,
                ..
            }) = swarm.select_next_some().await
            {
                swarm.behaviour_mut().report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    Acceptance::Accept,
                );
            }
        }
    });
}

/// The page's first chat message, lost (issue 15's time-to-direct bench):
/// the relay's mesh already holds D_lo pages (pages closed over
/// WebRTC-direct linger there), so it does not graft a
/// newcomer on its subscription, and the newcomer used to GRAFT only at
/// its next heartbeat, up to a second later. Its discovery record went out
/// before that; the other page, listing it, sent its chat at once, and the
/// relay forwarded it to its mesh, without the newcomer. Only lazy gossip
/// was left, and the relay sends IHAVE only to peers outside its mesh: a
/// GRAFT landing before the relay's next heartbeat lost the message for
/// good. The newcomer now grafts on the relay's subscription, before it
/// publishes anything, so what answers its first message reaches it
/// through the mesh.
///
/// The relay's lazy gossip is off and the newcomer's heartbeat never comes
/// here, so the message can only come the eager way.
#[tokio::test]
async fn a_newcomer_is_in_the_relays_mesh_before_its_first_message_and_gets_the_answer() {
    let mut relay = relay_like_with(|config| {
        config.gossip_lazy(0).gossip_factor(0.0);
    });
    let addr = memory_addr();
    relay.listen_on(addr.clone()).expect("listen");
    let relay_peer = *relay.local_peer_id();
    let dial = |swarm: &mut Swarm<gossipsub_lite::Behaviour>| {
        swarm
            .dial(
                DialOpts::peer_id(relay_peer)
                    .addresses(vec![addr.clone()])
                    .build(),
            )
            .expect("dial");
    };
    let topic = IdentTopic::new(TOPIC);

    // The relay's mesh at D_lo (rust-libp2p's mesh_n_low, 5): four pages
    // that stay (at the relay, pages closed over WebRTC-direct linger in
    // the mesh), and the one that will answer the newcomer.
    for _ in 0..4 {
        let mut filler = lite();
        dial(&mut filler);
        spawn_accepting(filler);
    }
    let mut answering = lite();
    dial(&mut answering);
    let answering_peer = *answering.local_peer_id();
    let run = async {
        while relay.behaviour().mesh_peers(&topic.hash()).count() < 5
            || !relay
                .behaviour()
                .mesh_peers(&topic.hash())
                .any(|peer| *peer == answering_peer)
        {
            tokio::select! {
                _ = relay.select_next_some() => {}
                _ = answering.select_next_some() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    };
    tokio::time::timeout(STEP, run)
        .await
        .expect("five pages in the relay's mesh");

    let mut newcomer = lite_without_heartbeat();
    let newcomer_peer = *newcomer.local_peer_id();
    dial(&mut newcomer);
    let mut in_mesh_at_first_message = None;
    let run = async {
        loop {
            tokio::select! {
                event = relay.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub::Event::Message {
                        propagation_source, message_id, message,
                    }) = event {
                        if message.source == Some(newcomer_peer) {
                            in_mesh_at_first_message.get_or_insert(relay
                                .behaviour()
                                .mesh_peers(&topic.hash())
                                .any(|peer| *peer == newcomer_peer));
                        }
                        relay.behaviour_mut().report_message_validation_result(
                            &message_id, &propagation_source, MessageAcceptance::Accept);
                    }
                }
                event = answering.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub_lite::Event::Message {
                        propagation_source, message_id, message,
                    }) = event {
                        answering.behaviour_mut().report_message_validation_result(
                            &message_id, &propagation_source, Acceptance::Accept);
                        if message.source == newcomer_peer {
                            // Listed: the first chat message goes at once.
                            answering
                                .behaviour_mut()
                                .publish(Topic::new(TOPIC), b"first message".to_vec())
                                .expect("publish");
                        }
                    }
                }
                event = newcomer.select_next_some() => {
                    match event {
                        SwarmEvent::Behaviour(gossipsub_lite::Event::Subscribed { peer_id, .. })
                            if peer_id == relay_peer =>
                        {
                            // As a page announces its record once the relay
                            // is subscribed (and its reservation held).
                            newcomer
                                .behaviour_mut()
                                .publish(Topic::new(TOPIC), b"record".to_vec())
                                .expect("publish");
                        }
                        SwarmEvent::Behaviour(gossipsub_lite::Event::Message {
                            propagation_source, message_id, message,
                        }) => {
                            newcomer.behaviour_mut().report_message_validation_result(
                                &message_id, &propagation_source, Acceptance::Accept);
                            if message.data == b"first message" {
                                return message;
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    };
    let message = tokio::time::timeout(STEP, run).await.unwrap_or_else(|_| {
        panic!(
            "the newcomer never got the first message answering its own \
             (it was in the relay's mesh when its own reached the relay: {in_mesh_at_first_message:?})"
        )
    });
    assert_eq!(message.source, answering_peer);
    assert_eq!(
        in_mesh_at_first_message,
        Some(true),
        "the newcomer is in the relay's mesh by the time its first message reaches the relay"
    );
    let score = relay
        .behaviour()
        .peer_score(&newcomer_peer)
        .expect("the newcomer is scored");
    assert!(
        score >= 0.0,
        "the newcomer's score at the relay is {score}, below 0"
    );
}
