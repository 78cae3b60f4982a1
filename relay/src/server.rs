//! Starting the relay and running its swarm.
//!
//! [`Relay::start`] does everything that can fail before anything is
//! stored: it loads (or generates in memory) the identity and certificate,
//! binds every port, and only then writes new state files. It returns once
//! every listener has reported its addresses, so the caller can print them.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, Swarm, core::transport::ListenerId, gossipsub, identify,
    metrics::Recorder as _, relay, swarm::SwarmEvent,
};
use prometheus_client::registry::Registry;
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    addresses::{self, ExternalHost},
    behaviour::{Behaviour, BehaviourEvent, Policy},
    config::{Limits, Options},
    fd_budget::{self, FdShares},
    federation::{self, FederationError, metrics::FederationMetrics},
    gossip::{
        self, GossipConfigError, Verdict,
        budget::{GossipBudget, Rate, RelayRates, TopicRates},
    },
    http::{self, RelayInfo, SharedState},
    http_listener::{self, HttpLimits, HttpSocket},
    limits::{ConnectionLimitsPerPrefix, PrefixLimits, ReservationsPerIp},
    metrics::{GossipLabels, RelayMetrics},
    page_headers,
    private::{
        Access,
        authorized_peers::{AuthorizedError, AuthorizedPeers},
    },
    refusals::Refusals,
    sockets,
    state::{self, StateError},
    stun::{StunLimits, StunServer},
    swarm::{self, SwarmError},
    tls::{
        self, Tls, TlsError,
        redirect::{self, HttpsTarget},
    },
    webrtc_direct::{self, ListenerKind},
    webrtc_direct_guard::{self, Restart, UnfinishedAddresses},
};

