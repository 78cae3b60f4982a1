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
//!
//! A client whose address changes (a NAT rebinding, a phone moving to
//! another network) keeps its session: a binding request from a new
//! source that carries the ufrag of a live session, correctly signed, is
//! routed to that session, and so is what follows from that source (at
//! most [`MAX_ADDRESSES_PER_SESSION`] sources per session). The `Rtc`'s
//! ICE agent then decides: it answers the check at the new address and
//! moves its sending there once the client nominates the new pair
//! (Chromium puts USE-CANDIDATE on its checks of its selected, writable
//! connection to an ICE-lite server) and
//! the old pair has gone quiet (str0m drops a pair after 15 s without a
//! check). A second dial with a live session's ufrag is routed the same
//! way, so it cannot open a parallel session under that ufrag; a dialer
//! picks a fresh random ufrag for each dial, and only someone who saw the
//! ufrag on the path can send one.

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
/// Source addresses one session is reached from (its first and those it
/// moved to); a rebinding past it is dropped.
pub const MAX_ADDRESSES_PER_SESSION: usize = 4;
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
    pub source: SocketAddr,
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

/// A session as the demux knows it: where its datagrams go, by which
/// ufrag it is known, and from how many addresses it is reached.
#[derive(Debug, Clone)]
struct Route {
    datagrams: mpsc::Sender<Datagram>,
    ufrag: Arc<str>,
    addresses: Arc<std::sync::atomic::AtomicUsize>,
}

pub struct Demux {
    socket: Arc<UdpSocket>,
    limits: Limits,
    /// By source address: every address a session is reached from.
    sessions: HashMap<SocketAddr, Route>,
    /// By ufrag: the session a rebinding client's new address joins.
    by_ufrag: HashMap<Arc<str>, Route>,
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
            by_ufrag: HashMap::new(),
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
        if let Some(route) = self.sessions.get(&source) {
            if self.forward(route, data, source, at) {
                return;
            }
            // The session ended: the source is a stranger again.
            self.forget(source);
        }
        self.on_stranger(data, source, at);
    }

    /// Hands `data` to the session of `route`; false when it has ended.
    fn forward(&self, route: &Route, data: &[u8], source: SocketAddr, at: Instant) -> bool {
        match route.datagrams.try_send(Datagram {
            data: data.to_vec(),
            source,
            at,
        }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.drop("session-queue-full");
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn forget(&mut self, source: SocketAddr) {
        if let Some(route) = self.sessions.remove(&source)
            && route.datagrams.is_closed()
            && self
                .by_ufrag
                .get(&route.ufrag)
                .is_some_and(|known| known.datagrams.same_channel(&route.datagrams))
        {
            self.by_ufrag.remove(&route.ufrag);
        }
    }

    fn on_stranger(&mut self, data: &[u8], source: SocketAddr, at: Instant) {
        let Some(ufrag) = self.checked_ufrag(data) else {
            return;
        };
        let prefix = IpPrefix::of(source.ip());
        if self.rebind(&ufrag, data, source, prefix, at) {
            return;
        }
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
            self.sessions
                .retain(|_, route| !route.datagrams.is_closed());
            self.by_ufrag
                .retain(|_, route| !route.datagrams.is_closed());
            if self.sessions.len() >= self.limits.max_sessions {
                self.metrics.drop("sessions-full");
                self.refusals
                    .refused("webrtc-direct-sessions", || format!("{prefix}"));
                return;
            }
        }
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let ufrag_key: Arc<str> = ufrag.as_str().into();
        let session = NewSession {
            remote: source,
            ufrag,
            first: Datagram {
                data: data.to_vec(),
                source,
                at,
            },
            datagrams: rx,
            slot,
        };
        match self.new_sessions.try_send(session) {
            Ok(()) => {
                let route = Route {
                    datagrams: tx,
                    ufrag: ufrag_key,
                    addresses: Arc::new(1.into()),
                };
                self.by_ufrag.insert(route.ufrag.clone(), route.clone());
                self.sessions.insert(source, route);
            }
            Err(_) => self.metrics.drop("accept-backlog"),
        }
    }

    /// Routes a binding request from a new source to the live session of
    /// its ufrag, if there is one (see the module doc); true if it did,
    /// or dropped it for that session.
    fn rebind(
        &mut self,
        ufrag: &str,
        data: &[u8],
        source: SocketAddr,
        prefix: IpPrefix,
        at: Instant,
    ) -> bool {
        let Some(route) = self.by_ufrag.get(ufrag).cloned() else {
            return false;
        };
        if route.datagrams.is_closed() {
            self.by_ufrag.remove(ufrag);
            return false;
        }
        // A source change is charged like a new session: it costs the
        // sender one signed request, and it adds a map entry.
        if self
            .budgets
            .try_take(prefix, tokio::time::Instant::from_std(at))
            .is_err()
        {
            self.metrics.drop("prefix-rate");
            return true;
        }
        let addresses = route.addresses.load(std::sync::atomic::Ordering::Relaxed);
        if addresses >= MAX_ADDRESSES_PER_SESSION || self.sessions.len() >= self.limits.max_sessions
        {
            self.metrics.drop("rebind-limit");
            self.refusals
                .refused("webrtc-direct-rebind", || format!("{prefix}"));
            return true;
        }
        if self.forward(&route, data, source, at) {
            route
                .addresses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.metrics.rebinds.inc();
            tracing::debug!(%source, "WebRTC-direct client reached its session from a new address");
            self.sessions.insert(source, route);
        }
        true
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
