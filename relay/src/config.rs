//! The relay's options: every flag can also come from an environment
//! variable (`RELAY_*`), and no flag is required.
//!
//! The flags of the rust-libp2p relay example (`--port`, `--secret-key-seed`,
//! `--websocket-port`, `--webrtc-port`) keep their meaning.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser};

use crate::addresses::ExternalHost;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "relay",
    version,
    about = "A libp2p relay that lets browsers behind NATs find and reach each other"
)]
pub struct Options {
    /// TCP port for native libp2p peers (0: any free port).
    #[arg(long, env = "RELAY_PORT", default_value_t = 4001)]
    pub port: u16,

    /// TCP port of the WebSocket listener (`/ws`) browsers connect to.
    #[arg(long, env = "RELAY_WEBSOCKET_PORT", default_value_t = 4002)]
    pub websocket_port: u16,

    /// UDP port of the WebRTC-direct listener browsers connect to.
    #[arg(long, env = "RELAY_WEBRTC_PORT", default_value_t = 4003)]
    pub webrtc_port: u16,

    /// Which WebRTC-direct listener serves `--webrtc-port`: `str0m` (the
    /// relay's own, the default: IPv4 and IPv6, streams accepted as soon as
    /// DTLS is up, FIN_ACK, a client that changes address keeps its
    /// session; nothing kept for a stranger beyond a signed STUN binding
    /// request within 8 new sessions/s per IPv4 address or IPv6 /64 and
    /// 256/s per listener, and a free slot of `--max-pending-per-ip` /
    /// `--max-pending-connections`; a session must finish ICE, DTLS, SCTP
    /// and Noise within `--handshake-timeout`) or `libp2p` (libp2p-webrtc
    /// 0.10, the fallback: IPv4 only). The certhash is the same for both.
    #[arg(
        long,
        env = "RELAY_WEBRTC_DIRECT_LISTENER",
        value_enum,
        default_value_t
    )]
    pub webrtc_direct_listener: crate::webrtc_direct::ListenerKind,

    /// UDP port of the QUIC listener (`/quic-v1`) for native peers.
    #[arg(long, env = "RELAY_QUIC_PORT", default_value_t = 4004)]
    pub quic_port: u16,

    /// UDP port of the STUN binding service browsers use for ICE.
    #[arg(long, env = "RELAY_STUN_PORT", default_value_t = 3478)]
    pub stun_port: u16,

    /// TCP port of the HTTP server: the page, /api/relay, /health, /metrics.
    #[arg(long, env = "RELAY_HTTP_PORT", default_value_t = 8000)]
    pub http_port: u16,

    /// IP address the listeners bind to (repeatable, or comma-separated).
    /// Without it: `0.0.0.0` and `::`, both families, where the host has
    /// IPv6 (IPv4 only where it has not).
    #[arg(long = "listen-ip", env = "RELAY_LISTEN_IP", value_delimiter = ',')]
    pub listen_ips: Vec<IpAddr>,

    /// Public IP address or DNS name of this machine (repeatable), for
    /// machines behind a cloud provider's 1:1 NAT. Added to the printed and
    /// advertised addresses.
    #[arg(
        long = "external-address",
        env = "RELAY_EXTERNAL_ADDRESS",
        value_delimiter = ','
    )]
    pub external_addresses: Vec<ExternalHost>,

    /// Derive a deterministic identity from this byte. For development only:
    /// anybody can compute the key.
    #[arg(long, env = "RELAY_SECRET_KEY_SEED")]
    pub secret_key_seed: Option<u8>,

    /// Directory holding the identity key and the WebRTC certificate,
    /// created on first start.
    #[arg(long, env = "RELAY_STATE_DIR", default_value = ".relay-state")]
    pub state_dir: PathBuf,

    /// Directory of the built page (trunk's output).
    #[arg(long, env = "RELAY_PAGE_DIR", default_value = "dist")]
    pub page_dir: PathBuf,

    /// Private relay mode: only the peer ids listed in this file (one per
    /// line, `<peer id>  # comment`) may reserve a slot. Re-read when it
    /// changes.
    #[arg(long, env = "RELAY_AUTHORIZED_PEERS", value_name = "FILE")]
    pub authorized_peers: Option<PathBuf>,

    /// With --authorized-peers: circuits too may only be opened by the
    /// peers listed (without it, anyone may reach a listed peer).
    #[arg(
        long,
        env = "RELAY_AUTHORIZED_CIRCUITS_ONLY",
        requires = "authorized_peers"
    )]
    pub authorized_circuits_only: bool,

    /// Let AutoNAT dial back loopback, private, link-local and other
    /// non-global addresses. For tests on one machine only: on a public
    /// relay it lets anybody aim the relay at its own network.
    #[arg(long, env = "RELAY_DIAL_BACK_NON_GLOBAL")]
    pub dial_back_non_global: bool,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub listener_limits: ListenerLimits,

    #[command(flatten)]
    pub tls: TlsOptions,

    #[command(flatten)]
    pub federation: FederationOptions,
}

