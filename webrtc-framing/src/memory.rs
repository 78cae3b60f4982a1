//! An in-memory duplex channel with the semantics of an `RTCDataChannel`:
//! reliable, ordered, message-based, shared by cloned handles. For tests of
//! the framing over a channel (this crate's, and those of crates that put
//! it on real data channels); behind the `memory-channel` feature.

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use futures::{AsyncRead, AsyncWrite};

#[derive(Default)]
struct Queue {
    messages: VecDeque<Vec<u8>>,
    /// The unread rest of the message at the front.
    offset: usize,
    closed: bool,
    reader: Option<Waker>,
}

/// One end of an in-memory data channel: writes become whole messages in
/// the peer's queue, reads consume ours.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // Queues of bytes and wakers.
pub struct Channel {
    inbound: Arc<Mutex<Queue>>,
    outbound: Arc<Mutex<Queue>>,
    /// Every message this end sent, for inspecting frame sizes.
    pub sent: Arc<Mutex<Vec<usize>>>,
}

pub fn channel_pair() -> (Channel, Channel) {
    let (a_to_b, b_to_a) = (
        Arc::new(Mutex::new(Queue::default())),
        Arc::new(Mutex::new(Queue::default())),
    );
    (
        Channel {
            inbound: b_to_a.clone(),
            outbound: a_to_b.clone(),
            sent: Default::default(),
        },
        Channel {
            inbound: a_to_b,
            outbound: b_to_a,
            sent: Default::default(),
        },
    )
}

impl AsyncRead for Channel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut queue = self.inbound.lock().expect("not poisoned");
        let offset = queue.offset;
        let Some(front) = queue.messages.front() else {
            if queue.closed {
                return Poll::Ready(Ok(0));
            }
            queue.reader = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let n = buf.len().min(front.len() - offset);
        buf[..n].copy_from_slice(&front[offset..offset + n]);
        if offset + n == front.len() {
            queue.messages.pop_front();
            queue.offset = 0;
        } else {
            queue.offset += n;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Channel {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut queue = self.outbound.lock().expect("not poisoned");
        if queue.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        queue.messages.push_back(buf.to_vec());
        if let Some(reader) = queue.reader.take() {
            reader.wake();
        }
        self.sent.lock().expect("not poisoned").push(buf.len());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut queue = self.outbound.lock().expect("not poisoned");
        queue.closed = true;
        if let Some(reader) = queue.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Channel {
    /// Every message the peer has sent and we have not read, whole.
    pub fn take_messages(&self) -> Vec<Vec<u8>> {
        let mut queue = self.inbound.lock().expect("not poisoned");
        queue.offset = 0;
        queue.messages.drain(..).collect()
    }

    /// Sends one raw message, as a peer with its own framing would.
    pub fn send_raw(&self, message: &[u8]) {
        let mut queue = self.outbound.lock().expect("not poisoned");
        queue.messages.push_back(message.to_vec());
        if let Some(reader) = queue.reader.take() {
            reader.wake();
        }
    }
}
