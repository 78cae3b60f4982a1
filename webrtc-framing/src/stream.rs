//! A libp2p stream over one message channel (a data channel, in practice):
//! [`Stream`] is the byte stream the application reads and writes, and
//! [`DropListener`] is the future its connection polls, which keeps the
//! stream's framing going when the application does not.
//!
//! Both share the channel. Whichever is polled reads from it, decodes the
//! frames, applies their flags and answers them (a FIN with FIN_ACK). The
//! channel is read with a waker of this module's (`WakerHub`) that wakes
//! both: a channel keeps one read waker, and the task it would otherwise
//! wake may be the application's, which need not read again (libp2p's
//! relay server reads one request and never polls the stream's read half
//! again). That way a FIN is acknowledged even when the
//! application stopped reading, or dropped the stream after closing its
//! write half: the drop listener lingers until the peer's FIN comes (or
//! [`Config::linger`] passes), so a peer that waits for our FIN_ACK (as
//! js-libp2p does, for 10 s) gets it.
//!
//! Memory: payloads wait for the reader up to [`MAX_READ_AHEAD`] bytes;
//! beyond that the channel is not read until the reader catches up (its
//! own buffer then fills, and the transport's flow control applies).

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures::{
    AsyncRead, AsyncWrite, FutureExt as _, ready,
    task::{ArcWake, waker},
};
use futures_timer::Delay;

use crate::{
    codec::{self, FrameDecoder, MAX_FRAME_LEN, MAX_PAYLOAD_LEN},
    state::{CloseProgress, ReadHalf, StreamState},
};

/// Received payload bytes held for a reader that has not read them yet,
/// before the channel is left unread: one frame's worth. Reading ahead is
/// there to see flags (a FIN to acknowledge) while nobody reads, not to
/// buffer: on the relay every stream a peer opens could hold this much,
/// taken out of the transport's own flow-controlled buffers.
pub const MAX_READ_AHEAD: usize = MAX_FRAME_LEN;

/// js-libp2p's wait for FIN_ACK (`DEFAULT_FIN_ACK_TIMEOUT`), and ours.
pub const DEFAULT_FIN_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a stream closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How long closing the write half waits for the peer's FIN_ACK;
    /// `None`: close returns once FIN is sent. A peer that never sends
    /// FIN_ACK (rust-libp2p's libp2p-webrtc-utils 0.5, for one) costs a
    /// close this long.
    pub fin_ack_timeout: Option<Duration>,
    /// How long a stream dropped after closing its write half keeps
    /// reading, to answer the peer's FIN with FIN_ACK.
    pub linger: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            fin_ack_timeout: Some(DEFAULT_FIN_ACK_TIMEOUT),
            linger: DEFAULT_FIN_ACK_TIMEOUT,
        }
    }
}

impl Config {
    /// Close returns as soon as FIN is out: for a channel whose peer may
    /// never read again (WebRTC-direct's handshake channel, whose reader
    /// is gone after Noise).
    pub fn without_fin_ack_wait() -> Self {
        Self {
            fin_ack_timeout: None,
            ..Self::default()
        }
    }
}

/// The stream's half that the application uses.
pub struct Stream<T> {
    shared: Arc<Mutex<Shared<T>>>,
    config: Config,
    /// Runs while `poll_close` waits for FIN_ACK.
    fin_ack_timer: Option<Delay>,
}

/// The stream's half that its connection polls: answers flags while the
/// stream lives, and after it is dropped sends RESET_STREAM (dropped
/// without closing) or lingers for the peer's FIN (dropped after closing).
/// It completes when nothing more is owed.
#[must_use = "a drop listener does its work only when polled"]
pub struct DropListener<T> {
    shared: Arc<Mutex<Shared<T>>>,
    linger: Duration,
    linger_timer: Option<Delay>,
}

struct Shared<T> {
    channel: T,
    state: StreamState,
    decoder: FrameDecoder,
    /// Payload bytes not yet read.
    received: VecDeque<u8>,
    /// An encoded frame, or what is left of it, not yet written.
    outgoing: Vec<u8>,
    /// The channel ended (end of file) or failed.
    channel_ended: bool,
    /// Why reading failed, for every later read.
    failure: Option<(io::ErrorKind, String)>,
    stream_dropped: bool,
    /// Wakes every task that waits on this stream.
    wakers: Arc<WakerHub>,
    /// `wakers` as a `Waker`, for reading the channel.
    hub_waker: Waker,
}

/// Who waits on a stream.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// The application, in a read, write or close.
    Application,
    /// The drop listener, in its connection's task.
    Listener,
}

