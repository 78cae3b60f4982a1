//! The relay's gossipsub: it is the hub every browser's own connection
//! reaches, so it subscribes to the chat network's topics and forwards only
//! what passes validation.
//!
//! A message the relay rejects is not forwarded and counts against the peer
//! that sent it (peer scoring: one invalid message puts it below the
//! graylist threshold for a while, repeated ones for longer).
//!
//! What else bounds gossip:
//! - [`budget`]: how many messages per topic the relay forwards for one peer
//!   and one address; the excess is dropped, not held;
//! - [`ProjectTopics`]: peers may subscribe to the network's topics only,
//!   so a peer cannot make the relay track topics nobody uses;
//! - a discovery record must list only circuits through this relay (the
//!   dial rule of [`chat_protocol::discovery`]), so what the relay forwards
//!   is what pages dial.

pub mod budget;

use std::{collections::HashSet, time::Duration};

use chat_protocol::{Inbound, InboundError, report::describe_error, topics};
use libp2p::{
    PeerId,
    gossipsub::{
        self, IdentTopic, IdentityTransform, MessageAcceptance, MessageAuthenticity,
        PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams, TopicSubscriptionFilter,
        ValidationMode,
    },
    identity::Keypair,
};
use prometheus_client::metrics::counter::Counter;

/// The relay's gossipsub, with its subscription filter.
pub type Gossipsub = gossipsub::Behaviour<IdentityTransform, ProjectTopics>;

/// Most topics one peer may be subscribed to at the relay: the network's.
pub const MAX_TOPICS_PER_PEER: usize = topics::ALL.len();

/// Largest gossipsub frame accepted from a peer. The application payloads
/// are far smaller (see `chat_protocol`); this leaves room for a batch of
/// them plus their signatures and control messages.
pub const MAX_TRANSMIT_SIZE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("invalid gossipsub configuration: {0}")]
pub struct GossipConfigError(String);

/// The gossipsub behaviour of the relay, subscribed to the network's topics.
///
/// `max_peers` bounds the mesh: the relay accepts every browser that grafts
/// it (up to its connection limit), so a message reaches every peer in one
/// hop rather than through lazy gossip a heartbeat later.
pub fn behaviour(
    keypair: &Keypair,
    max_peers: usize,
    topics_filter: ProjectTopics,
) -> Result<Gossipsub, GossipConfigError> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_TRANSMIT_SIZE)
        .mesh_n_high(max_peers.max(12))
        .heartbeat_interval(Duration::from_secs(1))
        .build()
        .map_err(|error| GossipConfigError(error.to_string()))?;
    let mut gossipsub = gossipsub::Behaviour::new_with_subscription_filter(
        MessageAuthenticity::Signed(keypair.clone()),
        config,
        topics_filter,
    )
    .map_err(|error| GossipConfigError(error.to_owned()))?;
    gossipsub
        .with_peer_score(score_params(), score_thresholds())
        .map_err(GossipConfigError)?;
    for topic in topics::ALL {
        gossipsub
            .subscribe(&IdentTopic::new(topic))
            .map_err(|error| GossipConfigError(error.to_string()))?;
    }
    Ok(gossipsub)
}

fn score_params() -> PeerScoreParams {
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        // Quiet peers are normal in a chat: do not punish peers for
        // delivering few messages or for time spent outside the mesh.
        time_in_mesh_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        first_message_deliveries_weight: 1.0,
        // Each invalid message costs 100 times its count squared, so one
        // puts the sender below the graylist threshold (-80): the relay
        // ignores it for about 11 s (the count decays by 1% a second), three
        // for about two minutes.
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.99,
        ..TopicScoreParams::default()
    };
    PeerScoreParams {
        topics: topics::ALL
            .into_iter()
            .map(|name| (IdentTopic::new(name).hash(), topic.clone()))
            .collect(),
        // Many honest users share one address behind a CGNAT; per-IP
        // connection limits bound what one address can do instead.
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    }
}

fn score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        ..PeerScoreThresholds::default()
    }
}

/// What the relay decides about a message, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject(String),
}

impl Verdict {
    pub fn acceptance(&self) -> MessageAcceptance {
        match self {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Reject(_) => MessageAcceptance::Reject,
        }
    }
}

/// Accepts subscriptions to the network's topics ([`topics::ALL`]) only,
/// and counts the others it refuses.
#[derive(Debug, Clone)]
pub struct ProjectTopics {
    allowed: HashSet<TopicHash>,
    refused: Counter,
}

impl ProjectTopics {
    /// `refused` counts the subscriptions refused.
    pub fn new(refused: Counter) -> Self {
        Self {
            allowed: topics::ALL.iter().map(|topic| hash(topic)).collect(),
            refused,
        }
    }
}

impl TopicSubscriptionFilter for ProjectTopics {
    /// Asked for this relay's own subscriptions and, through the default
    /// filters, for each topic a peer subscribes to; so a peer holds at
    /// most [`MAX_TOPICS_PER_PEER`] topics here.
    fn can_subscribe(&mut self, topic: &TopicHash) -> bool {
        let allowed = self.allowed.contains(topic);
        if !allowed {
            self.refused.inc();
        }
        allowed
    }
}

