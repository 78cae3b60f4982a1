//! One connection's meshsub streams: one outbound stream we write frames
//! to, one inbound stream we read frames from (a newer inbound stream
//! replaces the older, as in the spec: one stream each way per
//! connection).
//!
//! The behaviour decides which connection carries what (see
//! [`crate::Behaviour`]); this handler only moves frames. Every frame it
//! is given makes the swarm poll it at once, so a frame never waits for an
//! unrelated event on the connection.

use std::{
    collections::VecDeque,
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt as _, future::BoxFuture};
use libp2p::{
    StreamProtocol,
    core::{InboundUpgrade, OutboundUpgrade, UpgradeInfo},
    swarm::{
        ConnectionHandler, ConnectionHandlerEvent, Stream, StreamUpgradeError, SubstreamProtocol,
        handler::{
            ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
        },
    },
};
use web_time::Instant;

use crate::rpc::{self, CodecError, MAX_TRANSMIT_SIZE, Rpc};

/// The protocols offered, preferred first. v1.2 differs from v1.1 only by
/// IDONTWANT, an optional saving (a peer told not to send a message may
/// send it anyway); we never send it and ignore it received. Offering 1.2
/// matters for speed: rust-libp2p and js-libp2p propose it first, and a
/// refusal costs their stream a round trip before their subscriptions
/// reach us (the relay's, which a page needs before it can announce).
pub const PROTOCOLS: [StreamProtocol; 3] = [
    StreamProtocol::new("/meshsub/1.2.0"),
    StreamProtocol::new("/meshsub/1.1.0"),
    StreamProtocol::new("/meshsub/1.0.0"),
];

/// Frames waiting for the outbound stream, at most; more are dropped (the
/// peer is not reading). A chat burst is a few frames.
pub const MAX_SEND_QUEUE: usize = 128;
/// A frame older than this when its turn comes is dropped: the stream took
/// too long to open (a WebRTC data channel can take a few round trips).
pub const SEND_QUEUE_TTL: Duration = Duration::from_secs(30);
/// Failed attempts in a row to open or write the outbound stream before
/// the connection is given up on for gossip.
pub const MAX_OUTBOUND_FAILURES: u8 = 3;
/// Outbound streams opened over a connection's whole life, at most: each
/// failure opens a new one, and rust-libp2p (the relay) disables gossip on
/// a connection after its 5th inbound stream. At the bound the connection
/// is reported unusable, so the peer's traffic goes on another.
pub const MAX_OUTBOUND_STREAMS: u8 = 5;

/// What the behaviour tells a connection.
#[derive(Debug)]
pub enum HandlerIn {
    /// Send this RPC body.
    Send(Vec<u8>),
    /// Whether the peer is in one of our meshes: then the connection is
    /// kept open while idle.
    InMesh(bool),
}

/// What a connection tells the behaviour.
#[derive(Debug)]
pub enum HandlerOut {
    /// An RPC arrived.
    Rpc(Rpc),
    /// The remote does not speak meshsub on this connection, or its streams
    /// keep failing: send nothing more here.
    Unusable,
}

/// The meshsub stream upgrade: negotiation picks one of [`PROTOCOLS`]; the
/// stream is used as is.
#[derive(Debug, Clone, Copy)]
pub struct Meshsub;

impl UpgradeInfo for Meshsub {
    type Info = StreamProtocol;
    type InfoIter = [StreamProtocol; 3];

    fn protocol_info(&self) -> Self::InfoIter {
        PROTOCOLS
    }
}

impl InboundUpgrade<Stream> for Meshsub {
    type Output = Stream;
    type Error = Infallible;
    type Future = futures::future::Ready<Result<Stream, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, _: StreamProtocol) -> Self::Future {
        futures::future::ready(Ok(stream))
    }
}

impl OutboundUpgrade<Stream> for Meshsub {
    type Output = Stream;
    type Error = Infallible;
    type Future = futures::future::Ready<Result<Stream, Infallible>>;

