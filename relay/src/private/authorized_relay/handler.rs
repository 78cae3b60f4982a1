//! The connection handler of a guest, a peer not in the authorized peers
//! file: it answers its reservation requests `PERMISSION_DENIED`, and its
//! circuit requests too unless guests may open circuits, in which case it
//! hands them to the behaviour, which serves them (see [`super::circuit`]).

use std::{
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};

use futures::{
    AsyncWriteExt as _, FutureExt as _, StreamExt as _, future::BoxFuture, stream::FuturesUnordered,
};
use libp2p::{
    PeerId, Stream,
    core::upgrade::{DeniedUpgrade, ReadyUpgrade},
    swarm::{
        ConnectionHandler, ConnectionHandlerEvent, StreamProtocol, SubstreamProtocol,
        handler::{ConnectionEvent, FullyNegotiatedInbound},
    },
};

use super::protocol::{self, HopMessage, Request, Status};

/// Requests answered at once on one connection; a client needs one at a
/// time, so more streams than this are dropped unanswered.
pub const MAX_CONCURRENT_REQUESTS: usize = 4;
/// How long one request may take to arrive and its answer to leave.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handler tells the behaviour: what became of one hop stream.
#[derive(Debug)]
pub enum GuestRequest {
    /// Answered `PERMISSION_DENIED`.
    Denied(Request),
    /// A circuit to `dst` the guest may ask for: the behaviour answers on
    /// `stream`.
    Circuit { dst: PeerId, stream: Stream },
    /// The stream did not carry a valid request (answered with the status
    /// the error calls for, when it could be).
    Failed(String),
    /// More concurrent requests than [`MAX_CONCURRENT_REQUESTS`].
    Dropped,
}

pub struct GuestHop {
    /// Whether circuit requests go to the behaviour rather than being
    /// denied.
    circuits_allowed: bool,
    in_flight: FuturesUnordered<BoxFuture<'static, GuestRequest>>,
    /// Streams dropped over the cap and not yet reported. Capped, so a
    /// flood of streams costs a counter, not a queue.
    dropped: usize,
}

impl GuestHop {
    pub fn new(circuits_allowed: bool) -> Self {
        Self {
            circuits_allowed,
            in_flight: FuturesUnordered::new(),
            dropped: 0,
        }
    }
}

impl std::fmt::Debug for GuestHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestHop")
            .field("circuits_allowed", &self.circuits_allowed)
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

/// Reads the request on `stream` and answers it, unless it is a circuit
/// request a guest may make: that one goes to the behaviour, stream and
/// all. A stream that says nothing within [`REQUEST_TIMEOUT`] is reset.
async fn read_guest_request(stream: Stream, circuits_allowed: bool) -> GuestRequest {
    match tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, circuits_allowed)).await {
        Ok(outcome) => outcome,
        Err(_) => GuestRequest::Failed(format!("no request within {REQUEST_TIMEOUT:?}")),
    }
}

async fn answer(mut stream: Stream, circuits_allowed: bool) -> GuestRequest {
    let request = match protocol::read_request(&mut stream).await {
        Ok(request) => request,
        Err(error) => {
            if let Some(status) = error.status() {
                let _ = protocol::write_message(&mut stream, &HopMessage::answer(status)).await;
            }
            let _ = stream.close().await;
            return GuestRequest::Failed(error.to_string());
        }
    };
    let status = match request {
        Request::Connect { dst: Some(dst) } if circuits_allowed => {
            return GuestRequest::Circuit { dst, stream };
        }
        Request::Connect { dst: None } if circuits_allowed => Status::MalformedMessage,
        _ => Status::PermissionDenied,
    };
    let written = protocol::write_message(&mut stream, &HopMessage::answer(status)).await;
    let _ = stream.close().await;
    match (written, status) {
        (Err(error), _) => GuestRequest::Failed(format!("writing the answer: {error}")),
        (Ok(()), Status::PermissionDenied) => GuestRequest::Denied(request),
        (Ok(()), _) => GuestRequest::Failed("circuit request without a valid peer id".into()),
    }
}

impl ConnectionHandler for GuestHop {
    type FromBehaviour = Infallible;
    type ToBehaviour = GuestRequest;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(protocol::HOP_PROTOCOL), ())
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {}
    }

    fn connection_keep_alive(&self) -> bool {
        // Only while answering: a guest does not hold the connection open
        // through this handler (a circuit's streams keep it open).
        !self.in_flight.is_empty()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        if self.dropped > 0 {
            self.dropped -= 1;
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(
                GuestRequest::Dropped,
            ));
        }
        match self.in_flight.poll_next_unpin(cx) {
            Poll::Ready(Some(request)) => {
                Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(request))
            }
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: stream,
            ..
        }) = event
        {
            if self.in_flight.len() >= MAX_CONCURRENT_REQUESTS {
                // Dropping the stream resets it; counted, not queued.
                self.dropped = self.dropped.saturating_add(1).min(MAX_CONCURRENT_REQUESTS);
                drop(stream);
            } else {
                self.in_flight
                    .push(read_guest_request(stream, self.circuits_allowed).boxed());
            }
        }
    }
}
