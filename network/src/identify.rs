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
//! `Identify` of at most [`MAX_MESSAGE_BYTES`]; each stream is done within
//! [`STREAM_TIMEOUT`], and at most [`MAX_INBOUND_STREAMS`] answers are
//! written at once on a connection (a request beyond is dropped).

use std::{
    collections::VecDeque,
    convert::Infallible,
    io,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures::{
    AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, FutureExt as _, StreamExt as _,
    future::{self, BoxFuture, Either},
    stream::FuturesUnordered,
};
use futures_timer::Delay;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol,
    core::{Endpoint, transport::PortUse, upgrade::ReadyUpgrade},
    identity::PublicKey,
    swarm::{
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
        handler::{
            ConnectionEvent, FullyNegotiatedInbound, FullyNegotiatedOutbound, ProtocolsChange,
        },
    },
};
use prost::Message as _;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/id/1.0.0");
/// Largest message read or written (rust-libp2p and js-libp2p read at
/// most 4 KiB and 8 KiB).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// How long one request or answer may take.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers written at once on one connection.
pub const MAX_INBOUND_STREAMS: usize = 4;
/// Listen addresses named in an answer at most (the most recent ones).
pub const MAX_LISTEN_ADDRS: usize = 16;

/// The `Identify` message of the spec (proto2; every field optional).
#[derive(Clone, PartialEq, prost::Message)]
struct IdentifyProto {
    #[prost(string, optional, tag = "5")]
    protocol_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    agent_version: Option<String>,
    #[prost(bytes = "vec", optional, tag = "1")]
    public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    listen_addrs: Vec<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    observed_addr: Option<Vec<u8>>,
    #[prost(string, repeated, tag = "3")]
    protocols: Vec<String>,
}

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

    fn handler(&self, observed: &Multiaddr) -> Handler {
        Handler {
            local: self.local.clone(),
            observed: observed.clone(),
            protocols: Vec::new(),
            asked: false,
            inbound: FuturesUnordered::new(),
            outbound: FuturesUnordered::new(),
        }
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
        Ok(self.handler(remote_addr))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(addr))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::NewListenAddr(new) => self.update_addrs(|addrs| {
                if !addrs.contains(new.addr) {
                    addrs.push(new.addr.clone());
                }
            }),
            FromSwarm::ExternalAddrConfirmed(new) => self.update_addrs(|addrs| {
                if !addrs.contains(new.addr) {
                    addrs.push(new.addr.clone());
                }
            }),
            FromSwarm::ExpiredListenAddr(gone) => {
                self.update_addrs(|addrs| addrs.retain(|a| a != gone.addr))
            }
            FromSwarm::ExternalAddrExpired(gone) => {
                self.update_addrs(|addrs| addrs.retain(|a| a != gone.addr))
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

/// One connection's side: answers its requests and asks once.
pub struct Handler {
    local: Arc<Local>,
    /// Where the other side is seen from (its address on this connection).
    observed: Multiaddr,
    /// What this connection serves, as the swarm reports it.
    protocols: Vec<StreamProtocol>,
    asked: bool,
    inbound: FuturesUnordered<BoxFuture<'static, ()>>,
    /// The one request, while under way.
    outbound: FuturesUnordered<BoxFuture<'static, Option<String>>>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("observed", &self.observed)
            .field("protocols", &self.protocols)
            .finish_non_exhaustive()
    }
}

impl Handler {
    fn answer(&self) -> IdentifyProto {
        let addrs = self.local.addrs.lock().unwrap_or_else(|e| e.into_inner());
        IdentifyProto {
            protocol_version: Some(self.local.protocol_version.clone()),
            agent_version: Some(self.local.agent_version.clone()),
            public_key: Some(self.local.public_key.clone()),
            listen_addrs: addrs.iter().map(|a| a.to_vec()).collect(),
            observed_addr: Some(self.observed.to_vec()),
            protocols: self.protocols.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// Runs `work` for at most [`STREAM_TIMEOUT`]; `None` when it ran out.
fn bounded<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> BoxFuture<'static, Option<T>> {
    future::select(work.boxed(), Delay::new(STREAM_TIMEOUT))
        .map(|ended| match ended {
            Either::Left((done, _)) => Some(done),
            Either::Right(_) => None,
        })
        .boxed()
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    /// The other side's agent version.
    type ToBehaviour = String;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ())
    }

