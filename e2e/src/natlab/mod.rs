//! The NAT lab: two laptops behind home routers of chosen NAT kinds and a
//! relay on a make-believe internet, built from network namespaces on this
//! machine, with a real headless browser on each laptop (Chromium, or
//! Firefox on laptop A in the `firefox:` cells).
//!
//! - [`Netns`]: a namespace, removed with what runs in it on drop, on a
//!   signal ([`remove_on_signal`]) or by the next run ([`remove_stale`]);
//! - [`Lab`]: the topology (see `topology.rs` for the picture);
//! - [`NatKind`]: what each router does (an nftables ruleset) and the
//!   link two kinds should allow ([`NatKind::expected`]);
//! - [`probe`]: a UDP check of a router's mapping and filtering;
//! - [`DriverInNamespace`]: chromedriver and Chromium (or geckodriver and
//!   Firefox) inside a laptop, driven from here;
//! - [`run_cell`], [`run_browser_cell`] and [`Table`]: one cell of the
//!   matrix, and the matrix;
//!   `proof`: what shows a browser cell's link for what it is (the relay
//!   killed under a direct link; a ping over a relayed one);
//! - [`run_native_cell`]: a cell with `chat-peer` on the laptops (DCUtR);
//! - [`federation`]: a second relay federated with the first, each laptop
//!   on its own relay (a lookup, then DCUtR);
//! - [`recovery`]: native peers when the network changes under them
//!   (mappings flushed, a new address, circuits that reach their limit).
//!
//! Needs root, `ip`, `nft` and `sysctl` ([`check_prerequisites`]).

mod cell;
mod driver;
pub mod federation;
mod nat;
mod native;
pub mod netns;
mod page_circuits;
mod page_recovery;
mod probe;
mod proof;
pub mod recovery;
mod topology;

pub use cell::{
    CellOutcome, CellSetup, DIRECT_TIMEOUT, MESSAGES_EACH_WAY, Peers, Table, run_browser_cell,
    run_cell,
};
pub use driver::DriverInNamespace;
pub use nat::{Expected, NatKind};
pub use native::run_native_cell;
pub use netns::{Netns, check_prerequisites, remove_on_signal, remove_stale};
pub use page_circuits::{
    PAGE_CIRCUIT_DURATION, PAGE_CIRCUIT_LIFETIMES, PAGE_REDIAL_BOUND,
    pages_across_circuit_lifetimes,
};
pub use page_recovery::{PAGE_RECOVERY_BOUND, PageChange, pages_recover};
pub use probe::{NatBehaviour, probe};
pub use proof::{FIRST_MESSAGE_BOUND, RelayDead, RelayedLink};
pub use topology::{Lab, RELAY_IP, Site};
