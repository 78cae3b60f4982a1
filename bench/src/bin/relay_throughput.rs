//! relay-throughput: bulk transfer through a relay circuit, against a
//! direct libp2p TCP connection and a plain TCP copy on loopback, the same
//! bytes in the same run.
//!
//! The libp2p paths use the perf protocol (`/perf/1.0.0`) on a stream:
//! through the relay, the bytes cross the circuit inside the peers' own
//! noise + yamux session, which itself rides a yamux stream of each peer's
//! noise-encrypted connection to the relay (so the relay decrypts and
//! re-encrypts every byte). The relay runs as its own process (one tokio
//! worker thread), its circuit limits raised for the run, and its CPU time
//! per GB relayed is read from `/proc`.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use bench::{
    relay_process::{RelayProcess, relay_binary},
    report::{Row, Value},
    stats::median,
};
use chat_protocol::perf;
use clap::Parser;
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, Swarm,
    multiaddr::Protocol,
    noise, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    time::Instant,
};

/// Bound on any one setup step (a dial, a reservation).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(
    name = "relay-throughput",
    about = "Relayed throughput against direct paths"
)]
struct Options {
    /// Megabytes (10^6 bytes) per transfer.
    #[arg(long, default_value_t = 256)]
    megabytes: u64,
    /// Transfers per path; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Bound on one transfer, seconds.
    #[arg(long, default_value_t = 120)]
    transfer_timeout: u64,
    /// The relay binary (default: `relay` next to this one).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Where the relay's log goes.
    #[arg(long, default_value = "artifacts")]
    log_dir: PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    bench::init_tracing();
    bench::exit_code("relay-throughput", run(Options::parse()).await)
}

async fn run(options: Options) -> anyhow::Result<()> {
    let bytes = options.megabytes * 1_000_000;
    let timeout = Duration::from_secs(options.transfer_timeout);
    let relay_bin = relay_binary(options.relay_bin.as_deref())?;
    std::fs::create_dir_all(&options.log_dir)
        .with_context(|| format!("cannot create {}", options.log_dir.display()))?;

    let plain = repeat(options.repeats, bytes, || plain_tcp_copy(bytes), timeout).await?;
    tracing::info!(mb_per_s = plain, "plain TCP copy");

    let (server, client) = direct_pair().await?;
    let direct = repeat(
        options.repeats,
        bytes,
        || client.download(server, bytes),
        timeout,
    )
    .await?;
    tracing::info!(mb_per_s = direct, "direct libp2p TCP");

    let log = options.log_dir.join("bench-relay-throughput.log");
    let relay = RelayProcess::start(&relay_bin, &circuit_limits(), &log).await?;
    let (server, client) = relayed_pair(&relay).await?;
    let cpu_before = relay.cpu_time()?;
    let relayed = repeat(
        options.repeats,
        bytes,
        || client.download(server, bytes),
        timeout,
    )
    .await?;
    let relay_cpu = relay.cpu_time()?.saturating_sub(cpu_before);
    relay.stop().await;
    tracing::info!(mb_per_s = relayed, ?relay_cpu, "relayed");

    let gigabytes_relayed = (bytes * options.repeats as u64) as f64 / 1e9;
    let mbps = |value: f64| Value::new(value, "MB/s");
    let size = format!("{} MB", options.megabytes);
    Row::new(
        format!("throughput {size}: direct libp2p TCP / plain TCP copy"),
        mbps(direct),
        mbps(plain),
    )
    .print();
    Row::new(
        format!("throughput {size}: relayed circuit / plain TCP copy"),
        mbps(relayed),
        mbps(plain),
    )
    .print();
    Row::new(
        format!("throughput {size}: relayed circuit / direct libp2p TCP"),
        mbps(relayed),
        mbps(direct),
    )
    .print();
    Row::new(
        "relay CPU per GB relayed (one core)",
        Value::new(relay_cpu.as_secs_f64() / gigabytes_relayed, "s/GB"),
        Value::missing("none"),
    )
    .print();
    Ok(())
}

/// Runs `transfer` `count` times (each bounded by `timeout`) and returns
/// the median throughput in MB/s.
async fn repeat<F, Fut>(
    count: usize,
    bytes: u64,
    mut transfer: F,
    timeout: Duration,
) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let mut rates = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let took = tokio::time::timeout(timeout, transfer())
            .await
            .map_err(|_| anyhow::anyhow!("a transfer took longer than {timeout:?}"))??;
        rates.push(bytes as f64 / 1e6 / took.as_secs_f64());
    }
    Ok(median(&rates).unwrap_or(0.0))
}

/// The physical reference: one TCP connection on loopback, the server
/// writing `bytes` in the same chunks as perf, the client reading to EOF.
async fn plain_tcp_copy(bytes: u64) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let chunk = vec![0u8; perf::CHUNK];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(perf::CHUNK as u64) as usize;
            socket.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        socket.shutdown().await?;
        anyhow::Ok(())
    });
    let started = Instant::now();
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let mut buffer = vec![0u8; perf::CHUNK];
    let mut received = 0u64;
    loop {
        match socket.read(&mut buffer).await? {
            0 => break,
            n => received += n as u64,
        }
    }
    let took = started.elapsed();
    server.await??;
    if received != bytes {
        bail!("plain TCP: expected {bytes} bytes, received {received}");
    }
    Ok(took)
}

