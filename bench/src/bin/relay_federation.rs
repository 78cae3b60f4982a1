//! The federation part of `scripts/bench`: how long from two native peers
//! starting to connect until one's chat message reaches the other, with
//! both on one relay (the reference) and with each on its own relay of a
//! two-relay federation (the message crosses from one relay to the other).
//! The median of `--samples` runs each, and their ratio. The peers speak
//! what the native peer speaks to its relay (TCP, noise, yamux,
//! gossipsub on the chat topic); the sender publishes every 50 ms until
//! the message arrives (gossipsub sends nothing before it knows the
//! receiver's subscription).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use bench::{
    relay_process::{RelayProcess, relay_binary},
    report::{Row, Value},
    stats::median,
};
use chat_protocol::{ChatMessage, topics};
use clap::Parser;
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, Swarm,
    gossipsub::{self, IdentTopic},
    identity::Keypair,
    noise,
    swarm::SwarmEvent,
    tcp, yamux,
};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(
    name = "relay-federation",
    about = "Connect to first chat message: two federated relays against one"
)]
struct Options {
    /// The relay binary (default: next to this one).
    #[arg(long)]
    relay: Option<PathBuf>,
    /// Runs of each setup.
    #[arg(long, default_value_t = 7)]
    samples: usize,
}

/// A run that takes longer has failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// The relays' identities (`--secret-key-seed`), for the federation file.
const SEEDS: [u8; 2] = [91, 92];

fn seeded(seed: u8) -> PeerId {
    let mut secret = [0u8; 32];
    secret[0] = seed;
    Keypair::ed25519_from_bytes(secret)
        .expect("32 bytes are a valid ed25519 secret")
        .public()
        .to_peer_id()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    bench::init_tracing();
    bench::exit_code("relay-federation", run(Options::parse()).await)
}

async fn run(options: Options) -> anyhow::Result<()> {
    let binary = relay_binary(options.relay.as_deref())?;
    let dir = tempfile::tempdir().context("temp dir")?;
    let members = dir.path().join("federation");
    std::fs::write(
        &members,
        format!("{}\n{}\n", seeded(SEEDS[0]), seeded(SEEDS[1])),
    )
    .context("write the federation file")?;
    let flags = |seed: u8| {
        vec![
            format!("--secret-key-seed={seed}"),
            format!("--federation-peers={}", members.display()),
        ]
    };
    let first = RelayProcess::start(
        &binary,
        &flags(SEEDS[0]),
        &PathBuf::from("artifacts/bench-federation-relay-1.log"),
    )
    .await?;
    let mut second_flags = flags(SEEDS[1]);
    second_flags.push(format!("--federate={}", first.tcp_addr));
    let second = RelayProcess::start(
        &binary,
        &second_flags,
        &PathBuf::from("artifacts/bench-federation-relay-2.log"),
    )
    .await?;
    // The second relay dials the first at once; give the link a moment so
    // that the first sample does not time the federation's own start.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut across = Vec::new();
    let mut one = Vec::new();
    for _ in 0..options.samples {
        one.push(first_message(&first.tcp_addr, &first.tcp_addr).await?);
        across.push(first_message(&first.tcp_addr, &second.tcp_addr).await?);
    }
    let across = median(&across).context("no sample")?;
    let one = median(&one).context("no sample")?;
    Row::new(
        format!(
            "federation: connect to first chat message, peers on two federated relays / on one (median of {})",
            options.samples
        ),
        Value::new(across * 1000.0, "ms"),
        Value::new(one * 1000.0, "ms"),
    )
    .print();
    second.stop().await;
    first.stop().await;
    Ok(())
}

fn peer() -> anyhow::Result<Swarm<gossipsub::Behaviour>> {
    let key = Keypair::generate_ed25519();
    let mut gossipsub = chat_protocol::gossip::peer_behaviour(&key)?;
    gossipsub.subscribe(&IdentTopic::new(topics::CHAT))?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| gossipsub)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(swarm)
}

/// Seconds from both peers dialing (`sender` on `from`, receiver on `to`)
/// until the receiver has the sender's chat message.
async fn first_message(from: &Multiaddr, to: &Multiaddr) -> anyhow::Result<f64> {
    let mut sender = peer()?;
    let mut receiver = peer()?;
    let sender_id = *sender.local_peer_id();
    let text = format!("first message from {sender_id}");
    let started = Instant::now();
    sender.dial(from.clone())?;
    receiver.dial(to.clone())?;
    let topic = IdentTopic::new(topics::CHAT);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let deadline = tokio::time::sleep(RUN_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => bail!("no chat message arrived within {RUN_TIMEOUT:?}"),
            _ = tick.tick() => {
                let message = ChatMessage::new(text.clone())?.into_bytes();
                // Before the relay's subscription is known: nobody to send to.
                let _ = sender.behaviour_mut().publish(topic.clone(), message);
            }
            _ = sender.select_next_some() => {}
            event = receiver.select_next_some() => {
                if let SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) = event
                    && message.source == Some(sender_id)
                {
                    return Ok(started.elapsed().as_secs_f64());
                }
            }
        }
    }
}
