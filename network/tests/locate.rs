//! Lookups (`chat_network::Behaviour::locate`) against a relay that
//! answers with the real relay's request-response server
//! ([`chat_protocol::locate::Codec`]): the peer asks on a plain stream, and
//! what the answer says is followed, refused or reported.

mod common;

use chat_network::{Config, Event, LocateError, locate::MAX_LOOKUPS_IN_FLIGHT};
use chat_protocol::locate::{LocateRefusal, Located};
use common::{TestPeer, TestRelay};
use libp2p::{PeerId, multiaddr::Protocol, swarm::SwarmEvent};

/// The relay's address without its `/p2p` part, as the address book of a
/// real relay holds it.
fn bare(relay: &TestRelay) -> libp2p::Multiaddr {
    relay
        .addr
        .iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

#[tokio::test]
async fn a_peer_found_by_a_lookup_is_dialed_through_the_relay_that_holds_it() {
    let holder = TestRelay::start();
    let home = TestRelay::start_answering(Some(Ok(Located {
        relay: holder.id,
        addrs: vec![bare(&holder)],
        browser_addrs: Vec::new(),
    })));
    let mut asker = TestPeer::start(&home, Config::default()).await;
    let target = TestPeer::start(&holder, Config::default()).await;
    let target_id = target.id;
    let home_id = home.id;
    asker
        .with(move |swarm| swarm.behaviour_mut().network.locate(home_id, target_id))
        .await
        .expect("the lookup starts");
    let (_, relay) = asker
        .wait_network("the lookup's answer", |event| match event {
            Event::Located { peer, relay } if *peer == target_id => Some(*relay),
            Event::LocateFailed { peer, error } if *peer == target_id => {
                panic!("the lookup failed: {error:?}")
            }
            _ => None,
        })
        .await;
    assert_eq!(relay, holder.id, "the relay the answer named");
    assert!(
        asker
            .with(move |swarm| swarm.behaviour().network.is_relay(&relay))
            .await,
        "the located relay is trusted now"
    );
    asker
        .wait("a connection to the located peer", |event| match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if *peer_id == target_id => Some(()),
            _ => None,
        })
        .await;
}

/// Runs one lookup of `target` through `relay` and returns how it failed
/// (the error's debug text: `LocateError` is not `Clone`).
async fn failure(asker: &mut TestPeer, relay: PeerId, target: PeerId) -> String {
    asker
        .with(move |swarm| swarm.behaviour_mut().network.locate(relay, target))
        .await
        .expect("the lookup starts");
    let (_, error) = asker
        .wait_network("the lookup's failure", |event| match event {
            Event::Located { peer, .. } if *peer == target => {
                panic!("located, not refused")
            }
            Event::LocateFailed { peer, error } if *peer == target => Some(format!("{error:?}")),
            _ => None,
        })
        .await;
    error
}

#[tokio::test]
async fn a_refusal_and_a_relay_without_lookups_are_reported() {
    let refusing = TestRelay::start_answering(Some(Err(LocateRefusal::NotFound)));
    let mut asker = TestPeer::start(&refusing, Config::default()).await;
    let error = failure(&mut asker, refusing.id, PeerId::random()).await;
    assert_eq!(error, "Refused(NotFound)");

    let plain = TestRelay::start();
    let mut asker = TestPeer::start(&plain, Config::default()).await;
    let error = failure(&mut asker, plain.id, PeerId::random()).await;
    assert_eq!(error, "Unsupported");
}

#[tokio::test]
async fn only_the_home_relays_answer_is_followed() {
    let holder = TestRelay::start();
    let answer = Some(Ok(Located {
        relay: holder.id,
        addrs: vec![bare(&holder)],
        browser_addrs: Vec::new(),
    }));
    let home = TestRelay::start_answering(answer.clone());
    let other = TestRelay::start_answering(answer);
    let mut asker = TestPeer::start(&home, Config::default()).await;
    let (home_id, home_addr) = (home.id, home.addr.clone());
    let (other_id, other_addr) = (other.id, other.addr.clone());
    asker
        .with(move |swarm| {
            swarm
                .behaviour_mut()
                .network
                .set_federation((home_id, home_addr), [(other_id, other_addr.clone())]);
            swarm.dial(other_addr).expect("dials the other relay");
        })
        .await;
    let error = failure(&mut asker, other.id, PeerId::random()).await;
    assert_eq!(error, format!("NotHome {{ from: {:?} }}", other.id));
    assert!(
        !asker
            .with(move |swarm| swarm.behaviour().network.is_relay(&holder.id))
            .await,
        "the relay another relay named is not trusted"
    );
}

#[tokio::test]
async fn lookups_are_bounded_and_one_per_peer() {
    let relay = TestRelay::start_answering(Some(Err(LocateRefusal::NotFound)));
    let mut asker = TestPeer::start(&relay, Config::default()).await;
    let relay_id = relay.id;
    let (outcomes, peers) = asker
        .with(move |swarm| {
            let network = &mut swarm.behaviour_mut().network;
            let peers: Vec<PeerId> = (0..MAX_LOOKUPS_IN_FLIGHT)
                .map(|_| PeerId::random())
                .collect();
            let mut outcomes: Vec<_> = peers
                .iter()
                .map(|peer| network.locate(relay_id, *peer).map_err(|e| e.to_string()))
                .collect();
            // The same peer again: already under way, not one more.
            outcomes.push(
                network
                    .locate(relay_id, peers[0])
                    .map_err(|e| e.to_string()),
            );
            outcomes.push(
                network
                    .locate(relay_id, PeerId::random())
                    .map_err(|e| e.to_string()),
            );
            (outcomes, peers)
        })
        .await;
    assert!(
        outcomes[..=MAX_LOOKUPS_IN_FLIGHT].iter().all(Result::is_ok),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[MAX_LOOKUPS_IN_FLIGHT + 1],
        Err(LocateError::TooMany.to_string()),
        "one lookup more than the bound is refused at once"
    );

    // Each answer frees its lookup's place: once all are in, more start.
    let mut answered = Vec::new();
    while answered.len() < peers.len() {
        let (_, peer) = asker
            .wait_network("a lookup's answer", |event| match event {
                Event::LocateFailed { peer, .. } if peers.contains(peer) => Some(*peer),
                _ => None,
            })
            .await;
        assert!(!answered.contains(&peer), "{peer} answered twice");
        answered.push(peer);
    }
    let again = asker
        .with(move |swarm| {
            let network = &mut swarm.behaviour_mut().network;
            (0..MAX_LOOKUPS_IN_FLIGHT)
                .map(|_| {
                    network
                        .locate(relay_id, PeerId::random())
                        .map_err(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        })
        .await;
    assert!(
        again.iter().all(Result::is_ok),
        "after the answers, a full set of lookups starts again: {again:?}"
    );
}
