//! One task per UDP socket: datagrams from known sources go to their
//! session, a STUN binding request from an unknown source may open one.
//!
//! Nothing is allocated for a stranger before its request passed every
//! check (WebRTC-direct spec, "rate-limit unknown ufrags"): a binding
//! request, a username `u:u` with the spec's ufrag prefix, a
//! MESSAGE-INTEGRITY made with the password `u` (it costs an attacker
//! nothing, since it picks `u`, but rejects scanners and garbage), the
//! source prefix's and the listener's budget of new sessions per second
//! (the STUN server's token buckets), and a free pending slot: at most
//! [`Limits::max_pending_per_prefix`] sessions in their handshake per
//! IPv4 address or IPv6 /64, [`Limits::max_pending`] per listener.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use str0m::ice::StunMessage;
use tokio::{net::UdpSocket, sync::mpsc};

use super::metrics::Metrics;
use crate::{
    addresses::IpPrefix,
    refusals::Refusals,
    stun::{PrefixBudgets, TokenBucket},
};

/// The ufrag prefix of the spec (`webrtc-direct.md`): anything else is not
/// a libp2p dialer.
const UFRAG_PREFIX: &str = "libp2p+webrtc+v1/";
/// Longer ufrags are refused (ours are 17 + 64 characters).
const MAX_UFRAG_LEN: usize = 256;
/// Datagrams queued for one session before the newest are dropped (SCTP
/// and DTLS retransmit).
pub const SESSION_QUEUE: usize = 256;
/// Sessions (opening and established) one socket serves: far above what
/// the connection limits let establish, a bound on the session map.
pub const MAX_SESSIONS: usize = 4096;
/// New sessions per second from one IPv4 address or IPv6 /64: a page
/// opens one per connect.
pub const NEW_PER_PREFIX_PER_SECOND: u32 = 8;
/// New sessions per second on one listener.
pub const NEW_PER_SECOND: u32 = 256;
/// Largest datagram read; WebRTC stays below 1500 bytes.
const MAX_DATAGRAM: usize = 2048;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sessions (opening and established) one socket serves.
    pub max_sessions: usize,
    /// Sessions in their handshake, per source IPv4 address or IPv6 /64.
    pub max_pending_per_prefix: usize,
    /// Sessions in their handshake on one listener.
    pub max_pending: usize,
    /// New sessions per second from one source prefix.
    pub new_per_prefix_per_second: u32,
    /// New sessions per second on one listener.
    pub new_per_second: u32,
}

/// A datagram for a session, with the time it was read.
#[derive(Debug)]
pub struct Datagram {
    pub data: Vec<u8>,
    pub at: Instant,
}

/// A session the demux let in: the transport turns it into an upgrade.
#[derive(Debug)]
pub struct NewSession {
    pub remote: SocketAddr,
    pub ufrag: String,
    pub first: Datagram,
    pub datagrams: mpsc::Receiver<Datagram>,
    pub slot: PendingSlot,
}

/// Holds one pending slot until the handshake ends (either way).
#[derive(Debug)]
pub struct PendingSlot {
    counts: Arc<Mutex<PendingCounts>>,
    prefix: IpPrefix,
    metrics: Metrics,
}

#[derive(Debug, Default)]
struct PendingCounts {
    total: usize,
    per_prefix: HashMap<IpPrefix, usize>,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_prefix.get_mut(&self.prefix) {
            *count -= 1;
            if *count == 0 {
                counts.per_prefix.remove(&self.prefix);
            }
        }
        self.metrics.opening.dec();
    }
}

pub struct Demux {
    socket: Arc<UdpSocket>,
    limits: Limits,
    sessions: HashMap<SocketAddr, mpsc::Sender<Datagram>>,
    new_sessions: mpsc::Sender<NewSession>,
    budgets: PrefixBudgets,
    budget: TokenBucket,
    pending: Arc<Mutex<PendingCounts>>,
    metrics: Metrics,
    refusals: Refusals,
}