/// How soon a WebRTC-direct listener closed for a restart is tried again
/// when its port is not free yet.
const WEBRTC_RELISTEN_RETRY: Duration = Duration::from_millis(100);
/// How long start-up waits for the transports to report their addresses.
const LISTEN_REPORT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("--authorized-peers: {0}")]
    Authorized(#[from] AuthorizedError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Federation(#[from] FederationError),
    #[error(
        "cannot listen on {addr} ({flag}): {reason}; is another relay running? Pick another port with {flag}"
    )]
    Listen {
        flag: &'static str,
        addr: String,
        reason: String,
    },
    #[error("cannot build the relay's behaviour")]
    Behaviour(#[from] GossipConfigError),
    #[error("cannot build the libp2p swarm")]
    Swarm(#[from] SwarmError),
    #[error("the WebRTC certificate cannot serve the str0m listener: {0}")]
    Certificate(#[from] crate::webrtc_direct::certificate::CertificateError),
    #[error("the {what} listener did not report an address within {LISTEN_REPORT_TIMEOUT:?}")]
    NoAddress { what: &'static str },
}

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    pub peer_id: PeerId,
    /// Every dialable address, each ending in `/p2p/<peer id>`.
    pub multiaddrs: Vec<Multiaddr>,
    pub stun_urls: Vec<String>,
    /// The first HTTP address (of the first `--listen-ip`).
    pub http_addr: SocketAddr,
    /// The first STUN address.
    pub stun_addr: SocketAddr,
    /// One HTTP and one STUN address per listen IP.
    pub http_addrs: Vec<SocketAddr>,
    /// With `--domain`: one HTTPS address per listen IP (the plain HTTP
    /// ones then redirect here).
    pub https_addrs: Vec<SocketAddr>,
    /// `--domain`'s names, the first being the one to print.
    pub domains: Vec<String>,
    pub stun_addrs: Vec<SocketAddr>,
    /// Whether the identity came from `--secret-key-seed`.
    pub seeded_identity: bool,
    shutdown: oneshot::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    pub async fn start(options: Options) -> Result<Self, StartError> {
        install_crypto_provider();
        let loaded = state::load(&options.state_dir, options.secret_key_seed)?;
        let access = match &options.authorized_peers {
            Some(path) => Some(Access {
                peers: AuthorizedPeers::load(path)?,
                circuits_too: options.authorized_circuits_only,
            }),
            None => None,
        };
        let keypair = loaded.keypair;
        let peer_id = keypair.public().to_peer_id();
        let federation_options = &options.federation;
        let federation = match &federation_options.federation_peers {
            Some(file) => Some(federation::Setup::load(
                peer_id,
                file,
                &federation_options.federate,
                federation_options.max_federation_members as usize,
            )?),
            None => None,
        };
        let ips = options.listen_ips();
        let listener_limits = options.listener_limits.clone();
        let tls = Tls::start(&options.tls, &options.state_dir)?;

        // Bind the sockets the relay owns itself first: a port in use must
        // fail the start before anything is stored. With port 0, every
        // family gets the port the first one was given, so that one STUN
        // URL port and one page port serve both.
        let stun_limits = StunLimits {
            per_second: options.limits.stun_rate,
            per_prefix_per_second: listener_limits.stun_rate_per_ip,
        };
        let mut stun_servers = Vec::new();
        let mut stun_port = options.stun_port;
        for ip in &ips {
            let addr = SocketAddr::new(*ip, stun_port);
            let server = StunServer::bind(addr, stun_limits)
                .await
                .map_err(|error| listen_error("--stun-port", addr, error))?;
            stun_port = server.local_addr().port();
            stun_servers.push(server);
        }
        let stun_addrs: Vec<SocketAddr> = stun_servers.iter().map(StunServer::local_addr).collect();
        let mut http_listeners = Vec::new();
        let mut http_addrs = Vec::new();
        let mut http_port = options.http_port;
        for ip in &ips {
            let addr = SocketAddr::new(*ip, http_port);
            let listener = sockets::bind_tcp(addr)
                .and_then(|listener| Ok((listener.local_addr()?, listener)))
                .map_err(|error| listen_error("--http-port", addr, error))?;
            http_port = listener.0.port();
            http_addrs.push(listener.0);
            http_listeners.push(listener.1);
        }
        let (http_addr, stun_addr) = (http_addrs[0], stun_addrs[0]);
        let mut https_listeners = Vec::new();
        let mut https_addrs = Vec::new();
        if tls.is_some() {
            let mut https_port = options.tls.https_port;
            for ip in &ips {
                let addr = SocketAddr::new(*ip, https_port);
                let listener = sockets::bind_tcp(addr)
                    .and_then(|listener| Ok((listener.local_addr()?, listener)))
                    .map_err(|error| listen_error("--https-port", addr, error))?;
                https_port = listener.0.port();
                https_addrs.push(listener.0);
                https_listeners.push(listener.1);
            }
        }

        let mut registry = Registry::default();
        let relay_metrics = RelayMetrics::register(&mut registry);
        let refusals = Refusals::default();
        refusals.register(&mut registry);
        if let Some(tls) = &tls {
            tls.register_metrics(&mut registry);
        }
        let unfinished_webrtc = UnfinishedAddresses::new(
            listener_limits.max_webrtc_unfinished_addresses,
            &mut registry,
        );
        let policy = Policy {
            refusals: refusals.clone(),
            refused_subscriptions: relay_metrics.gossip_subscriptions_refused.clone(),
            dial_back_non_global: options.dial_back_non_global,
        };
        let reservations_per_ip = ReservationsPerIp::new(options.limits.max_reservations_per_ip);
        let (limits, http_limits) = fit_to_descriptors(&options, &relay_metrics);
        // --- Federation (issue #14): its metrics and limits, in a block of
        // their own.
        let federation_metrics = federation.as_ref().map(|_| {
            for (name, value) in [
                (
                    "max_federation_members",
                    federation_options.max_federation_members,
                ),
                (
                    "federation_chat_rate",
                    federation_options.federation_chat_rate,
                ),
                (
                    "federation_discovery_rate",
                    federation_options.federation_discovery_rate,
                ),
            ] {
                relay_metrics.set_limit(name, u64::from(value));
            }
            let bounds = federation::locate::Bounds::new(
                limits.max_reservations,
                federation_options.max_federation_members as usize,
                limits.reservation_duration.0,
            );
            relay_metrics.set_limit("federation_max_records", bounds.max_records as u64);
            FederationMetrics::register(&mut registry)
        });
        let per_prefix = ConnectionLimitsPerPrefix::new(
            PrefixLimits {
                max_pending_per_listener: limits.max_pending_connections as usize,
                max_pending_per_prefix: listener_limits.max_pending_per_ip,
                max_established_per_prefix: limits.max_connections_per_ip,
            },
            relay_metrics.pending_connections.clone(),
            refusals.clone(),
        );
        let behaviour = Behaviour::new(
            &keypair,
            &limits,
            per_prefix,
            &reservations_per_ip,
            access.as_ref(),
            federation,
            &policy,
        )?;
        let webrtc_direct = match options.webrtc_direct_listener {
            ListenerKind::Libp2p => swarm::WebRtcDirect::Libp2p(Box::new(loaded.certificate)),
            ListenerKind::Str0m => {
                swarm::WebRtcDirect::Str0m(Box::new(webrtc_direct::Transport::new(
                    keypair.clone(),
                    &loaded.certificate,
                    webrtc_direct::Limits {
                        max_sessions: webrtc_direct::demux::MAX_SESSIONS,
                        max_pending_per_prefix: listener_limits.max_pending_per_ip,
                        max_pending: limits.max_pending_connections as usize,
                        new_per_prefix_per_second: webrtc_direct::demux::NEW_PER_PREFIX_PER_SECOND,
                        new_per_second: webrtc_direct::demux::NEW_PER_SECOND,
                    },
                    webrtc_direct::Metrics::register(&mut registry),
                    refusals.clone(),
                )?))
            }
        };
        let mut swarm = swarm::build(
            keypair,
            webrtc_direct,
            tls.as_ref(),
            &listener_limits,
            behaviour,
            &mut registry,
        )?;
        let libp2p_metrics = libp2p::metrics::Metrics::new(&mut registry);

        let secure_websocket_port = tls.as_ref().map(|_| options.tls.wss_port);
        let listeners = ips.iter().flat_map(|&ip| {
            let secure_websocket = secure_websocket_port.map(|port| {
                (
                    "--wss-port",
                    "secure WebSocket",
                    Multiaddr::from(ip)
                        .with(tcp_port(port))
                        .with(libp2p::multiaddr::Protocol::Tls)
                        .with(libp2p::multiaddr::Protocol::Ws("/".into())),
                )
            });
            [
                (
                    "--port",
                    "TCP",
                    Multiaddr::from(ip).with(tcp_port(options.port)),
                ),
                (
                    "--quic-port",
                    "QUIC",
                    Multiaddr::from(ip)
                        .with(libp2p::multiaddr::Protocol::Udp(options.quic_port))
                        .with(libp2p::multiaddr::Protocol::QuicV1),
                ),
                (
                    "--websocket-port",
                    "WebSocket",
                    Multiaddr::from(ip)
                        .with(tcp_port(options.websocket_port))
                        .with(libp2p::multiaddr::Protocol::Ws("/".into())),
                ),
                (
                    "--webrtc-port",
                    "WebRTC-direct",
                    Multiaddr::from(ip)
                        .with(libp2p::multiaddr::Protocol::Udp(options.webrtc_port))
                        .with(libp2p::multiaddr::Protocol::WebRTCDirect),
                ),
            ]
            .into_iter()
            .chain(secure_websocket)
        });
        let mut pending_listeners = Vec::new();
        let mut webrtc_listeners = HashMap::new();
        for (flag, what, addr) in listeners {
            if what == "WebRTC-direct"
                && options.webrtc_direct_listener == ListenerKind::Libp2p
                && webrtc_would_clash(&ips, &addr, options.webrtc_port)
            {
                tracing::info!(
                    %addr,
                    "WebRTC-direct listens on IPv4 only: libp2p-webrtc binds `::` dual-stack, \
                     which would take the IPv4 port too (IPv6 browsers use WebSocket)"
                );
                continue;
            }
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|error| StartError::Listen {
                    flag,
                    addr: addr.to_string(),
                    reason: error.to_string(),
                })?;
            // The guard bounds libp2p-webrtc's mux; the str0m listener
            // bounds its own sessions (webrtc_direct::demux).
            if what == "WebRTC-direct" && options.webrtc_direct_listener == ListenerKind::Libp2p {
                webrtc_listeners.insert(id, addr.clone());
            }
            pending_listeners.push((id, flag, what, addr));
        }

        let shared = Arc::new(SharedState {
            peer_id,
            started: Instant::now(),
            info: RwLock::new(RelayInfo::default()),
            registry: Mutex::new(registry),
            metrics: relay_metrics.clone(),
        });
        let mut event_loop = EventLoop {
            swarm,
            external_hosts: options.external_addresses.clone(),
            listen_addrs: Vec::new(),
            secure_addrs: Vec::new(),
            stun_addr,
            shared: shared.clone(),
            libp2p_metrics,
            metrics: relay_metrics.clone(),
            reservations_per_ip,
            reservations: HashSet::new(),
            gossip_budget: gossip_budget(&limits, federation_options),
            peer_ips: HashMap::new(),
            federation_metrics,
            refusals: refusals.clone(),
            tls: None,
            unfinished_webrtc,
            webrtc_listeners,
            restarting_webrtc: HashMap::new(),
            relisten_webrtc: Vec::new(),
        };
        let domains = tls
            .as_ref()
            .map(|tls| tls.domains.clone())
            .unwrap_or_default();
        let https_config = tls.as_ref().map(Tls::https_config).transpose()?;
        event_loop.tls = tls;
        event_loop.await_listen_addrs(pending_listeners).await?;

        // Every port is bound: now the new identity and certificate may be kept.
        state::store(&options.state_dir, loaded.pending)?;

        let (shutdown, shutdown_rx) = oneshot::channel();
        let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
        let info = shared
            .info
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let router = http::router(shared, options.page_dir.clone());
        let http_sockets = http_sockets(
            http_listeners,
            https_listeners,
            router,
            &options.page_dir,
            https_config,
            HttpsTarget {
                domains: domains.clone(),
                https_port: https_addrs.first().map_or(443, SocketAddr::port),
            },
        );
        let mut tasks = vec![
            tokio::spawn({
                let refusals = refusals.clone();
                async move {
                    let flush_refusals = refusals.flush_every();
                    event_loop.run(shutdown_rx).await;
                    flush_refusals.abort();
                    let _ = stop_http.send(true);
                }
            }),
            tokio::spawn(http_listener::serve(
                http_sockets,
                http_limits,
                relay_metrics.http_connections.clone(),
                refusals.clone(),
                http_stopped.clone(),
            )),
        ];
        for stun in stun_servers {
            let mut stop_stun = http_stopped.clone();
            let answered = relay_metrics.stun_responses.clone();
            let refusals = refusals.clone();
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    _ = stun.run(answered, refusals) => {}
                    _ = stop_stun.wait_for(|stop| *stop) => {}
                }
            }));
        }

        Ok(Self {
            peer_id,
            multiaddrs: info.multiaddrs,
            stun_urls: info.stun_urls,
            http_addr,
            stun_addr,
            http_addrs,
            https_addrs,
            domains,
            stun_addrs,
            seeded_identity: options.secret_key_seed.is_some(),
            shutdown,
            tasks,
        })
    }

    /// Stops accepting, closes every connection and waits until all tasks
    /// have ended.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// What each HTTP socket serves: without TLS, the page and API on the
