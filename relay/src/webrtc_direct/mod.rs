//! The relay's own WebRTC-direct listener (the default;
//! `--webrtc-direct-listener libp2p` picks libp2p-webrtc 0.10 instead), on
//! str0m's sans-IO WebRTC: see `docs/design/webrtc-direct-listener.md`.
//!
//! Unlike libp2p-webrtc 0.10 (the `libp2p` listener), it accepts the
//! client's data channels from the moment DTLS and SCTP are up, answers
//! FIN with FIN_ACK through `webrtc-framing`, listens on IPv6 beside IPv4,
//! and bounds what strangers can make it hold before the swarm sees them
//! ([`demux`]).
//!
//! - [`certificate`]: the state directory's certificate for str0m.
//! - [`demux`]: one task per socket; sessions by source address, the
//!   checks and budgets a new one passes.
//! - [`session`]: one `Rtc`, its datagrams, timer and channel buffers.
//! - [`nomination`]: the client's first signed check nominates its pair
//!   (Chromium nominates late when the first answer is slow).
//! - [`handshake`]: DTLS, SCTP and Noise on channel 0.
//! - [`connection`]: the `StreamMuxer`; [`channel`]: a data channel as
//!   the framing's byte pipe.

pub mod certificate;
pub mod channel;
pub mod connection;
pub mod demux;
pub mod handshake;
pub mod metrics;
pub mod nomination;
pub mod session;

use std::{
    collections::VecDeque,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::{FutureExt as _, future::BoxFuture};
use libp2p::{
    Multiaddr, PeerId,
    core::transport::{DialOpts, ListenerId, TransportError, TransportEvent},
    identity::Keypair,
    multiaddr::Protocol,
};
use libp2p_webrtc_utils::Fingerprint;
use str0m::RtcConfig;
use tokio::{net::UdpSocket, sync::mpsc};

pub use self::{connection::Connection, demux::Limits, metrics::Metrics};
use self::{
    demux::{Demux, NewSession},
    handshake::HandshakeError,
};
use crate::refusals::Refusals;

/// The largest message either side sends (spec: `a=max-message-size:16384`).
const MAX_MESSAGE_SIZE: u32 = 16384;
/// Sessions the demux lets in that the swarm has not taken yet.
const ACCEPT_BACKLOG: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

/// Which WebRTC-direct listener the relay runs (`--webrtc-direct-listener`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ListenerKind {
    /// libp2p-webrtc 0.10 (webrtc-rs), the fallback: IPv4 only, channels
    /// accepted only after its handshake bookkeeping (js-libp2p's first
    /// streams are lost now and then), no bounds before a session exists.
    Libp2p,
    /// This relay's own listener on str0m, the default.
    #[default]
    Str0m,
}

/// The transport: listens only, never dials.
pub struct Transport {
    keypair: Keypair,
    config: RtcConfig,
    fingerprint: Fingerprint,
    limits: Limits,
    metrics: Metrics,
    refusals: Refusals,
    listeners: Vec<Listener>,
    events: VecDeque<TransportEvent<<Self as libp2p::Transport>::ListenerUpgrade, Error>>,
}

struct Listener {
    id: ListenerId,
    socket: Arc<UdpSocket>,
    local: Multiaddr,
    new_sessions: mpsc::Receiver<NewSession>,
    demux: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.demux.abort();
    }
}

impl Transport {
    pub fn new(
        keypair: Keypair,
        certificate: &libp2p_webrtc::tokio::Certificate,
        limits: Limits,
        metrics: Metrics,
        refusals: Refusals,
    ) -> Result<Self, certificate::CertificateError> {
        let (dtls_cert, fingerprint) = certificate::dtls_cert(certificate)?;
        let config = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_ice_lite(true)
            .set_dtls_cert(dtls_cert)
            .set_fingerprint_verification(false)
            .set_sctp_max_message_size(MAX_MESSAGE_SIZE)
            .set_sctp_max_buffered_amount(session::MAX_BUFFERED_AMOUNT)
            .clear_codecs()
            .set_stats_interval(None);
        // The first `Rtc` a process builds takes far longer than the next
        // (240 ms against 3-25 ms in a debug relay: the crypto provider's
        // one-time setup), and a client's first check waits for it. Built
        // once here, that setup is not on the first browser's way.
        drop(config.clone().build(std::time::Instant::now()));
        Ok(Self {
            keypair,
            config,
            fingerprint,
            limits,
            metrics,
            refusals,
            listeners: Vec::new(),
            events: VecDeque::new(),
        })
    }

