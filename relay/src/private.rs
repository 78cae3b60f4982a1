//! Private relay mode: only the peers listed in a file (the authorized
//! peers) may reserve a slot, gossip and ask for dial-backs; others, the
//! guests, are answered `PERMISSION_DENIED` and may at most open circuits
//! to listed peers.
//!
//! - [`authorized_peers`]: the file, re-read when it changes;
//! - [`authorized_relay`]: circuit relay v2 that refuses guests with the
//!   status the specification gives for access control lists;
//! - [`members_only`]: any other behaviour, served to listed peers only.

pub mod authorized_peers;
pub mod authorized_relay;
pub mod members_only;

use authorized_peers::AuthorizedPeers;

/// Who may reserve, and whether circuits are limited to the same peers.
#[derive(Debug, Clone)]
pub struct Access {
    pub peers: AuthorizedPeers,
    pub circuits_too: bool,
}