/// Relay limits for the run: circuits that outlast and outcarry the
/// transfers.
fn circuit_limits() -> Vec<String> {
    vec![
        format!("--max-circuit-bytes={}", u64::MAX / 2),
        "--max-circuit-duration=3600".to_owned(),
    ]
}

#[derive(NetworkBehaviour)]
struct PerfBehaviour {
    relay_client: relay::client::Behaviour,
    stream: libp2p_stream::Behaviour,
}

/// The downloading side: a stream control of a swarm running in the
/// background.
struct PerfClient {
    control: libp2p_stream::Control,
}

impl PerfClient {
    async fn download(&self, server: PeerId, bytes: u64) -> anyhow::Result<Duration> {
        let mut control = self.control.clone();
        let stream = control
            .open_stream(server, perf::PROTOCOL)
            .await
            .context("open a perf stream")?;
        Ok(perf::download(stream, bytes).await?)
    }
}

fn perf_swarm() -> anyhow::Result<Swarm<PerfBehaviour>> {
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|_, relay_client| PerfBehaviour {
            relay_client,
            stream: libp2p_stream::Behaviour::new(),
        })?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(300)))
        .build())
}

/// Polls `swarm` until `pick` returns a value, for at most [`SETUP_TIMEOUT`].
async fn wait_for<T>(
    swarm: &mut Swarm<PerfBehaviour>,
    what: &str,
    mut pick: impl FnMut(SwarmEvent<PerfBehaviourEvent>) -> Option<anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(SETUP_TIMEOUT, async {
        loop {
            if let Some(result) = pick(swarm.select_next_some().await) {
                return result;
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("timed out after {SETUP_TIMEOUT:?} waiting for {what}"))?
}

/// Serves perf on `swarm`'s incoming streams and drives it in the background.
fn spawn_server(swarm: Swarm<PerfBehaviour>) -> anyhow::Result<PeerId> {
    let peer_id = *swarm.local_peer_id();
    let mut incoming = swarm
        .behaviour()
        .stream
        .new_control()
        .accept(perf::PROTOCOL)
        .context("perf protocol registered twice")?;
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            tokio::spawn(async move {
                if let Err(error) = perf::serve(stream, perf::Limits::UNLIMITED).await {
                    tracing::warn!(%peer, %error, "perf server stream failed");
                }
            });
        }
    });
    spawn_driver(swarm);
    Ok(peer_id)
}

fn spawn_driver(mut swarm: Swarm<PerfBehaviour>) {
    tokio::spawn(async move {
        loop {
            let event = swarm.select_next_some().await;
            tracing::debug!(?event, "perf peer event");
        }
    });
}

/// Dials `addr` from a new client swarm, waits for the connection to
/// `server`, and leaves the swarm running.
async fn connect_client(addr: Multiaddr, server: PeerId) -> anyhow::Result<PerfClient> {
    let mut swarm = perf_swarm()?;
    swarm
        .dial(addr.clone())
        .with_context(|| format!("dial {addr}"))?;
    wait_for(
        &mut swarm,
        "the connection to the perf server",
        |event| match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == server => Some(Ok(())),
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                Some(Err(anyhow::anyhow!("dial {addr} failed: {error}")))
            }
            _ => None,
        },
    )
    .await?;
    let control = swarm.behaviour().stream.new_control();
    spawn_driver(swarm);
    Ok(PerfClient { control })
}

async fn direct_pair() -> anyhow::Result<(PeerId, PerfClient)> {
    let mut server = perf_swarm()?;
    server.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr = wait_for(&mut server, "a listen address", |event| match event {
        SwarmEvent::NewListenAddr { address, .. } => Some(Ok(address)),
        _ => None,
    })
    .await?;
    let server_id = spawn_server(server)?;
    let client = connect_client(addr.with(Protocol::P2p(server_id)), server_id).await?;
    Ok((server_id, client))
}

async fn relayed_pair(relay: &RelayProcess) -> anyhow::Result<(PeerId, PerfClient)> {
    let mut server = perf_swarm()?;
    let circuit = relay.tcp_addr.clone().with(Protocol::P2pCircuit);
    server.listen_on(circuit.clone())?;
    wait_for(&mut server, "the reservation", |event| match event {
        SwarmEvent::Behaviour(PerfBehaviourEvent::RelayClient(
            relay::client::Event::ReservationReqAccepted { .. },
        )) => Some(Ok(())),
        SwarmEvent::ListenerClosed {
            reason: Err(error), ..
        } => Some(Err(anyhow::anyhow!("reservation refused: {error}"))),
        _ => None,
    })
    .await?;
    let server_id = spawn_server(server)?;
    let client = connect_client(circuit.with(Protocol::P2p(server_id)), server_id).await?;
    Ok((server_id, client))
}
