//! Load peers: native libp2p peers on loopback, each holding a
//! reservation on one of a set of relays and announcing its signed
//! discovery record whenever a round asks. `relay-load` runs them against
//! one relay; `relay-federation` spreads the same peers over three
//! federated relays.
//!
//! Each load peer is a full rust-libp2p swarm (TCP + noise + yamux, relay
//! client, gossipsub, identify), the same stack as `chat-peer`, not a
//! hand-rolled client: the relay then does exactly the work it does for
//! real peers. Only the first `subscribers` peers subscribe to the
//! discovery topic and count what they receive; the others publish to it
//! without subscribing (see relay-load's module doc for why).

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chat_protocol::{PeerRecord, topics};
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

use crate::relay_process::RelayProcess;

/// How long one peer may take from its dial to an accepted reservation.
pub const RESERVATION_TIMEOUT: Duration = Duration::from_secs(30);
/// After a round's window, how long late deliveries are still waited for.
const DELIVERY_GRACE: Duration = Duration::from_secs(20);

/// Limits for a load run: nothing but the peer count binds. Every peer
/// comes from 127.0.0.1, so the per-IP limits go up as far as the totals.
pub fn raised_limits(peers: usize) -> Vec<String> {
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

/// What one ramp step saw.
#[derive(Debug, Default)]
pub struct Ramp {
    /// Dial-to-reservation times of the peers accepted in this step.
    pub latencies: Vec<Duration>,
    pub accepted: usize,
    pub refused: usize,
    pub timed_out: usize,
    pub not_started: usize,
    pub first_refusal: Option<String>,
}

/// What one announce round saw.
#[derive(Debug)]
pub struct Round {
    pub announced: u64,
    pub failed: u64,
    /// Announces the subscribers received (all relays' together).
    pub delivered: u64,
    pub expected: u64,
    /// Each relay's CPU time over the round, in the order of
    /// [`Load::relays`].
    pub relay_cpu: Vec<Duration>,
}

impl Round {
    /// The relays' CPU time over the round, all together.
    pub fn total_cpu(&self) -> Duration {
        self.relay_cpu.iter().sum()
    }
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

/// The relays and the load peers running against them: peer `i` reserves
/// on relay `i % relays.len()`.
#[derive(Debug)]
pub struct Load {
    pub relays: Vec<RelayProcess>,
    counters: Arc<Counters>,
    rounds: watch::Sender<Option<RoundStart>>,
    outcomes_tx: mpsc::UnboundedSender<(usize, Reservation)>,
    outcomes: mpsc::UnboundedReceiver<(usize, Reservation)>,
    dials: Arc<Semaphore>,
    peers: JoinSet<()>,
    subscribers: usize,
    spawned: usize,
    /// Peers holding a reservation.
    pub accepted: usize,
    /// Subscribers holding a reservation.
    pub live_subscribers: usize,
}

impl Load {
    /// No peers yet; the first `subscribers` peers will subscribe to the
    /// discovery topic, and at most `concurrent_dials` dial at once.
    pub fn new(relays: Vec<RelayProcess>, subscribers: usize, concurrent_dials: usize) -> Self {
        assert!(!relays.is_empty(), "a load needs a relay");
        // One outcome per peer: the channel holds at most the peer count.
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        Self {
            relays,
            counters: Arc::default(),
            rounds: watch::channel(None).0,
            outcomes_tx,
            outcomes,
            dials: Arc::new(Semaphore::new(concurrent_dials.max(1))),
            peers: JoinSet::new(),
            subscribers,
            spawned: 0,
            accepted: 0,
            live_subscribers: 0,
        }
    }

    /// Adds peers until `target` have been started (at most
    /// `concurrent_dials` dialing at once) and waits for their reservations.
    pub async fn grow_to(&mut self, target: usize, deadline: Instant) -> Ramp {
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
            let relay = &self.relays[index % self.relays.len()];
            let peer = LoadPeer {
                index,
                relay_addr: relay.tcp_addr.clone(),
                relay_peer: relay.peer_id,
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
    /// reads each relay's CPU time over the round.
    pub async fn announce_round(&mut self, window: Duration) -> anyhow::Result<Round> {
        let before = self.counters.snapshot();
        let cpu_before = self.cpu_times()?;
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
        let relay_cpu = self
            .cpu_times()?
            .into_iter()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before))
            .collect();
        let now = self.counters.snapshot();
        Ok(Round {
            announced: now[0] - before[0],
            failed: now[2] - before[2],
            delivered: now[3] - before[3],
            expected: expected(now),
            relay_cpu,
        })
    }

    fn cpu_times(&self) -> anyhow::Result<Vec<Duration>> {
        self.relays.iter().map(RelayProcess::cpu_time).collect()
    }

    /// Stops the peers, then the relays.
    pub async fn stop(mut self) {
        self.peers.shutdown().await;
        let lost = self.counters.relay_connections_lost.load(Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(
                lost,
                "load peers lost their relay connection during the run"
            );
        }
        for relay in self.relays {
            relay.stop().await;
        }
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
