//! One attack on the relay, from one host, run until it is stopped
//! (SIGTERM, SIGINT or its standard input closing) or its time limit
//! passes, for `bench/page-abuse.mjs` to time pages during it:
//!
//! - `idle-sockets`: idle TCP connections to each `--target` (the relay's
//!   TCP and WebSocket listeners), reopened as the relay closes them;
//! - `http`: idle and half-sent HTTP requests to the HTTP port, thousands;
//! - `chat-flood`: a peer publishing 4 KiB chat messages as fast as it can;
//! - `stun-flood`: STUN binding requests, far over the relay's budgets.
//!
//! Every socket comes from `--source` (default 127.0.0.2: another host, as
//! far as the relay can tell, while the pages are 127.0.0.1), except the
//! flooding peer's, which libp2p binds itself. Loopback only: a target that
//! is not a loopback address is refused. Prints what it did to standard
//! error when it stops.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use chat_protocol::{MAX_CHAT_MESSAGE_BYTES, topics};
use clap::{Parser, Subcommand};
use futures::StreamExt as _;
use libp2p::{
    Multiaddr,
    gossipsub::{self, IdentTopic},
    noise,
    swarm::SwarmEvent,
    tcp, yamux,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, UdpSocket},
    task::JoinSet,
};

#[derive(Debug, Parser)]
struct Options {
    /// The attacker's source address.
    #[arg(long, default_value = "127.0.0.2")]
    source: Ipv4Addr,
    /// The attack stops by itself after this many seconds.
    #[arg(long, default_value_t = 300)]
    time_limit: u64,
    #[command(subcommand)]
    attack: Attack,
}

#[derive(Debug, Subcommand)]
enum Attack {
    /// Idle TCP connections, `count` to each target.
    IdleSockets {
        #[arg(long = "target", required = true)]
        targets: Vec<SocketAddr>,
        #[arg(long, default_value_t = 256)]
        count: usize,
    },
    /// `count` idle and `count` half-sent HTTP requests.
    Http {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
    /// A peer that publishes 4 KiB chat messages as fast as it can.
    ChatFlood {
        /// The relay's TCP multiaddr.
        #[arg(long)]
        relay: Multiaddr,
    },
    /// STUN binding requests, `per_second` of them.
    StunFlood {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
        per_second: u64,
    },
}

/// Pause before an attacker socket the relay closed is reopened (as in
/// relay/tests/abuse.rs: the slots stay held, with fewer refusals a second).
const REOPEN_PAUSE: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() {
    bench::init_tracing();
    let options = Options::parse();
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let attack = run(&options, counters.clone());
    let outcome = tokio::select! {
        outcome = attack => outcome,
        () = stopped(Duration::from_secs(options.time_limit)) => Ok(()),
    };
    eprintln!(
        "abuse-attack {}: {} in {:.1} s",
        options.attack.name(),
        counters.summary(),
        started.elapsed().as_secs_f64()
    );
    // Exit here: returning would drop the runtime, which waits for the
    // blocking read of standard input to end (it may never).
    match outcome {
        Ok(()) => std::process::exit(0),
        Err(error) => {
            eprintln!("abuse-attack: error: {error:#}");
            std::process::exit(1)
        }
    }
}

/// Resolves on SIGTERM, SIGINT, standard input closing, or the time limit.
async fn stopped(limit: Duration) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        () = stdin_closed => {}
        () = tokio::time::sleep(limit) => {}
    }
}

impl Attack {
    fn name(&self) -> &'static str {
        match self {
            Self::IdleSockets { .. } => "idle-sockets",
            Self::Http { .. } => "http",
            Self::ChatFlood { .. } => "chat-flood",
            Self::StunFlood { .. } => "stun-flood",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    opened: AtomicU64,
    closed_by_relay: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
}

impl Counters {
    fn summary(&self) -> String {
        format!(
            "{} sockets opened, {} closed by the relay, {} failed to open; {} messages or packets sent",
            self.opened.load(Ordering::Relaxed),
            self.closed_by_relay.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed)
        )
    }
}

