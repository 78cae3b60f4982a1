//! relay-load: how many peers the relay holds, and at what cost.
//!
//! It starts the relay binary as a child (one tokio worker thread: one
//! core) and opens native libp2p peers against it on loopback, many per
//! process, ramping through `--peers` (e.g. 1000,5000,10000). Each peer
//! dials the relay, holds a reservation and announces its signed discovery
//! record once per round. After each step it reports the relay's resident
//! memory per peer, its CPU time per announce delivered, the reservation
//! latency (p50, p99) and how many announces the subscribers received of
//! those they should have.
//!
//! Each load peer is a full rust-libp2p swarm (TCP + noise + yamux, relay
//! client, gossipsub, identify), the same stack as `chat-peer`, not a
//! hand-rolled client: the relay then does exactly the work it does for
//! real peers, at the price of a heavier load generator (its own memory per
//! peer is reported too).
//!
//! Only `--subscribers` peers subscribe to the discovery topic; the others
//! publish to it without subscribing. With every peer subscribed, N peers
//! announcing make N² deliveries, each a signature the receiving peer
//! checks: at N = 10,000 that is the load generator's CPU, not the
//! relay's, that runs out on a 2-core machine. The relay's cost per
//! delivery is the same either way.
//!
//! The reference: the same peers against the relay with its default limits
//! and with rust-libp2p's default relay configuration (128 reservations,
//! 60 per minute per IP), all from one IP address, to show what the
//! defaults let through.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use bench::{
    load::{Load, RESERVATION_TIMEOUT, Ramp, raised_limits},
    relay_process::{RelayProcess, open_files_limit, relay_binary, rss_bytes},
    report::{Row, Value},
    stats::percentile,
};
use clap::Parser;
use tokio::time::Instant;

/// After a ramp, time for the last subscriptions and grafts to reach the
/// relay before memory is read and announces start.
const SETTLE: Duration = Duration::from_secs(3);
/// Sockets this process needs besides the peers' (runtime, files, relay).
const SPARE_FILES: u64 = 256;
/// The memory target of the issue: 10,000 peers in 1 GiB.
const TARGET_BYTES_PER_PEER: f64 = (1u64 << 30) as f64 / 10_000.0;

#[derive(Debug, Parser)]
#[command(
    name = "relay-load",
    about = "Relay capacity: memory, CPU and latency per peer"
)]
struct Options {
    /// Peer counts to ramp through, in order (each step adds peers to the
    /// ones already there).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    peers: Vec<usize>,
    /// Seconds for the whole run; a step still ramping then is reported as
    /// far as it got, and later steps are skipped.
    #[arg(long, default_value_t = 360)]
    time_limit: u64,
    /// Load peers subscribed to the discovery topic, which count what they
    /// receive.
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Dials (up to an accepted reservation) in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrent_dials: usize,
    /// A round's announces are spread evenly over this many seconds. The
    /// default is the page's announce period (20 s), so N peers make the
    /// relay the N / 20 announces a second it would see for real.
    #[arg(long, default_value_t = 20)]
    announce_window: u64,
    /// Peers opened against each reference relay (default limits).
    #[arg(long, default_value_t = 200)]
    reference_peers: usize,
    /// The relay binary (default: `relay` next to this one).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Where the relays' logs go.
    #[arg(long, default_value = "artifacts")]
    log_dir: PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    bench::init_tracing();
    bench::exit_code("relay-load", run(Options::parse()).await)
}

