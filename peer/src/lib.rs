//! A native chat peer for the terminal.
//!
//! A shell around `chat_network`, the behaviour it shares with the page
//! (discovery, the peer book, chat, the relayed-to-direct hand-off): this
//! crate adds the swarm and its transports, the relay session, DCUtR and
//! AutoNAT, and the terminal.
//!
//! It joins the browsers' network through a relay: reserves a slot,
//! announces its circuit address on the discovery topic with the same
//! signed record as the page, discovers the others, reaches any of them
//! through the relay first, lets DCUtR turn relayed connections between
//! native peers into direct ones (TCP and QUIC), asks the relay's AutoNAT
//! whether it is reachable, and chats on the page's topic.
//!
//! - [`node`]: the libp2p node; [`Peer::start`] returns a [`PeerHandle`]
//!   (commands in, [`Event`]s out) that the terminal and tests drive;
//! - [`events`]: what goes in and out of the node;
//! - [`identity`]: the key file, created once (0600);
//! - [`names`]: short names for peer ids, and resolving what a user types;
//! - [`cli`] and [`output`]: the command line and what it prints.

pub mod cli;
pub mod events;
pub mod identity;
pub mod names;
pub mod node;
pub mod output;

use std::time::Duration;

pub use events::{Event, Path, PeerInfo, Reachability};
pub use node::{Config, Peer, PeerHandle, RELAYED_GRACE, StartError, Stopped};

/// How often a peer re-announces its record: the page's period.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(20);
