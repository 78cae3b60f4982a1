//! Private relay mode: only the peers listed in a file may reserve a slot
//! (and, optionally, open circuits).
//!
//! The file reads like ssh's `authorized_keys`: one peer id per line, an
//! optional `# comment` after it, blank lines and comment lines allowed.
//!
//! ```text
//! # home machine behind CGNAT
//! 12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN  # nas
//! 12D3KooWRBhwfeP2Y9CDkFRBAZ1pmxUadH36TKuk3KtKm5XXP8mA  # laptop
//! ```
//!
//! The file is checked for changes (modification time and length) each
//! time the relay asks whether a peer is authorized, so an edit applies to
//! the next reservation, renewal or circuit without a restart. An edit that
//! does not parse is logged and ignored: the previous list stays in force.
//!
//! # Who refuses, and with what status
//!
//! [`crate::private::authorized_relay`] answers unlisted peers `PERMISSION_DENIED`:
//! their connections get its guest handler, not `libp2p-relay`'s. The
//! limiters here ([`AuthorizedPeers::reservation_limiter`],
//! [`AuthorizedPeers::circuit_limiter`]) are `libp2p-relay`'s only
//! per-request hooks, which it answers `RESOURCE_LIMIT_EXCEEDED`; they
//! refuse what reaches `libp2p-relay`'s handler anyway: the requests of a
//! peer removed from the file in the moment before its connection is
//! closed.

use std::{
    collections::HashSet,
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use libp2p::{Multiaddr, PeerId, relay};

use crate::refusals::Refusals;

/// Largest file read: a peer id is 52 characters, so this holds thousands
/// of lines with comments, and a mistaken path (a disk image, say) is
/// refused rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AuthorizedError {
    #[error("cannot read the authorized peers file {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("the authorized peers file {path} is {len} bytes; the limit is {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf, len: u64 },
    #[error("{path}:{line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// What makes one line of the file invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("'{token}' is not a peer id ({reason}); expected '<peer id>  # comment'")]
    NotAPeerId { token: String, reason: String },
    #[error("unexpected '{rest}' after the peer id; put comments after a '#'")]
    TrailingText { rest: String },
    #[error("the file is not UTF-8 text")]
    NotText,
}

/// Parses the file's text into the set of peer ids it lists. The error
/// carries the 1-based line number.
pub fn parse(text: &str) -> Result<HashSet<PeerId>, (usize, LineError)> {
    let mut peers = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let content = match line.split_once('#') {
            Some((before, _comment)) => before,
            None => line,
        }
        .trim();
        if content.is_empty() {
            continue;
        }
        let (token, rest) = match content.split_once(char::is_whitespace) {
            Some((token, rest)) => (token, rest.trim()),
            None => (content, ""),
        };
        let peer = token.parse::<PeerId>().map_err(|error| {
            (
                index + 1,
                LineError::NotAPeerId {
                    token: token.to_owned(),
                    reason: error.to_string(),
                },
            )
        })?;
        if !rest.is_empty() {
            return Err((
                index + 1,
                LineError::TrailingText {
                    rest: rest.to_owned(),
                },
            ));
        }
        peers.insert(peer);
    }
    Ok(peers)
}

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// The authorized peers, re-read from their file when it changes.
#[derive(Debug, Clone)]
pub struct AuthorizedPeers {
    path: PathBuf,
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    peers: HashSet<PeerId>,
    /// The version the list was read from.
    loaded: Stamp,
    /// The last version that failed to load, so its error is logged once.
    failed: Option<Stamp>,
    /// Counts the loads, so a watcher sees that the list changed.
    version: u64,
}