/// plain sockets; with it, the page and API over HTTPS, and a redirect to
/// HTTPS on the plain sockets.
fn http_sockets(
    http: Vec<tokio::net::TcpListener>,
    https: Vec<tokio::net::TcpListener>,
    router: axum::Router,
    page_dir: &std::path::Path,
    https_config: Option<Arc<rustls::ServerConfig>>,
    target: HttpsTarget,
) -> Vec<HttpSocket> {
    let Some(config) = https_config else {
        let router = page_headers::layer(router, page_dir, false);
        return http
            .into_iter()
            .map(|listener| HttpSocket {
                listener,
                router: router.clone(),
                tls: None,
            })
            .collect();
    };
    let router = page_headers::layer(router, page_dir, true);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let redirect = redirect::router(target);
    let plain = http.into_iter().map(|listener| HttpSocket {
        listener,
        router: redirect.clone(),
        tls: None,
    });
    let secure = https.into_iter().map(|listener| HttpSocket {
        listener,
        router: router.clone(),
        tls: Some(acceptor.clone()),
    });
    plain.chain(secure).collect()
}

/// The limits that hold file descriptors, fitted to what the process may
/// open (see [`fd_budget`]), and shown in `/metrics` with the other limits
/// this module adds.
fn fit_to_descriptors(
    options: &Options,
    metrics: &RelayMetrics,
) -> (crate::config::Limits, HttpLimits) {
    let mut limits = options.limits.clone();
    let listener = &options.listener_limits;
    let asked = FdShares {
        max_connections: u64::from(limits.max_connections),
        max_pending_per_listener: u64::from(limits.max_pending_connections),
        max_http_connections: listener.max_http_connections as u64,
    };
    let nofile = fd_budget::raise_nofile_limit();
    let fitted = asked.fit(nofile);
    if fitted != asked {
        tracing::warn!(
            nofile,
            needed = asked.needed(),
            max_connections = fitted.max_connections,
            max_pending_connections = fitted.max_pending_per_listener,
            max_http_connections = fitted.max_http_connections,
            "the limits need more file descriptors than RLIMIT_NOFILE allows: shrunk to fit; \
             raise LimitNOFILE (deploy/relay.service) or `ulimit -n` to keep them"
        );
    }
    limits.max_connections = u32::try_from(fitted.max_connections).unwrap_or(u32::MAX);
    limits.max_pending_connections =
        u32::try_from(fitted.max_pending_per_listener).unwrap_or(u32::MAX);
    let http = HttpLimits {
        header_timeout: listener.http_header_timeout.0,
        write_timeout: listener.http_write_timeout.0,
        max_connections: fitted.max_http_connections as usize,
        max_connections_per_prefix: listener.max_http_connections_per_ip,
    };
    for (name, value) in [
        ("nofile", nofile),
        ("max_connections", fitted.max_connections),
        ("max_pending_connections", fitted.max_pending_per_listener),
        ("max_pending_per_ip", listener.max_pending_per_ip as u64),
        (
            "handshake_timeout_seconds",
            listener.handshake_timeout.0.as_secs(),
        ),
        ("max_websocket_frame", listener.max_websocket_frame as u64),
        ("max_http_connections", fitted.max_http_connections),
        (
            "max_http_connections_per_ip",
            listener.max_http_connections_per_ip as u64,
        ),
        (
            "http_header_timeout_seconds",
            listener.http_header_timeout.0.as_secs(),
        ),
        (
            "http_write_timeout_seconds",
            listener.http_write_timeout.0.as_secs(),
        ),
        (
            "max_webrtc_unfinished_addresses",
            listener.max_webrtc_unfinished_addresses,
        ),
        ("stun_rate", u64::from(limits.stun_rate)),
        ("stun_rate_per_ip", u64::from(listener.stun_rate_per_ip)),
    ] {
        metrics.set_limit(name, value);
    }
    (limits, http)
}

