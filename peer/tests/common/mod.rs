//! Test support: the real relay on loopback with ephemeral ports, and
//! native peers started through the library, as the binary starts them.

#![allow(dead_code)] // Each test file uses a part of it.

use std::time::Duration;

use chat_peer::{Config, Event, Peer, PeerHandle};
use clap::Parser as _;
use libp2p::{Multiaddr, PeerId, identity::Keypair};

/// Bound on anything a test waits for; tests wait for events, never sleep.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub struct TestRelay {
    pub relay: relay::Relay,
    pub dir: tempfile::TempDir,
}

impl TestRelay {
    pub async fn start(extra: &[&str]) -> Self {
        init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec![
            "relay".to_owned(),
            "--listen-ip=127.0.0.1".to_owned(),
            "--port=0".to_owned(),
            "--quic-port=0".to_owned(),
            "--websocket-port=0".to_owned(),
            "--webrtc-port=0".to_owned(),
            "--stun-port=0".to_owned(),
            "--http-port=0".to_owned(),
            format!("--state-dir={}", dir.path().join("state").display()),
            format!("--page-dir={}", dir.path().join("page").display()),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let options = relay::Options::try_parse_from(args).expect("relay options");
        let relay = relay::Relay::start(options).await.expect("relay starts");
        Self { relay, dir }
    }

    /// The relay's address for `transport` ("tcp", "quic").
    pub fn addr(&self, transport: &str) -> Multiaddr {
        self.relay
            .multiaddrs
            .iter()
            .find(|addr| relay::addresses::transport_of(addr) == transport)
            .unwrap_or_else(|| panic!("no {transport} address in {:?}", self.relay.multiaddrs))
            .clone()
    }
}

/// A peer on 127.0.0.1 that pings every half second.
pub fn config(relay: Multiaddr, hole_punching: bool) -> Config {
    let mut config = Config::new(Keypair::generate_ed25519(), relay);
    config.listen_ip = [127, 0, 0, 1].into();
    config.hole_punching = hole_punching;
    config.force_private = true;
    config.ping_interval = Duration::from_millis(500);
    config
}

pub async fn start(config: Config) -> PeerHandle {
    Peer::start(config).await.expect("peer starts")
}

/// Reads `peer`'s events until `predicate` picks a value out of one.
pub async fn wait_for<T>(
    peer: &mut PeerHandle,
    what: &str,
    mut predicate: impl FnMut(&Event) -> Option<T>,
) -> T {
    let id = peer.peer_id;
    let result = tokio::time::timeout(TIMEOUT, async {
        loop {
            let event = peer.next_event().await.expect("the peer is running");
            tracing::debug!(peer = %id, ?event, "test peer event");
            if let Some(value) = predicate(&event) {
                return value;
            }
        }
    })
    .await;
    result.unwrap_or_else(|_| panic!("{id}: timed out after {TIMEOUT:?} waiting for {what}"))
}

/// Waits until `peer` holds a reservation; returns its circuit address.
pub async fn reserved(peer: &mut PeerHandle) -> Multiaddr {
    wait_for(peer, "a reservation", |event| match event {
        Event::Reserved { circuit_addr } => Some(circuit_addr.clone()),
        Event::ReservationRefused { reason } => panic!("reservation refused: {reason}"),
        _ => None,
    })
    .await
}

/// Waits until `peer` has received `other`'s discovery record.
pub async fn discovered(peer: &mut PeerHandle, other: PeerId) -> Vec<Multiaddr> {
    let known = peer.peers().await.expect("running");
    if let Some(info) = known.into_iter().find(|p| p.peer == other && p.discovered) {
        return info.addrs;
    }
    wait_for(peer, "the other peer's record", |event| match event {
        Event::Discovered { peer, addrs } if *peer == other => Some(addrs.clone()),
        _ => None,
    })
    .await
}