impl Options {
    /// The IPs to listen on: those given, or both families' unspecified
    /// addresses (IPv6 only where the host can bind it).
    pub fn listen_ips(&self) -> Vec<IpAddr> {
        if !self.listen_ips.is_empty() {
            let mut ips = self.listen_ips.clone();
            ips.dedup();
            return ips;
        }
        let mut ips = vec![IpAddr::from([0, 0, 0, 0])];
        if host_has_ipv6() {
            ips.push(IpAddr::from([0u16; 8]));
        }
        ips
    }
}

/// Whether the host can bind an IPv6 socket at all (a kernel booted with
/// `ipv6.disable=1`, or a container without IPv6, cannot).
fn host_has_ipv6() -> bool {
    std::net::UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, 0)).is_ok()
}

/// Federation: several relays acting as one service (see
/// `relay::federation` and the README's "Many relays" section). Off unless
/// `--federation-peers` is given.
#[derive(Debug, Clone, Args)]
pub struct FederationOptions {
    /// The federation's relays: a file of peer ids, one per line
    /// (`<peer id>  # comment`), the same for every relay (its own id may
    /// be in it). Only these relays may join: they get the federation's
    /// DHT and a relay's gossip budget. Re-read when it changes.
    #[arg(long, env = "RELAY_FEDERATION_PEERS", value_name = "FILE")]
    pub federation_peers: Option<PathBuf>,

    /// Address of another relay of the federation to connect to
    /// (repeatable, or comma-separated), ending in /p2p/<its peer id>,
    /// which must be in --federation-peers. One is enough: the relay finds
    /// the others through the federation's DHT.
    #[arg(
        long = "federate",
        env = "RELAY_FEDERATE",
        value_delimiter = ',',
        value_name = "MULTIADDR",
        requires = "federation_peers"
    )]
    pub federate: Vec<libp2p::Multiaddr>,

    /// Most federation relays this relay dials and keeps a connection to.
    #[arg(long, env = "RELAY_MAX_FEDERATION_MEMBERS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_federation_members: u32,

    /// Chat messages the relay accepts per minute from one federation
    /// relay (which forwards all of its pages' and its other members').
    #[arg(long, env = "RELAY_FEDERATION_CHAT_RATE", default_value_t = 12_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub federation_chat_rate: u32,

    /// Discovery records the relay accepts per minute from one federation
    /// relay.
    #[arg(long, env = "RELAY_FEDERATION_DISCOVERY_RATE", default_value_t = 12_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub federation_discovery_rate: u32,
}

/// Let's Encrypt's production directory, the default `--acme-directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// HTTPS and secure WebSocket, for a relay with a DNS name. Without
/// `--domain` none of these apply and the relay serves plain HTTP and
/// `ws://` as before.
#[derive(Debug, Clone, Args)]
pub struct TlsOptions {
    /// DNS name of this relay (repeatable, or comma-separated). Turns on
    /// HTTPS for the page and API on --https-port, secure WebSocket for
    /// browsers on --wss-port, and redirects plain HTTP to HTTPS. The
    /// certificate comes from ACME (--acme-directory) unless --tls-cert is
    /// given.
    #[arg(long = "domain", env = "RELAY_DOMAIN", value_delimiter = ',', value_parser = parse_domain)]
    pub domains: Vec<String>,