/// Whether a WebRTC-direct listener on `addr` would fail to bind:
/// libp2p-webrtc binds its UDP socket without `IPV6_V6ONLY`, so one on
/// `[::]:port` takes `0.0.0.0:port` too, and clashes with the IPv4
/// listener on the same fixed port (port 0 gives each its own).
fn webrtc_would_clash(ips: &[std::net::IpAddr], addr: &Multiaddr, port: u16) -> bool {
    port != 0
        && matches!(addr.iter().next(), Some(libp2p::multiaddr::Protocol::Ip6(ip)) if ip.is_unspecified())
        && ips.iter().any(|ip| ip.is_ipv4() && ip.is_unspecified())
}

/// libp2p-quic enables rustls's `aws-lc-rs` provider and other libp2p
/// crates its `ring` one; with both, rustls cannot choose a process-wide
/// default and panics where one is needed (the WebRTC-direct transport's
/// DTLS). Choose `ring`, which libp2p's TLS uses, unless the process chose.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one meanwhile, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn gossip_budget(limits: &Limits, federation: &crate::config::FederationOptions) -> GossipBudget {
    let rates = |per_peer, per_ip| TopicRates {
        per_peer: Rate {
            per_minute: per_peer,
        },
        per_ip: Rate { per_minute: per_ip },
    };
    GossipBudget::new(
        rates(limits.chat_rate_per_peer, limits.chat_rate_per_ip),
        rates(limits.discovery_rate_per_peer, limits.discovery_rate_per_ip),
        RelayRates {
            chat: Rate {
                per_minute: federation.federation_chat_rate,
            },
            discovery: Rate {
                per_minute: federation.federation_discovery_rate,
            },
        },
    )
}

