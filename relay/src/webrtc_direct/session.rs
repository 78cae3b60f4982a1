//! One WebRTC-direct session: the sans-IO `Rtc`, the datagrams the demux
//! queued for it, its timer, and the data channels' buffers.
//!
//! Whoever owns the session drives it with [`Session::drive`]: the
//! handshake future first, then the connection's `StreamMuxer::poll`
//! (the swarm's connection task; no task of its own). Data channel reads
//! and writes only touch the buffers and wake the driver.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use str0m::{
    Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig, channel::ChannelId,
    net::Protocol, net::Receive,
};
use tokio::{net::UdpSocket, sync::mpsc, time::Sleep};

use super::demux::Datagram;

/// Unread bytes one channel may hold before it is reset: the SCTP
/// association is shared by every stream, so there is no per-stream
/// backpressure, and a peer that writes to a stream nobody reads would
/// otherwise grow it without end (the page's `MAX_READ_BUFFER`).
pub const MAX_CHANNEL_READ_BUFFER: usize = 1024 * 1024;
/// Bytes queued in SCTP for one channel before writes wait.
pub const MAX_BUFFERED_AMOUNT: usize = 256 * 1024;
/// Rounds of input and output in one `drive` before yielding.
const MAX_ROUNDS: usize = 64;

pub type Shared = Arc<Mutex<Session>>;

pub fn lock(session: &Shared) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("the session closed")]
    Closed,
    #[error("the peer stopped answering (ICE disconnected)")]
    Disconnected,
    #[error("the listener is gone")]
    ListenerGone,
}

#[derive(Debug, Default)]
pub struct ChannelBuffers {
    pub open: bool,
    pub closed: bool,
    received: VecDeque<Vec<u8>>,
    /// Read offset into `received.front()`.
    offset: usize,
    unread: usize,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

pub struct Session {
    pub rtc: Rtc,
    socket: Arc<UdpSocket>,
    remote: SocketAddr,
    /// The host candidate the `Rtc` knows this session by (see
    /// [`candidate_address`]).
    local: SocketAddr,
    /// The session's ufrag, which is also both passwords.
    ufrag: String,
    /// Whether ICE has a nominated pair: until then the client's signed
    /// checks nominate (see [`super::nomination`]).
    nominated: bool,
    datagrams: mpsc::Receiver<Datagram>,
    timer: Pin<Box<Sleep>>,
    driver: Option<Waker>,
    pub channels: HashMap<ChannelId, ChannelBuffers>,
    /// Channels the peer opened, not yet handed out.
    pub opened: VecDeque<ChannelId>,
    /// Channels we opened that are not open yet.
    pub opening: Vec<ChannelId>,
    pub connected: bool,
    failed: Option<String>,
}

/// The address str0m knows the relay's end of every session by. str0m
/// takes a STUN request only if its destination is one of its host
/// candidates; a socket bound to the unspecified address cannot tell
/// which of the host's addresses a datagram was sent to (that needs
/// IP_PKTINFO). With ICE-lite the candidate is only a name: the relay
/// sends no checks and everything goes out through the one socket. So a
/// socket bound to one address uses it, and a wildcard socket a
/// documentation address (RFC 5737 / RFC 3849) with its port.
pub fn candidate_address(socket: SocketAddr) -> SocketAddr {
    if !socket.ip().is_unspecified() {
        return socket;
    }
    let ip: std::net::IpAddr = if socket.is_ipv4() {
        [192, 0, 2, 1].into()
    } else {
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1].into()
    };
    SocketAddr::new(ip, socket.port())
}