    fn on_behaviour_event(&mut self, never: Infallible) {
        match never {}
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        if !self.asked {
            self.asked = true;
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ()),
            });
        }
        while let Poll::Ready(Some(())) = self.inbound.poll_next_unpin(cx) {}
        while let Poll::Ready(Some(agent)) = self.outbound.poll_next_unpin(cx) {
            if let Some(agent) = agent {
                return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(agent));
            }
        }
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: mut stream,
                ..
            }) => {
                if self.inbound.len() >= MAX_INBOUND_STREAMS {
                    tracing::debug!("identify request dropped: answers already under way");
                    return;
                }
                let answer = self.answer().encode_to_vec();
                self.inbound.push(
                    bounded(async move {
                        if let Err(error) = write_message(&mut stream, &answer).await {
                            tracing::debug!(%error, "identify answer not sent");
                        }
                    })
                    .map(|_| ())
                    .boxed(),
                );
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: mut stream,
                ..
            }) => {
                self.outbound.push(
                    bounded(async move {
                        match read_message(&mut stream).await {
                            Ok(message) => Some(message.agent_version.unwrap_or_default()),
                            Err(error) => {
                                tracing::debug!(%error, "identify answer unreadable");
                                None
                            }
                        }
                    })
                    .map(Option::flatten)
                    .boxed(),
                );
            }
            ConnectionEvent::LocalProtocolsChange(change) => match change {
                ProtocolsChange::Added(added) => {
                    for protocol in added {
                        if !self.protocols.contains(protocol) {
                            self.protocols.push(protocol.clone());
                        }
                    }
                }
                ProtocolsChange::Removed(removed) => {
                    let removed: Vec<&StreamProtocol> = removed.collect();
                    self.protocols.retain(|p| !removed.contains(&p));
                }
            },
            _ => {}
        }
    }
}

/// Writes one length-prefixed message and closes the stream.
async fn write_message<T: AsyncWrite + Unpin>(io: &mut T, message: &[u8]) -> io::Result<()> {
    let mut framed = Vec::with_capacity(message.len() + 2);
    let mut len = message.len();
    loop {
        let low = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            framed.push(low);
            break;
        }
        framed.push(low | 0x80);
    }
    framed.extend_from_slice(message);
    io.write_all(&framed).await?;
    io.close().await
}

/// Reads one length-prefixed message of at most [`MAX_MESSAGE_BYTES`].
async fn read_message<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<IdentifyProto> {
    let too_large = || io::Error::new(io::ErrorKind::InvalidData, "identify message too large");
    let mut len = 0usize;
    for shift in (0..).step_by(7) {
        let mut byte = [0u8];
        io.read_exact(&mut byte).await?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        if len > MAX_MESSAGE_BYTES {
            return Err(too_large());
        }
        if byte[0] & 0x80 == 0 {
            break;
        }
        if shift >= 14 {
            return Err(too_large());
        }
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    IdentifyProto::decode(bytes.as_slice())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_reads_back_and_an_oversized_one_is_refused() {
        let message = IdentifyProto {
            agent_version: Some("agent/1".to_owned()),
            protocols: vec!["/ipfs/id/1.0.0".to_owned()],
            listen_addrs: vec![vec![7; 300]],
            ..IdentifyProto::default()
        };
        let mut wire = Vec::new();
        write_message(&mut wire, &message.encode_to_vec())
            .await
            .expect("written");
        assert_eq!(wire[0] & 0x80, 0x80, "a length over 127 takes two bytes");
        let read = read_message(&mut futures::io::Cursor::new(wire))
            .await
            .expect("read");
        assert_eq!(read, message);

        let mut wire = Vec::new();
        write_message(&mut wire, &vec![0u8; MAX_MESSAGE_BYTES + 1])
            .await
            .expect("written");
        let error = read_message(&mut futures::io::Cursor::new(wire))
            .await
            .expect_err("too large");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
