//! The lean identify (`chat_network::identify`) against rust-libp2p's
//! identify, over libp2p's memory transport: each side reads the other's
//! answer, and rust-libp2p's reader accepts everything the lean one says
//! (its key, agent, the protocols this connection serves, its listen
//! address, and the address it saw the asker at).

use std::time::Duration;

use chat_network::identify;
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, Swarm, Transport as _,
    core::{transport::MemoryTransport, upgrade},
    identify as rust_identify,
    identity::Keypair,
    noise, ping,
    swarm::{NetworkBehaviour, SwarmEvent},
    yamux,
};

const STEP: Duration = Duration::from_secs(15);

#[derive(NetworkBehaviour)]
struct Lean {
    identify: identify::Behaviour,
    /// A second protocol for the answer to name.
    ping: ping::Behaviour,
}

#[derive(NetworkBehaviour)]
struct Rust {
    identify: rust_identify::Behaviour,
}

fn swarm<B: NetworkBehaviour>(key: &Keypair, behaviour: B) -> Swarm<B> {
    let transport = MemoryTransport::default()
        .upgrade(upgrade::Version::V1)
        .authenticate(noise::Config::new(key).expect("noise keys"))
        .multiplex(yamux::Config::default())
        .boxed();
    Swarm::new(
        transport,
        behaviour,
        key.public().to_peer_id(),
        libp2p::swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(Duration::from_secs(30)),
    )
}

fn memory_addr() -> Multiaddr {
    format!("/memory/{}", rand_port()).parse().expect("valid")
}

fn rand_port() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    (u64::from(std::process::id()) << 20) + (1 << 19) + NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn rust_libp2p_reads_the_lean_answer_and_the_lean_side_reads_its_agent() {
    let lean_key = Keypair::generate_ed25519();
    let lean_id = lean_key.public().to_peer_id();
    let mut lean = swarm(
        &lean_key,
        Lean {
            identify: identify::Behaviour::new(identify::Config {
                protocol_version: "/ipfs/id/1.0.0".to_owned(),
                agent_version: "lean-test/1".to_owned(),
                public_key: lean_key.public(),
            }),
            ping: ping::Behaviour::default(),
        },
    );
    let lean_addr = memory_addr();
    lean.listen_on(lean_addr.clone()).expect("listens");

    let rust_key = Keypair::generate_ed25519();
    let rust_id = rust_key.public().to_peer_id();
    let mut rust = swarm(
        &rust_key,
        Rust {
            identify: rust_identify::Behaviour::new(
                rust_identify::Config::new("/ipfs/id/1.0.0".to_owned(), rust_key.public())
                    .with_agent_version("rust-test/2".to_owned()),
            ),
        },
    );
    // Let the lean side learn its listen address before the dial.
    loop {
        if let SwarmEvent::NewListenAddr { .. } = lean.select_next_some().await {
            break;
        }
    }
    rust.dial(lean_addr.clone()).expect("dials");

    let mut lean_heard: Option<(PeerId, String)> = None;
    let mut rust_heard: Option<rust_identify::Info> = None;
    tokio::time::timeout(STEP, async {
        while lean_heard.is_none() || rust_heard.is_none() {
            tokio::select! {
                event = lean.select_next_some() => {
                    if let SwarmEvent::Behaviour(LeanEvent::Identify(
                        identify::Event::Received { peer, agent_version },
                    )) = event {
                        lean_heard = Some((peer, agent_version));
                    }
                }
                event = rust.select_next_some() => match event {
                    SwarmEvent::Behaviour(RustEvent::Identify(
                        rust_identify::Event::Received { peer_id, info, .. },
                    )) => {
                        assert_eq!(peer_id, lean_id);
                        rust_heard = Some(info);
                    }
                    SwarmEvent::Behaviour(RustEvent::Identify(
                        rust_identify::Event::Error { error, .. },
                    )) => panic!("rust-libp2p could not read the lean answer: {error}"),
                    _ => {}
                },
            }
        }
    })
    .await
    .expect("both sides identified each other within the step");

    assert_eq!(lean_heard, Some((rust_id, "rust-test/2".to_owned())));
    let info = rust_heard.expect("heard");
    assert_eq!(info.public_key, lean_key.public());
    assert_eq!(info.agent_version, "lean-test/1");
    assert_eq!(info.protocol_version, "/ipfs/id/1.0.0");
    assert_eq!(info.listen_addrs, vec![lean_addr]);
    for protocol in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"] {
        assert!(
            info.protocols.iter().any(|p| p.as_ref() == protocol),
            "{protocol} is named: {:?}",
            info.protocols
        );
    }
    assert!(
        info.observed_addr.to_string().starts_with("/memory/"),
        "the asker's address as the lean side saw it: {}",
        info.observed_addr
    );
}

#[tokio::test]
async fn the_address_seen_on_a_dialed_connection_does_not_name_the_remote() {
    let lean_key = Keypair::generate_ed25519();
    let mut lean = swarm(
        &lean_key,
        Lean {
            identify: identify::Behaviour::new(identify::Config {
                protocol_version: "/ipfs/id/1.0.0".to_owned(),
                agent_version: "lean-test/1".to_owned(),
                public_key: lean_key.public(),
            }),
            ping: ping::Behaviour::default(),
        },
    );
    let rust_key = Keypair::generate_ed25519();
    let rust_id = rust_key.public().to_peer_id();
    let mut rust = swarm(
        &rust_key,
        Rust {
            identify: rust_identify::Behaviour::new(rust_identify::Config::new(
                "/ipfs/id/1.0.0".to_owned(),
                rust_key.public(),
            )),
        },
    );
    let rust_addr = memory_addr();
    rust.listen_on(rust_addr.clone()).expect("listens");
    loop {
        if let SwarmEvent::NewListenAddr { .. } = rust.select_next_some().await {
            break;
        }
    }
    // The lean side dials with the remote's id, as the page does.
    lean.dial(
        rust_addr
            .clone()
            .with(libp2p::multiaddr::Protocol::P2p(rust_id)),
    )
    .expect("dials");

    let observed = tokio::time::timeout(STEP, async {
        loop {
            tokio::select! {
                _ = lean.select_next_some() => {}
                event = rust.select_next_some() => match event {
                    SwarmEvent::Behaviour(RustEvent::Identify(
                        rust_identify::Event::Received { info, .. },
                    )) => break info.observed_addr,
                    SwarmEvent::Behaviour(RustEvent::Identify(
                        rust_identify::Event::Error { error, .. },
                    )) => panic!("rust-libp2p could not read the lean answer: {error}"),
                    _ => {}
                },
            }
        }
    })
    .await
    .expect("rust-libp2p read the lean answer within the step");
    assert_eq!(
        observed, rust_addr,
        "the address the lean side dialed, without its /p2p part"
    );
}
