//! The relay under abuse: how long a native peer takes to connect and
//! reserve while one host holds idle sockets on the relay's TCP listener,
//! against the same without the attack; and a churn soak, rounds of peers
//! joining (connect, reserve) and leaving, with the relay's memory after
//! the last round against after the first.
//!
//! The attacker is 127.0.0.2 (another host, as far as the relay can tell);
//! the peers are 127.0.0.1. Prints rows for `scripts/bench`; asserts no
//! time.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bench::{
    relay_process::{RelayProcess, relay_binary},
    report::{Row, Value},
    stats::median,
};
use clap::Parser;
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, Swarm,
    multiaddr::Protocol,
    noise, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use tokio::{io::AsyncReadExt as _, net::TcpSocket, sync::watch, task::JoinSet};

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
struct Options {
    /// The relay binary (default: the one built beside this one).
    #[arg(long)]
    relay: Option<PathBuf>,
    /// Peers timed with and without the attack (one after another).
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Idle sockets the attacker keeps open (2 x the relay's default
    /// --max-pending-connections).
    #[arg(long, default_value_t = 256)]
    idle_sockets: usize,
    /// Churn rounds.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Peers joining and leaving in each round.
    #[arg(long, default_value_t = 20)]
    peers_per_round: usize,
}

#[derive(NetworkBehaviour)]
struct PeerBehaviour {
    relay_client: relay::client::Behaviour,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    bench::init_tracing();
    bench::exit_code("relay-abuse", run(Options::parse()).await)
}

async fn run(options: Options) -> anyhow::Result<()> {
    let binary = relay_binary(options.relay.as_deref())?;
    let log = PathBuf::from("artifacts/bench-abuse-relay.log");
    let relay = RelayProcess::start(&binary, &[], &log).await?;
    let addr = relay.tcp_addr.clone();

    let quiet = time_reservations(&addr, options.samples).await?;
    let (stop_tx, stop) = watch::channel(false);
    let mut attack = JoinSet::new();
    hold_idle_sockets(
        tcp_socket_addr(&addr)?,
        options.idle_sockets,
        &stop,
        &mut attack,
    );
    // Let the attack fill what it can before timing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attacked = time_reservations(&addr, options.samples).await;
    let _ = stop_tx.send(true);
    while attack.join_next().await.is_some() {}
    let attacked = attacked?;
    Row::new(
        format!(
            "connect + reserve (median of {}) with {} idle sockets from one host / without",
            options.samples, options.idle_sockets
        ),
        Value::new(attacked * 1000.0, "ms"),
        Value::new(quiet * 1000.0, "ms"),
    )
    .print();

    relay.stop().await;

    // The churn soak measures what joining and leaving leaves behind, not
    // the per-address policy: its peers all come from 127.0.0.1, so the
    // per-IP bounds are lifted for it.
    let relay = RelayProcess::start(
        &binary,
        &[
            "--reservation-rate-per-ip=1000000".to_owned(),
            "--max-reservations-per-ip=100000".to_owned(),
            "--max-connections-per-ip=100000".to_owned(),
            "--max-pending-per-ip=100000".to_owned(),
        ],
        &log,
    )
    .await?;
    let addr = relay.tcp_addr.clone();
    let mut first_round_rss = None;
    for round in 1..=options.rounds {
        churn_round(&addr, options.peers_per_round)
            .await
            .with_context(|| format!("churn round {round}"))?;
        // Let the relay notice the departures before reading its memory.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = relay.rss_bytes()? as f64 / 1024.0 / 1024.0;
        tracing::info!(round, rss_mib = rss, "churn round done");
        if round == 1 {
            first_round_rss = Some(rss);
        }
        if round == options.rounds {
            Row::new(
                format!(
                    "relay RSS after churn round {round} / after round 1 ({} peers joining and leaving each)",
                    options.peers_per_round
                ),
                Value::new(rss, "MiB"),
                Value::new(first_round_rss.unwrap_or(rss), "MiB"),
            )
            .print();
        }
    }
    relay.stop().await;
    Ok(())
}

fn tcp_socket_addr(addr: &Multiaddr) -> anyhow::Result<SocketAddr> {
    let mut parts = addr.iter();
    match (parts.next(), parts.next()) {
        (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) => Ok((ip, port).into()),
        _ => anyhow::bail!("{addr} is not a TCP address"),
    }
}

/// The median time, in seconds, for `samples` fresh peers (one after
/// another, from 127.0.0.1: fewer than the relay's 30 reservations a
/// minute per IP in all) to connect to `addr` and reserve.
async fn time_reservations(addr: &Multiaddr, samples: usize) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let swarm = connect_and_reserve(addr).await?;
        times.push(started.elapsed().as_secs_f64());
        drop(swarm);
    }
    median(&times).context("no samples")
}

/// `count` peers connect and reserve at once, then all leave.
async fn churn_round(addr: &Multiaddr, count: usize) -> anyhow::Result<()> {
    let mut joins = JoinSet::new();
    for _ in 0..count {
        let addr = addr.clone();
        joins.spawn(async move { connect_and_reserve(&addr).await });
    }
    let mut swarms = Vec::with_capacity(count);
    while let Some(joined) = joins.join_next().await {
        swarms.push(joined??);
    }
    drop(swarms);
    Ok(())
}

/// A fresh peer connects to `addr` and reserves.
async fn connect_and_reserve(addr: &Multiaddr) -> anyhow::Result<Swarm<PeerBehaviour>> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|_, relay_client| PeerBehaviour { relay_client })?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.listen_on(addr.clone().with(Protocol::P2pCircuit))?;
    tokio::time::timeout(SETUP_TIMEOUT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(PeerBehaviourEvent::RelayClient(
                    relay::client::Event::ReservationReqAccepted { .. },
                )) => return Ok(()),
                SwarmEvent::ListenerClosed {
                    reason: Err(error), ..
                } => anyhow::bail!("reservation refused: {error}"),
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("no reservation within {SETUP_TIMEOUT:?}"))??;
    Ok(swarm)
}

/// Keeps `count` idle sockets from [`ATTACKER`] open to `target`,
/// reopening each as the relay closes it, until `stop` turns true.
fn hold_idle_sockets(
    target: SocketAddr,
    count: usize,
    stop: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) {
    for _ in 0..count {
        let mut stop = stop.clone();
        tasks.spawn(async move {
            while !*stop.borrow() {
                let opened = async {
                    let socket = TcpSocket::new_v4()?;
                    socket.bind((ATTACKER, 0).into())?;
                    socket.connect(target).await
                };
                if let Ok(mut stream) = opened.await {
                    let mut buf = [0u8; 256];
                    tokio::select! {
                        _ = async { while let Ok(n) = stream.read(&mut buf).await { if n == 0 { break } } } => {}
                        _ = stop.changed() => break,
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.changed() => break,
                }
            }
        });
    }
}