    /// PEM certificate chain to serve instead of asking an ACME CA; re-read
    /// when it changes.
    #[arg(long, env = "RELAY_TLS_CERT", value_name = "FILE", requires_all = ["tls_key", "domains"])]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert; re-read when it changes.
    #[arg(
        long,
        env = "RELAY_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// TCP port of the HTTPS server (with --domain). ACME's TLS-ALPN-01
    /// challenge reaches it, so the CA must see it as port 443.
    #[arg(long, env = "RELAY_HTTPS_PORT", default_value_t = 443)]
    pub https_port: u16,

    /// TCP port of the secure WebSocket listener (`/tls/ws`, with --domain).
    #[arg(long, env = "RELAY_WSS_PORT", default_value_t = 4443)]
    pub wss_port: u16,

    /// ACME directory to get certificates from.
    #[arg(long, env = "RELAY_ACME_DIRECTORY", value_name = "URL", default_value = LETS_ENCRYPT)]
    pub acme_directory: String,

    /// Contact e-mail for the ACME account (repeatable; optional), where
    /// the CA sends expiry warnings.
    #[arg(
        long = "acme-contact",
        env = "RELAY_ACME_CONTACT",
        value_delimiter = ','
    )]
    pub acme_contacts: Vec<String>,

    /// Extra PEM root to trust for the ACME directory's own HTTPS (a
    /// private or test CA such as Pebble).
    #[arg(long, env = "RELAY_ACME_ROOT", value_name = "FILE")]
    pub acme_root: Option<PathBuf>,
}

