//! Private relay mode (`--authorized-peers`, `--authorized-circuits-only`):
//! only listed peers reserve (and, with the second switch, open circuits);
//! an edit of the file applies without a restart.
//!
//! A denied peer receives `PERMISSION_DENIED`. Without
//! `--authorized-circuits-only`, an unlisted peer (a guest) still reaches
//! listed peers, through circuits the relay serves itself (see
//! `relay/src/authorized_relay/guests.rs`).

mod common;

use std::path::PathBuf;

use common::{TestRelay, echo, peer, reserve, serve_echo, spawn, try_reserve, wait_for};
use futures::StreamExt as _;
use libp2p::{Multiaddr, PeerId, identity::Keypair, multiaddr::Protocol, swarm::SwarmEvent};

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

#[tokio::test]
async fn an_unlisted_peer_is_denied_a_reservation_with_permission_denied() {
    for circuits_restricted in [false, true] {
        let listed = Keypair::generate_ed25519();
        let (_dir, path) = authorized_file(&[listed.public().to_peer_id()]);
        let mut flags = vec![format!("--authorized-peers={}", path.display())];
        if circuits_restricted {
            flags.push("--authorized-circuits-only".to_owned());
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let relay = TestRelay::start(&flags).await;

        let mut stranger = peer(Keypair::generate_ed25519());
        let error = try_reserve(&mut stranger, &relay.addr("tcp"))
            .await
            .expect_err("a peer not in the file must not get a reservation");
        // libp2p-relay's client has no variant for 202 on a reservation: it
        // reports the status by name as an unexpected one.
        assert!(
            error.contains(PERMISSION_DENIED),
            "circuits restricted: {circuits_restricted}: expected the relay's PERMISSION_DENIED (202) refusal, got {error}"
        );

        let mut friend = peer(listed);
        assert_eq!(
            try_reserve(&mut friend, &relay.addr("tcp")).await,
            Ok(()),
            "a listed peer gets a reservation"
        );
    }
}

/// A listed peer holding a reservation and echoing every `ECHO` stream.
async fn echoing_home(relay: &TestRelay, key: Keypair) -> Multiaddr {
    let mut home = peer(key);
    let circuit = reserve(&mut home, &relay.addr("tcp")).await;
    serve_echo(&home);
    spawn(home);
    circuit
}

/// Dials `circuit` and waits for the relayed connection, or the error.
async fn dial_circuit(
    swarm: &mut common::PeerSwarm,
    circuit: Multiaddr,
    target: PeerId,
) -> Result<Multiaddr, String> {
    swarm.dial(circuit).expect("dial through the relay");
    wait_for(swarm, "the circuit's outcome", |event| match event {
        SwarmEvent::ConnectionEstablished {
            peer_id, endpoint, ..
        } if *peer_id == target => Some(Ok(endpoint.get_remote_address().clone())),
        SwarmEvent::OutgoingConnectionError {
            peer_id: Some(peer_id),
            error,
            ..
        } if *peer_id == target => Some(Err(format!("{error:?}"))),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_guest_exchanges_bytes_with_a_listed_peer_through_a_circuit_the_relay_serves() {
    let listed = Keypair::generate_ed25519();
    let listed_id = listed.public().to_peer_id();
    let (_dir, path) = authorized_file(&[listed_id]);
    let relay = TestRelay::start(&[&format!("--authorized-peers={}", path.display())]).await;
    let circuit = echoing_home(&relay, listed).await;

    let mut guest = peer(Keypair::generate_ed25519());
    common::connect(&mut guest, &relay.addr("websocket")).await;
    let remote = dial_circuit(&mut guest, circuit, listed_id)
        .await
        .expect("a guest reaches a listed peer");
    assert!(
        remote.iter().any(|p| p == Protocol::P2pCircuit),
        "not relayed: {remote}"
    );
    let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let echoed = echo(&mut guest, listed_id, &payload)
        .await
        .expect("echo over the guest's circuit");
    assert!(echoed == payload, "echoed bytes differ from those sent");
}

/// The guest circuit's byte cap in [`a_guest_circuit_carries_data_then_ends_at_the_relays_byte_limit`].
const BYTE_CAP: u64 = 128 * 1024;
/// What crosses a circuit besides the test's payload (noise, yamux,
/// identify, ping, gossipsub's subscriptions: a few KiB) plus what a cut
/// loses in flight (the last partial frames): the payload that arrives is
/// at least the cap less this.
const CAP_SLACK: u64 = 32 * 1024;

#[tokio::test]
async fn a_guest_circuit_carries_data_then_ends_at_the_relays_byte_limit() {
    let listed = Keypair::generate_ed25519();
    let listed_id = listed.public().to_peer_id();
    let (_dir, path) = authorized_file(&[listed_id]);
    let relay = TestRelay::start(&[
        &format!("--authorized-peers={}", path.display()),
        &format!("--max-circuit-bytes={BYTE_CAP}"),
    ])
    .await;
    let mut home = peer(listed);
    let circuit = reserve(&mut home, &relay.addr("tcp")).await;
    serve_echo(&home);
    let mut counted = common::serve_count(&home);
    spawn(home);

    let mut guest = peer(Keypair::generate_ed25519());
    dial_circuit(&mut guest, circuit, listed_id)
        .await
        .expect("a guest reaches a listed peer");
    // Before the cap: the circuit carries bytes both ways, intact.
    let small: Vec<u8> = (0..4_000u32).map(|i| (i % 251) as u8).collect();
    let echoed = echo(&mut guest, listed_id, &small)
        .await
        .expect("4 kB echoed through the guest circuit, well under its cap");
    assert!(echoed == small, "echoed bytes differ from those sent");

    // Then 1 MiB one way: the relay cuts the circuit where the cap is
    // reached, not before and not after.
    let sent = common::send_count(&mut guest, listed_id, 1 << 20, 4096).await;
    let (arrived, end) = tokio::time::timeout(common::TIMEOUT, counted.next())
        .await
        .expect("the listed peer's count stream ended in time")
        .expect("the listed peer counted a stream");
    // (A stream cut with its connection reads as ended, like a clean
    // end: what arrived tells the cut.)
    assert!(
        sent.is_err(),
        "the sender wrote and closed 1 MiB through a circuit capped at {BYTE_CAP} bytes \
         ({arrived} bytes arrived, {end:?})"
    );
    assert!(
        (BYTE_CAP - CAP_SLACK..=BYTE_CAP).contains(&arrived),
        "expected the circuit to be cut at its {BYTE_CAP}-byte cap, so between {} and {BYTE_CAP} \
         bytes of payload arrive; {arrived} arrived before it was cut ({end:?}; the sender saw \
         {sent:?})",
        BYTE_CAP - CAP_SLACK
    );
}

#[tokio::test]
async fn a_guest_asking_for_a_peer_without_a_reservation_gets_no_reservation() {
    let listed = Keypair::generate_ed25519();
    let listed_id = listed.public().to_peer_id();
    let (_dir, path) = authorized_file(&[listed_id]);
    let relay = TestRelay::start(&[&format!("--authorized-peers={}", path.display())]).await;
    // Listed and connected, but holding no reservation.
    let mut home = peer(listed);
    common::connect(&mut home, &relay.addr("tcp")).await;
    spawn(home);

    let mut guest = peer(Keypair::generate_ed25519());
    let circuit = relay
        .addr("tcp")
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(listed_id));
    let error = dial_circuit(&mut guest, circuit, listed_id)
        .await
        .expect_err("no reservation, no circuit");
    assert!(
        error.contains("NoReservation"),
        "expected NO_RESERVATION, got {error}"
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

#[tokio::test]
async fn a_guests_circuits_are_limited_per_peer() {
    let (first, second) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (first_id, second_id) = (first.public().to_peer_id(), second.public().to_peer_id());
    let (_dir, path) = authorized_file(&[first_id, second_id]);
    let relay = TestRelay::start(&[
        &format!("--authorized-peers={}", path.display()),
        "--max-circuits-per-peer=1",
    ])
    .await;
    let first_circuit = echoing_home(&relay, first).await;
    let second_circuit = echoing_home(&relay, second).await;

    let mut guest = peer(Keypair::generate_ed25519());
    dial_circuit(&mut guest, first_circuit, first_id)
        .await
        .expect("the guest's first circuit");
    let error = dial_circuit(&mut guest, second_circuit, second_id)
        .await
        .expect_err("one circuit per peer");
    assert!(
        error.contains("ResourceLimitExceeded"),
        "expected RESOURCE_LIMIT_EXCEEDED, got {error}"
    );
}
