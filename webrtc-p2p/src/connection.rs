//! A `/webrtc` connection as a libp2p `StreamMuxer`: each stream is a data
//! channel; there is no other multiplexer.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures::{StreamExt as _, stream::FuturesUnordered};
use libp2p_core::muxing::{StreamMuxer, StreamMuxerEvent};
use send_wrapper::SendWrapper;

use crate::{
    Error,
    data_channel::{ConnectionWaker, PollDataChannel},
    peer_connection::{LinkState, PeerConnection},
    stream::{DropListener, Stream},
};

/// The id of WebRTC-direct's handshake channel (negotiated out of band).
const HANDSHAKE_CHANNEL_ID: u16 = 0;

pub struct Connection {
    inner: SendWrapper<Inner>,
}

struct Inner {
    peer_connection: PeerConnection,
    drop_listeners: FuturesUnordered<DropListener>,
    /// Woken by streams that receive data nobody waits for.
    waker: ConnectionWaker,
    closed: bool,
    /// Ends the connection as soon as ICE reports `disconnected`.
    end_on_disconnect: bool,
    /// WebRTC-direct: a channel that took id 0, held so that no stream
    /// gets it (see `poll_outbound`).
    id_zero_holder: Option<web_sys::RtcDataChannel>,
}

impl Connection {
    /// Wraps a peer connection whose ICE and DTLS have completed.
    pub fn new(peer_connection: PeerConnection) -> Self {
        Self::with_end_on_disconnect(peer_connection, false)
    }

    /// A WebRTC-direct connection to a server: lost once ICE reports
    /// `disconnected`, since a server that stops answering its consent
    /// checks has gone (the page then reconnects at once, instead of
    /// holding a dead connection until the browser calls it `failed`).
    pub(crate) fn to_server(peer_connection: PeerConnection) -> Self {
        Self::with_end_on_disconnect(peer_connection, true)
    }

    fn with_end_on_disconnect(peer_connection: PeerConnection, end_on_disconnect: bool) -> Self {
        let waker = peer_connection.connection_waker();
        Self {
            inner: SendWrapper::new(Inner {
                peer_connection,
                drop_listeners: FuturesUnordered::new(),
                waker,
                closed: false,
                end_on_disconnect,
                id_zero_holder: None,
            }),
        }
    }

    fn new_stream(&mut self, channel: PollDataChannel) -> Stream {
        let (stream, drop_listener) = Stream::new(channel);
        self.inner.drop_listeners.push(drop_listener);
        stream
    }
}

impl StreamMuxer for Connection {
    type Substream = Stream;
    type Error = Error;

    fn poll_inbound(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Stream, Error>> {
        if self.inner.closed {
            return Poll::Ready(Err(Error::Closed));
        }
        let channel = futures::ready!(self.inner.peer_connection.poll_inbound_channel(cx));
        Poll::Ready(Ok(self.new_stream(channel)))
    }

    fn poll_outbound(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<Stream, Error>> {
        if self.inner.closed {
            return Poll::Ready(Err(Error::Closed));
        }
        // The label is free-form; the spec asks receivers to ignore it.
        let mut channel = self.inner.peer_connection.create_data_channel("");
        if self.inner.end_on_disconnect && channel.id() == Some(HANDSHAKE_CHANNEL_ID) {
            // A WebRTC-direct server (libp2p-webrtc) closes the handshake's
            // channel 0 after Noise, whatever the page does; Firefox then
            // gives id 0 to the next channel, and the server, which still
            // takes stream 0 for the handshake's, fails that stream's
            // protocol negotiation (a relay reservation or circuit that
            // then times out). This channel keeps id 0 taken, unused, until
            // the server closes it too; the stream gets the next id.
            self.inner.id_zero_holder = Some(channel);
            channel = self.inner.peer_connection.create_data_channel("");
        }
        let channel = PollDataChannel::new(channel, self.inner.waker.clone());
        Poll::Ready(Ok(self.new_stream(channel)))
    }

    fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.closed = true;
        self.inner.peer_connection.close();
        Poll::Ready(Ok(()))
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Error>> {
        self.inner.waker.register(cx.waker());
        // Send RESET_STREAM for streams dropped without closing.
        while let Poll::Ready(Some(result)) = self.inner.drop_listeners.poll_next_unpin(cx) {
            if let Err(error) = result {
                tracing::debug!(%error, "could not reset a dropped stream");
            }
        }
        if self.inner.end_on_disconnect && self.inner.peer_connection.is_disconnected() {
            return Poll::Ready(Err(Error::Closed));
        }
        // The remote closed its peer connection (a page that reloaded or
        // closed): its data channels are gone for good, though ICE may
        // call the connection connected for half a minute more.
        if self.inner.peer_connection.sctp_closed() {
            tracing::debug!("the SCTP association ended; the connection is closed");
            return Poll::Ready(Err(Error::Closed));
        }
        // A failed or closed peer connection ends the libp2p connection.
        match self
            .inner
            .peer_connection
            .poll_state_change(cx, LinkState::Connected)
        {
            Poll::Ready(LinkState::Connecting) | Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Err(Error::Closed)),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.peer_connection.close();
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}
