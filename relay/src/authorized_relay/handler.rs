//! The connection handler of a peer that may not use the relay: it accepts
//! hop streams only to answer each request `PERMISSION_DENIED`.

use std::{
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt as _, StreamExt as _, future::BoxFuture, stream::FuturesUnordered};
use libp2p::{
    Stream,
    core::upgrade::{DeniedUpgrade, ReadyUpgrade},
    swarm::{
        ConnectionHandler, ConnectionHandlerEvent, StreamProtocol, SubstreamProtocol,
        handler::{ConnectionEvent, FullyNegotiatedInbound},
    },
};

use super::protocol::{self, HopMessage, Request, Status};

/// Requests answered at once on one connection; a client needs one at a
/// time, so more streams than this are dropped unanswered.
pub const MAX_CONCURRENT_DENIALS: usize = 4;
/// How long one request may take to arrive and its answer to leave.
pub const DENIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handler tells the behaviour: one request it answered.
#[derive(Debug)]
pub enum Denial {
    /// Answered `PERMISSION_DENIED`.
    Denied(Request),
    /// The stream did not carry a valid request (answered with the status
    /// the error calls for, when it could be).
    Failed(String),
    /// More concurrent requests than [`MAX_CONCURRENT_DENIALS`].
    Dropped,
}

#[derive(Default)]
pub struct DenyHop {
    in_flight: FuturesUnordered<BoxFuture<'static, Denial>>,
    /// Streams dropped over the cap and not yet reported. Capped, so a
    /// flood of streams costs a counter, not a queue.
    dropped: usize,
}

impl std::fmt::Debug for DenyHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenyHop")
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

async fn deny(mut stream: Stream) -> Denial {
    let answered = async {
        match protocol::read_request(&mut stream).await {
            Ok(request) => {
                let answer = HopMessage::answer(Status::PermissionDenied);
                protocol::write_message(&mut stream, &answer)
                    .await
                    .map(|()| Denial::Denied(request))
                    .unwrap_or_else(|error| Denial::Failed(format!("writing the denial: {error}")))
            }
            Err(error) => {
                if let Some(status) = error.status() {
                    let _ = protocol::write_message(&mut stream, &HopMessage::answer(status)).await;
                }
                Denial::Failed(error.to_string())
            }
        }
    };
    let denial = match tokio::time::timeout(DENIAL_TIMEOUT, answered).await {
        Ok(denial) => denial,
        Err(_) => Denial::Failed(format!("no request within {DENIAL_TIMEOUT:?}")),
    };
    let _ = futures::AsyncWriteExt::close(&mut stream).await;
    denial
}

impl ConnectionHandler for DenyHop {
    type FromBehaviour = Infallible;
    type ToBehaviour = Denial;
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
        // Only while answering: a denied peer does not hold the connection
        // open through this handler.
        !self.in_flight.is_empty()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        if self.dropped > 0 {
            self.dropped -= 1;
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(Denial::Dropped));
        }
        match self.in_flight.poll_next_unpin(cx) {
            Poll::Ready(Some(denial)) => {
                Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(denial))
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
            if self.in_flight.len() >= MAX_CONCURRENT_DENIALS {
                // Dropping the stream resets it; counted, not queued.
                self.dropped = self.dropped.saturating_add(1).min(MAX_CONCURRENT_DENIALS);
                drop(stream);
            } else {
                self.in_flight.push(deny(stream).boxed());
            }
        }
    }
}
