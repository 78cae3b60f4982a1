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

use std::{
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use bench::{
    relay_process::{RelayProcess, open_files_limit, relay_binary, rss_bytes},
    report::{Row, Value},
    stats::percentile,
};
use chat_protocol::{PeerRecord, topics};
use clap::Parser;
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, Swarm,
    gossipsub::{self, IdentTopic},
    identify,
    multiaddr::Protocol,
    noise, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch},
    task::JoinSet,
    time::{Instant, Sleep},
};

/// How long one peer may take from its dial to an accepted reservation.
const RESERVATION_TIMEOUT: Duration = Duration::from_secs(30);
/// After a ramp, time for the last subscriptions and grafts to reach the
/// relay before memory is read and announces start.
const SETTLE: Duration = Duration::from_secs(3);
/// After a round's window, how long late deliveries are still waited for.
const DELIVERY_GRACE: Duration = Duration::from_secs(20);
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
    let mut load = Load::start(
        "raised-limits",
        &relay_bin,
        &raised_limits(largest),
        &options,
    )
    .await?;
    let baseline_rss = load.relay.rss_bytes()?;
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
        let rss = load.relay.rss_bytes()?;
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
                    round.relay_cpu.as_secs_f64() * 1e6 / round.delivered as f64,
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

/// Limits for the capacity run: nothing but the peer count binds. Every
/// peer comes from 127.0.0.1, so the per-IP limits go up as far as the
/// totals.
fn raised_limits(peers: usize) -> Vec<String> {
    let most = peers + 1024;
    vec![
        format!("--max-reservations={most}"),
        format!("--max-reservations-per-ip={most}"),
        format!("--reservation-rate-per-ip={most}"),
        format!("--max-connections={most}"),
        format!("--max-connections-per-ip={most}"),
        "--max-pending-connections=1024".to_owned(),
        "--max-pending-per-ip=1024".to_owned(),
        // Every peer announces once a round, all from one address.
        format!("--discovery-rate-per-peer={most}"),
        format!("--discovery-rate-per-ip={most}"),
    ]
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
    let mut load = Load::start(name, relay_bin, limits, options).await?;
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

/// What one ramp step saw.
#[derive(Debug, Default)]
struct Ramp {
    /// Dial-to-reservation times of the peers accepted in this step.
    latencies: Vec<Duration>,
    accepted: usize,
    refused: usize,
    timed_out: usize,
    not_started: usize,
    first_refusal: Option<String>,
}

/// What one announce round saw.
#[derive(Debug)]
struct Round {
    announced: u64,
    failed: u64,
    delivered: u64,
    expected: u64,
    relay_cpu: Duration,
}

/// Counters every load peer adds to.
#[derive(Debug, Default)]
struct Counters {
    announced: AtomicU64,
    announced_by_subscribers: AtomicU64,
    announce_failed: AtomicU64,
    received_by_subscribers: AtomicU64,
    relay_connections_lost: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> [u64; 4] {
        [
            self.announced.load(Ordering::Relaxed),
            self.announced_by_subscribers.load(Ordering::Relaxed),
            self.announce_failed.load(Ordering::Relaxed),
            self.received_by_subscribers.load(Ordering::Relaxed),
        ]
    }
}

/// An announce round: every peer publishes once, peer `i` of `peers` at
/// `started + window * i / peers`.
#[derive(Debug, Clone, Copy)]
struct RoundStart {
    started: Instant,
    window: Duration,
    peers: usize,
}

/// How a peer's reservation went.
#[derive(Debug)]
enum Reservation {
    Accepted(Duration),
    Refused(String),
    TimedOut,
}

/// The relay and the load peers running against it.
struct Load {
    relay: RelayProcess,
    counters: Arc<Counters>,
    rounds: watch::Sender<Option<RoundStart>>,
    outcomes_tx: mpsc::UnboundedSender<(usize, Reservation)>,
    outcomes: mpsc::UnboundedReceiver<(usize, Reservation)>,
    dials: Arc<Semaphore>,
    peers: JoinSet<()>,
    subscribers: usize,
    spawned: usize,
    accepted: usize,
    live_subscribers: usize,
}

impl Load {
    async fn start(
        name: &str,
        relay_bin: &std::path::Path,
        limits: &[String],
        options: &Options,
    ) -> anyhow::Result<Self> {
        let log = options.log_dir.join(format!("bench-relay-load-{name}.log"));
        let relay = RelayProcess::start(relay_bin, limits, &log).await?;
        // One outcome per peer: the channel holds at most the peer count.
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        Ok(Self {
            relay,
            counters: Arc::default(),
            rounds: watch::channel(None).0,
            outcomes_tx,
            outcomes,
            dials: Arc::new(Semaphore::new(options.concurrent_dials.max(1))),
            peers: JoinSet::new(),
            subscribers: options.subscribers,
            spawned: 0,
            accepted: 0,
            live_subscribers: 0,
        })
    }

    /// Adds peers until `target` have been started (at most
    /// `concurrent_dials` dialing at once) and waits for their reservations.
    async fn grow_to(&mut self, target: usize, deadline: Instant) -> Ramp {
        let mut ramp = Ramp::default();
        let first = self.spawned;
        for index in first..target {
            let permit = tokio::select! {
                permit = self.dials.clone().acquire_owned() => permit.expect("never closed"),
                _ = tokio::time::sleep_until(deadline) => {
                    ramp.not_started = target - index;
                    break;
                }
            };
            let peer = LoadPeer {
                index,
                relay_addr: self.relay.tcp_addr.clone(),
                relay_peer: self.relay.peer_id,
                subscriber: index < self.subscribers,
                counters: self.counters.clone(),
                rounds: self.rounds.subscribe(),
                outcomes: self.outcomes_tx.clone(),
            };
            self.peers.spawn(peer.run(permit));
            self.spawned += 1;
            // Keep the queue of outcomes short while ramping.
            while let Ok(outcome) = self.outcomes.try_recv() {
                self.count(outcome, &mut ramp);
            }
        }
        let expected = self.spawned - first;
        let wait_until = deadline.max(Instant::now()) + RESERVATION_TIMEOUT;
        while ramp.latencies.len() + ramp.refused + ramp.timed_out < expected {
            match tokio::time::timeout_at(wait_until, self.outcomes.recv()).await {
                Ok(Some(outcome)) => self.count(outcome, &mut ramp),
                _ => break,
            }
        }
        ramp.accepted = ramp.latencies.len();
        ramp
    }

    fn count(&mut self, (index, outcome): (usize, Reservation), ramp: &mut Ramp) {
        match outcome {
            Reservation::Accepted(latency) => {
                ramp.latencies.push(latency);
                self.accepted += 1;
                if index < self.subscribers {
                    self.live_subscribers += 1;
                }
            }
            Reservation::Refused(reason) => {
                ramp.refused += 1;
                ramp.first_refusal.get_or_insert(reason);
            }
            Reservation::TimedOut => ramp.timed_out += 1,
        }
    }

    /// Every peer announces once within `window`; waits for the
    /// subscribers to receive them all (or the grace period to pass) and
    /// reads the relay's CPU time over the round.
    async fn announce_round(&mut self, window: Duration) -> anyhow::Result<Round> {
        let before = self.counters.snapshot();
        let cpu_before = self.relay.cpu_time()?;
        let started = Instant::now();
        self.rounds.send_replace(Some(RoundStart {
            started,
            window,
            peers: self.spawned,
        }));
        let expected = |now: [u64; 4]| {
            let announced = now[0] - before[0];
            let by_subscribers = now[1] - before[1];
            // A subscriber does not receive its own announce.
            (self.live_subscribers as u64 * announced).saturating_sub(by_subscribers)
        };
        let give_up = started + window + DELIVERY_GRACE;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.counters.snapshot();
            let all_announced = now[0] + now[2] - before[0] - before[2] >= self.accepted as u64;
            let delivered = now[3] - before[3];
            if (all_announced && delivered >= expected(now)) || Instant::now() >= give_up {
                break;
            }
        }
        let relay_cpu = self.relay.cpu_time()?.saturating_sub(cpu_before);
        let now = self.counters.snapshot();
        Ok(Round {
            announced: now[0] - before[0],
            failed: now[2] - before[2],
            delivered: now[3] - before[3],
            expected: expected(now),
            relay_cpu,
        })
    }

    async fn stop(mut self) {
        self.peers.shutdown().await;
        let lost = self.counters.relay_connections_lost.load(Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(
                lost,
                "load peers lost their relay connection during the run"
            );
        }
        self.relay.stop().await;
    }
}