async fn run(options: &Options, counters: Arc<Counters>) -> anyhow::Result<()> {
    let source = options.source;
    match &options.attack {
        Attack::IdleSockets { targets, count } => {
            let mut tasks = JoinSet::new();
            for target in targets {
                loopback_only(target.ip())?;
                hold_sockets(source, *target, *count, b"", &counters, &mut tasks);
            }
            while tasks.join_next().await.is_some() {}
            Ok(())
        }
        Attack::Http { target, count } => {
            loopback_only(target.ip())?;
            let mut tasks = JoinSet::new();
            hold_sockets(source, *target, *count, b"", &counters, &mut tasks);
            hold_sockets(
                source,
                *target,
                *count,
                b"GET / HTTP/1.1\r\nHost: x\r\n",
                &counters,
                &mut tasks,
            );
            while tasks.join_next().await.is_some() {}
            Ok(())
        }
        Attack::ChatFlood { relay } => chat_flood(relay, &counters).await,
        Attack::StunFlood { target, per_second } => {
            loopback_only(target.ip())?;
            stun_flood(source, *target, *per_second, &counters).await
        }
    }
}

fn loopback_only(ip: IpAddr) -> anyhow::Result<()> {
    anyhow::ensure!(ip.is_loopback(), "{ip} is not a loopback address");
    Ok(())
}

/// `count` sockets from `source` to `target`, each sending `payload` and
/// then nothing, reopened (after [`REOPEN_PAUSE`]) when the relay closes
/// them.
fn hold_sockets(
    source: Ipv4Addr,
    target: SocketAddr,
    count: usize,
    payload: &'static [u8],
    counters: &Arc<Counters>,
    tasks: &mut JoinSet<()>,
) {
    for _ in 0..count {
        let counters = counters.clone();
        tasks.spawn(async move {
            loop {
                let opened = async {
                    let socket = TcpSocket::new_v4()?;
                    socket.bind((source, 0).into())?;
                    tokio::time::timeout(Duration::from_secs(5), socket.connect(target))
                        .await
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
                };
                match opened.await {
                    Ok(mut stream) => {
                        counters.opened.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.write_all(payload).await;
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                        counters.closed_by_relay.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(REOPEN_PAUSE).await;
            }
        });
    }
}

#[derive(libp2p::swarm::NetworkBehaviour)]
struct FloodBehaviour {
    gossipsub: gossipsub::Behaviour,
}

/// Connects to the relay, joins the chat topic, and publishes 4 KiB
/// messages back to back, polling the swarm between them.
async fn chat_flood(relay: &Multiaddr, counters: &Counters) -> anyhow::Result<()> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            Ok(FloodBehaviour {
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    gossipsub::Config::default(),
                )?,
            })
        })?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let topic = IdentTopic::new(topics::CHAT);
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    swarm.dial(relay.clone()).context("dial the relay")?;
    // Until the relay has subscribed, a publish has no one to go to.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let SwarmEvent::Behaviour(FloodBehaviourEvent::Gossipsub(
                gossipsub::Event::Subscribed { .. },
            )) = swarm.select_next_some().await
            {
                return;
            }
        }
    })
    .await
    .context("the relay did not join the chat topic within 30 s")?;
    let mut n = 0u64;
    loop {
        // Publish whenever the swarm has nothing else to do.
        tokio::select! {
            biased;
            _ = swarm.select_next_some() => {}
            () = tokio::task::yield_now() => {
                let mut text = format!("flood {n:08} ").into_bytes();
                text.resize(MAX_CHAT_MESSAGE_BYTES, b'x');
                if swarm.behaviour_mut().gossipsub.publish(topic.clone(), text).is_ok() {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        }
    }
}

/// Binding requests (20 bytes, a fresh transaction id each) at
/// `per_second`, in bursts every 10 ms.
async fn stun_flood(
    source: Ipv4Addr,
    target: SocketAddr,
    per_second: u64,
    counters: &Counters,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind((source, 0)).await?;
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    let mut n = 0u64;
    loop {
        ticks.tick().await;
        for _ in 0..per_second.div_ceil(100) {
            let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
            request.extend_from_slice(&n.to_be_bytes());
            request.extend_from_slice(&[0; 4]);
            if socket.send_to(&request, target).await.is_ok() {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            n += 1;
        }
    }
}