    fn upgrade_outbound(self, stream: Stream, _: StreamProtocol) -> Self::Future {
        futures::future::ready(Ok(stream))
    }
}

enum Outbound {
    /// No stream yet, or the last one failed.
    None,
    /// Asked the swarm for one.
    Opening,
    Idle(Stream),
    Writing(BoxFuture<'static, Result<Stream, WriteFailed>>),
}

/// A write that failed, with the frame it was writing, to send again on
/// the next stream.
struct WriteFailed {
    error: CodecError,
    frame: (Instant, Vec<u8>),
}

type Reading = BoxFuture<'static, (Stream, Result<Option<Vec<u8>>, CodecError>)>;

/// See the module docs.
pub struct Handler {
    queue: VecDeque<(Instant, Vec<u8>)>,
    /// Our subscriptions, the first frame of every outbound stream (a
    /// peer that opened a new stream from us learns them again).
    subscriptions: Option<Vec<u8>>,
    /// Outbound streams asked for so far (see [`MAX_OUTBOUND_STREAMS`]).
    streams_opened: u8,
    outbound: Outbound,
    inbound: Option<Reading>,
    failures: u8,
    unusable: bool,
    unusable_reported: bool,
    in_mesh: bool,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("queued", &self.queue.len())
            .field("unusable", &self.unusable)
            .field("in_mesh", &self.in_mesh)
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// A handler that sends `first` (our subscriptions) as soon as its
    /// stream is open.
    pub fn new(first: Option<Vec<u8>>, in_mesh: bool) -> Self {
        Self {
            queue: VecDeque::new(),
            subscriptions: first,
            streams_opened: 0,
            outbound: Outbound::None,
            inbound: None,
            failures: 0,
            unusable: false,
            unusable_reported: false,
            in_mesh,
        }
    }

    fn read_next(mut stream: Stream) -> Reading {
        async move {
            let result = rpc::read_frame(&mut stream, MAX_TRANSMIT_SIZE).await;
            (stream, result)
        }
        .boxed()
    }

    fn write(
        mut stream: Stream,
        frame: (Instant, Vec<u8>),
    ) -> BoxFuture<'static, Result<Stream, WriteFailed>> {
        async move {
            match rpc::write_frame(&mut stream, &frame.1).await {
                Ok(()) => Ok(stream),
                Err(error) => Err(WriteFailed { error, frame }),
            }
        }
        .boxed()
    }

    /// Whether there is something to write on a new stream: its first
    /// frame, our subscriptions, goes only with the rest.
    fn has_frames(&self) -> bool {
        !self.queue.is_empty() || (self.streams_opened == 0 && self.subscriptions.is_some())
    }

