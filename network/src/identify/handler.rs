//! One connection's side of identify: answers the other side's requests
//! and asks it once for its agent.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use futures::{
    FutureExt as _, StreamExt as _,
    future::{self, BoxFuture, Either},
    stream::FuturesUnordered,
};
use futures_timer::Delay;
use libp2p::{
    Multiaddr, StreamProtocol,
    core::upgrade::ReadyUpgrade,
    swarm::{
        ConnectionHandler, ConnectionHandlerEvent, SubstreamProtocol,
        handler::{
            ConnectionEvent, FullyNegotiatedInbound, FullyNegotiatedOutbound, ProtocolsChange,
        },
    },
};
use prost::Message as _;

use super::{
    Local, MAX_INBOUND_STREAMS, PROTOCOL, STREAM_TIMEOUT,
    protocol::{IdentifyProto, read_message, write_message},
};

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
    pub(super) fn new(local: Arc<Local>, observed: Multiaddr) -> Self {
        Self {
            local,
            observed,
            protocols: Vec::new(),
            asked: false,
            inbound: FuturesUnordered::new(),
            outbound: FuturesUnordered::new(),
        }
    }

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
        .fit()
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