/// A `--domain`: a DNS name (not an IP address), lower-cased.
fn parse_domain(value: &str) -> Result<String, String> {
    match value.parse::<ExternalHost>() {
        Ok(ExternalHost::Dns(name)) => Ok(name),
        Ok(ExternalHost::Ip(_)) => Err(format!(
            "'{value}' is an IP address; certificates are for DNS names"
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// Bounds on the listeners themselves: what one host may hold open before
/// it has said who it is. Defaults and reasons are in the README's limits
/// table and threat model.
#[derive(Debug, Clone, Args)]
pub struct ListenerLimits {
    /// Seconds an incoming libp2p connection has to finish its handshake
    /// (WebSocket upgrade, Noise or TLS/DTLS, multiplexer) on any listener.
    #[arg(long, env = "RELAY_HANDSHAKE_TIMEOUT", default_value = "10", value_parser = parse_secs)]
    pub handshake_timeout: SecsDuration,

    /// Incoming connections still in their handshake from one IPv4
    /// address or IPv6 /64, on each listener.
    #[arg(long, env = "RELAY_MAX_PENDING_PER_IP", default_value_t = 8)]
    pub max_pending_per_ip: usize,

    /// Largest WebSocket frame (and message) accepted, bytes.
    #[arg(long, env = "RELAY_MAX_WEBSOCKET_FRAME", default_value_t = 256 * 1024)]
    pub max_websocket_frame: usize,

    /// Seconds an HTTP client has to send a request's headers (also the
    /// longest an idle keep-alive connection is kept).
    #[arg(long, env = "RELAY_HTTP_HEADER_TIMEOUT", default_value = "10", value_parser = parse_secs)]
    pub http_header_timeout: SecsDuration,

    /// HTTP connections open at once, from everyone.
    #[arg(long, env = "RELAY_MAX_HTTP_CONNECTIONS", default_value_t = 512)]
    pub max_http_connections: usize,

    /// HTTP connections open at once from one IPv4 address or IPv6 /64.
    #[arg(long, env = "RELAY_MAX_HTTP_CONNECTIONS_PER_IP", default_value_t = 16)]
    pub max_http_connections_per_ip: usize,

    /// STUN binding responses per second to one IPv4 address or IPv6 /64.
    #[arg(long, env = "RELAY_STUN_RATE_PER_IP", default_value_t = crate::stun::DEFAULT_MAX_RESPONSES_PER_PREFIX)]
    pub stun_rate_per_ip: u32,

    // --- Slow clients and floods the first limits missed (#18, part 2).
    /// Seconds an HTTP response may wait for a client that reads nothing
    /// before the connection is closed (any progress restarts the clock).
    #[arg(long, env = "RELAY_HTTP_WRITE_TIMEOUT", default_value = "10", value_parser = parse_secs)]
    pub http_write_timeout: SecsDuration,

    /// Source addresses of unfinished connections a WebRTC-direct listener
    /// may remember before it is opened again (libp2p-webrtc keeps each
    /// one for the listener's life; its connections drop on a restart).
    #[arg(long, env = "RELAY_MAX_WEBRTC_UNFINISHED_ADDRESSES", default_value_t = crate::webrtc_direct_guard::DEFAULT_MAX_UNFINISHED_ADDRESSES)]
    pub max_webrtc_unfinished_addresses: u64,
}

/// Resource limits. Defaults, and the reason for each, are tabled in the
/// README; keep the two in step.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Reservations held at once, over all peers.
    #[arg(long, env = "RELAY_MAX_RESERVATIONS", default_value_t = 1024)]
    pub max_reservations: usize,

    /// Reservations one peer may hold at once (one per connection).
    #[arg(long, env = "RELAY_MAX_RESERVATIONS_PER_PEER", default_value_t = 2)]
    pub max_reservations_per_peer: usize,

    /// Peers with a reservation behind one IP address.
    #[arg(long, env = "RELAY_MAX_RESERVATIONS_PER_IP", default_value_t = 16)]
    pub max_reservations_per_ip: usize,

    /// New reservations (and renewals) one IP address may make per minute.
    #[arg(long, env = "RELAY_RESERVATION_RATE_PER_IP", default_value_t = 30)]
    pub reservation_rate_per_ip: u32,

    /// How long a reservation lasts before the peer must renew it, seconds.
    #[arg(long, env = "RELAY_RESERVATION_DURATION", default_value = "3600", value_parser = parse_secs)]
    pub reservation_duration: SecsDuration,

    /// Circuits open at once, over all peers.
    #[arg(long, env = "RELAY_MAX_CIRCUITS", default_value_t = 256)]
    pub max_circuits: usize,

    /// Circuits one peer may have open at once.
    #[arg(long, env = "RELAY_MAX_CIRCUITS_PER_PEER", default_value_t = 8)]
    pub max_circuits_per_peer: usize,

    /// New circuits one IP address may open per minute.
    #[arg(long, env = "RELAY_CIRCUIT_RATE_PER_IP", default_value_t = 60)]
    pub circuit_rate_per_ip: u32,

    /// Longest life of a circuit, seconds.
    #[arg(long, env = "RELAY_MAX_CIRCUIT_DURATION", default_value = "120", value_parser = parse_secs)]
    pub max_circuit_duration: SecsDuration,

    /// Most bytes one circuit carries (both directions) before it is closed.
    #[arg(long, env = "RELAY_MAX_CIRCUIT_BYTES", default_value_t = 1 << 20)]
    pub max_circuit_bytes: u64,

    /// Chat messages the relay forwards per minute for one peer (a burst of
    /// as many); the excess is dropped.
    #[arg(long, env = "RELAY_CHAT_RATE_PER_PEER", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub chat_rate_per_peer: u32,

    /// Chat messages the relay forwards per minute for one IP address
    /// (IPv6: one /64), over all its peers.
    #[arg(long, env = "RELAY_CHAT_RATE_PER_IP", default_value_t = 240, value_parser = clap::value_parser!(u32).range(1..))]
    pub chat_rate_per_ip: u32,

    /// Discovery records the relay forwards per minute for one peer.
    #[arg(long, env = "RELAY_DISCOVERY_RATE_PER_PEER", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub discovery_rate_per_peer: u32,

    /// Discovery records the relay forwards per minute for one IP address
    /// (IPv6: one /64), over all its peers.
    #[arg(long, env = "RELAY_DISCOVERY_RATE_PER_IP", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub discovery_rate_per_ip: u32,

    /// Established connections, over all peers.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS", default_value_t = 2048)]
    pub max_connections: u32,

    /// Established connections to one peer.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS_PER_PEER", default_value_t = 4)]
    pub max_connections_per_peer: u32,

    /// Established connections from one IP address.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS_PER_IP", default_value_t = 32)]
    pub max_connections_per_ip: usize,

    /// Incoming connections still in their handshake, on each listener.
    #[arg(long, env = "RELAY_MAX_PENDING_CONNECTIONS", default_value_t = 128)]
    pub max_pending_connections: u32,

    /// STUN binding responses per second, over all clients (a backstop
    /// behind --stun-rate-per-ip against spoofed sources).
    #[arg(long, env = "RELAY_STUN_RATE", default_value_t = crate::stun::DEFAULT_MAX_RESPONSES_PER_SECOND)]
    pub stun_rate: u32,
}

/// A duration given in whole seconds on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecsDuration(pub Duration);

impl std::fmt::Display for SecsDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.as_secs())
    }
}

