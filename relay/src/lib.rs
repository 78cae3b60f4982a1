//! A libp2p relay for browsers behind NATs.
//!
//! One process, one identity, several listeners: TCP for native peers,
//! WebSocket and WebRTC-direct for browsers, a STUN binding service for the
//! browsers' ICE, and HTTP for the page, its configuration, health and
//! metrics. It runs circuit relay v2 so that peers can reach each other
//! through it, and gossipsub so that they can find each other and chat.
//!
//! - [`config`]: command-line options and limits;
//! - [`server`]: start-up and the swarm's event loop;
//! - [`swarm`]: the transports around the behaviour;
//! - [`behaviour`]: the composed libp2p behaviour;
//! - [`gossip`]: what the relay forwards and what it rejects;
//! - [`limits`]: per-IP limits on connections and reservations;
//! - [`refusals`]: refusals logged at a bounded rate and counted;
//! - [`private`]: private relay mode: the peers allowed to reserve, the
//!   relay behaviour that denies the others, gossip and AutoNAT for listed
//!   peers only;
//! - [`dial_policy`]: the relay dials global unicast addresses only;
//! - [`state`]: the identity key and WebRTC certificate on disk;
//! - [`addresses`]: the addresses it prints, advertises and serves;
//! - [`stun`]: the STUN binding service;
//! - [`http`] and [`metrics`]: the HTTP endpoints and Prometheus metrics;
//! - [`assets`]: the page's files, precompressed and cached by their names;
//! - [`page_headers`]: CSP, HSTS and the other headers on every response;
//! - [`http_listener`]: the HTTP accept loop, with its deadline and bounds;
//! - [`fd_budget`]: file descriptors shared out between HTTP and libp2p;
//! - [`sockets`]: the HTTP and STUN sockets, one per listen IP;
//! - [`tls`]: HTTPS and secure WebSocket for a relay with a domain name;
//! - [`webrtc_direct_guard`]: a bound on what libp2p-webrtc's UDP mux
//!   remembers about strangers;
//! - [`federation`]: several relays as one service: members, their
//!   private DHT, gossip between relays.

pub mod addresses;
pub mod assets;
pub mod behaviour;
pub mod config;
pub mod dial_policy;
pub mod fd_budget;
pub mod federation;
pub mod gossip;
pub mod http;
pub mod http_listener;
pub mod limits;
pub mod metrics;
pub mod page_headers;
pub mod private;
pub mod refusals;
pub mod server;
pub mod sockets;
pub mod state;
pub mod stun;
pub mod superseded;
pub mod swarm;
pub mod tls;
pub mod webrtc_direct;
pub mod webrtc_direct_guard;
pub mod write_deadline;

pub use config::Options;
pub use server::{Relay, StartError};