impl Session {
    pub fn new(
        config: RtcConfig,
        socket: Arc<UdpSocket>,
        remote: SocketAddr,
        ufrag: &str,
        datagrams: mpsc::Receiver<Datagram>,
    ) -> Result<Self, SessionError> {
        let local = candidate_address(
            socket
                .local_addr()
                .map_err(|_| SessionError::ListenerGone)?,
        );
        let mut rtc = config.build(Instant::now());
        let creds = str0m::IceCreds {
            ufrag: ufrag.to_owned(),
            pass: ufrag.to_owned(),
        };
        let candidate = Candidate::host(local, "udp")
            .map_err(|error| SessionError::Rtc(str0m::RtcError::Ice(error)))?;
        {
            let mut direct = rtc.direct_api();
            direct.set_local_ice_credentials(creds.clone());
            direct.set_remote_ice_credentials(creds);
            direct.set_ice_controlling(false);
            // Fingerprint verification is off (the spec: any client
            // certificate; Noise binds it), but str0m wants one.
            direct.set_remote_fingerprint(str0m::config::Fingerprint {
                hash_func: "sha-256".into(),
                bytes: vec![0xff; 32],
            });
            direct.start_dtls(false)?;
            direct.start_sctp(false);
        }
        rtc.add_local_candidate(candidate);
        Ok(Self {
            rtc,
            socket,
            remote,
            local,
            ufrag: ufrag.to_owned(),
            nominated: false,
            datagrams,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            driver: None,
            channels: HashMap::new(),
            opened: VecDeque::new(),
            opening: Vec::new(),
            connected: false,
            failed: None,
        })
    }

    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Feeds one datagram to the `Rtc`.
    pub fn receive(&mut self, datagram: &Datagram) {
        let nominating = if self.nominated {
            None
        } else {
            super::nomination::nominating(&datagram.data, &self.ufrag)
        };
        let data = nominating.as_deref().unwrap_or(&datagram.data);
        // From the datagram's own source: a client that moved keeps its
        // session (the demux routes its new address here).
        let Ok(receive) = Receive::new(Protocol::Udp, datagram.source, self.local, data) else {
            return;
        };
        let input = Input::Receive(datagram.at, receive);
        if !self.rtc.accepts(&input) {
            return;
        }
        match self.rtc.handle_input(input) {
            // ICE-lite nominates the pair of that check at once: only the
            // first check is made a nomination, not every one queued
            // behind it (from the client's other candidates) before the
            // `Completed` event is read.
            Ok(()) if nominating.is_some() => self.nominated = true,
            Ok(()) => {}
            Err(error) => {
                tracing::debug!(%error, remote = %self.remote, "WebRTC-direct input refused")
            }
        }
    }

    /// Runs the `Rtc` on what arrived and what is due: datagrams in,
    /// datagrams out, timers and events. Registers `cx` to be woken for
    /// the next of them.
    pub fn drive(&mut self, cx: &mut Context<'_>) -> Result<(), SessionError> {
        if !self
            .driver
            .as_ref()
            .is_some_and(|driver| driver.will_wake(cx.waker()))
        {
            self.driver = Some(cx.waker().clone());
        }
        for _ in 0..MAX_ROUNDS {
            let mut progressed = false;
            loop {
                match self.datagrams.poll_recv(cx) {
                    Poll::Ready(Some(datagram)) => {
                        self.receive(&datagram);
                        progressed = true;
                    }
                    Poll::Ready(None) => return Err(SessionError::ListenerGone),
                    Poll::Pending => break,
                }
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                self.rtc.handle_input(Input::Timeout(Instant::now()))?;
                progressed = true;
            }
            self.drain_output()?;
            if let Some(reason) = &self.failed {
                tracing::debug!(%reason, remote = %self.remote, "WebRTC-direct session ends");
                return Err(if reason == "disconnected" {
                    SessionError::Disconnected
                } else {
                    SessionError::Closed
                });
            }
            if !self.rtc.is_alive() {
                return Err(SessionError::Closed);
            }
            if !progressed {
                return Ok(());
            }
        }
        // Plenty left: let other connections run, come back at once.
        cx.waker().wake_by_ref();
        Ok(())
    }