impl From<u64> for SecsDuration {
    fn from(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

fn parse_secs(value: &str) -> Result<SecsDuration, String> {
    match value.parse::<u64>() {
        Ok(0) => Err("must be at least 1 second".to_owned()),
        Ok(secs) => Ok(SecsDuration(Duration::from_secs(secs))),
        Err(_) => Err(format!("'{value}' is not a whole number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_command_line_of_rust_libp2p_works_as_is() {
        let options = Options::try_parse_from([
            "relay",
            "--port",
            "4884",
            "--secret-key-seed",
            "0",
            "--websocket-port",
            "8080",
            "--webrtc-port",
            "8081",
        ])
        .expect("the rust-libp2p relay example's flags parse");
        assert_eq!(
            (
                options.port,
                options.websocket_port,
                options.webrtc_port,
                options.secret_key_seed
            ),
            (4884, 8080, 8081, Some(0))
        );
    }

    #[test]
    fn no_flags_give_defaults() {
        let options = Options::try_parse_from(["relay"]).expect("no flag is required");
        assert_eq!(options.port, 4001);
        assert_eq!(
            options.limits.max_circuit_duration,
            SecsDuration(Duration::from_secs(120))
        );
    }

    #[test]
    fn typo_in_a_flag_is_an_error_that_names_it() {
        let error =
            Options::try_parse_from(["relay", "--web-socket-port", "1"]).expect_err("unknown flag");
        assert!(error.to_string().contains("--web-socket-port"), "{error}");
    }

    #[test]
    fn bad_external_address_is_an_error_that_names_the_flag() {
        let error = Options::try_parse_from(["relay", "--external-address", "not a host!"])
            .expect_err("invalid host");
        assert!(error.to_string().contains("--external-address"), "{error}");
    }

    #[test]
    fn restricting_circuits_needs_an_authorized_peers_file() {
        let error = Options::try_parse_from(["relay", "--authorized-circuits-only"])
            .expect_err("needs --authorized-peers");
        assert!(error.to_string().contains("--authorized-peers"), "{error}");
        let options = Options::try_parse_from([
            "relay",
            "--authorized-peers",
            "peers.txt",
            "--authorized-circuits-only",
        ])
        .expect("valid");
        assert!(options.authorized_circuits_only);
        assert_eq!(
            options.authorized_peers.as_deref(),
            Some(std::path::Path::new("peers.txt"))
        );
    }

    #[test]
    fn listen_ip_is_repeatable_and_defaults_to_both_families_where_possible() {
        let options =
            Options::try_parse_from(["relay", "--listen-ip", "127.0.0.1", "--listen-ip", "::1"])
                .expect("valid");
        assert_eq!(
            options.listen_ips(),
            vec![
                IpAddr::from([127, 0, 0, 1]),
                "::1".parse::<IpAddr>().expect("ip")
            ]
        );
        let options =
            Options::try_parse_from(["relay", "--listen-ip", "127.0.0.1,::1"]).expect("valid");
        assert_eq!(options.listen_ips().len(), 2);
        let defaults = Options::try_parse_from(["relay"])
            .expect("valid")
            .listen_ips();
        assert_eq!(defaults[0], IpAddr::from([0, 0, 0, 0]));
        assert_eq!(defaults.len(), if host_has_ipv6() { 2 } else { 1 });
    }

    #[test]
    fn gossip_rates_have_defaults_and_refuse_zero() {
        let options = Options::try_parse_from(["relay"]).expect("defaults");
        assert_eq!(
            (
                options.limits.chat_rate_per_peer,
                options.limits.chat_rate_per_ip,
                options.limits.discovery_rate_per_peer,
                options.limits.discovery_rate_per_ip,
            ),
            (60, 240, 30, 300)
        );
        assert!(!options.dial_back_non_global);
        let error = Options::try_parse_from(["relay", "--chat-rate-per-peer", "0"])
            .expect_err("zero refused");
        assert!(
            error.to_string().contains("--chat-rate-per-peer"),
            "{error}"
        );
    }

    #[test]
    fn tls_flags_need_a_domain_and_each_other() {
        let defaults = Options::try_parse_from(["relay"]).expect("no TLS flag is required");
        assert!(defaults.tls.domains.is_empty());
        assert_eq!(defaults.tls.https_port, 443);
        let error = Options::try_parse_from(["relay", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
            .expect_err("a certificate needs the name it is for");
        assert!(error.to_string().contains("--domain"), "{error}");
        let error =
            Options::try_parse_from(["relay", "--domain", "a.example", "--tls-cert", "c.pem"])
                .expect_err("a certificate needs its key");
        assert!(error.to_string().contains("--tls-key"), "{error}");
        let error = Options::try_parse_from(["relay", "--domain", "192.0.2.1"])
            .expect_err("an IP is not a domain");
        assert!(error.to_string().contains("--domain"), "{error}");
        let options = Options::try_parse_from([
            "relay",
            "--domain",
            "Chat.Example.org,relay.example.org",
            "--acme-contact",
            "ops@example.org",
        ])
        .expect("valid");
        assert_eq!(
            options.tls.domains,
            ["chat.example.org", "relay.example.org"]
        );
        assert_eq!(options.tls.acme_directory, LETS_ENCRYPT);
    }

    #[test]
    fn federate_needs_a_membership_file_and_is_repeatable() {
        let defaults = Options::try_parse_from(["relay"]).expect("defaults");
        assert!(defaults.federation.federation_peers.is_none());
        assert!(defaults.federation.federate.is_empty());
        let a = "/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let b = "/ip4/192.0.2.2/tcp/4001/p2p/12D3KooWRBhwfeP2Y9CDkFRBAZ1pmxUadH36TKuk3KtKm5XXP8mA";
        let error = Options::try_parse_from(["relay", "--federate", a])
            .expect_err("needs --federation-peers");
        assert!(error.to_string().contains("--federation-peers"), "{error}");
        let options = Options::try_parse_from([
            "relay",
            "--federation-peers",
            "relays.txt",
            "--federate",
            a,
            "--federate",
            b,
        ])
        .expect("valid");
        assert_eq!(options.federation.federate.len(), 2);
        let error = Options::try_parse_from([
            "relay",
            "--federation-peers",
            "relays.txt",
            "--federate",
            "not an address",
        ])
        .expect_err("not a multiaddr");
        assert!(error.to_string().contains("--federate"), "{error}");
    }

    #[test]
    fn zero_second_durations_are_refused() {
        assert!(Options::try_parse_from(["relay", "--max-circuit-duration", "0"]).is_err());
    }
}
