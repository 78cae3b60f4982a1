//! Beside `libp2p-relay`'s handler on a listed peer's connection: opens the
//! stop streams of guests' circuits on that connection when asked.
//!
//! The stream must go out on the connection that holds the reservation (a
//! relay client refuses a circuit on any other with `NO_RESERVATION`), so
//! the behaviour picks the connection; `libp2p-stream` would pick one
//! itself.

use std::{
    collections::VecDeque,
    task::{Context, Poll},
};

use libp2p::{
    Stream,
    core::upgrade::{DeniedUpgrade, ReadyUpgrade},
    swarm::{
        ConnectionHandler, ConnectionHandlerEvent, StreamProtocol, SubstreamProtocol,
        handler::{ConnectionEvent, DialUpgradeError, FullyNegotiatedOutbound},
    },
};

use super::{circuit::STOP_TIMEOUT, protocol::STOP_PROTOCOL};

/// The behaviour's request: open a stop stream, known by this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpenStop(pub u64);

/// The stream asked for by [`OpenStop`], or why there is none. `S` is
/// libp2p's stream but for tests.
#[derive(Debug)]
pub struct StopStream<S = Stream> {
    pub id: u64,
    pub stream: Result<S, String>,
}

#[derive(Debug, Default)]
pub struct StopOpener {
    /// Requests not yet passed to the connection. The behaviour sends one
    /// per guest circuit it is opening, so at most `--max-circuits`.
    requested: VecDeque<u64>,
    opened: VecDeque<StopStream>,
}

impl ConnectionHandler for StopOpener {
    type FromBehaviour = OpenStop;
    type ToBehaviour = StopStream;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = u64;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn on_behaviour_event(&mut self, OpenStop(id): OpenStop) {
        self.requested.push_back(id);
    }

    fn connection_keep_alive(&self) -> bool {
        // The circuits' streams keep the connection open once they exist.
        !self.requested.is_empty()
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, u64, Self::ToBehaviour>> {
        if let Some(opened) = self.opened.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(opened));
        }
        if let Some(id) = self.requested.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(STOP_PROTOCOL), id)
                    .with_timeout(STOP_TIMEOUT),
            });
        }
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol, (), u64>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info: id,
            }) => self.opened.push_back(StopStream {
                id,
                stream: Ok(stream),
            }),
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: id, error }) => {
                self.opened.push_back(StopStream {
                    id,
                    stream: Err(error.to_string()),
                });
            }
            _ => {}
        }
    }
}