/// The IP address a connection comes from, unless it is relayed.
fn remote_ip(addr: &Multiaddr) -> Option<IpAddr> {
    if addr
        .iter()
        .any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit)
    {
        return None;
    }
    match addr.iter().next()? {
        libp2p::multiaddr::Protocol::Ip4(ip) => Some(ip.into()),
        libp2p::multiaddr::Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}

fn tcp_port(port: u16) -> libp2p::multiaddr::Protocol<'static> {
    libp2p::multiaddr::Protocol::Tcp(port)
}

fn listen_error(flag: &'static str, addr: SocketAddr, error: std::io::Error) -> StartError {
    StartError::Listen {
        flag,
        addr: addr.to_string(),
        reason: error.to_string(),
    }
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    external_hosts: Vec<ExternalHost>,
    listen_addrs: Vec<Multiaddr>,
    /// The secure WebSocket listener's addresses under the domain names
    /// (browsers dial these; the IP forms are not advertised).
    secure_addrs: Vec<Multiaddr>,
    stun_addr: SocketAddr,
    shared: Arc<SharedState>,
    libp2p_metrics: libp2p::metrics::Metrics,
    metrics: RelayMetrics,
    reservations_per_ip: ReservationsPerIp,
    /// Peers holding a reservation, for the gauge. Bounded by the relay's
    /// `max_reservations`.
    reservations: HashSet<PeerId>,
    gossip_budget: GossipBudget,
    /// The address each connected peer last connected from, for the
    /// per-address gossip budget. One entry per connected peer.
    peer_ips: HashMap<PeerId, IpAddr>,
    /// With `--federation-peers`: `relay_federation_*`.
    federation_metrics: Option<FederationMetrics>,
    /// Logs refusals at a bounded rate and counts them all.
    refusals: Refusals,
    /// With `--domain`; kept here so its certificate task lives as long as
    /// the swarm.
    tls: Option<Tls>,
    /// What libp2p-webrtc's mux remembers per WebRTC-direct listener (see
    /// [`webrtc_direct_guard`]).
    unfinished_webrtc: UnfinishedAddresses,
    /// The WebRTC-direct listeners, with the address each was asked for.
    webrtc_listeners: HashMap<ListenerId, Multiaddr>,
    /// Listeners being closed to be opened again, and what on.
    restarting_webrtc: HashMap<ListenerId, Multiaddr>,
    /// Closed, to be opened again (retried until the old socket is gone).
    relisten_webrtc: Vec<Multiaddr>,
}