    fn give_up(&mut self) {
        self.unusable = true;
        self.queue.clear();
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = HandlerIn;
    type ToBehaviour = HandlerOut;
    type InboundProtocol = Meshsub;
    type OutboundProtocol = Meshsub;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Meshsub> {
        SubstreamProtocol::new(Meshsub, ())
    }

    fn connection_keep_alive(&self) -> bool {
        // Like rust-libp2p's: mesh peers' connections stay open, and so
        // does one with frames still to send.
        !self.unusable
            && (self.in_mesh || self.has_frames() || matches!(self.outbound, Outbound::Writing(_)))
    }

    fn on_behaviour_event(&mut self, event: HandlerIn) {
        match event {
            HandlerIn::Send(body) => {
                if self.unusable {
                    return;
                }
                if self.queue.len() >= MAX_SEND_QUEUE {
                    tracing::debug!("gossip send queue full: frame dropped");
                    return;
                }
                self.queue.push_back((Instant::now(), body));
            }
            HandlerIn::InMesh(in_mesh) => self.in_mesh = in_mesh,
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Meshsub, (), HandlerOut>> {
        if self.unusable && !self.unusable_reported {
            self.unusable_reported = true;
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(
                HandlerOut::Unusable,
            ));
        }
        // Inbound first: what arrived is handled even while we write.
        if let Some(reading) = self.inbound.as_mut()
            && let Poll::Ready((stream, result)) = reading.poll_unpin(cx)
        {
            match result {
                Ok(Some(body)) => {
                    self.inbound = Some(Self::read_next(stream));
                    match Rpc::decode_frame(&body) {
                        Ok(rpc) => {
                            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(
                                HandlerOut::Rpc(rpc),
                            ));
                        }
                        Err(error) => tracing::debug!(%error, "undecodable gossip frame dropped"),
                    }
                    // The next read was set up but not polled: poll again.
                    cx.waker().wake_by_ref();
                }
                Ok(None) => self.inbound = None,
                Err(error) => {
                    // The stream cannot be resynchronised after a bad
                    // frame: drop it; the peer may open another.
                    tracing::debug!(%error, "gossip inbound stream closed");
                    self.inbound = None;
                }
            }
        }
        loop {
            match std::mem::replace(&mut self.outbound, Outbound::None) {
                Outbound::None => {
                    if self.has_frames() && !self.unusable {
                        if self.streams_opened >= MAX_OUTBOUND_STREAMS {
                            tracing::debug!("gossip outbound streams exhausted on this connection");
                            self.give_up();
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        self.streams_opened += 1;
                        self.outbound = Outbound::Opening;
                        return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                            protocol: SubstreamProtocol::new(Meshsub, ()),
                        });
                    }
                    return Poll::Pending;
                }
                Outbound::Opening => {
                    self.outbound = Outbound::Opening;
                    return Poll::Pending;
                }
                Outbound::Idle(stream) => {
                    let now = Instant::now();
                    while self
                        .queue
                        .front()
                        .is_some_and(|(at, _)| now.duration_since(*at) > SEND_QUEUE_TTL)
                    {
                        self.queue.pop_front();
                    }
                    match self.queue.pop_front() {
                        Some(frame) => {
                            self.outbound = Outbound::Writing(Self::write(stream, frame))
                        }
                        None => {
                            self.outbound = Outbound::Idle(stream);
                            return Poll::Pending;
                        }
                    }
                }
                Outbound::Writing(mut writing) => match writing.poll_unpin(cx) {
                    Poll::Ready(Ok(stream)) => {
                        self.failures = 0;
                        self.outbound = Outbound::Idle(stream);
                    }
                    Poll::Ready(Err(WriteFailed { error, frame })) => {
                        tracing::debug!(%error, "gossip outbound stream failed");
                        // The frame goes first on the next stream.
                        self.queue.push_front(frame);
                        self.failures += 1;
                        if self.failures >= MAX_OUTBOUND_FAILURES {
                            self.give_up();
                            cx.waker().wake_by_ref();
                        }
                    }
                    Poll::Pending => {
                        self.outbound = Outbound::Writing(writing);
                        return Poll::Pending;
                    }
                },
            }
        }
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<Meshsub, Meshsub, (), ()>) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) => self.inbound = Some(Self::read_next(stream)),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                ..
            }) => {
                // Our subscriptions open every stream, before a frame a
                // failed stream left (once, if that frame is them), fresh
                // so that they never expire.
                if let Some(subscriptions) = &self.subscriptions {
                    if self
                        .queue
                        .front()
                        .is_some_and(|(_, body)| body == subscriptions)
                    {
                        self.queue.pop_front();
                    }
                    self.queue
                        .push_front((Instant::now(), subscriptions.clone()));
                }
                self.outbound = Outbound::Idle(stream);
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                self.outbound = Outbound::None;
                match error {
                    StreamUpgradeError::NegotiationFailed => self.give_up(),
                    StreamUpgradeError::Apply(never) => match never {},
                    StreamUpgradeError::Timeout | StreamUpgradeError::Io(_) => {
                        self.failures += 1;
                        if self.failures >= MAX_OUTBOUND_FAILURES {
                            self.give_up();
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