    /// The certhash this listener's addresses carry.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn announce(&mut self, id: ListenerId, bound: SocketAddr) {
        let ips: Vec<IpAddr> = if bound.ip().is_unspecified() {
            if_addrs::get_if_addrs()
                .unwrap_or_default()
                .into_iter()
                .map(|interface| interface.ip())
                .filter(|ip| ip.is_ipv4() == bound.is_ipv4())
                .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
                .collect()
        } else {
            vec![bound.ip()]
        };
        for ip in ips {
            self.events.push_back(TransportEvent::NewAddress {
                listener_id: id,
                listen_addr: self.address(SocketAddr::new(ip, bound.port())),
            });
        }
    }

    fn address(&self, addr: SocketAddr) -> Multiaddr {
        Multiaddr::from(addr.ip())
            .with(Protocol::Udp(addr.port()))
            .with(Protocol::WebRTCDirect)
            .with(Protocol::Certhash(self.fingerprint.to_multihash()))
    }
}

/// `/ip4|ip6/…/udp/PORT/webrtc-direct`, certhash not given.
fn listen_socket_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut iter = addr.iter();
    let ip = match iter.next()? {
        Protocol::Ip4(ip) => IpAddr::from(ip),
        Protocol::Ip6(ip) => IpAddr::from(ip),
        _ => return None,
    };
    let Protocol::Udp(port) = iter.next()? else {
        return None;
    };
    let Protocol::WebRTCDirect = iter.next()? else {
        return None;
    };
    iter.next().is_none().then_some(SocketAddr::new(ip, port))
}

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        // Beside the IPv4 listener on the same port, not over it.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

impl libp2p::Transport for Transport {
    type Output = (PeerId, Connection);
    type Error = Error;
    type ListenerUpgrade = BoxFuture<'static, Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        let Some(socket_addr) = listen_socket_addr(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let socket = bind(socket_addr).map(Arc::new).map_err(|source| {
            TransportError::Other(Error::Bind {
                addr: socket_addr,
                source,
            })
        })?;
        let bound = socket.local_addr().map_err(|source| {
            TransportError::Other(Error::Bind {
                addr: socket_addr,
                source,
            })
        })?;
        let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
        let demux = Demux::new(
            socket.clone(),
            self.limits,
            tx,
            self.metrics.clone(),
            self.refusals.clone(),
        );
        let local = self.address(bound);
        tracing::info!(addr = %bound, "WebRTC-direct listening (str0m listener)");
        self.listeners.push(Listener {
            id,
            socket,
            local,
            new_sessions: rx,
            demux: tokio::spawn(demux.run()),
        });
        self.announce(id, bound);
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        let before = self.listeners.len();
        self.listeners.retain(|listener| listener.id != id);
        if self.listeners.len() == before {
            return false;
        }
        self.events.push_back(TransportEvent::ListenerClosed {
            listener_id: id,
            reason: Ok(()),
        });
        true
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        // The relay only listens on WebRTC-direct.
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(event);
        }
        let this = &mut *self;
        for listener in &mut this.listeners {
            let Poll::Ready(Some(session)) = listener.new_sessions.poll_recv(cx) else {
                continue;
            };
            let send_back_addr = Multiaddr::from(session.remote.ip())
                .with(Protocol::Udp(session.remote.port()))
                .with(Protocol::WebRTCDirect);
            let upgrade = handshake::accept(
                this.config.clone(),
                listener.socket.clone(),
                session,
                this.keypair.clone(),
                this.fingerprint,
                this.metrics.clone(),
            )
            .map(|result| result.map_err(Error::from))
            .boxed();
            return Poll::Ready(TransportEvent::Incoming {
                listener_id: listener.id,
                upgrade,
                local_addr: listener.local.clone(),
                send_back_addr,
            });
        }
        Poll::Pending
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("listeners", &self.listeners.len())
            .finish_non_exhaustive()
    }
}
