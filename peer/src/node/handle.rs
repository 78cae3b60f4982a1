//! The node's public side: how it starts ([`Peer::start`]) and the
//! [`PeerHandle`] a terminal or a test drives it with.

use std::collections::HashMap;

use libp2p::PeerId;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::Instrument as _;

use super::{
    EVENT_QUEUE, Node,
    addrs::{is_circuit, is_usable},
    config::{Config, StartError},
    relay::RELAY_BACKOFF_MIN,
    swarm::build_swarm,
    timer::Timer,
};
use crate::events::{Command, Event, PeerInfo};

/// Commands waiting for the node.
const COMMAND_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("the peer has stopped")]
pub struct Stopped;

/// A running peer.
#[derive(Debug)]
pub struct PeerHandle {
    pub peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// The next event; `None` once the node has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Publishes a chat message; the outcome comes back as
    /// [`Event::Chat`] (with `own`) or [`Event::ChatNotSent`].
    pub async fn send_chat(&self, text: impl Into<String>) -> Result<(), Stopped> {
        self.command(Command::SendChat(text.into())).await
    }

    /// Asks for one round trip to `peer` (dialing it through the relay if
    /// needed); the answer is [`Event::Ping`] or [`Event::PingFailed`].
    pub async fn ping(&self, peer: PeerId) -> Result<(), Stopped> {
        self.command(Command::Ping(peer)).await
    }

    /// Every peer known: discovered, connected, or both.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Peers(reply)).await?;
        answer.await.map_err(|_| Stopped)
    }

    async fn command(&self, command: Command) -> Result<(), Stopped> {
        self.commands.send(command).await.map_err(|_| Stopped)
    }

    /// Closes every connection and waits for the node to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// Entry point: see [`Peer::start`].
#[derive(Debug)]
pub struct Peer;

impl Peer {
    /// Builds the node, binds its listeners, dials the relay and runs the
    /// node in a task. Returns once the listeners are up.
    pub async fn start(config: Config) -> Result<PeerHandle, StartError> {
        let relay_id = config.relay_id()?;
        if is_circuit(&config.relay) {
            return Err(StartError::RelayIsCircuit(config.relay.clone()));
        }
        if !is_usable(&config.relay) {
            return Err(StartError::RelayTransport(config.relay.clone()));
        }
        let swarm = build_swarm(&config)?;
        let peer_id = *swarm.local_peer_id();
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let mut node = Node {
            swarm,
            relay_id,
            relay_addr: config.relay.clone(),
            force_private: config.force_private,
            circuit_listener: None,
            events: event_tx,
            dropped_events: 0,
            pings: HashMap::new(),
            relay_backoff: RELAY_BACKOFF_MIN,
            relay_retry: Timer::default(),
            link_silence: super::pings::link_silence(config.ping_interval),
            relay_liveness: Default::default(),
            punch_retries: Default::default(),
            punchers: Default::default(),
        };
        // Everything the node logs, the swarm's own lines included, names
        // the node: two peers in one process (the tests) stay apart.
        let span = tracing::debug_span!("node", me = %crate::names::short(&peer_id));
        node.listen(&config).instrument(span.clone()).await?;
        span.in_scope(|| node.dial_relay());
        let task = tokio::spawn(node.run(command_rx, shutdown_rx).instrument(span));
        Ok(PeerHandle {
            peer_id,
            commands,
            events,
            shutdown,
            task,
        })
    }
}