impl EventLoop {
    /// Runs the swarm until every listener has reported at least one
    /// address (with an unspecified IP, one per interface).
    async fn await_listen_addrs(
        &mut self,
        mut pending: Vec<(ListenerId, &'static str, &'static str, Multiaddr)>,
    ) -> Result<(), StartError> {
        let deadline = tokio::time::Instant::now() + LISTEN_REPORT_TIMEOUT;
        while !pending.is_empty() {
            let event = match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await
            {
                Ok(event) => event,
                Err(_) => return Err(StartError::NoAddress { what: pending[0].2 }),
            };
            match &event {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    pending.retain(|(id, ..)| id != listener_id);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason,
                    ..
                } => {
                    if let Some((_, flag, _, addr)) =
                        pending.iter().find(|(id, ..)| id == listener_id)
                    {
                        let reason = match reason {
                            Ok(()) => "closed".to_owned(),
                            Err(error) => error.to_string(),
                        };
                        return Err(StartError::Listen {
                            flag,
                            addr: addr.to_string(),
                            reason,
                        });
                    }
                }
                _ => {}
            }
            self.handle(event);
        }
        // The other interfaces of an unspecified listen address follow the
        // first at once; take them in before the addresses are printed.
        while let Ok(event) =
            tokio::time::timeout(Duration::from_millis(100), self.swarm.select_next_some()).await
        {
            self.handle(event);
        }
        Ok(())
    }

    async fn run(mut self, mut shutdown: oneshot::Receiver<()>) {
        let mut relisten_retry = tokio::time::interval(WEBRTC_RELISTEN_RETRY);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                event = self.swarm.select_next_some() => self.handle(event),
                _ = relisten_retry.tick(), if !self.relisten_webrtc.is_empty() => {
                    self.relisten_webrtc();
                }
            }
        }
        tracing::info!("shutting down: closing all connections");
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn handle(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } if tls::is_secure_websocket(&address) => {
                tracing::debug!(%address, "listening");
                for advertised in self.tls.iter().flat_map(|tls| tls.advertised(&address)) {
                    if !self.secure_addrs.contains(&advertised) {
                        self.swarm.add_external_address(advertised.clone());
                        self.secure_addrs.push(advertised);
                    }
                }
                self.publish_info();
            }
            SwarmEvent::NewListenAddr {
                address,
                listener_id,
            } => {
                tracing::debug!(%address, "listening");
                if let Some(listen_addr) = self
                    .webrtc_listeners
                    .get(&listener_id)
                    .and_then(|requested| webrtc_direct_guard::with_port_of(requested, &address))
                {
                    self.unfinished_webrtc.listening(listener_id, listen_addr);
                }
                self.swarm.add_external_address(address.clone());
                for host in &self.external_hosts {
                    if let Some(external) = addresses::with_host(&address, host) {
                        self.swarm.add_external_address(external);
                    }
                }
                self.listen_addrs.push(address);
                self.publish_info();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                tracing::info!(%address, "no longer listening");
                self.swarm.remove_external_address(&address);
                self.listen_addrs.retain(|addr| addr != &address);
                self.publish_info();
            }
            SwarmEvent::ListenerError { error, .. } => tracing::warn!(%error, "listener error"),
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                if let Some(listen_addr) = self.restarting_webrtc.remove(&listener_id) {
                    tracing::debug!(
                        ?addresses,
                        "WebRTC-direct listener closed, to be opened again"
                    );
                    self.relisten_webrtc.push(listen_addr);
                    self.relisten_webrtc();
                } else {
                    tracing::error!(?addresses, ?reason, "listener closed")
                }
            }
            SwarmEvent::IncomingConnection { local_addr, .. } => {
                self.count_unfinished_webrtc(&local_addr);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                if let libp2p::core::ConnectedPoint::Listener { local_addr, .. } = &endpoint {
                    self.unfinished_webrtc.established(local_addr);
                }
                self.metrics.connections.inc();
                tracing::debug!(%peer_id, remote = %endpoint.get_remote_address(), "connection established");
                if let Some(ip) = remote_ip(endpoint.get_remote_address()) {
                    self.peer_ips.insert(peer_id, ip);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                cause,
                num_established,
                ..
            } => {
                self.metrics.connections.dec();
                if num_established == 0 {
                    self.peer_ips.remove(&peer_id);
                    self.gossip_budget.forget(&peer_id);
                }
                tracing::debug!(%peer_id, ?cause, "connection closed");
            }
            SwarmEvent::IncomingConnectionError {
                local_addr,
                send_back_addr,
                error,
                ..
            } => {
                // Refused before its handshake: no IncomingConnection came.
                if matches!(error, libp2p::swarm::ListenError::Denied { .. }) {
                    self.count_unfinished_webrtc(&local_addr);
                }
                tracing::debug!(remote = %send_back_addr, %error, "incoming connection failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => self.on_relay_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => {
                self.libp2p_metrics.record(&event);
                if let identify::Event::Received { peer_id, info, .. } = &event {
                    tracing::debug!(%peer_id, agent = %info.agent_version, "identified");
                    if let Some(federation) = self.swarm.behaviour_mut().federation.as_mut() {
                        federation.on_identified(*peer_id, info);
                        if federation.is_member(peer_id) {
                            self.publish_info();
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => {
                self.libp2p_metrics.record(&event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Federation(event)) => {
                self.on_federation_event(event)
            }
            _ => {}
        }
    }

    /// A connection came in on `local_addr`; on a WebRTC-direct listener,
    /// its mux now remembers the source address (see [`webrtc_direct_guard`]).
    fn count_unfinished_webrtc(&mut self, local_addr: &Multiaddr) {
        let Some(Restart { id, listen_addr }) = self.unfinished_webrtc.incoming(local_addr) else {
            return;
        };
        self.refusals.refused("webrtc-direct-restart", || {
            format!(
                "the WebRTC-direct listener on {listen_addr} remembers more than --max-webrtc-unfinished-addresses \
                 sources of unfinished connections: opening it again (its connections drop)"
            )
        });
        if self.swarm.remove_listener(id) {
            self.webrtc_listeners.remove(&id);
            self.restarting_webrtc.insert(id, listen_addr);
        }
    }

    /// Opens the WebRTC-direct listeners closed for a restart; one whose
    /// old socket is not closed yet is tried again later.
    fn relisten_webrtc(&mut self) {
        for listen_addr in std::mem::take(&mut self.relisten_webrtc) {
            match self.swarm.listen_on(listen_addr.clone()) {
                Ok(id) => {
                    self.webrtc_listeners.insert(id, listen_addr);
                }
                Err(error) => {
                    tracing::debug!(%listen_addr, %error, "WebRTC-direct listener not open again yet");
                    self.relisten_webrtc.push(listen_addr);
                }
            }
        }
    }

    fn on_relay_event(&mut self, event: relay::Event) {
        self.libp2p_metrics.record(&event);
        self.reservations_per_ip.on_relay_event(&event);
        match &event {
            relay::Event::ReservationReqAccepted {
                src_peer_id,
                renewed,
            } => {
                tracing::info!(peer = %src_peer_id, renewed, "reservation accepted");
                self.reservations.insert(*src_peer_id);
                if let Some(federation) = self.swarm.behaviour_mut().federation.as_mut()
                    && let Some(from) = federation.reserved(*src_peer_id)
                {
                    tracing::info!(peer = %src_peer_id, %from, "moved here from another relay of the federation");
                    if let Some(metrics) = &self.federation_metrics {
                        metrics.moved_in.inc();
                    }
                }
            }
            // Private mode's denials (PERMISSION_DENIED) are counted where
            // they are made.
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } if !matches!(status, relay::StatusCode::PermissionDenied) => {
                self.refusals.refused("reservation", || {
                    format!("reservation of {src_peer_id} denied ({status:?})")
                });
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                self.reservations.remove(src_peer_id);
                // libp2p-relay reports a closed reservation for each of a
                // peer's connections: the peer is gone once none is left.
                let gone = !self.swarm.is_connected(src_peer_id);
                if let Some(federation) = self.swarm.behaviour_mut().federation.as_mut()
                    && gone
                {
                    federation.unreserved(*src_peer_id);
                }
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => {
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, "circuit opened");
                self.metrics.circuits.inc();
            }
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                status,
            } if !matches!(status, relay::StatusCode::PermissionDenied) => {
                self.refusals.refused("circuit", || {
                    format!("circuit from {src_peer_id} to {dst_peer_id} denied ({status:?})")
                });
            }
            relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                error,
            } => {
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, ?error, "circuit closed");
                self.metrics.circuits.dec();
            }
            _ => {}
        }
        self.metrics
            .reservations
            .set(self.reservations.len() as i64);
    }

    fn on_federation_event(&mut self, event: federation::BehaviourEvent) {
        let behaviour = self.swarm.behaviour_mut();
        let Some(federation) = behaviour.federation.as_mut() else {
            return;
        };
        let membership = matches!(event, federation::BehaviourEvent::Members(_));
        federation.on_event(event, &mut behaviour.gossipsub);
        if let Some(metrics) = &self.federation_metrics {
            let members = &federation.members;
            metrics.set_members(members.listed(), members.known(), members.connected());
            metrics.set_records(federation.records());
            for (outcome, count) in federation.locate.take_outcomes() {
                metrics.count_lookups(outcome.as_str(), count);
            }
        }
        if membership {
            // `/api/relay` lists the connected members.
            self.publish_info();
        }
    }

    /// Whether `peer` is another relay of the federation.
    fn is_member(&self, peer: &PeerId) -> bool {
        self.swarm
            .behaviour()
            .federation
            .as_ref()
            .is_some_and(|federation| federation.is_member(peer))
    }

    /// Counts a message from a member relay, and an accepted one for each
    /// member relay gossipsub forwards it to (every connected one but the
    /// one it came from and its author).
    fn count_federation_messages(
        &self,
        topic: &'static str,
        from_member: bool,
        accepted: bool,
        propagation_source: &PeerId,
        author: Option<&PeerId>,
    ) {
        let (Some(metrics), Some(federation)) = (
            &self.federation_metrics,
            self.swarm.behaviour().federation.as_ref(),
        ) else {
            return;
        };
        if from_member {
            metrics.count("from_relays", topic, 1);
        }
        if accepted {
            let to = federation
                .members
                .connected_members()
                .filter(|peer| *peer != propagation_source && Some(*peer) != author)
                .count();
            metrics.count("to_relays", topic, to as u64);
        }
    }

    fn on_gossip_event(&mut self, event: gossipsub::Event) {
        self.libp2p_metrics.record(&event);
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let topic = gossip::topic_label(&message.topic);
        let ip = self.peer_ips.get(&propagation_source).copied();
        let from_member = self.is_member(&propagation_source);
        let now = std::time::Instant::now();
        // A member relay hands over every page's messages: its own budget.
        let budget = if from_member {
            self.gossip_budget
                .spend_relay(topic, propagation_source, now)
        } else {
            self.gossip_budget.spend(topic, propagation_source, ip, now)
        };
        let (verdict, label) = match budget {
            // Dropped, not held, and no penalty: a peer behind a busy
            // address is not at fault for its neighbours.
            Err(over) => {
                self.refusals.refused("gossip-over-budget", || {
                    format!(
                        "{topic} message from {propagation_source} ({ip:?}) dropped: over the {} budget",
                        over.label()
                    )
                });
                let label = match over {
                    gossip::budget::OverBudget::Peer => "over_peer_budget",
                    gossip::budget::OverBudget::Ip => "over_ip_budget",
                    gossip::budget::OverBudget::Relay => "over_relay_budget",
                };
                (gossipsub::MessageAcceptance::Ignore, label)
            }
            // Records may list circuits through this relay and through
            // the federation's members.
            Ok(()) => match gossip::validate(&message, |relay| {
                *relay == *self.swarm.local_peer_id() || self.is_member(relay)
            }) {
                Verdict::Accept => (gossipsub::MessageAcceptance::Accept, "accepted"),
                Verdict::Reject(reason) => {
                    self.refusals.refused("gossip-rejected", || {
                        format!(
                            "{topic} message from {propagation_source} (author {:?}) rejected: {reason}",
                            message.source
                        )
                    });
                    // Not forwarded either way. A member is not penalized:
                    // below the graylist threshold, every page's message
                    // it carries would be dropped (two relays may briefly
                    // disagree on the membership file).
                    let acceptance = if from_member {
                        gossipsub::MessageAcceptance::Ignore
                    } else {
                        gossipsub::MessageAcceptance::Reject
                    };
                    (acceptance, "rejected")
                }
            },
        };
        self.count_federation_messages(
            topic,
            from_member,
            label == "accepted",
            &propagation_source,
            message.source.as_ref(),
        );
        self.metrics
            .gossip_messages
            .get_or_create(&GossipLabels {
                topic,
                verdict: label,
            })
            .inc();
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, verdict);
    }

    fn publish_info(&self) {
        let peer_id = *self.swarm.local_peer_id();
        let info = RelayInfo {
            // The secure addresses first: a page served over https can use
            // only those, and it prefills the first on its host.
            multiaddrs: self
                .secure_addrs
                .iter()
                .map(|addr| addresses::with_peer_id(addr, peer_id))
                .chain(addresses::dialable(
                    &self.listen_addrs,
                    &self.external_hosts,
                    peer_id,
                ))
                .collect(),
            stun_urls: addresses::stun_urls(
                &self.listen_addrs,
                &self.external_hosts,
                self.stun_addr,
            ),
            federation: self
                .swarm
                .behaviour()
                .federation
                .as_ref()
                .map(|federation| federation.members.browser_list())
                .unwrap_or_default(),
        };
        *self
            .shared
            .info
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = info;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webrtc_direct_skips_only_the_dual_stack_twin_of_a_fixed_ipv4_port() {
        let both: Vec<std::net::IpAddr> = vec![[0, 0, 0, 0].into(), [0u16; 8].into()];
        let any6: Multiaddr = "/ip6/::/udp/4003/webrtc-direct".parse().expect("valid");
        let any4: Multiaddr = "/ip4/0.0.0.0/udp/4003/webrtc-direct"
            .parse()
            .expect("valid");
        let loopback6: Multiaddr = "/ip6/::1/udp/4003/webrtc-direct".parse().expect("valid");
        assert!(webrtc_would_clash(&both, &any6, 4003));
        assert!(!webrtc_would_clash(&both, &any4, 4003));
        assert!(!webrtc_would_clash(&both, &loopback6, 4003));
        assert!(!webrtc_would_clash(&both, &any6, 0), "port 0: each its own");
        assert!(!webrtc_would_clash(&both[1..], &any6, 4003), "IPv6 alone");
    }
}