impl Demux {
    pub fn new(
        socket: Arc<UdpSocket>,
        limits: Limits,
        new_sessions: mpsc::Sender<NewSession>,
        metrics: Metrics,
        refusals: Refusals,
    ) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            socket,
            limits,
            sessions: HashMap::new(),
            new_sessions,
            budgets: PrefixBudgets::new(limits.new_per_prefix_per_second, now),
            budget: TokenBucket::new(limits.new_per_second, now),
            pending: Arc::default(),
            metrics,
            refusals,
        }
    }

    /// Reads until the socket fails or the transport is gone.
    pub async fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (len, source) = match self.socket.recv_from(&mut buf).await {
                Ok(read) => read,
                // ICMP errors from earlier sends surface here on some
                // systems: not the socket's end.
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => continue,
                Err(error) => {
                    tracing::warn!(%error, "WebRTC-direct socket failed");
                    return;
                }
            };
            if self.new_sessions.is_closed() {
                return;
            }
            self.on_datagram(&buf[..len], source, Instant::now());
        }
    }

    fn on_datagram(&mut self, data: &[u8], source: SocketAddr, at: Instant) {
        if data.is_empty() {
            // str0m does not expect empty datagrams (litep2p#550).
            self.metrics.drop("empty");
            return;
        }
        if let Some(session) = self.sessions.get(&source) {
            match session.try_send(Datagram {
                data: data.to_vec(),
                at,
            }) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.drop("session-queue-full");
                    return;
                }
                // The session ended: the source is a stranger again.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.sessions.remove(&source);
                }
            }
        }
        self.on_stranger(data, source, at);
    }

    fn on_stranger(&mut self, data: &[u8], source: SocketAddr, at: Instant) {
        let Some(ufrag) = self.checked_ufrag(data) else {
            return;
        };
        let prefix = IpPrefix::of(source.ip());
        if self
            .budgets
            .try_take(prefix, tokio::time::Instant::from_std(at))
            .is_err()
        {
            self.metrics.drop("prefix-rate");
            self.refusals
                .refused("webrtc-direct-per-ip-rate", || format!("{prefix}"));
            return;
        }
        if !self.budget.try_take(tokio::time::Instant::from_std(at)) {
            self.metrics.drop("listener-rate");
            self.refusals
                .refused("webrtc-direct-rate", || format!("{prefix}"));
            return;
        }
        let Some(slot) = self.take_pending_slot(prefix) else {
            return;
        };
        if self.sessions.len() >= self.limits.max_sessions {
            self.sessions.retain(|_, session| !session.is_closed());
            if self.sessions.len() >= self.limits.max_sessions {
                self.metrics.drop("sessions-full");
                self.refusals
                    .refused("webrtc-direct-sessions", || format!("{prefix}"));
                return;
            }
        }
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let session = NewSession {
            remote: source,
            ufrag,
            first: Datagram {
                data: data.to_vec(),
                at,
            },
            datagrams: rx,
            slot,
        };
        match self.new_sessions.try_send(session) {
            Ok(()) => {
                self.sessions.insert(source, tx);
            }
            Err(_) => self.metrics.drop("accept-backlog"),
        }
    }

    /// The ufrag of a well-formed, correctly signed WebRTC-direct binding
    /// request; `None` (counted) for anything else.
    fn checked_ufrag(&self, data: &[u8]) -> Option<String> {
        let Ok(message) = StunMessage::parse(data) else {
            self.metrics.drop("not-stun");
            return None;
        };
        if !message.is_binding_request() {
            self.metrics.drop("not-binding-request");
            return None;
        }
        let ufrag = match message.split_username() {
            Some((local, remote))
                if local == remote
                    && local.starts_with(UFRAG_PREFIX)
                    && local.len() <= MAX_UFRAG_LEN =>
            {
                local.to_owned()
            }
            _ => {
                self.metrics.drop("bad-ufrag");
                return None;
            }
        };
        if !message.verify(ufrag.as_bytes(), hmac_sha1) {
            self.metrics.drop("bad-integrity");
            return None;
        }
        Some(ufrag)
    }

    fn take_pending_slot(&self, prefix: IpPrefix) -> Option<PendingSlot> {
        let mut counts = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let of_prefix = counts.per_prefix.get(&prefix).copied().unwrap_or(0);
        if of_prefix >= self.limits.max_pending_per_prefix {
            self.metrics.drop("pending-per-ip");
            self.refusals
                .refused("webrtc-direct-pending-per-ip", || format!("{prefix}"));
            return None;
        }
        if counts.total >= self.limits.max_pending {
            self.metrics.drop("pending");
            self.refusals
                .refused("webrtc-direct-pending", || format!("{prefix}"));
            return None;
        }
        counts.total += 1;
        *counts.per_prefix.entry(prefix).or_default() += 1;
        self.metrics.opening.inc();
        Some(PendingSlot {
            counts: self.pending.clone(),
            prefix,
            metrics: self.metrics.clone(),
        })
    }
}

/// HMAC-SHA1 as STUN's MESSAGE-INTEGRITY needs it (RFC 5389, ICE's
/// short-term credentials: the key is the password itself).
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut context = ring::hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(context.sign().as_ref());
    out
}

impl std::fmt::Debug for Demux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demux")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}
