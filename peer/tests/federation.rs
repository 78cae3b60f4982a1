//! Lookups across a federation (issue #14, parts 3 and 5): three relays on
//! loopback, B federated with A and C only (A and C find each other
//! through the DHT). `chat-peer ping <peer id>`, the binary, on A reaches
//! a peer reserved on C by its id alone: A says C holds it, the peer dials
//! the circuit through C, and DCUtR makes the link direct. A peer no relay
//! holds is "not found", and the command fails; so is the peer on C once
//! it has left.
//!
//! The relays run in this process (the relay library, as its binary runs
//! it), each with its own swarm, ports and identity.

mod common;

use std::{
    path::Path,
    process::{Output, Stdio},
    time::Duration,
};

use common::{TIMEOUT, TestRelay, config, reserved, start};
use libp2p::{PeerId, identity::Keypair};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CHAT_PEER: &str = env!("CARGO_BIN_EXE_chat-peer");

fn relay_id(seed: u8) -> PeerId {
    relay::state::seeded_keypair(seed).public().to_peer_id()
}

/// A relay with identity `seed`, in the federation of `members`,
/// told of `federate`.
async fn federated(seed: u8, members: &Path, federate: Option<&TestRelay>) -> TestRelay {
    let mut args = vec![
        format!("--secret-key-seed={seed}"),
        format!("--federation-peers={}", members.display()),
    ];
    if let Some(other) = federate {
        args.push(format!("--federate={}", other.addr("tcp")));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestRelay::start(&args).await
}

/// The value of `series` (name and labels, as the relay writes them) in
/// `relay`'s /metrics; 0 when absent.
async fn metric(relay: &TestRelay, series: &str) -> f64 {
    let mut stream = tokio::net::TcpStream::connect(relay.relay.http_addr)
        .await
        .expect("metrics connection");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: relay\r\n\r\n")
        .await
        .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).await.expect("response");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().expect("a number"))
}

async fn wait_for_metric(relay: &TestRelay, name: &str, series: &str, check: impl Fn(f64) -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let value = metric(relay, series).await;
        if check(value) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay {name}: {series} is {value} after {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const CONNECTED: &str = "relay_federation_members{state=\"connected\"}";

/// Runs `chat-peer --json ping <target>` through `relay`, with a fresh
/// identity; returns its output once it exits.
async fn chat_peer_ping(relay: &TestRelay, target: PeerId, dir: &Path) -> Output {
    let key_file = dir.join(format!("{target}.key"));
    let child = tokio::process::Command::new(CHAT_PEER)
        .env_clear()
        .env("RUST_LOG", "info")
        .arg(format!("--relay={}", relay.addr("tcp")))
        .arg(format!("--key-file={}", key_file.display()))
        .args(["--listen-ip=127.0.0.1", "--force-private", "--json"])
        .args(["ping", &target.to_string(), "--count=3", "--interval=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chat-peer starts");
    tokio::time::timeout(TIMEOUT * 2, child.wait_with_output())
        .await
        .expect("chat-peer ends within its ping timeout")
        .expect("chat-peer output")
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_peer_pings_a_peer_on_another_relay_by_its_id_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let members = dir.path().join("federation");
    let listed: String = [41, 42, 43]
        .iter()
        .map(|seed| format!("{}\n", relay_id(*seed)))
        .collect();
    std::fs::write(&members, listed).expect("federation file");
    let b = federated(42, &members, None).await;
    let a = federated(41, &members, Some(&b)).await;
    let c = federated(43, &members, Some(&b)).await;
    wait_for_metric(&a, "A", CONNECTED, |n| n == 2.0).await;
    wait_for_metric(&c, "C", CONNECTED, |n| n == 2.0).await;

    // A peer reserved on C only.
    let mut on_c = start(config(c.addr("tcp"), true)).await;
    reserved(&mut on_c).await;
    wait_for_metric(&a, "A", "relay_federation_records", |n| n >= 1.0).await;

    let started = std::time::Instant::now();
    let output = chat_peer_ping(&a, on_c.peer_id, dir.path()).await;
    let events = json_lines(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let located = events
        .iter()
        .find(|event| event["event"] == "located")
        .unwrap_or_else(|| panic!("no lookup answer in chat-peer's output: {events:?}\n{stderr}"));
    assert_eq!(
        located["relay"],
        c.relay.peer_id.to_string(),
        "the lookup names C, the relay holding the reservation"
    );
    let pings: Vec<&serde_json::Value> = events
        .iter()
        .filter(|event| event["event"] == "ping" && event["peer"] == on_c.peer_id.to_string())
        .collect();
    assert!(
        output.status.success() && !pings.is_empty(),
        "chat-peer on A got no ping answer from the peer on C ({}): {events:?}\n{stderr}",
        output.status
    );
    eprintln!(
        "measured: chat-peer on A pinged the peer on C by id in {:?} (start, lookup, circuit through C, 3 pings 1 s apart); paths {:?}",
        started.elapsed(),
        pings
            .iter()
            .map(|ping| ping["path"].clone())
            .collect::<Vec<_>>()
    );
    assert!(
        pings.iter().any(|ping| ping["path"] == "direct"),
        "DCUtR made the link direct: {pings:?}"
    );
    assert!(metric(&a, "relay_federation_lookups_total{outcome=\"found\"}").await >= 1.0);

    // Nobody holds this peer: a clear "not found", and a failed command.
    let nobody = Keypair::generate_ed25519().public().to_peer_id();
    let output = chat_peer_ping(&a, nobody, dir.path()).await;
    let events = json_lines(&output);
    let failed = events
        .iter()
        .find(|event| event["event"] == "ping_failed")
        .unwrap_or_else(|| panic!("no failed ping in chat-peer's output: {events:?}"));
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no relay of the federation holds a reservation for that peer"),
        "the reason says the peer was not found: {reason}"
    );
    assert!(
        !output.status.success(),
        "chat-peer ping of an unknown peer fails"
    );
    assert!(metric(&a, "relay_federation_lookups_total{outcome=\"not_found\"}").await >= 1.0);

    // The peer on C leaves: C's tombstone reaches A, and a lookup there
    // no longer names C.
    let gone = on_c.peer_id;
    on_c.shutdown().await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let output = chat_peer_ping(&a, gone, dir.path()).await;
        let events = json_lines(&output);
        let located = events.iter().any(|event| event["event"] == "located");
        if !located && !output.status.success() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A still locates the peer that left C after {TIMEOUT:?}: {events:?}"
        );
    }
}
