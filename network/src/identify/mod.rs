//! A lean identify (`/ipfs/id/1.0.0`, written from the libp2p spec,
//! `identify/README.md`): what the page needs of it and no more.
//!
//! - It answers: every connection's identify request gets this peer's
//!   public key, agent and protocol versions, listen addresses, the
//!   address it sees the asker at, and the protocols this connection
//!   serves (the swarm tells each handler; js-libp2p starts gossipsub to a
//!   peer once identify names its protocol).
//! - It asks once per connection, for the other side's agent version
//!   ([`Event::Received`]).
//!
//! Not here: identify/push (this peer neither sends nor accepts pushes,
//! and does not advertise it), periodic re-identification, and the rest
//! of a remote's answer (its addresses, protocols and key are read past,
//! not kept). Each message is one unsigned-varint length and a protobuf
//! `Identify` of at most [`MAX_MESSAGE_BYTES`] (an answer that would be
//! longer names fewer listen addresses, the oldest left out first); each
//! stream is done within [`STREAM_TIMEOUT`], and at most
//! [`MAX_INBOUND_STREAMS`] answers are written at once on a connection (a
//! request beyond is dropped).
//!
//! This module is the behaviour; [`handler`] is one connection's side and
//! `protocol` the wire (`identify.proto`).

pub mod handler;
mod protocol;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Duration,
};

use libp2p::{
    Multiaddr, PeerId, StreamProtocol,
    core::{Endpoint, multiaddr::Protocol, transport::PortUse},
    identity::PublicKey,
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
        behaviour::{ExpiredListenAddr, ExternalAddrConfirmed, ExternalAddrExpired, NewListenAddr},
    },
};

pub use handler::Handler;
pub use protocol::{MAX_MESSAGE_BYTES, ReadError};

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/id/1.0.0");
/// How long one request or answer may take.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers written at once on one connection.
pub const MAX_INBOUND_STREAMS: usize = 4;
/// Listen addresses named in an answer at most (the most recent ones).
pub const MAX_LISTEN_ADDRS: usize = 16;

/// What this peer says of itself.
#[derive(Debug, Clone)]
pub struct Config {
    pub protocol_version: String,
    pub agent_version: String,
    pub public_key: PublicKey,
}

/// What the behaviour reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `peer` answered this peer's request on one of its connections.
    Received { peer: PeerId, agent_version: String },
}

/// This peer's own part of every answer, shared with the handlers.
#[derive(Debug)]
struct Local {
    protocol_version: String,
    agent_version: String,
    public_key: Vec<u8>,
    /// Kept up to date from the swarm's listen and external addresses.
    addrs: Mutex<Vec<Multiaddr>>,
}

/// The behaviour: hands each connection a handler, keeps this peer's
/// addresses for the answers, and reports the agents heard.
#[derive(Debug)]
pub struct Behaviour {
    local: Arc<Local>,
    /// Bounded by the connections' answers (one each) between polls.
    events: VecDeque<Event>,
    waker: Option<Waker>,
}

impl Behaviour {
    pub fn new(config: Config) -> Self {
        Self {
            local: Arc::new(Local {
                protocol_version: config.protocol_version,
                agent_version: config.agent_version,
                public_key: config.public_key.encode_protobuf(),
                addrs: Mutex::new(Vec::new()),
            }),
            events: VecDeque::new(),
            waker: None,
        }
    }

    fn handler(&self, observed: Multiaddr) -> Handler {
        Handler::new(self.local.clone(), observed)
    }

    fn update_addrs(&self, update: impl FnOnce(&mut Vec<Multiaddr>)) {
        let mut addrs = self.local.addrs.lock().unwrap_or_else(|e| e.into_inner());
        update(&mut addrs);
        let extra = addrs.len().saturating_sub(MAX_LISTEN_ADDRS);
        addrs.drain(..extra);
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(remote_addr.clone()))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // The swarm ends a dialed address with `/p2p/<remote>`; the
        // remote's address as seen from here does not name it (the spec's
        // circuit form is `/p2p/<relay>/p2p-circuit`).
        let mut observed = addr.clone();
        if matches!(observed.iter().last(), Some(Protocol::P2p(_))) {
            observed.pop();
        }
        Ok(self.handler(observed))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::NewListenAddr(NewListenAddr { addr, .. })
            | FromSwarm::ExternalAddrConfirmed(ExternalAddrConfirmed { addr }) => self
                .update_addrs(|addrs| {
                    if !addrs.contains(addr) {
                        addrs.push(addr.clone());
                    }
                }),
            FromSwarm::ExpiredListenAddr(ExpiredListenAddr { addr, .. })
            | FromSwarm::ExternalAddrExpired(ExternalAddrExpired { addr }) => {
                self.update_addrs(|addrs| addrs.retain(|a| a != addr))
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        _: ConnectionId,
        agent_version: THandlerOutEvent<Self>,
    ) {
        self.events.push_back(Event::Received {
            peer,
            agent_version,
        });
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        match self.events.pop_front() {
            Some(event) => Poll::Ready(ToSwarm::GenerateEvent(event)),
            None => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
