//! An `RTCDataChannel` as a byte stream (`AsyncRead` + `AsyncWrite`), on
//! which `webrtc-framing` runs the libp2p stream framing.
//!
//! Reads come from the channel's `message` events, buffered up to
//! [`MAX_READ_BUFFER`]: a data channel has no read-side backpressure that a
//! page can apply, so a peer that sends far more than we read gets the
//! channel closed instead of growing our memory. Writes wait for the
//! channel to open and for its send buffer to drain below
//! [`MAX_BUFFERED_AMOUNT`]; each message is at most one frame.
//!
//! Data that arrives while nobody waits to read wakes the connection's
//! task instead (see [`ConnectionWaker`]), as a yamux connection's socket
//! would.

use std::{
    cell::RefCell,
    collections::VecDeque,
    io,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

use futures::{AsyncRead, AsyncWrite};
use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::{JsCast as _, closure::Closure};
use web_sys::{MessageEvent, RtcDataChannel, RtcDataChannelState, RtcDataChannelType};
use webrtc_framing::MAX_FRAME_LEN;

/// Bytes received and not yet read before the channel is closed as abusive.
pub const MAX_READ_BUFFER: usize = 1024 * 1024;
/// Bytes queued in the browser's send buffer before writes wait.
pub const MAX_BUFFERED_AMOUNT: u32 = 256 * 1024;

/// The waker of the task that polls a connection (its `StreamMuxer::poll`).
///
/// Over yamux, any data for any stream wakes the connection's task, which
/// then polls every handler. Data channels deliver to their stream alone,
/// so a handler that has not polled its stream since it last read (say,
/// libp2p-ping's, which starts waiting for the next ping without polling
/// it) would sleep through the data until some other event. Waking the
/// connection when data arrives with no reader registered gives the
/// handlers the same chance yamux gives them.
#[derive(Clone, Default)]
pub(crate) struct ConnectionWaker(Rc<RefCell<Option<Waker>>>);

impl ConnectionWaker {
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.0.borrow_mut();
        if !slot.as_ref().is_some_and(|old| old.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn wake(&self) {
        if let Some(waker) = self.0.borrow_mut().take() {
            waker.wake();
        }
    }
}

struct Shared {
    read_buffer: VecDeque<u8>,
    overflowed: bool,
    closed: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    connection: ConnectionWaker,
}

impl Shared {
    fn wake_all(&mut self) {
        match self.read_waker.take() {
            Some(waker) => waker.wake(),
            None => self.connection.wake(),
        }
        if let Some(waker) = self.write_waker.take() {
            waker.wake();
        }
    }
}

/// The browser's callbacks, kept alive as long as any handle.
struct Callbacks {
    channel: RtcDataChannel,
    /// Whether the channel outlives its handles (see
    /// [`PollDataChannel::new_kept_open`]).
    keep_open: bool,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_open: Closure<dyn FnMut(web_sys::Event)>,
    _on_close: Closure<dyn FnMut(web_sys::Event)>,
    _on_buffered_amount_low: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Callbacks {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.set_onopen(None);
        self.channel.set_onclose(None);
        self.channel.set_onbufferedamountlow(None);
        if !self.keep_open {
            self.channel.close();
        }
    }
}

/// A handle on one data channel; clones share it.
#[derive(Clone)]
pub struct PollDataChannel {
    channel: RtcDataChannel,
    shared: Rc<RefCell<Shared>>,
    _callbacks: Rc<Callbacks>,
}

impl PollDataChannel {
    pub(crate) fn new(channel: RtcDataChannel, connection: ConnectionWaker) -> Self {
        Self::with_keep_open(channel, connection, false)
    }

    /// A handle that never closes the channel itself, neither on close
    /// nor on drop (its callbacks are still unset when the last handle
    /// goes): for WebRTC-direct's handshake channel 0. Closing it frees
    /// stream id 0, and Chromium gives that id to the next channel the
    /// page opens, which the server still takes for the handshake's: the
    /// page's first libp2p stream (its gossipsub stream, say) then fails
    /// protocol negotiation. The channel closes with its peer connection.
    pub(crate) fn new_kept_open(channel: RtcDataChannel, connection: ConnectionWaker) -> Self {
        Self::with_keep_open(channel, connection, true)
    }

    fn with_keep_open(
        channel: RtcDataChannel,
        connection: ConnectionWaker,
        keep_open: bool,
    ) -> Self {
        channel.set_binary_type(RtcDataChannelType::Arraybuffer);
        channel.set_buffered_amount_low_threshold(MAX_BUFFERED_AMOUNT / 2);
        let shared = Rc::new(RefCell::new(Shared {
            read_buffer: VecDeque::new(),
            overflowed: false,
            closed: false,
            read_waker: None,
            write_waker: None,
            connection,
        }));

        let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
            let (shared, channel) = (shared.clone(), channel.clone());
            move |event: MessageEvent| {
                let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() else {
                    tracing::debug!("ignoring a non-binary data channel message");
                    return;
                };
                let bytes = Uint8Array::new(&buffer).to_vec();
                let mut shared = shared.borrow_mut();
                if shared.read_buffer.len() + bytes.len() > MAX_READ_BUFFER {
                    tracing::warn!(label = %channel.label(), "peer sent more than {MAX_READ_BUFFER} unread bytes; closing the channel");
                    shared.overflowed = true;
                    shared.closed = true;
                    channel.close();
                } else {
                    shared.read_buffer.extend(bytes);
                }
                shared.wake_all();
            }
        });
        let wake = |shared: &Rc<RefCell<Shared>>, closes: bool| {
            let shared = shared.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                let mut shared = shared.borrow_mut();
                shared.closed |= closes;
                shared.wake_all();
            })
        };
        let on_open = wake(&shared, false);
        let on_close = wake(&shared, true);
        let on_buffered_amount_low = wake(&shared, false);
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        channel.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        channel.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        channel.set_onbufferedamountlow(Some(on_buffered_amount_low.as_ref().unchecked_ref()));

        Self {
            channel: channel.clone(),
            shared,
            _callbacks: Rc::new(Callbacks {
                channel,
                keep_open,
                _on_message: on_message,
                _on_open: on_open,
                _on_close: on_close,
                _on_buffered_amount_low: on_buffered_amount_low,
            }),
        }
    }
}

