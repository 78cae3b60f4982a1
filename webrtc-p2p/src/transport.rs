//! The `/webrtc` transport.
//!
//! A libp2p transport cannot open streams, and the signaling needs one on a
//! relayed connection. So, as rust-libp2p's relay client does, the transport
//! hands each dial to the [`crate::Behaviour`] and waits for the connection
//! it makes; the behaviour in turn hands it the connections that peers made
//! to us, and the addresses we can be reached on.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{
    FutureExt as _, StreamExt as _,
    channel::{mpsc, oneshot},
    future::{BoxFuture, Ready},
};
use libp2p_core::{
    Multiaddr, PeerId,
    multiaddr::Protocol,
    transport::{DialOpts, ListenerId, TransportError, TransportEvent},
};

use crate::{Connection, Error, addr::parse_webrtc_addr};

/// Dials waiting for the behaviour; a full queue fails new dials at once.
pub(crate) const DIAL_QUEUE: usize = 16;

/// A dial for the behaviour to carry out.
pub(crate) struct DialRequest {
    pub peer: PeerId,
    /// The address without `/webrtc`: where the relayed connection goes.
    pub relayed_addr: Multiaddr,
    pub reply: oneshot::Sender<Result<Connection, Error>>,
}

/// What the behaviour tells the transport's listener.
pub(crate) enum ListenerEvent {
    /// A circuit address of ours gained a `/webrtc` twin.
    NewAddress(Multiaddr),
    ExpiredAddress(Multiaddr),
    /// A peer connected to us.
    Incoming {
        peer: PeerId,
        connection: Connection,
        send_back_addr: Multiaddr,
    },
}

type Event = TransportEvent<Ready<Result<(PeerId, Connection), Error>>, Error>;

pub struct Transport {
    dials: mpsc::Sender<DialRequest>,
    events: mpsc::Receiver<ListenerEvent>,
    listener: Option<ListenerId>,
    pending: VecDeque<Event>,
}

impl Transport {
    pub(crate) fn new(
        dials: mpsc::Sender<DialRequest>,
        events: mpsc::Receiver<ListenerEvent>,
    ) -> Self {
        Self {
            dials,
            events,
            listener: None,
            pending: VecDeque::new(),
        }
    }
}

impl libp2p_core::Transport for Transport {
    type Output = (PeerId, Connection);
    type Error = Error;
    type ListenerUpgrade = Ready<Result<Self::Output, Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Error>>;

    /// Listens on `/webrtc`: for connections that peers make to us through
    /// our circuit addresses, which the behaviour reports.
    fn listen_on(&mut self, id: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Error>> {
        if addr.iter().collect::<Vec<_>>() != [Protocol::WebRTC] || self.listener.is_some() {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        self.listener = Some(id);
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        if self.listener != Some(id) {
            return false;
        }
        self.listener = None;
        self.pending.push_back(TransportEvent::ListenerClosed {
            listener_id: id,
            reason: Ok(()),
        });
        true
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Error>> {
        if opts.role.is_listener() {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        let Some((relayed_addr, peer)) = parse_webrtc_addr(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let (reply, connection) = oneshot::channel();
        self.dials
            .try_send(DialRequest {
                peer,
                relayed_addr,
                reply,
            })
            .map_err(|_| TransportError::Other(Error::Busy))?;
        Ok(async move {
            let connection = connection.await.map_err(|_| Error::Closed)??;
            Ok((peer, connection))
        }
        .boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        if let Some(event) = self.pending.pop_front() {
            return Poll::Ready(event);
        }
        loop {
            let Poll::Ready(Some(event)) = self.events.poll_next_unpin(cx) else {
                return Poll::Pending;
            };
            // Without a `/webrtc` listener nobody asked for these.
            let Some(listener_id) = self.listener else {
                continue;
            };
            return Poll::Ready(match event {
                ListenerEvent::NewAddress(listen_addr) => TransportEvent::NewAddress {
                    listener_id,
                    listen_addr,
                },
                ListenerEvent::ExpiredAddress(listen_addr) => TransportEvent::AddressExpired {
                    listener_id,
                    listen_addr,
                },
                ListenerEvent::Incoming {
                    peer,
                    connection,
                    send_back_addr,
                } => TransportEvent::Incoming {
                    listener_id,
                    upgrade: futures::future::ready(Ok((peer, connection))),
                    local_addr: Protocol::WebRTC.into(),
                    send_back_addr,
                },
            });
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}
