//! The relay binary as a user runs it: what it prints, how it fails, how it
//! stops.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use std::os::unix::fs::PermissionsExt as _;

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// The relay binary on loopback with every port chosen by the OS.
fn relay_command(state_dir: &Path) -> Command {
    let mut command = Command::new(RELAY);
    command
        .env_clear()
        .env("RUST_LOG", "info")
        // Through the environment, to prove every flag can come from there.
        .env("RELAY_LISTEN_IP", "127.0.0.1")
        .env("RELAY_STATE_DIR", state_dir)
        .args([
            "--port=0",
            "--quic-port=0",
            "--websocket-port=0",
            "--webrtc-port=0",
            "--stun-port=0",
            "--http-port=0",
        ])
        .stdin(Stdio::null());
    command
}

/// Runs a relay that is expected to fail at once.
fn run_failing(command: &mut Command) -> Output {
    let output = command.output().expect("relay runs");
    assert!(
        !output.status.success(),
        "the relay should have failed: {output:?}"
    );
    output
}

fn error_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("error"))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line, got:\n{stderr}");
    errors[0].to_owned()
}

#[test]
fn prints_copy_ready_addresses_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = relay_command(&dir.path().join("state"))
        .args(["--external-address", "relay.example.org"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("relay starts");
    // Kept open until the relay has exited: it may still be printing.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));

    let mut lines = Vec::new();
    let started = Instant::now();
    for line in stdout.by_ref().lines() {
        let line = line.expect("utf-8 output");
        let done = line.starts_with("Page:");
        lines.push(line);
        if done || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let peer_id: PeerId = lines[0]
        .strip_prefix("Relay ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("first line names the peer id: {lines:?}"));

    let addrs: Vec<Multiaddr> = lines
        .iter()
        .filter(|line| line.starts_with('/'))
        .map(|line| {
            line.parse()
                .unwrap_or_else(|error| panic!("{line:?} is not a multiaddr: {error}"))
        })
        .collect();
    for transport in ["/tcp/", "/ws/", "/webrtc-direct/certhash/"] {
        assert!(
            addrs.iter().any(|a| a.to_string().contains(transport)),
            "no {transport} address in {lines:?}"
        );
    }
    for addr in &addrs {
        assert_eq!(
            addr.iter().last(),
            Some(Protocol::P2p(peer_id)),
            "{addr} does not end in /p2p/{peer_id}"
        );
    }
    assert!(
        addrs
            .iter()
            .any(|a| a.to_string().starts_with("/dns/relay.example.org/")),
        "{lines:?}"
    );
    assert!(
        addrs
            .iter()
            .any(|a| a.to_string().starts_with("/ip4/127.0.0.1/")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("STUN: stun:relay.example.org:")),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|line| line.starts_with("Page: http://")),
        "{lines:?}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = child.wait().expect("relay exits");
    assert!(
        status.success(),
        "SIGTERM should end the relay cleanly, got {status}"
    );
}

#[test]
fn corrupt_identity_key_is_refused_with_one_line_naming_the_file_and_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).expect("state dir");
    let key = state_dir.join("identity.key");
    std::fs::write(&key, b"not a key").expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let output = run_failing(&mut relay_command(&state_dir));
    let line = error_line(&output);
    assert!(
        line.contains(&key.display().to_string()),
        "error does not name the file: {line}"
    );
    assert!(line.contains("not a valid libp2p identity key"), "{line}");
    assert_eq!(std::fs::read(&key).expect("key still there"), b"not a key");
    assert!(
        !state_dir.join("webrtc-certificate.pem").exists(),
        "a failed start stored a certificate"
    );
}

#[test]
fn listens_on_both_families_and_prints_both_sets_of_addresses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = relay_command(&dir.path().join("state"))
        .args(["--listen-ip", "127.0.0.1", "--listen-ip", "::1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("relay starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    let started = Instant::now();
    for line in stdout.by_ref().lines() {
        let line = line.expect("utf-8 output");
        let done = line.starts_with("Page: http://[::1]");
        lines.push(line);
        if done || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    for family in ["/ip4/127.0.0.1/", "/ip6/::1/"] {
        for transport in ["/tcp/", "/ws/", "/webrtc-direct/", "/quic-v1/"] {
            assert!(
                lines
                    .iter()
                    .any(|line| line.starts_with(family) && line.contains(transport)),
                "no {family}..{transport} address in {lines:?}"
            );
        }
    }
    let stun = lines
        .iter()
        .find(|line| line.starts_with("STUN:"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        stun.contains("stun:127.0.0.1:") && stun.contains("stun:[::1]:"),
        "{stun}"
    );
    // The page answers on IPv6 as on IPv4.
    let page = lines
        .iter()
        .find_map(|line| line.strip_prefix("Page: http://[::1]:"))
        .unwrap_or_else(|| panic!("no IPv6 page URL in {lines:?}"));
    let port: u16 = page.trim_end_matches('/').parse().expect("port");
    let mut stream = std::net::TcpStream::connect(("::1", port)).expect("connect over IPv6");
    std::io::Write::write_all(
        &mut stream,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    child.kill().expect("kill");
    child.wait().expect("wait");
}

#[test]
fn a_key_others_may_read_is_refused_with_the_chmod_that_fixes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_dir = dir.path().join("state");
    // A first start creates the key, private.
    let mut child = relay_command(&state_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("relay starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    assert!(first.starts_with("Relay "), "{first}");
    child.kill().expect("kill");
    child.wait().expect("wait");

    let key = state_dir.join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = run_failing(&mut relay_command(&state_dir));
    let line = error_line(&output);
    assert!(
        line.contains(&format!("chmod 600 {}", key.display())),
        "{line}"
    );
}

#[test]
fn bad_external_address_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run_failing(
        relay_command(&dir.path().join("state")).args(["--external-address", "my host"]),
    );
    let line = error_line(&output);
    assert!(line.contains("--external-address"), "{line}");
    assert!(!dir.path().join("state").exists());
}

#[test]
fn port_in_use_is_refused_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let output =
        run_failing(relay_command(&dir.path().join("state")).arg(format!("--port={port}")));
    let line = error_line(&output);
    assert!(line.contains("--port"), "{line}");
    assert!(
        !dir.path().join("state").exists(),
        "a failed start left state behind"
    );
}