impl AuthorizedPeers {
    /// Reads the file; a missing, unreadable or invalid file is an error
    /// (the relay refuses to start rather than run open or closed by
    /// mistake).
    pub fn load(path: &Path) -> Result<Self, AuthorizedError> {
        let (peers, loaded) = read(path)?;
        tracing::info!(file = %path.display(), peers = peers.len(), "peer list loaded");
        Ok(Self {
            path: path.to_owned(),
            inner: Arc::new(Mutex::new(State {
                peers,
                loaded,
                failed: None,
                version: 0,
            })),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `peer` is listed, after re-reading the file if it changed.
    pub fn is_authorized(&self, peer: &PeerId) -> bool {
        let mut state = self.lock();
        self.refresh(&mut state);
        state.peers.contains(peer)
    }

    /// Which load of the file is in force, after re-reading it if it
    /// changed: a new value means the list may have changed.
    pub fn version(&self) -> u64 {
        let mut state = self.lock();
        self.refresh(&mut state);
        state.version
    }

    /// Whether `peer` is in the list as last loaded, without looking at
    /// the file: for checking many peers after one [`Self::version`].
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.lock().peers.contains(peer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Peers currently listed.
    pub fn len(&self) -> usize {
        let mut state = self.lock();
        self.refresh(&mut state);
        state.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn refresh(&self, state: &mut State) {
        let stamp = match stamp(&self.path) {
            Ok(stamp) => stamp,
            Err(error) => {
                // Deleted or unreadable: keep the list, say so once.
                let gone = Stamp {
                    modified: None,
                    len: u64::MAX,
                };
                if state.failed != Some(gone) {
                    state.failed = Some(gone);
                    tracing::warn!(file = %self.path.display(), %error, "cannot read the authorized peers file; keeping the previous list");
                }
                return;
            }
        };
        if stamp == state.loaded || state.failed == Some(stamp) {
            return;
        }
        match read(&self.path) {
            Ok((peers, loaded)) => {
                tracing::info!(file = %self.path.display(), peers = peers.len(), "authorized peers file changed: reloaded");
                state.peers = peers;
                state.loaded = loaded;
                state.failed = None;
                state.version += 1;
            }
            Err(error) => {
                tracing::warn!(%error, "authorized peers file changed but is invalid; keeping the previous list");
                state.failed = Some(stamp);
            }
        }
    }

    /// A limiter for `relay::Config::reservation_rate_limiters` that denies
    /// reservations (and renewals) of peers not in the file. Put it first:
    /// the relay stops at the first limiter that says no, so a denied peer
    /// does not use up the rate limits of the others.
    pub fn reservation_limiter(&self, refusals: Refusals) -> Box<dyn relay::RateLimiter> {
        let this = self.clone();
        Box::new(move |peer: PeerId, addr: &Multiaddr, _now| {
            let allowed = this.is_authorized(&peer);
            if !allowed {
                refusals.refused("reservation-not-authorized", || {
                    format!(
                        "reservation of {peer} ({addr}) denied: not in the authorized peers file {}",
                        this.path.display()
                    )
                });
            }
            allowed
        })
    }

    /// A limiter for `relay::Config::circuit_src_rate_limiters` that denies
    /// circuits opened by peers not in the file.
    pub fn circuit_limiter(&self, refusals: Refusals) -> Box<dyn relay::RateLimiter> {
        let this = self.clone();
        Box::new(move |peer: PeerId, addr: &Multiaddr, _now| {
            let allowed = this.is_authorized(&peer);
            if !allowed {
                refusals.refused("circuit-not-authorized", || {
                    format!(
                        "circuit from {peer} ({addr}) denied: not in the authorized peers file {}",
                        this.path.display()
                    )
                });
            }
            allowed
        })
    }
}

fn stamp(path: &Path) -> io::Result<Stamp> {
    let metadata = fs::metadata(path)?;
    Ok(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    })
}

fn read(path: &Path) -> Result<(HashSet<PeerId>, Stamp), AuthorizedError> {
    let unreadable = |source| AuthorizedError::Unreadable {
        path: path.to_owned(),
        source,
    };
    // The stamp first: an edit racing the read is then seen as a change
    // at the next check.
    let stamp = stamp(path).map_err(unreadable)?;
    if stamp.len > MAX_FILE_BYTES {
        return Err(AuthorizedError::TooLarge {
            path: path.to_owned(),
            len: stamp.len,
        });
    }
    let bytes = fs::read(path).map_err(unreadable)?;
    let bad_line = |line, error: LineError| AuthorizedError::BadLine {
        path: path.to_owned(),
        line,
        reason: error.to_string(),
    };
    let text = String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        bad_line(line, LineError::NotText)
    })?;
    let peers = parse(&text).map_err(|(line, error)| bad_line(line, error))?;
    Ok((peers, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_comments_and_blank_lines_parse() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let text = format!("# my peers\n\n{a}  # nas\n   {b}\n\t# indented comment\n{a}\n");
        assert_eq!(parse(&text), Ok(HashSet::from([a, b])));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let a = PeerId::random();
        let (line, error) =
            parse(&format!("{a}\n# fine\nnot-a-peer-id # oops\n")).expect_err("bad");
        assert_eq!(line, 3);
        assert!(
            matches!(&error, LineError::NotAPeerId { token, .. } if token == "not-a-peer-id"),
            "{error}"
        );
    }

    #[test]
    fn text_after_the_peer_id_must_be_a_comment() {
        let a = PeerId::random();
        let (line, error) = parse(&format!("\n{a} laptop\n")).expect_err("bad");
        assert_eq!(
            (line, error),
            (
                2,
                LineError::TrailingText {
                    rest: "laptop".to_owned()
                }
            )
        );
    }

    #[test]
    fn file_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("authorized_peers");
        std::fs::write(&path, "# ok\nxyz\n").expect("write");
        let error = AuthorizedPeers::load(&path).expect_err("invalid");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("{}:2: 'xyz' is not a peer id", path.display())),
            "{message}"
        );
        let missing = AuthorizedPeers::load(&dir.path().join("missing")).expect_err("missing");
        assert!(
            matches!(missing, AuthorizedError::Unreadable { .. }),
            "{missing}"
        );
    }

    #[test]
    fn an_edit_is_picked_up_and_an_invalid_edit_keeps_the_previous_list() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("authorized_peers");
        let (a, b) = (PeerId::random(), PeerId::random());
        std::fs::write(&path, format!("{a}\n")).expect("write");
        let peers = AuthorizedPeers::load(&path).expect("valid");
        assert!(peers.is_authorized(&a));
        assert!(!peers.is_authorized(&b));

        std::fs::write(&path, format!("{a}\n{b}  # added\n")).expect("write");
        assert!(peers.is_authorized(&b), "edit picked up");

        std::fs::write(&path, format!("{b}\ngarbage here and there\n")).expect("write");
        assert!(peers.is_authorized(&a), "invalid edit ignored");
        assert_eq!(peers.len(), 2);

        std::fs::write(&path, format!("{b}\n")).expect("write");
        assert!(!peers.is_authorized(&a), "fixed edit applied");
    }
}
