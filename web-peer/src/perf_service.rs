//! The perf protocol (`/perf/1.0.0`) on the page's direct connections,
//! for the benchmarks: transfers started from `window.chatBench.perf`, and,
//! on a page opened with `?bench`, streams served to peers, within a
//! budget.

use std::time::Duration;

use chat_network::short;
use chat_protocol::perf;
use futures::{
    FutureExt as _, StreamExt as _,
    channel::oneshot,
    future::LocalBoxFuture,
    stream::{FuturesUnordered, LocalBoxStream},
};
use libp2p::{PeerId, Stream};

/// Perf transfers at once, served and started together: each one keeps a
/// connection busy, so a peer gets no more.
const MAX_PERF_TRANSFERS: usize = 2;

/// What one peer may ask of our perf server on one stream (the benchmarks
/// move up to 64 MB).
const PERF_LIMITS: perf::Limits = perf::Limits {
    max_send: 128 << 20,
    max_receive: 128 << 20,
};

/// Bytes the perf server moves (both ways) over the page's life, after
/// which it refuses streams: a benchmark run moves a few hundred MB. The
/// streams in flight may pass it by at most their [`PERF_LIMITS`].
const MAX_PERF_SERVED_BYTES: u64 = 2 << 30;

/// What happened, for the node's loop.
pub enum Step {
    /// A peer opened a perf stream.
    Incoming(PeerId, Stream),
    /// A transfer ended: a line for the event log.
    Done(String),
}

pub struct Perf {
    streams: libp2p_stream::Control,
    /// Perf streams from peers: none until [`Perf::accept_streams`].
    incoming: futures::stream::Fuse<LocalBoxStream<'static, (PeerId, Stream)>>,
    /// Transfers in flight, both ways (at most [`MAX_PERF_TRANSFERS`]);
    /// each ends with a line for the event log and the bytes it served.
    transfers: FuturesUnordered<LocalBoxFuture<'static, (String, u64)>>,
    /// Bytes served so far (see [`MAX_PERF_SERVED_BYTES`]).
    served: u64,
}

impl Perf {
    pub fn new(streams: libp2p_stream::Control) -> Self {
        Self {
            streams,
            incoming: futures::stream::pending().boxed_local().fuse(),
            transfers: FuturesUnordered::new(),
            served: 0,
        }
    }

    /// Starts taking perf streams (a page opened for benchmarking).
    pub fn accept_streams(&mut self) -> Result<(), libp2p_stream::AlreadyRegistered> {
        let incoming = self.streams.accept(perf::PROTOCOL)?;
        self.incoming = incoming.boxed_local().fuse();
        Ok(())
    }

    /// The next incoming stream or finished transfer.
    pub async fn next(&mut self) -> Step {
        loop {
            futures::select! {
                (peer, stream) = self.incoming.select_next_some() => return Step::Incoming(peer, stream),
                (line, served) = self.transfers.select_next_some() => {
                    self.served = self.served.saturating_add(served);
                    return Step::Done(line);
                }
                complete => futures::future::pending::<()>().await,
            }
        }
    }

    /// Serves a peer's perf stream, within [`PERF_LIMITS`], if it came from
    /// a `direct`ly connected peer and a transfer slot is free; else drops
    /// it (the peer sees the stream reset) and says why.
    pub fn serve(
        &mut self,
        peer: PeerId,
        stream: Stream,
        direct: bool,
    ) -> Result<(), &'static str> {
        if !direct {
            return Err("not connected directly");
        } else if self.transfers.len() >= MAX_PERF_TRANSFERS {
            return Err("too many transfers at once");
        } else if self.served >= MAX_PERF_SERVED_BYTES {
            return Err("the page's perf budget is spent");
        }
        self.transfers.push(
            async move {
                match perf::serve(stream, PERF_LIMITS).await {
                    Ok(served) => (
                        format!(
                            "perf: {} bytes from {}, {} bytes sent back",
                            served.received,
                            short(&peer),
                            served.sent
                        ),
                        served.received.saturating_add(served.sent),
                    ),
                    // What a failed stream moved is not known: count it
                    // as its limits, the most it could have.
                    Err(error) => (
                        format!("perf stream from {}: {error}", short(&peer)),
                        PERF_LIMITS.max_send + PERF_LIMITS.max_receive,
                    ),
                }
            }
            .boxed_local(),
        );
        Ok(())
    }

    /// Runs a perf transfer with `peer` over its direct connection (it must
    /// be `only_direct`: no relayed connection left) and replies with the
    /// time it took.
    pub fn start(
        &mut self,
        peer: PeerId,
        upload: u64,
        download: u64,
        reply: oneshot::Sender<Result<Duration, String>>,
        only_direct: bool,
    ) {
        let refused = if !only_direct {
            Some(format!(
                "{} is not connected directly only (yet)",
                short(&peer)
            ))
        } else if self.transfers.len() >= MAX_PERF_TRANSFERS {
            Some("too many perf transfers at once".to_owned())
        } else {
            None
        };
        if let Some(reason) = refused {
            let _ = reply.send(Err(reason));
            return;
        }
        let mut streams = self.streams.clone();
        self.transfers.push(
            async move {
                let result = match streams.open_stream(peer, perf::PROTOCOL).await {
                    Ok(stream) => perf::client(stream, upload, download)
                        .await
                        .map_err(|error| error.to_string()),
                    Err(error) => Err(format!("cannot open a perf stream: {error}")),
                };
                let line = match &result {
                    Ok(took) => format!(
                        "perf with {}: {upload} bytes up, {download} bytes down in {} ms",
                        short(&peer),
                        // u64: formatting a u128 is 1.2 KB of wasm of its own.
                        took.as_millis() as u64
                    ),
                    Err(error) => format!("perf with {} failed: {error}", short(&peer)),
                };
                let _ = reply.send(result);
                (line, 0)
            }
            .boxed_local(),
        );
    }
}
