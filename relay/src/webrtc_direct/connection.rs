//! An established session as a libp2p `StreamMuxer`: every data channel
//! is a stream framed by `webrtc-framing` (FIN answered with FIN_ACK).
//! The `Rtc` runs from `poll` and the stream calls, in the swarm's task
//! for this connection.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures::{StreamExt as _, stream::FuturesUnordered};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use str0m::channel::ChannelConfig;

use super::{
    channel::ChannelIo,
    metrics::Metrics,
    session::{SessionError, Shared, lock},
};

/// Streams open at once on one connection; a channel past it is closed
/// as soon as it opens.
pub const MAX_STREAMS: usize = 64;

pub type Substream = webrtc_framing::Stream<ChannelIo>;

pub struct Connection {
    session: Shared,
    drop_listeners: FuturesUnordered<webrtc_framing::DropListener<ChannelIo>>,
    metrics: Metrics,
}

impl Connection {
    pub fn new(session: Shared, metrics: Metrics) -> Self {
        metrics.established.inc();
        Self {
            session,
            drop_listeners: FuturesUnordered::new(),
            metrics,
        }
    }

    fn stream(&mut self, id: str0m::channel::ChannelId) -> Substream {
        let (stream, listener) =
            webrtc_framing::Stream::new(ChannelIo::new(self.session.clone(), id, true));
        self.drop_listeners.push(listener);
        stream
    }

    fn poll_drop_listeners(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(_)) = self.drop_listeners.poll_next_unpin(cx) {}
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics.established.dec();
        lock(&self.session).rtc.disconnect();
    }
}

impl StreamMuxer for Connection {
    type Substream = Substream;
    type Error = SessionError;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        loop {
            let id = {
                let mut session = lock(&self.session);
                session.drive(cx)?;
                match session.opened.pop_front() {
                    Some(id) if session.channels.len() > MAX_STREAMS => {
                        tracing::debug!("a WebRTC-direct peer opened too many streams: one closed");
                        session.close_channel(id);
                        session.forget_channel(id);
                        continue;
                    }
                    Some(id) => id,
                    None => return Poll::Pending,
                }
            };
            return Poll::Ready(Ok(self.stream(id)));
        }
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let id = {
            let mut session = lock(&self.session);
            session.drive(cx)?;
            let id = session.rtc.direct_api().create_data_channel(ChannelConfig {
                label: String::new(),
                ..ChannelConfig::default()
            });
            session.channels.entry(id).or_default();
            session.opening.push(id);
            session.wake_driver();
            id
        };
        Poll::Ready(Ok(self.stream(id)))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        lock(&self.session).rtc.disconnect();
        Poll::Ready(Ok(()))
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        lock(&self.session).drive(cx)?;
        self.poll_drop_listeners(cx);
        Poll::Pending
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}
