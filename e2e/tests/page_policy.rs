//! What the page does with what others send it: it dials only circuits
//! through the relay it connected to, over its own connection to that
//! relay, whatever a record names; and it serves `/perf/1.0.0` only when
//! opened for benchmarking (`?bench`).
//!
//! Needs the built page (`scripts/build-page`), chromedriver and Chromium.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chat_protocol::{PeerRecord, topics};
use e2e::{Browser, ChromeDriver, PageRelay, PageState, TIMEOUT, wait_page, wait_pages};
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, Swarm, Transport as _,
    core::upgrade::Version,
    gossipsub::{self, IdentTopic},
    identify,
    identity::Keypair,
    multiaddr::Protocol,
    noise, ping, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, websocket, yamux,
};

const PREFIX: &str = "page_policy";

/// A relay of the test's own: it forwards gossip without validating it,
/// as a malicious relay or peer would, so what it hands the page has not
/// passed the real relay's checks.
#[derive(NetworkBehaviour)]
struct Forwarder {
    relay: relay::Behaviour,
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

fn gossipsub(key: &Keypair) -> gossipsub::Behaviour {
    gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(200))
            .build()
            .expect("gossipsub config"),
    )
    .expect("gossipsub")
}

/// The forwarder: WebSocket (for the page) and TCP (for the forger).
fn forwarder() -> Swarm<Forwarder> {
    let keypair = Keypair::generate_ed25519();
    let ws_noise = noise::Config::new(&keypair).expect("noise");
    libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_other_transport(|_| {
            websocket::Config::new(tcp::tokio::Transport::new(tcp::Config::default()))
                .upgrade(Version::V1Lazy)
                .authenticate(ws_noise)
                .multiplex(yamux::Config::default())
        })
        .expect("websocket")
        .with_behaviour(|key| Forwarder {
            relay: relay::Behaviour::new(key.public().to_peer_id(), relay::Config::default()),
            gossipsub: gossipsub(key),
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/id/1.0.0".to_owned(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
        })
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

#[derive(NetworkBehaviour)]
struct Forger {
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
}

fn forger(keypair: Keypair) -> Swarm<Forger> {
    libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|key| Forger {
            gossipsub: gossipsub(key),
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/id/1.0.0".to_owned(),
                key.public(),
            )),
        })
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Listens on `addr` and returns the address it got.
async fn listen<B: NetworkBehaviour>(swarm: &mut Swarm<B>, addr: &str) -> Multiaddr {
    swarm
        .listen_on(addr.parse().expect("valid"))
        .expect("listen");
    tokio::time::timeout(TIMEOUT, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .expect("a listen address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_never_dials_the_host_and_port_of_a_record_it_was_handed_directly() {
    // The real relay only serves the page here; the page connects to the
    // forwarder instead.
    let page_relay = PageRelay::start(PREFIX, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));

    // A listener the test owns: the host and port a forged record names.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let target_port = target.local_addr().expect("address").port();
    let knocks = Arc::new(AtomicUsize::new(0));
    let counter = knocks.clone();
    tokio::spawn(async move {
        while target.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });

    let mut forwarder = forwarder();
    let forwarder_id = *forwarder.local_peer_id();
    let ws_addr = listen(&mut forwarder, "/ip4/127.0.0.1/tcp/0/ws").await;
    let tcp_addr = listen(&mut forwarder, "/ip4/127.0.0.1/tcp/0").await;
    for topic in topics::ALL {
        forwarder
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(topic))
            .expect("subscribe");
    }

    // The forger's record: a bare host and port, and a circuit through the
    // page's own relay whose host and port are the same target.
    let forger_key = Keypair::generate_ed25519();
    let forger_id = forger_key.public().to_peer_id();
    let bare: Multiaddr = format!("/ip4/127.0.0.1/tcp/{target_port}/ws")
        .parse()
        .expect("valid");
    let forged_circuit = bare
        .clone()
        .with(Protocol::P2p(forwarder_id))
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(forger_id));
    let record = PeerRecord::new(forger_key.public(), vec![bare, forged_circuit])
        .expect("a well-formed record")
        .encode();
    let mut forger = forger(forger_key);
    forger
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(topics::DISCOVERY))
        .expect("subscribe");
    forger
        .dial(tcp_addr.with(Protocol::P2p(forwarder_id)))
        .expect("dial the forwarder");
    let network = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let _ = forger
                        .behaviour_mut()
                        .gossipsub
                        .publish(IdentTopic::new(topics::DISCOVERY), record.clone());
                }
                _ = forwarder.select_next_some() => {}
                _ = forger.select_next_some() => {}
            }
        }
    });

    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let page = Browser::open(&driver, "A").await.expect("browser opens");
    let result = async {
        page.goto(&page_relay.ports.page_url()).await?;
        let relay_addr = ws_addr.with(Protocol::P2p(forwarder_id)).to_string();
        page.fill("#relay-addr", &relay_addr).await?;
        page.click("#connect").await?;
        wait_page(&page, "#status is connected to the forwarder", TIMEOUT, |state| {
            (!state.is_connected()).then(|| "#status is not connected".to_owned())
        })
        .await?;
        let forger_text = forger_id.to_string();
        // The page read the record and acted on it: its dial through the
        // relay fails (the forger holds no reservation there).
        let state = wait_page(
            &page,
            &format!("#peers shows the forger ({forger_id}) as unreachable"),
            TIMEOUT,
            |state: &PageState| {
                let entry = state.peers.iter().find(|peer| peer.peer_id == forger_text);
                match entry.and_then(|peer| peer.state.as_deref()) {
                    Some("unreachable") => None,
                    found => Some(format!("the forger's state is {found:?}")),
                }
            },
        )
        .await?;
        anyhow::ensure!(
            knocks.load(Ordering::SeqCst) == 0,
            "the page connected to 127.0.0.1:{target_port}, the host and port of a forged record ({} connections)\n{state}",
            knocks.load(Ordering::SeqCst)
        );
        println!("the page discovered the forger, did not dial its record's host and port:\n{state}");
        anyhow::Ok(())
    }
    .await;
    network.abort();
    if let Err(error) = result {
        let report = page.save_failure_report(PREFIX).await;
        panic!("{error:#}\n\nartifacts:\n{report}");
    }
    page.close().await.expect("close the browser");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_is_refused_by_a_page_not_opened_for_benchmarking() {
    let relay = PageRelay::start(&format!("{PREFIX}-perf"), &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let driver = ChromeDriver::start(&format!("{PREFIX}-perf"))
        .await
        .expect("chromedriver starts");
    let bench = Browser::open(&driver, "bench")
        .await
        .expect("browser opens");
    let plain = Browser::open(&driver, "plain")
        .await
        .expect("browser opens");
    let result = async {
        let url = relay.ports.page_url();
        bench.goto(&format!("{url}?bench")).await?;
        plain.goto(&url).await?;
        wait_pages(
            &bench,
            &plain,
            "#relay-addr is prefilled",
            TIMEOUT,
            |page| {
                page.relay_addr
                    .trim()
                    .is_empty()
                    .then(|| "#relay-addr is empty".to_owned())
            },
        )
        .await?;
        bench.click("#connect").await?;
        plain.click("#connect").await?;
        let (bench_page, plain_page) =
            wait_pages(&bench, &plain, "#self-peer-id is shown", TIMEOUT, |page| {
                (!page.is_connected() || page.self_peer_id.is_empty())
                    .then(|| "not connected yet".to_owned())
            })
            .await?;
        let (bench_id, plain_id) = (bench_page.self_peer_id, plain_page.self_peer_id);
        for (page, other) in [(&bench, &plain_id), (&plain, &bench_id)] {
            wait_page(
                page,
                &format!("#peers shows {other} as direct"),
                TIMEOUT,
                |state| {
                    let entry = state.peers.iter().find(|peer| &peer.peer_id == other);
                    match entry.and_then(|peer| peer.state.as_deref()) {
                        Some("direct") => None,
                        found => Some(format!("the link state is {found:?}")),
                    }
                },
            )
            .await?;
        }
        // A byte count that is not a whole number is refused, and named
        // (printed by JavaScript: the page carries no float formatting).
        let bad = bench
            .run_async(
                "return await window.chatBench.perf(args[0], 1.5, 1000);",
                vec![plain_id.clone().into()],
            )
            .await;
        match bad {
            Ok(took) => anyhow::bail!("a transfer of 1.5 bytes was made ({took} ms)"),
            Err(error) => anyhow::ensure!(
                format!("{error:#}").contains("1.5 is not a byte count"),
                "a transfer of 1.5 bytes failed, but not for its byte count: {error:#}"
            ),
        }
        // The bench page asks for a transfer once its relayed connection
        // has given way to the direct one.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let refusal = loop {
            let outcome = bench
                .run_async(
                    "return await window.chatBench.perf(args[0], 1000, 1000);",
                    vec![plain_id.clone().into()],
                )
                .await;
            match outcome {
                Ok(took) => {
                    anyhow::bail!("the page without ?bench served a perf transfer ({took} ms)")
                }
                Err(error) if format!("{error:#}").contains("not connected directly only") => {
                    anyhow::ensure!(
                        tokio::time::Instant::now() < deadline,
                        "the relayed connection never closed: {error:#}"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => break format!("{error:#}"),
            }
        };
        println!("perf refused: {refusal}");
        anyhow::ensure!(
            refusal.contains("/perf/1.0.0"),
            "the transfer failed, but not because the page does not speak /perf/1.0.0: {refusal}"
        );
        anyhow::Ok(())
    }
    .await;
    if let Err(error) = result {
        let bench_report = bench.save_failure_report(PREFIX).await;
        let plain_report = plain.save_failure_report(PREFIX).await;
        panic!("{error:#}\n\nartifacts:\n{bench_report}\n{plain_report}");
    }
    bench.close().await.expect("close");
    plain.close().await.expect("close");
}