impl AsyncRead for PollDataChannel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = self.shared.borrow_mut();
        if shared.overflowed {
            return Poll::Ready(Err(io::Error::other(
                "data channel closed: the peer overran the read buffer",
            )));
        }
        if !shared.read_buffer.is_empty() {
            let n = buf.len().min(shared.read_buffer.len());
            for (slot, byte) in buf.iter_mut().zip(shared.read_buffer.drain(..n)) {
                *slot = byte;
            }
            return Poll::Ready(Ok(n));
        }
        if shared.closed {
            return Poll::Ready(Ok(0));
        }
        shared.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for PollDataChannel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = self.shared.borrow_mut();
        match self.channel.ready_state() {
            RtcDataChannelState::Connecting => {
                shared.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            RtcDataChannelState::Open if !shared.closed => {}
            _ => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
        if self.channel.buffered_amount() > MAX_BUFFERED_AMOUNT {
            shared.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        // One message carries at most one frame's worth, as the spec sizes them.
        let n = buf.len().min(MAX_FRAME_LEN);
        self.channel
            .send_with_u8_array(&buf[..n])
            .map_err(|error| {
                io::Error::other(format!(
                    "data channel send failed: {}",
                    crate::error::js_message(&error)
                ))
            })?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Sent messages are the browser's to deliver; nothing to flush here.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self._callbacks.keep_open {
            self.channel.close();
        }
        Poll::Ready(Ok(()))
    }
}
