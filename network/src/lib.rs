//! The chat network both peers run, the page and chat-peer alike: one
//! [`NetworkBehaviour`](libp2p::swarm::NetworkBehaviour) for discovery,
//! the peer book, the dial rule, chat and the hand-off from a relayed
//! connection to a direct one. It builds for native targets and wasm32,
//! with no tokio and no browser APIs: each peer's shell brings the swarm,
//! the transports, the relay session and what a person sees.
//!
//! - [`Behaviour`] composes gossipsub (gossipsub-lite) and locate, and
//!   holds the policy: it announces this peer's signed record every
//!   [`Config::announce_interval`] (and soon after a newcomer or a new
//!   address), decodes every gossip message once
//!   ([`chat_protocol::Inbound::decode`]), keeps the [`book`], dials by the
//!   [`dial`] rule, and closes a relayed connection once a direct one has
//!   stood beside it for [`Config::relayed_grace`], counted per connection.
//!   With a [`Liveness`] rule it also shows a link whose pings go
//!   unanswered as [`Link::Reconnecting`] and closes it once it is dead.
//! - Commands are methods: [`Behaviour::send_chat`], [`Behaviour::peers`],
//!   [`Behaviour::dial`], [`Behaviour::trust_relay`], [`Behaviour::locate`]
//!   (which relay of the federation holds a peer: [`locate`]).
//! - [`Event`]s: [`Event::Discovered`], [`Event::PeerChanged`],
//!   [`Event::PeerGone`], [`Event::Chat`], and the rest.
//!
//! - [`identify`] is a lean identify for the page (the native peer runs
//!   rust-libp2p's), lighter in wasm than libp2p-identify.
//!
//! What stays in a shell: ping and identify (their round trips and agents
//! are handed in with [`Behaviour::on_rtt`] and [`Behaviour::on_agent`]),
//! the relay connection and reservation, and the upgrade to a direct link
//! (DCUtR natively, `libp2p_webrtc_p2p`'s upgrade policy in the browser),
//! which reads a peer's `/webrtc` addresses and incarnation from
//! [`PeerInfo`].
//!
//! Tested with real swarms over libp2p's memory transport and relay client
//! (`tests/`).

pub mod behaviour;
pub mod book;
pub mod config;
pub mod dial;
pub mod identify;
pub mod locate;

pub use behaviour::{Behaviour, DeadLink, Event, SendError, Sent};
pub use book::{Link, Path, PeerInfo, short};
pub use config::{Config, Liveness};
pub use locate::LocateError;
