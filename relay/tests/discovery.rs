//! The relay forwards valid discovery records and chat messages between
//! peers, and drops forged, oversized and garbage ones.

mod common;

use std::time::Duration;

use chat_protocol::{PeerRecord, topics};
use common::{PeerBehaviourEvent, PeerSwarm, TestRelay, connect, join_topic, spawn};
use libp2p::{Multiaddr, PeerId, gossipsub, identity::Keypair, swarm::SwarmEvent};

/// A peer connected to the relay and subscribed to `topic`, with its key.
async fn subscribed_peer(relay: &TestRelay, transport: &str, topic: &str) -> (PeerSwarm, Keypair) {
    let keypair = Keypair::generate_ed25519();
    let mut swarm = common::peer(keypair.clone());
    let relay_id = connect(&mut swarm, &relay.addr(transport)).await;
    join_topic(&mut swarm, topic, relay_id).await;
    (swarm, keypair)
}

fn circuit_addr(relay: &TestRelay, peer: PeerId) -> Multiaddr {
    format!("{}/p2p-circuit/webrtc/p2p/{peer}", relay.addr("websocket"))
        .parse()
        .expect("valid")
}

/// Publishes `data` again every 300 ms (gossip meshes form within a few
/// heartbeats) until `receiver` has a message on `topic` from `publisher`,
/// and returns every message the receiver got meanwhile.
async fn publish_until_received(
    publisher: &mut PeerSwarm,
    receiver: &mut PeerSwarm,
    topic: &str,
    data: Vec<u8>,
) -> Vec<gossipsub::Message> {
    let topic = gossipsub::IdentTopic::new(topic);
    let publisher_id = *publisher.local_peer_id();
    let mut received = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    let deadline = tokio::time::sleep(common::TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => panic!("the message from {publisher_id} never arrived; received {received:?}"),
            _ = tick.tick() => {
                // Insufficient peers until the mesh has formed: try again.
                let _ = publisher.behaviour_mut().gossipsub.publish(topic.clone(), data.clone());
            }
            _ = futures::StreamExt::select_next_some(publisher) => {}
            event = futures::StreamExt::select_next_some(receiver) => {
                if let SwarmEvent::Behaviour(PeerBehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) = event {
                    let done = message.source == Some(publisher_id);
                    received.push(message);
                    if done {
                        return received;
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn valid_record_reaches_another_peer_and_forged_oversized_or_garbage_ones_do_not() {
    let relay = TestRelay::start(&[]).await;
    let (mut receiver, _) = subscribed_peer(&relay, "websocket", topics::DISCOVERY).await;

    // Three forgers each publish, over their own connection, one invalid
    // record: one of somebody else, one oversized, one of garbage.
    let victim = Keypair::generate_ed25519();
    let forged = PeerRecord::new(
        victim.public(),
        vec![circuit_addr(&relay, victim.public().to_peer_id())],
    )
    .expect("valid record")
    .encode();
    let mut oversized = PeerRecord::new(victim.public(), vec![])
        .expect("valid")
        .encode();
    oversized.resize(chat_protocol::MAX_RECORD_BYTES + 100, 0);
    let garbage = b"\xff\xfe this is not a protobuf Peer".to_vec();
    let topic = gossipsub::IdentTopic::new(topics::DISCOVERY);
    let mut forgers = Vec::new();
    for data in [forged, oversized, garbage] {
        let (mut forger, key) = subscribed_peer(&relay, "tcp", topics::DISCOVERY).await;
        // Flood publishing sends to the subscribed relay even before the
        // mesh has formed.
        forger
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), data)
            .expect("published to the relay");
        forgers.push((forger, key));
    }
    let forger_ids: Vec<PeerId> = forgers
        .iter()
        .map(|(_, key)| key.public().to_peer_id())
        .collect();
    wait_until_rejected(&relay, "discovery", 3.0).await;

    // A rejected record counts against its sender: the relay now ignores
    // even a valid record of the first forger.
    let (first, first_key) = &mut forgers[0];
    let own = PeerRecord::new(first_key.public(), vec![])
        .expect("valid")
        .encode();
    first
        .behaviour_mut()
        .gossipsub
        .publish(topic.clone(), own)
        .expect("published to the relay");
    forgers.into_iter().for_each(|(forger, _)| spawn(forger));

    // An honest peer then announces its own record, which must arrive.
    let (mut honest, honest_key) = subscribed_peer(&relay, "tcp", topics::DISCOVERY).await;
    let honest_id = honest_key.public().to_peer_id();
    let record = PeerRecord::new(honest_key.public(), vec![circuit_addr(&relay, honest_id)])
        .expect("valid record");
    let received = publish_until_received(
        &mut honest,
        &mut receiver,
        topics::DISCOVERY,
        record.encode(),
    )
    .await;

    let last = received.last().expect("at least the honest record");
    let decoded =
        PeerRecord::decode_signed(&last.data, last.source.as_ref()).expect("valid record");
    assert_eq!(decoded.peer_id(), honest_id);
    assert_eq!(decoded.addrs(), record.addrs());
    let from_forgers: Vec<_> = received
        .iter()
        .filter(|m| m.source.is_some_and(|source| forger_ids.contains(&source)))
        .collect();
    assert!(
        from_forgers.is_empty(),
        "records of forgers were forwarded: {from_forgers:?}"
    );
}

#[tokio::test]
async fn chat_message_reaches_another_peer_and_an_oversized_one_does_not() {
    let relay = TestRelay::start(&[]).await;
    let (mut receiver, _) = subscribed_peer(&relay, "websocket", topics::CHAT).await;
    let (mut sender, _) = subscribed_peer(&relay, "tcp", topics::CHAT).await;
    let sender_id = *sender.local_peer_id();

    let oversized = vec![b'a'; chat_protocol::MAX_CHAT_MESSAGE_BYTES + 1];
    let (mut flooder, _) = subscribed_peer(&relay, "tcp", topics::CHAT).await;
    let flooder_id = *flooder.local_peer_id();
    flooder
        .behaviour_mut()
        .gossipsub
        .publish(gossipsub::IdentTopic::new(topics::CHAT), oversized)
        .expect("published to the relay");
    spawn(flooder);

    let received = publish_until_received(
        &mut sender,
        &mut receiver,
        topics::CHAT,
        b"hello <b>there</b>".to_vec(),
    )
    .await;
    let last = received.last().expect("the message");
    assert_eq!(last.source, Some(sender_id));
    assert_eq!(last.data, b"hello <b>there</b>");
    assert!(
        received.iter().all(|m| m.source != Some(flooder_id)),
        "the oversized message was forwarded"
    );
    wait_until_rejected(&relay, "chat", 1.0).await;
}

/// Waits until the relay's metrics count at least `count` rejected
/// messages on `topic`.
async fn wait_until_rejected(relay: &TestRelay, topic: &str, count: f64) {
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        let seen = rejected(relay, topic).await;
        if seen >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay counted {seen} rejected {topic} messages, expected {count}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The relay's count of rejected messages on `topic`, from `/metrics`.
async fn rejected(relay: &TestRelay, topic: &str) -> f64 {
    let metrics = reqwest::get(relay.http_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let Some(line) = metrics.lines().find(|line| {
        line.starts_with("relay_gossip_messages_total{")
            && line.contains(&format!("topic=\"{topic}\""))
            && line.contains("verdict=\"rejected\"")
    }) else {
        return 0.0;
    };
    line.rsplit(' ')
        .next()
        .and_then(|value| value.parse().ok())
        .expect("a number")
}
