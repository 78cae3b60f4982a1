//! Short names for peer ids, from a names file:
//!
//! ```text
//! # name   peer id                                                 comment
//! nas      12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN    # at home
//! laptop   12D3KooWRBhwfeP2Y9CDkFRBAZ1pmxUadH36TKuk3KtKm5XXP8mA
//! ```
//!
//! and how a peer typed on the command line is resolved: a name from the
//! file, a whole peer id, or the last characters of a discovered peer's id
//! (the short form the page and this program print, `…XKuk3KtK`).

use std::{
    collections::HashMap,
    fmt, fs,
    path::{Path, PathBuf},
};

use libp2p::PeerId;

/// Longest name accepted.
pub const MAX_NAME_LEN: usize = 32;
/// Largest names file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Fewest trailing characters of a peer id accepted as a short form.
pub const MIN_SHORT_LEN: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum NamesError {
    #[error("cannot read the names file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the names file {path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}:{line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: usize,
        reason: LineError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("expected '<name>  <peer id>  # comment', found '{0}'")]
    Shape(String),
    #[error(
        "'{0}' is not a valid name (1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', not a peer id)"
    )]
    BadName(String),
    #[error("'{token}' is not a peer id: {reason}")]
    BadPeerId { token: String, reason: String },
    #[error("the name '{0}' is already given to another peer on line {1}")]
    DuplicateName(String, usize),
}

/// Names for peer ids, both ways.
#[derive(Debug, Clone, Default)]
pub struct Names {
    by_name: HashMap<String, (PeerId, usize)>,
    by_peer: HashMap<PeerId, String>,
}

impl Names {
    pub fn load(path: &Path) -> Result<Self, NamesError> {
        let unreadable = |source| NamesError::Unreadable {
            path: path.to_owned(),
            source,
        };
        let len = fs::metadata(path).map_err(unreadable)?.len();
        if len > MAX_FILE_BYTES {
            return Err(NamesError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = fs::read_to_string(path).map_err(unreadable)?;
        Self::parse(&text).map_err(|(line, reason)| NamesError::BadLine {
            path: path.to_owned(),
            line,
            reason,
        })
    }

    /// Parses a names file; errors carry their 1-based line number.
    pub fn parse(text: &str) -> Result<Self, (usize, LineError)> {
        let mut names = Self::default();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let content = line.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let fields: Vec<&str> = content.split_whitespace().collect();
            let [name, peer] = fields[..] else {
                return Err((number, LineError::Shape(content.to_owned())));
            };
            if !is_valid_name(name) {
                return Err((number, LineError::BadName(name.to_owned())));
            }
            let peer: PeerId = peer
                .parse()
                .map_err(|error: libp2p::identity::ParseError| {
                    (
                        number,
                        LineError::BadPeerId {
                            token: peer.to_owned(),
                            reason: error.to_string(),
                        },
                    )
                })?;
            if let Some((other, line)) = names.by_name.get(name)
                && *other != peer
            {
                return Err((number, LineError::DuplicateName(name.to_owned(), *line)));
            }
            names.by_name.insert(name.to_owned(), (peer, number));
            names.by_peer.entry(peer).or_insert_with(|| name.to_owned());
        }
        Ok(names)
    }

    pub fn name_of(&self, peer: &PeerId) -> Option<&str> {
        self.by_peer.get(peer).map(String::as_str)
    }

    pub fn peer_named(&self, name: &str) -> Option<PeerId> {
        self.by_name.get(name).map(|(peer, _)| *peer)
    }

    /// How to show `peer`: its name, else the short form of its id.
    pub fn display(&self, peer: &PeerId) -> String {
        match self.name_of(peer) {
            Some(name) => name.to_owned(),
            None => short(peer),
        }
    }

    /// Resolves what a user typed: a name, a peer id, or the trailing
    /// characters of one of `known` (discovered peers).
    pub fn resolve(
        &self,
        input: &str,
        known: impl IntoIterator<Item = PeerId>,
    ) -> Result<PeerId, ResolveError> {
        let input = input.trim();
        if let Some(peer) = self.peer_named(input) {
            return Ok(peer);
        }
        if let Ok(peer) = input.parse::<PeerId>() {
            return Ok(peer);
        }
        let tail = input.trim_start_matches('…');
        if tail.len() < MIN_SHORT_LEN {
            return Err(ResolveError::Unknown(input.to_owned()));
        }
        let matches: Vec<PeerId> = known
            .into_iter()
            .filter(|peer| peer.to_string().ends_with(tail))
            .collect();
        match matches[..] {
            [peer] => Ok(peer),
            [] => Err(ResolveError::Unknown(input.to_owned())),
            _ => Err(ResolveError::Ambiguous(input.to_owned(), matches.len())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "'{0}' is neither a name from the names file, nor a peer id, nor the end of a discovered peer's id"
    )]
    Unknown(String),
    #[error("'{0}' matches {1} discovered peers; type more of the id")]
    Ambiguous(String, usize),
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.parse::<PeerId>().is_err()
}

/// The short form of a peer id the page shows too: `…` and its last 8
/// characters.
pub use chat_network::short;

/// A peer shown with its name when it has one.
#[derive(Debug)]
pub struct Shown<'a>(pub &'a Names, pub &'a PeerId);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.display(self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_comments_and_blank_lines_parse_both_ways() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let names =
            Names::parse(&format!("# names\n\nnas  {a}  # home\n  laptop\t{b}\n")).expect("valid");
        assert_eq!(names.peer_named("nas"), Some(a));
        assert_eq!(names.name_of(&b), Some("laptop"));
        assert_eq!(names.display(&a), "nas");
        let stranger = PeerId::random();
        assert_eq!(names.display(&stranger), short(&stranger));
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let a = PeerId::random();
        let cases = [
            (format!("nas {a}\nlaptop\n"), 2, "expected '<name>"),
            (format!("\n\nnas {a} extra\n"), 3, "expected '<name>"),
            (
                "nas not-a-peer\n".to_owned(),
                1,
                "'not-a-peer' is not a peer id",
            ),
            (format!("n@s {a}\n"), 1, "'n@s' is not a valid name"),
            (
                format!("nas {a}\nnas {}\n", PeerId::random()),
                2,
                "already given to another peer on line 1",
            ),
        ];
        for (text, line, message) in cases {
            let (found, error) = Names::parse(&text).expect_err(&text);
            assert_eq!(found, line, "{text:?}: {error}");
            assert!(error.to_string().contains(message), "{text:?}: {error}");
        }
    }

    #[test]
    fn typed_peers_resolve_by_name_id_or_unique_tail() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let names = Names::parse(&format!("nas {a}\n")).expect("valid");
        assert_eq!(names.resolve("nas", []), Ok(a));
        assert_eq!(names.resolve(&b.to_string(), []), Ok(b));
        assert_eq!(names.resolve(&short(&b), [a, b]), Ok(b));
        assert!(matches!(
            names.resolve("x", [a, b]),
            Err(ResolveError::Unknown(_))
        ));
        assert!(matches!(
            names.resolve(&short(&b), [a]),
            Err(ResolveError::Unknown(_))
        ));
    }
}
