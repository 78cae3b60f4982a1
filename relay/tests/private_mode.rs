//! Private relay mode (`--authorized-peers`, `--authorized-circuits-only`):
//! only listed peers reserve (and, with the second switch, open circuits);
//! an edit of the file applies without a restart.
//!
//! A denied peer receives `RESOURCE_LIMIT_EXCEEDED`, not
//! `PERMISSION_DENIED`: libp2p-relay 0.22 offers no way to answer another
//! status (see `relay/src/authorized.rs`).

mod common;

use std::path::PathBuf;

use common::{TestRelay, peer, reserve, spawn, try_reserve, wait_for};
use libp2p::{PeerId, identity::Keypair, swarm::SwarmEvent};

fn authorized_file(peers: &[PeerId]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("authorized_peers");
    let mut text = String::from("# test peers\n\n");
    for peer in peers {
        text.push_str(&format!("{peer}  # a test peer\n"));
    }
    std::fs::write(&path, text).expect("write the authorized peers file");
    (dir, path)
}

#[tokio::test]
async fn unlisted_peer_is_refused_a_reservation_and_a_listed_one_is_not() {
    let listed = Keypair::generate_ed25519();
    let (_dir, path) = authorized_file(&[listed.public().to_peer_id()]);
    let relay = TestRelay::start(&[&format!("--authorized-peers={}", path.display())]).await;

    let mut stranger = peer(Keypair::generate_ed25519());
    let refused = try_reserve(&mut stranger, &relay.addr("tcp")).await;
    let error = refused.expect_err("a peer not in the file must not get a reservation");
    assert!(
        error.contains("ResourceLimitExceeded"),
        "expected the relay's RESOURCE_LIMIT_EXCEEDED refusal, got {error}"
    );

    let mut friend = peer(listed);
    assert_eq!(
        try_reserve(&mut friend, &relay.addr("tcp")).await,
        Ok(()),
        "a listed peer gets a reservation"
    );
}

#[tokio::test]
async fn adding_a_peer_to_the_file_lets_it_reserve_without_a_restart() {
    let listed = PeerId::random();
    let (_dir, path) = authorized_file(&[listed]);
    let relay = TestRelay::start(&[&format!("--authorized-peers={}", path.display())]).await;

    let key = Keypair::generate_ed25519();
    let newcomer = key.public().to_peer_id();
    let mut swarm = peer(key);
    assert!(
        try_reserve(&mut swarm, &relay.addr("tcp")).await.is_err(),
        "not listed yet"
    );

    std::fs::write(&path, format!("{listed}\n{newcomer}  # added later\n")).expect("edit");
    assert_eq!(
        try_reserve(&mut swarm, &relay.addr("tcp")).await,
        Ok(()),
        "the edited file applies to the next request"
    );

    std::fs::write(&path, format!("{listed}\n")).expect("edit");
    assert!(
        try_reserve(&mut swarm, &relay.addr("tcp")).await.is_err(),
        "removed again"
    );
}

/// Dials `target`'s circuit address from a fresh, unlisted peer and
/// returns whether the relayed connection came up.
async fn stranger_reaches(relay: &TestRelay, circuit: libp2p::Multiaddr, target: PeerId) -> bool {
    let mut stranger = peer(Keypair::generate_ed25519());
    common::connect(&mut stranger, &relay.addr("tcp")).await;
    stranger.dial(circuit).expect("dial through the relay");
    wait_for(
        &mut stranger,
        "the circuit's outcome",
        |event| match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if *peer_id == target => Some(true),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } if *peer_id == target => {
                let error = format!("{error:?}");
                assert!(
                    error.contains("ResourceLimitExceeded"),
                    "expected a RESOURCE_LIMIT_EXCEEDED circuit refusal, got {error}"
                );
                Some(false)
            }
            _ => None,
        },
    )
    .await
}

#[tokio::test]
async fn unlisted_peer_reaches_a_listed_one_unless_circuits_are_restricted() {
    for (restricted, expect_reached) in [(false, true), (true, false)] {
        let listed = Keypair::generate_ed25519();
        let listed_id = listed.public().to_peer_id();
        let (_dir, path) = authorized_file(&[listed_id]);
        let mut flags = vec![format!("--authorized-peers={}", path.display())];
        if restricted {
            flags.push("--authorized-circuits-only".to_owned());
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let relay = TestRelay::start(&flags).await;

        let mut home = peer(listed);
        let circuit = reserve(&mut home, &relay.addr("tcp")).await;
        spawn(home);

        assert_eq!(
            stranger_reaches(&relay, circuit, listed_id).await,
            expect_reached,
            "with --authorized-circuits-only {restricted}, an unlisted peer reaching a listed one"
        );
    }
}