/// The tasks waiting on one stream, woken together when the channel has
/// something: whichever of them is polled next reads it.
#[derive(Default)]
struct WakerHub {
    waiting: Mutex<[Option<Waker>; 2]>,
}

impl WakerHub {
    fn slots(&self) -> MutexGuard<'_, [Option<Waker>; 2]> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn register(&self, role: Role, waker: &Waker) {
        let mut slots = self.slots();
        let slot = &mut slots[role as usize];
        if !slot.as_ref().is_some_and(|old| old.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn wake_one(&self, role: Role) {
        let waker = self.slots()[role as usize].take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wake_all(&self) {
        let wakers = std::mem::take(&mut *self.slots());
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }
}

impl ArcWake for WakerHub {
    fn wake_by_ref(hub: &Arc<Self>) {
        hub.wake_all();
    }
}

impl<T> Stream<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// A stream on `channel` that waits for FIN_ACK when closing
    /// ([`Config::default`]).
    pub fn new(channel: T) -> (Self, DropListener<T>) {
        Self::with_config(channel, Config::default())
    }

    pub fn with_config(channel: T, config: Config) -> (Self, DropListener<T>) {
        let wakers = Arc::new(WakerHub::default());
        let shared = Arc::new(Mutex::new(Shared {
            channel,
            state: StreamState::new(),
            decoder: FrameDecoder::new(),
            received: VecDeque::new(),
            outgoing: Vec::new(),
            channel_ended: false,
            failure: None,
            stream_dropped: false,
            wakers: wakers.clone(),
            hub_waker: waker(wakers),
        }));
        (
            Self {
                shared: shared.clone(),
                config,
                fin_ack_timer: None,
            },
            DropListener {
                shared,
                linger: config.linger,
                linger_timer: None,
            },
        )
    }

    /// Closes the read half: the peer is told to stop sending
    /// (STOP_SENDING), and what still arrives is dropped.
    pub fn poll_close_read(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        shared.state.close_read();
        shared.received.clear();
        ready!(shared.poll_send_owed(cx))?;
        Poll::Ready(Ok(()))
    }
}

fn lock<T>(shared: &Mutex<Shared<T>>) -> MutexGuard<'_, Shared<T>> {
    // A panic while locked leaves plain data behind; carry on with it.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T> Shared<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// Reads and applies what the channel has, until it has nothing more
    /// for now or [`MAX_READ_AHEAD`] bytes wait for the reader; then sends
    /// the flags that are owed. Returns whether anything arrived.
    fn pump(&mut self, cx: &mut Context<'_>, role: Role) -> bool {
        self.wakers.register(role, cx.waker());
        let mut arrived = false;
        let mut buffer = [0u8; MAX_FRAME_LEN];
        let hub_waker = self.hub_waker.clone();
        let mut hub_cx = Context::from_waker(&hub_waker);
        while !self.channel_ended && self.received.len() < MAX_READ_AHEAD {
            match Pin::new(&mut self.channel).poll_read(&mut hub_cx, &mut buffer) {
                Poll::Ready(Ok(0)) => {
                    self.channel_ended = true;
                    self.state.on_channel_closed();
                    arrived = true;
                }
                Poll::Ready(Ok(n)) => {
                    arrived = true;
                    self.decoder.push(&buffer[..n]);
                    self.decode();
                }
                Poll::Ready(Err(error)) => {
                    tracing::debug!(%error, "reading the data channel failed");
                    self.failure = Some((error.kind(), error.to_string()));
                    self.channel_ended = true;
                    self.state.on_channel_closed();
                    arrived = true;
                }
                Poll::Pending => break,
            }
        }
        // Owed flags (FIN_ACK, above all) go out now; if the channel is
        // busy, they go with the next poll of either half.
        if let Poll::Ready(Err(error)) = self.poll_send_owed(cx) {
            tracing::debug!(%error, "sending a flag failed");
        }
        if arrived {
            self.wakers.wake_all();
        }
        arrived
    }

    fn decode(&mut self) {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Some(payload) = self.state.on_frame(frame) {
                        self.received.extend(payload);
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    // The framing is lost: nothing later can be read.
                    tracing::debug!(%error, "resetting a stream whose peer broke the framing");
                    self.failure = Some((io::ErrorKind::InvalidData, error.to_string()));
                    self.state.reset();
                    self.channel_ended = true;
                    return;
                }
            }
        }
    }

    /// Writes the frame in progress, then every owed flag.
    fn poll_send_owed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_write_outgoing(cx))?;
            let Some(flag) = self.state.next_flag() else {
                return Poll::Ready(Ok(()));
            };
            codec::encode(Some(flag), &[], &mut self.outgoing);
            self.state.flag_sent(flag);
        }
    }

    fn poll_write_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_empty() {
            let n = ready!(Pin::new(&mut self.channel).poll_write(cx, &self.outgoing))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    fn read_failure(&self) -> Option<io::Error> {
        self.failure
            .as_ref()
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }
}

