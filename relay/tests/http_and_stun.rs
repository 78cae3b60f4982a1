//! The relay's HTTP endpoints, its STUN service and its state across
//! restarts, over real sockets.

mod common;

use std::{net::SocketAddr, time::Duration};

use clap::Parser as _;
use common::{TestRelay, relay_options};
use libp2p::multiaddr::Protocol;
use relay::Relay;
use stun::{
    agent::TransactionId,
    message::{BINDING_REQUEST, Getter as _, Message},
    xoraddr::XorMappedAddress,
};

#[tokio::test]
async fn health_metrics_relay_info_and_the_page_are_served() {
    let relay = TestRelay::start(&[]).await;

    let health: serde_json::Value = reqwest::get(relay.http_url("/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["peer_id"], relay.relay.peer_id.to_string());

    // Some traffic, so that the per-transport byte counters exist.
    let mut peer = common::peer(libp2p::identity::Keypair::generate_ed25519());
    common::connect(&mut peer, &relay.addr("tcp")).await;
    common::spawn(peer);
    let metrics = reqwest::get(relay.http_url("/metrics"))
        .await
        .expect("metrics");
    assert!(metrics.status().is_success());
    let metrics = metrics.text().await.expect("body");
    for family in [
        "relay_reservations",
        "relay_circuits",
        "relay_connections",
        "libp2p_relay",
        "libp2p_swarm",
        "libp2p_bandwidth_bytes",
    ] {
        assert!(
            metrics.contains(family),
            "no {family} in /metrics:\n{metrics}"
        );
    }

    let info: serde_json::Value = reqwest::get(relay.http_url("/api/relay"))
        .await
        .expect("relay info")
        .json()
        .await
        .expect("json");
    let served: Vec<&str> = info["multiaddrs"]
        .as_array()
        .expect("multiaddrs")
        .iter()
        .map(|entry| entry["multiaddr"].as_str().expect("string"))
        .collect();
    let printed: Vec<String> = relay
        .relay
        .multiaddrs
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(served, printed);
    assert_eq!(
        info["stun_urls"][0],
        format!("stun:127.0.0.1:{}", relay.relay.stun_addr.port())
    );
    assert_eq!(
        info["topics"]["discovery"],
        chat_protocol::topics::DISCOVERY
    );

    let page = reqwest::get(relay.http_url("/"))
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert!(page.contains("<title>chat page</title>"), "{page}");
}

#[tokio::test]
async fn missing_page_is_explained_not_a_bare_404() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = relay_options(
        &dir.path().join("state"),
        &dir.path().join("no-page-here"),
        &[],
    );
    let relay = Relay::start(options).await.expect("starts without a page");
    let response = reqwest::get(format!("http://{}/", relay.http_addr))
        .await
        .expect("response");
    assert_eq!(response.status(), 503);
    assert!(response.text().await.expect("body").contains("not built"));
    relay.shutdown().await;
}

#[tokio::test]
async fn stun_binding_request_gets_the_requesters_address_back() {
    let relay = TestRelay::start(&[]).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut request = Message::new();
    request
        .build(&[Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)])
        .expect("request");
    socket
        .send_to(&request.raw, relay.relay.stun_addr)
        .await
        .expect("send");

    let mut buffer = [0u8; 1500];
    let (len, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
        .await
        .expect("a STUN response within 5 s")
        .expect("recv");
    assert_eq!(from, relay.relay.stun_addr);
    let mut response = Message::new();
    response.raw = buffer[..len].to_vec();
    response.decode().expect("a STUN message");
    assert_eq!(response.transaction_id, request.transaction_id);
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&response).expect("XOR-MAPPED-ADDRESS");
    assert_eq!(
        SocketAddr::new(mapped.ip, mapped.port),
        socket.local_addr().expect("local addr")
    );
}

#[tokio::test]
async fn restart_with_the_same_state_dir_keeps_the_peer_id_and_the_certhash() {
    common::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let start = || async {
        let options = relay_options(&dir.path().join("state"), &dir.path().join("page"), &[]);
        Relay::start(options).await.expect("relay starts")
    };
    let certhash_of = |relay: &Relay| {
        relay
            .multiaddrs
            .iter()
            .flat_map(|addr| addr.iter())
            .find_map(|protocol| match protocol {
                Protocol::Certhash(hash) => Some(hash.to_bytes()),
                _ => None,
            })
            .expect("a WebRTC-direct address with a certhash")
    };

    let first = start().await;
    let (peer_id, certhash) = (first.peer_id, certhash_of(&first));
    first.shutdown().await;
    let second = start().await;
    assert_eq!(
        second.peer_id, peer_id,
        "the peer id changed across a restart"
    );
    assert_eq!(
        certhash_of(&second),
        certhash,
        "the certhash changed across a restart"
    );
    second.shutdown().await;
}

#[tokio::test]
async fn port_in_use_fails_the_start_names_the_flag_and_stores_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let state_dir = dir.path().join("state");
    let options = relay::Options::try_parse_from([
        "relay".to_owned(),
        format!("--websocket-port={port}"),
        "--listen-ip=127.0.0.1".to_owned(),
        "--port=0".to_owned(),
        "--quic-port=0".to_owned(),
        "--webrtc-port=0".to_owned(),
        "--stun-port=0".to_owned(),
        "--http-port=0".to_owned(),
        format!("--state-dir={}", state_dir.display()),
    ])
    .expect("options");
    let error = Relay::start(options)
        .await
        .expect_err("the WebSocket port is taken");
    assert!(error.to_string().contains("--websocket-port"), "{error}");
    assert!(
        !state_dir.exists(),
        "a failed start left {} behind",
        state_dir.display()
    );
}