/// Validates one message received on `topic`. A discovery record must list
/// only circuits through the relays `trusted` says yes to (this relay and
/// the federation's members).
pub fn validate(message: &gossipsub::Message, trusted: impl Fn(&PeerId) -> bool) -> Verdict {
    let result = match Inbound::decode(message.topic.as_str(), message.source, &message.data) {
        Ok(Inbound::Record(record)) => record
            .check_circuits(trusted)
            .map_err(|error| error.to_string()),
        Ok(Inbound::Chat { .. }) => Ok(()),
        Err(InboundError::UnknownTopic(topic)) => {
            Err(format!("topic {topic} is not one the relay forwards"))
        }
        Err(error) => Err(describe_error(&error)),
    };
    match result {
        Ok(()) => Verdict::Accept,
        Err(reason) => Verdict::Reject(reason),
    }
}

/// A short label for metrics.
pub fn topic_label(topic: &TopicHash) -> &'static str {
    if *topic == hash(topics::DISCOVERY) {
        "discovery"
    } else if *topic == hash(topics::CHAT) {
        "chat"
    } else {
        "other"
    }
}

fn hash(topic: &str) -> TopicHash {
    IdentTopic::new(topic).hash()
}

#[cfg(test)]
mod tests {
    use chat_protocol::PeerRecord;

    use super::*;

    /// This relay's id in the tests.
    fn relay() -> PeerId {
        Keypair::ed25519_from_bytes([1; 32])
            .expect("valid secret")
            .public()
            .to_peer_id()
    }

    fn message(topic: &str, source: Option<PeerId>, data: Vec<u8>) -> gossipsub::Message {
        gossipsub::Message {
            source,
            data,
            sequence_number: Some(1),
            topic: hash(topic),
        }
    }

    #[test]
    fn record_signed_by_the_peer_it_describes_is_accepted() {
        let key = Keypair::generate_ed25519();
        let record = PeerRecord::new(key.public(), vec![]).expect("valid");
        let verdict = validate(
            &message(topics::DISCOVERY, Some(record.peer_id()), record.encode()),
            |p: &PeerId| *p == relay(),
        );
        assert_eq!(verdict, Verdict::Accept);
    }

    #[test]
    fn forged_garbage_and_oversized_records_are_rejected() {
        let key = Keypair::generate_ed25519();
        let record = PeerRecord::new(key.public(), vec![]).expect("valid");
        let forged = message(topics::DISCOVERY, Some(PeerId::random()), record.encode());
        let garbage = message(topics::DISCOVERY, Some(record.peer_id()), vec![0xff; 40]);
        let oversized = message(topics::DISCOVERY, Some(record.peer_id()), vec![0; 5000]);
        for message in [forged, garbage, oversized] {
            assert!(
                matches!(
                    validate(&message, |p: &PeerId| *p == relay()),
                    Verdict::Reject(_)
                ),
                "{message:?}"
            );
        }
    }

    #[test]
    fn chat_messages_are_checked_for_length_and_text() {
        let source = Some(PeerId::random());
        assert_eq!(
            validate(
                &message(topics::CHAT, source, b"hi".to_vec()),
                |_: &PeerId| false
            ),
            Verdict::Accept
        );
        assert!(matches!(
            validate(
                &message(topics::CHAT, source, vec![b'a'; 5000]),
                |_: &PeerId| false
            ),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            validate(&message(topics::CHAT, source, vec![0xff]), |_: &PeerId| {
                false
            }),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn records_must_list_circuits_through_this_relay_only() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let publish = |addr: &str| {
            let record = PeerRecord::new(key.public(), vec![addr.parse().expect("valid")])
                .expect("valid record");
            validate(
                &message(topics::DISCOVERY, Some(peer), record.encode()),
                |p: &PeerId| *p == relay(),
            )
        };
        let ours = format!(
            "/ip4/127.0.0.1/tcp/1/ws/p2p/{}/p2p-circuit/webrtc/p2p/{peer}",
            relay()
        );
        assert_eq!(publish(&ours), Verdict::Accept);
        let other = PeerId::random();
        for refused in [
            "/ip4/127.0.0.1/tcp/8080/ws".to_owned(),
            format!("/ip4/169.254.169.254/tcp/80/p2p/{peer}"),
            format!("/ip4/127.0.0.1/tcp/1/ws/p2p/{other}/p2p-circuit/p2p/{peer}"),
        ] {
            assert!(
                matches!(publish(&refused), Verdict::Reject(_)),
                "{refused} was accepted"
            );
        }
    }

    #[test]
    fn only_the_networks_topics_may_be_subscribed() {
        let refused = Counter::default();
        let mut filter = ProjectTopics::new(refused.clone());
        for topic in topics::ALL {
            assert!(filter.can_subscribe(&hash(topic)), "{topic}");
        }
        assert!(!filter.can_subscribe(&hash("spam-1")));
        assert!(!filter.can_subscribe(&hash("spam-2")));
        assert_eq!(refused.get(), 2);
    }

    #[test]
    fn behaviour_builds_with_scoring() {
        behaviour(
            &Keypair::generate_ed25519(),
            2048,
            ProjectTopics::new(Counter::default()),
        )
        .expect("valid configuration");
    }
}