impl<T> AsyncRead for Stream<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(&self.shared);
        loop {
            if !shared.received.is_empty() {
                let n = buf.len().min(shared.received.len());
                for (slot, byte) in buf.iter_mut().zip(shared.received.drain(..n)) {
                    *slot = byte;
                }
                return Poll::Ready(Ok(n));
            }
            if let Some(error) = shared.read_failure() {
                return Poll::Ready(Err(error));
            }
            if let Some(error) = shared.state.read_error() {
                return Poll::Ready(Err(error));
            }
            if shared.state.read_half() != ReadHalf::Open {
                return Poll::Ready(Ok(0));
            }
            if !shared.pump(cx, Role::Application) {
                return Poll::Pending;
            }
        }
    }
}

impl<T> AsyncWrite for Stream<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(&self.shared);
        // Flags the peer sent (STOP_SENDING, RESET_STREAM) end writing.
        shared.pump(cx, Role::Application);
        shared.state.check_write()?;
        ready!(shared.poll_send_owed(cx))?;
        let n = buf.len().min(MAX_PAYLOAD_LEN);
        codec::encode(None, &buf[..n], &mut shared.outgoing);
        // The frame is ours to deliver from here; a busy channel takes the
        // rest on the next poll.
        if let Poll::Ready(Err(error)) = shared.poll_write_outgoing(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        ready!(shared.poll_send_owed(cx))?;
        Pin::new(&mut shared.channel).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let mut shared = lock(&this.shared);
        shared.state.close_write();
        ready!(shared.poll_send_owed(cx))?;
        ready!(Pin::new(&mut shared.channel).poll_flush(cx))?;
        let Some(timeout) = this.config.fin_ack_timeout else {
            return Poll::Ready(Ok(()));
        };
        loop {
            match shared.state.close_progress() {
                CloseProgress::Done => return Poll::Ready(Ok(())),
                CloseProgress::Reset => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the stream was reset before the peer acknowledged its end (FIN_ACK)",
                    )));
                }
                CloseProgress::WaitingForFinAck => {}
            }
            if !shared.pump(cx, Role::Application) {
                break;
            }
        }
        let timer = this
            .fin_ack_timer
            .get_or_insert_with(|| Delay::new(timeout));
        if timer.poll_unpin(cx).is_ready() {
            // An older peer: it never acknowledges. The spec lets us close
            // anyway, without the certainty that it got everything.
            tracing::debug!(
                ?timeout,
                "no FIN_ACK from the peer; closing the write half anyway"
            );
            shared.state.stop_waiting_for_fin_ack();
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl<T> Drop for Stream<T> {
    fn drop(&mut self) {
        let mut shared = lock(&self.shared);
        shared.stream_dropped = true;
        if !shared.state.write_finished() {
            // Dropped without closing: the peer must not take what it got
            // for the whole (the drop listener sends RESET_STREAM).
            shared.state.reset();
        }
        shared.wakers.wake_one(Role::Listener);
    }
}

impl<T> Future for DropListener<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut shared = lock(&this.shared);
        if !shared.stream_dropped {
            // Keep the flags flowing for a stream nobody reads right now.
            shared.pump(cx, Role::Listener);
            return Poll::Pending;
        }
        // Dropped: send what is owed (RESET_STREAM, FIN, FIN_ACK).
        ready!(shared.poll_send_owed(cx))?;
        ready!(Pin::new(&mut shared.channel).poll_flush(cx))?;
        // Then linger for the peer's FIN, reading and dropping its data.
        loop {
            shared.received.clear();
            if shared.channel_ended || !shared.state.may_receive_fin() {
                ready!(shared.poll_send_owed(cx))?;
                return Poll::Ready(Ok(()));
            }
            if !shared.pump(cx, Role::Listener) {
                break;
            }
        }
        let linger = this.linger;
        let timer = this.linger_timer.get_or_insert_with(|| Delay::new(linger));
        if timer.poll_unpin(cx).is_ready() {
            tracing::debug!(?linger, "the peer sent no FIN after the stream was dropped");
            return Poll::Ready(Ok(()));
        }
        shared.wakers.register(Role::Listener, cx.waker());
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for DropListener<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropListener").finish_non_exhaustive()
    }
}