#[derive(NetworkBehaviour)]
struct LoadBehaviour {
    relay_client: relay::client::Behaviour,
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
}

/// One load peer: reserves, then announces whenever a round asks.
struct LoadPeer {
    index: usize,
    relay_addr: Multiaddr,
    relay_peer: PeerId,
    subscriber: bool,
    counters: Arc<Counters>,
    rounds: watch::Receiver<Option<RoundStart>>,
    outcomes: mpsc::UnboundedSender<(usize, Reservation)>,
}

impl LoadPeer {
    async fn run(mut self, dial_permit: OwnedSemaphorePermit) {
        let (mut swarm, public_key) = match build_swarm() {
            Ok(built) => built,
            Err(error) => {
                let _ = self
                    .outcomes
                    .send((self.index, Reservation::Refused(error)));
                return;
            }
        };
        let topic = IdentTopic::new(topics::DISCOVERY);
        let circuit = self.relay_addr.clone().with(Protocol::P2pCircuit);
        let started = Instant::now();
        let outcome = match swarm.listen_on(circuit.clone()) {
            Ok(_) => tokio::time::timeout(RESERVATION_TIMEOUT, self.reserve(&mut swarm, started))
                .await
                .unwrap_or(Reservation::TimedOut),
            Err(error) => Reservation::Refused(error.to_string()),
        };
        drop(dial_permit);
        let accepted = matches!(outcome, Reservation::Accepted(_));
        let _ = self.outcomes.send((self.index, outcome));
        if !accepted {
            return;
        }
        if self.subscriber
            && let Err(error) = swarm.behaviour_mut().gossipsub.subscribe(&topic)
        {
            tracing::warn!(%error, "cannot subscribe");
        }
        let own_addr = circuit.with(Protocol::P2p(*swarm.local_peer_id()));
        let record = match PeerRecord::new(public_key, vec![own_addr]) {
            Ok(record) => record.encode(),
            Err(error) => {
                tracing::warn!(%error, "cannot build the discovery record");
                return;
            }
        };

        let mut next_announce: Option<Pin<Box<Sleep>>> = None;
        loop {
            tokio::select! {
                changed = self.rounds.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if let Some(round) = *self.rounds.borrow_and_update() {
                        let share = self.index as f64 / round.peers.max(1) as f64;
                        let at = round.started + round.window.mul_f64(share);
                        next_announce = Some(Box::pin(tokio::time::sleep_until(at)));
                    }
                }
                () = async { next_announce.as_mut().expect("guarded").await }, if next_announce.is_some() => {
                    next_announce = None;
                    self.announce(&mut swarm, &topic, &record);
                }
                event = swarm.select_next_some() => self.on_event(event, &topic),
            }
        }
    }

    async fn reserve(&self, swarm: &mut Swarm<LoadBehaviour>, started: Instant) -> Reservation {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(LoadBehaviourEvent::RelayClient(
                    relay::client::Event::ReservationReqAccepted { .. },
                )) => return Reservation::Accepted(started.elapsed()),
                SwarmEvent::ListenerClosed {
                    reason: Err(error), ..
                } => return Reservation::Refused(format!("reservation: {error}")),
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Reservation::Refused(format!("dial: {error}"));
                }
                SwarmEvent::ConnectionClosed { peer_id, cause, .. }
                    if peer_id == self.relay_peer =>
                {
                    return Reservation::Refused(format!("relay closed the connection: {cause:?}"));
                }
                _ => {}
            }
        }
    }

    fn announce(&self, swarm: &mut Swarm<LoadBehaviour>, topic: &IdentTopic, record: &[u8]) {
        match swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), record.to_vec())
        {
            Ok(_) => {
                self.counters.announced.fetch_add(1, Ordering::Relaxed);
                if self.subscriber {
                    self.counters
                        .announced_by_subscribers
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                tracing::debug!(peer = self.index, %error, "announce failed");
                self.counters
                    .announce_failed
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_event(&self, event: SwarmEvent<LoadBehaviourEvent>, topic: &IdentTopic) {
        match event {
            SwarmEvent::Behaviour(LoadBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) if message.topic == topic.hash() => {
                self.counters
                    .received_by_subscribers
                    .fetch_add(1, Ordering::Relaxed);
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } if peer_id == self.relay_peer => {
                tracing::debug!(peer = self.index, ?cause, "relay connection lost");
                self.counters
                    .relay_connections_lost
                    .fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

fn build_swarm() -> Result<(Swarm<LoadBehaviour>, libp2p::identity::PublicKey), String> {
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let public_key = keypair.public();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|error| error.to_string())?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|error| error.to_string())?
        .with_behaviour(|key, relay_client| {
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossipsub::Config::default(),
            )?;
            Ok(LoadBehaviour {
                relay_client,
                gossipsub,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/ipfs/id/1.0.0".to_owned(),
                    key.public(),
                )),
            })
        })
        .map_err(|error| error.to_string())?
        // The reservation keeps the relay connection; nothing else should
        // close it during a run.
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok((swarm, public_key))
}