async fn run(options: Options) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(options.time_limit);
    let relay_bin = relay_binary(options.relay_bin.as_deref())?;
    std::fs::create_dir_all(&options.log_dir)
        .with_context(|| format!("cannot create {}", options.log_dir.display()))?;

    // Each peer holds one socket here and one in the relay, which inherits
    // this limit.
    let open_files = open_files_limit()?;
    let most_peers = open_files.saturating_sub(SPARE_FILES) as usize;
    let steps: Vec<usize> = options
        .peers
        .iter()
        .copied()
        .filter(|&n| n <= most_peers)
        .collect();
    if steps.len() < options.peers.len() {
        tracing::warn!(
            open_files,
            most_peers,
            "ulimit -n is too low for some steps: raise it (ulimit -n) to run them"
        );
    }
    tracing::info!(open_files, ?steps, "open-file limit (ulimit -n)");
    Row::new(
        "open-file limit (ulimit -n) / peers it allows",
        Value::new(open_files as f64, "files"),
        Value::new(most_peers as f64, "peers"),
    )
    .print();

    // References first: they are short, and show what the defaults allow.
    let reference_peers = options.reference_peers.min(most_peers);
    let ours_default =
        reference_run("relay-defaults", &relay_bin, &[], reference_peers, &options).await?;
    let libp2p_default = reference_run(
        "rust-libp2p-defaults",
        &relay_bin,
        &rust_libp2p_default_limits(),
        reference_peers,
        &options,
    )
    .await?;
    Row::new(
        format!("reservations held of {reference_peers} asked from one IP: relay defaults vs rust-libp2p defaults"),
        Value::new(ours_default.accepted as f64, "peers"),
        Value::new(libp2p_default.accepted as f64, "peers"),
    )
    .print();

    let Some(&largest) = steps.iter().max() else {
        anyhow::bail!("no step fits the open-file limit {open_files}");
    };
    let mut load = start_load(
        "raised-limits",
        &relay_bin,
        &raised_limits(largest),
        &options,
    )
    .await?;
    let baseline_rss = load.relays[0].rss_bytes()?;
    let own_baseline_rss = rss_bytes(std::process::id())?;
    for &step in &steps {
        if Instant::now() >= deadline {
            tracing::warn!(step, "time limit reached: step skipped");
            break;
        }
        tracing::info!(step, "ramping");
        let ramp = load.grow_to(step, deadline).await;
        tokio::time::sleep(SETTLE).await;
        let held = load.accepted;
        let rss = load.relays[0].rss_bytes()?;
        let own_rss = rss_bytes(std::process::id())?;
        let round = load
            .announce_round(Duration::from_secs(options.announce_window))
            .await?;
        tracing::info!(
            step,
            held,
            refused = ramp.refused,
            timed_out = ramp.timed_out,
            not_started = ramp.not_started,
            first_refusal = ?ramp.first_refusal,
            ?round,
            rss,
            "step done"
        );

        let label = |what: &str| format!("{what}, N={step}");
        Row::new(
            label("reservations held (raised limits) / peers asked"),
            Value::new(held as f64, "peers"),
            Value::new(step as f64, "peers"),
        )
        .print();
        let per_peer = |bytes: u64, base: u64| {
            if held == 0 {
                Value::missing("no peer held")
            } else {
                Value::new(
                    bytes.saturating_sub(base) as f64 / held as f64 / 1024.0,
                    "KiB",
                )
            }
        };
        Row::new(
            label("relay RSS per peer / target (1 GiB per 10,000)"),
            per_peer(rss, baseline_rss),
            Value::new(TARGET_BYTES_PER_PEER / 1024.0, "KiB"),
        )
        .print();
        Row::new(
            label("relay RSS total / 1 GiB"),
            Value::new(rss as f64 / (1 << 20) as f64, "MiB"),
            Value::new(1024.0, "MiB"),
        )
        .print();
        Row::new(
            label("load generator RSS per peer (a full swarm each)"),
            per_peer(own_rss, own_baseline_rss),
            Value::missing("none"),
        )
        .print();
        let latency = |samples: &[Duration], p: f64| match percentile(samples, p) {
            Some(value) => Value::new(value.as_secs_f64() * 1000.0, "ms"),
            None => Value::missing("no reservation"),
        };
        Row::new(
            label("reservation latency p50 / same with relay defaults"),
            latency(&ramp.latencies, 50.0),
            latency(&ours_default.latencies, 50.0),
        )
        .print();
        Row::new(
            label("reservation latency p99 / same with relay defaults"),
            latency(&ramp.latencies, 99.0),
            latency(&ours_default.latencies, 99.0),
        )
        .print();
        Row::new(
            label(&format!(
                "announces delivered to the {} subscribers / expected",
                load.live_subscribers
            )),
            Value::new(round.delivered as f64, "msgs"),
            Value::new(round.expected as f64, "msgs"),
        )
        .print();
        if round.failed > 0 {
            tracing::warn!(
                step,
                failed = round.failed,
                "some announces could not be published"
            );
        }
        Row::new(
            label("announces published / peers holding a reservation"),
            Value::new(round.announced as f64, "msgs"),
            Value::new(held as f64, "msgs"),
        )
        .print();
        Row::new(
            label("relay CPU per announce delivered"),
            if round.delivered == 0 {
                Value::missing("none delivered")
            } else {
                Value::new(
                    round.total_cpu().as_secs_f64() * 1e6 / round.delivered as f64,
                    "µs",
                )
            },
            Value::missing("none"),
        )
        .print();
    }
    load.stop().await;
    Ok(())
}

/// rust-libp2p's `relay::Config::default()` in the relay's flags: 128
/// reservations, 4 per peer, 60 per minute per IP; its example relay has no
/// connection limits, so ours are lifted.
fn rust_libp2p_default_limits() -> Vec<String> {
    let unlimited = 1_000_000;
    vec![
        "--max-reservations=128".to_owned(),
        "--max-reservations-per-peer=4".to_owned(),
        "--reservation-rate-per-ip=60".to_owned(),
        format!("--max-reservations-per-ip={unlimited}"),
        "--max-circuits=16".to_owned(),
        "--max-circuits-per-peer=4".to_owned(),
        "--max-circuit-bytes=131072".to_owned(),
        format!("--max-connections={unlimited}"),
        format!("--max-connections-per-ip={unlimited}"),
        format!("--max-pending-connections={unlimited}"),
        format!("--max-pending-per-ip={unlimited}"),
        // rust-libp2p's relay example has no gossip budget.
        format!("--discovery-rate-per-peer={unlimited}"),
        format!("--discovery-rate-per-ip={unlimited}"),
    ]
}

async fn reference_run(
    name: &str,
    relay_bin: &std::path::Path,
    limits: &[String],
    peers: usize,
    options: &Options,
) -> anyhow::Result<Ramp> {
    tracing::info!(name, peers, "reference run");
    let mut load = start_load(name, relay_bin, limits, options).await?;
    let deadline = Instant::now() + RESERVATION_TIMEOUT * 2;
    let ramp = load.grow_to(peers, deadline).await;
    tracing::info!(
        name,
        accepted = ramp.accepted,
        refused = ramp.refused,
        timed_out = ramp.timed_out,
        first_refusal = ?ramp.first_refusal,
        "reference run done"
    );
    load.stop().await;
    Ok(ramp)
}

/// A relay started with `limits`, its log named after `name`, and no load
/// peers yet.
async fn start_load(
    name: &str,
    relay_bin: &std::path::Path,
    limits: &[String],
    options: &Options,
) -> anyhow::Result<Load> {
    let log = options.log_dir.join(format!("bench-relay-load-{name}.log"));
    let relay = RelayProcess::start(relay_bin, limits, &log).await?;
    Ok(Load::new(
        vec![relay],
        options.subscribers,
        options.concurrent_dials,
    ))
}