    fn drain_output(&mut self) -> Result<(), SessionError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(transmit) => {
                    // Full socket buffer: dropped like any lost datagram.
                    let _ = self
                        .socket
                        .try_send_to(&transmit.contents, transmit.destination);
                }
                Output::Timeout(at) => {
                    let at = tokio::time::Instant::from_std(at);
                    if self.timer.deadline() != at {
                        self.timer.as_mut().reset(at);
                    }
                    return Ok(());
                }
                Output::Event(event) => self.on_event(event),
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => self.connected = true,
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => self.nominated = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.failed = Some("disconnected".into());
            }
            Event::Closed => self.failed = Some("closed".into()),
            Event::ChannelOpen(id, _label) => {
                let buffers = self.channels.entry(id).or_default();
                buffers.open = true;
                if let Some(channel) = self.rtc.channel(id) {
                    let mut channel = channel;
                    channel.set_buffered_amount_low_threshold(MAX_BUFFERED_AMOUNT / 2);
                }
                if let Some(index) = self.opening.iter().position(|opening| *opening == id) {
                    self.opening.swap_remove(index);
                    wake(&mut self.channels.entry(id).or_default().writer);
                } else {
                    self.opened.push_back(id);
                }
            }
            Event::ChannelData(data) => {
                let id = data.id;
                let Some(buffers) = self.channels.get_mut(&id) else {
                    return;
                };
                if buffers.unread + data.data.len() > MAX_CHANNEL_READ_BUFFER {
                    tracing::debug!(remote = %self.remote, "a data channel's unread data passed its bound: closed");
                    buffers.closed = true;
                    buffers.received.clear();
                    wake(&mut buffers.reader);
                    wake(&mut buffers.writer);
                    self.rtc.direct_api().close_data_channel(id);
                    return;
                }
                buffers.unread += data.data.len();
                buffers.received.push_back(data.data);
                wake(&mut buffers.reader);
            }
            Event::ChannelClose(id) => {
                if let Some(buffers) = self.channels.get_mut(&id) {
                    buffers.closed = true;
                    wake(&mut buffers.reader);
                    wake(&mut buffers.writer);
                }
                self.opening.retain(|opening| *opening != id);
                self.opened.retain(|opened| *opened != id);
            }
            Event::ChannelBufferedAmountLow(id) => {
                if let Some(buffers) = self.channels.get_mut(&id) {
                    wake(&mut buffers.writer);
                }
            }
            _ => {}
        }
    }

    pub fn wake_driver(&mut self) {
        if let Some(driver) = &self.driver {
            driver.wake_by_ref();
        }
    }

    /// Copies unread bytes of `id` into `buf`; `None` when nothing is
    /// there yet (the reader is registered).
    pub fn poll_read(
        &mut self,
        id: ChannelId,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<usize> {
        let Some(buffers) = self.channels.get_mut(&id) else {
            return Poll::Ready(0);
        };
        if let Some(front) = buffers.received.front() {
            let n = (front.len() - buffers.offset).min(buf.len());
            buf[..n].copy_from_slice(&front[buffers.offset..buffers.offset + n]);
            buffers.offset += n;
            buffers.unread -= n;
            if buffers.offset == front.len() {
                buffers.received.pop_front();
                buffers.offset = 0;
            }
            return Poll::Ready(n);
        }
        if buffers.closed {
            return Poll::Ready(0);
        }
        buffers.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Sends `buf` as one message on `id`, once SCTP has room.
    pub fn poll_write(
        &mut self,
        id: ChannelId,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let closed = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let Some(buffers) = self.channels.get_mut(&id) else {
            return Poll::Ready(Err(closed()));
        };
        if buffers.closed {
            return Poll::Ready(Err(closed()));
        }
        if !buffers.open {
            buffers.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        buffers.writer = Some(cx.waker().clone());
        let Some(mut channel) = self.rtc.channel(id) else {
            return Poll::Ready(Err(closed()));
        };
        if channel.buffered_amount() > MAX_BUFFERED_AMOUNT {
            return Poll::Pending;
        }
        match channel.write(true, buf) {
            Ok(true) => {
                if let Some(buffers) = self.channels.get_mut(&id) {
                    buffers.writer = None;
                }
                self.wake_driver();
                Poll::Ready(Ok(buf.len()))
            }
            // No room in the association: BufferedAmountLow or the next
            // round of the driver brings us back.
            Ok(false) => {
                self.wake_driver();
                Poll::Pending
            }
            Err(error) => Poll::Ready(Err(std::io::Error::other(error))),
        }
    }

    pub fn close_channel(&mut self, id: ChannelId) {
        if let Some(buffers) = self.channels.get_mut(&id) {
            buffers.closed = true;
        }
        self.rtc.direct_api().close_data_channel(id);
        self.wake_driver();
    }

    /// Forgets a channel that both sides are done with.
    pub fn forget_channel(&mut self, id: ChannelId) {
        self.channels.remove(&id);
    }
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(waker) = waker.take() {
        waker.wake();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("remote", &self.remote)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}
