//! Private relay mode (`--authorized-peers`, `--authorized-circuits-only`):
//! only listed peers reserve (and, with the second switch, open circuits);
//! an edit of the file applies without a restart.
//!
//! A denied peer receives `PERMISSION_DENIED`, except an unlisted peer's
//! reservation when circuits are open to all: that one only the limiter
//! can refuse, with `RESOURCE_LIMIT_EXCEEDED` (see
//! `relay/src/authorized_relay.rs`).

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

const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
const RESOURCE_LIMIT_EXCEEDED: &str = "ResourceLimitExceeded";

#[tokio::test]
async fn with_circuits_restricted_an_unlisted_peer_is_denied_a_reservation_with_permission_denied()
{
    let listed = Keypair::generate_ed25519();
    let (_dir, path) = authorized_file(&[listed.public().to_peer_id()]);
    let relay = TestRelay::start(&[
        &format!("--authorized-peers={}", path.display()),
        "--authorized-circuits-only",
    ])
    .await;

    let mut stranger = peer(Keypair::generate_ed25519());
    let error = try_reserve(&mut stranger, &relay.addr("tcp"))
        .await
        .expect_err("a peer not in the file must not get a reservation");
    // libp2p-relay's client has no variant for 202 on a reservation: it
    // reports the status by name as an unexpected one.
    assert!(
        error.contains(PERMISSION_DENIED),
        "expected the relay's PERMISSION_DENIED (202) refusal, got {error}"
    );

    let mut friend = peer(listed);
    assert_eq!(
        try_reserve(&mut friend, &relay.addr("tcp")).await,
        Ok(()),
        "a listed peer gets a reservation"
    );
}

/// Without `--authorized-circuits-only` an unlisted peer keeps
/// libp2p-relay's handler (it may open circuits), so only the limiter can
/// refuse its reservation, with the status libp2p-relay gives limiters.
#[tokio::test]
async fn without_circuits_restricted_an_unlisted_peer_is_refused_with_resource_limit_exceeded() {
    let listed = Keypair::generate_ed25519();
    let (_dir, path) = authorized_file(&[listed.public().to_peer_id()]);
    let relay = TestRelay::start(&[&format!("--authorized-peers={}", path.display())]).await;

    let mut stranger = peer(Keypair::generate_ed25519());
    let error = try_reserve(&mut stranger, &relay.addr("tcp"))
        .await
        .expect_err("a peer not in the file must not get a reservation");
    assert!(
        error.contains(RESOURCE_LIMIT_EXCEEDED),
        "expected the limiter's RESOURCE_LIMIT_EXCEEDED refusal, got {error}"
    );

    let mut friend = peer(listed);
    assert_eq!(
        try_reserve(&mut friend, &relay.addr("tcp")).await,
        Ok(()),
        "a listed peer gets a reservation"
    );
}

/// Waits until the relay closes the peer's connection to it.
async fn relay_hangs_up(swarm: &mut common::PeerSwarm, relay: PeerId, why: &str) {
    wait_for(swarm, why, |event| match event {
        SwarmEvent::ConnectionClosed {
            peer_id,
            num_established: 0,
            ..
        } if *peer_id == relay => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test]
async fn an_edit_of_the_file_applies_to_connected_peers_without_a_restart() {
    let listed = PeerId::random();
    let (_dir, path) = authorized_file(&[listed]);
    let relay = TestRelay::start(&[
        &format!("--authorized-peers={}", path.display()),
        "--authorized-circuits-only",
    ])
    .await;
    let relay_addr = relay.addr("tcp");
    let relay_id = common::relay_peer_id(&relay_addr);

    let key = Keypair::generate_ed25519();
    let newcomer = key.public().to_peer_id();
    let mut swarm = peer(key);
    let error = try_reserve(&mut swarm, &relay_addr)
        .await
        .expect_err("not listed yet");
    assert!(
        error.contains(PERMISSION_DENIED),
        "expected PERMISSION_DENIED, got {error}"
    );

    // Added: the relay closes the connection its deny handler serves, and
    // the peer's next attempt reconnects and is served.
    std::fs::write(&path, format!("{listed}\n{newcomer}  # added later\n")).expect("edit");
    relay_hangs_up(
        &mut swarm,
        relay_id,
        "the relay to close the denied connection",
    )
    .await;
    assert_eq!(
        try_reserve(&mut swarm, &relay_addr).await,
        Ok(()),
        "the edited file applies without a restart"
    );

    // Removed: the relay closes its connection at once (ending the
    // reservation), and the reconnected peer is denied again.
    std::fs::write(&path, format!("{listed}\n")).expect("edit");
    relay_hangs_up(
        &mut swarm,
        relay_id,
        "the relay to close the removed peer's connection",
    )
    .await;
    let error = try_reserve(&mut swarm, &relay_addr)
        .await
        .expect_err("removed again");
    assert!(
        error.contains(PERMISSION_DENIED),
        "expected PERMISSION_DENIED, got {error}"
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
                    error.contains("PermissionDenied"),
                    "expected a PERMISSION_DENIED circuit refusal, got {error}"
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
