//! The API of multiformats' `multiaddr` 0.19 ([`Multiaddr`], [`Protocol`],
//! [`Error`], [`Onion3Addr`], the [`multiaddr!`] macro, serde), written
//! afresh for this project from the multiaddr spec
//! (multiformats/multiaddr, `protocols.csv`) and the multicodec table.
//!
//! Why: the browser page carries multiaddr, and the original spends about
//! 29 KB of wasm on it: `Protocol::write_bytes` monomorphised for its
//! `bytes` writer (8 KB), and parsing, decoding and printing each a match
//! with per-protocol code. Here one table of (code, name, kind of value)
//! drives all four (see `protocol.rs`), a multiaddr's bytes are a plain
//! `Vec<u8>`, and onion addresses are printed without `to_lowercase` (and
//! its unicode tables). The workspace's `Cargo.toml` puts this crate in the
//! original's place with `[patch.crates-io]`, for the native relay and
//! peers too.
//!
//! Behaviour is the original's, checked against it input by input
//! (`tests/vectors.rs`): the same bytes and text for every protocol, the
//! same inputs rejected with the same error. Left out: `from_url` and
//! `from_url_lossy` (the `url` feature), which nothing in this workspace
//! calls; the feature remains and turns on nothing.

pub use multihash;

mod errors;
mod onion_addr;
mod protocol;

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
    sync::Arc,
};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, Error as _},
};

pub use self::{
    errors::{Error, Result},
    onion_addr::Onion3Addr,
    protocol::Protocol,
};
pub use libp2p_identity::PeerId;

/// A multiaddress: a stack of [`Protocol`]s, held in its binary form.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Hash)]
pub struct Multiaddr {
    // Shared: libp2p clones addresses far more often than it changes them.
    bytes: Arc<Vec<u8>>,
}

impl Multiaddr {
    /// An address with no protocols.
    pub fn empty() -> Self {
        Self {
            bytes: Arc::new(Vec::new()),
        }
    }

    /// An empty address with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            bytes: Arc::new(Vec::with_capacity(n)),
        }
    }

    /// The length of the binary form, in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the address has no protocols.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The binary form.
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes.to_vec()
    }

    /// Adds a protocol at the end.
    pub fn push(&mut self, p: Protocol<'_>) {
        p.append_to(Arc::make_mut(&mut self.bytes));
    }

    /// Removes the last protocol and returns it.
    pub fn pop<'a>(&mut self) -> Option<Protocol<'a>> {
        // Where the last protocol starts.
        let mut start = None;
        let mut rest = &self.bytes[..];
        while !rest.is_empty() {
            start = Some(self.bytes.len() - rest.len());
            rest = Protocol::from_bytes(rest).ok()?.1;
        }
        let start = start?;
        let last = Protocol::from_bytes(&self.bytes[start..]).ok()?.0.acquire();
        Arc::make_mut(&mut self.bytes).truncate(start);
        Some(last)
    }

    /// This address with `p` added at the end.
    pub fn with(mut self, p: Protocol<'_>) -> Self {
        self.push(p);
        self
    }

    /// This address ending in `/p2p/<peer>`: unchanged if it does already,
    /// `Err(self)` if it ends in another peer's, else with it added.
    pub fn with_p2p(self, peer: PeerId) -> std::result::Result<Self, Self> {
        match self.iter().last() {
            Some(Protocol::P2p(p)) if p == peer => Ok(self),
            Some(Protocol::P2p(_)) => Err(self),
            _ => Ok(self.with(Protocol::P2p(peer))),
        }
    }

    /// The protocols, first to last.
    pub fn iter(&self) -> Iter<'_> {
        Iter(&self.bytes)
    }

    /// The address with the protocol at index `at` replaced by what `by`
    /// returns for it; `None` if there is no such protocol or `by` returns
    /// `None`.
    pub fn replace<'a, F>(&self, at: usize, by: F) -> Option<Multiaddr>
    where
        F: FnOnce(&Protocol<'_>) -> Option<Protocol<'a>>,
    {
        let mut by = Some(by);
        let mut address = Multiaddr::with_capacity(self.len());
        for (i, p) in self.iter().enumerate() {
            if i == at {
                address.push(by.take()?(&p)?);
            } else {
                address.push(p);
            }
        }
        // `by` taken: `at` was in range.
        by.is_none().then_some(address)
    }

    /// Whether the binary form ends with `other`'s.
    pub fn ends_with(&self, other: &Multiaddr) -> bool {
        self.bytes.ends_with(&other.bytes)
    }

    /// Whether the binary form starts with `other`'s.
    pub fn starts_with(&self, other: &Multiaddr) -> bool {
        self.bytes.starts_with(&other.bytes)
    }

    /// The names of the protocols ([`Protocol::tag`]), first to last.
    pub fn protocol_stack(&self) -> ProtoStackIter<'_> {
        ProtoStackIter { parts: self.iter() }
    }

    /// The first IP address in the stack, if any.
    pub fn ip_addr(&self) -> Option<IpAddr> {
        self.iter().find_map(|p| match p {
            Protocol::Ip4(addr) => Some(IpAddr::V4(addr)),
            Protocol::Ip6(addr) => Some(IpAddr::V6(addr)),
            _ => None,
        })
    }
}

impl fmt::Debug for Multiaddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Multiaddr {
    /// The text form, e.g. `/ip4/127.0.0.1/udp/9090/quic-v1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.iter().try_for_each(|p| fmt::Display::fmt(&p, f))
    }
}

impl AsRef<[u8]> for Multiaddr {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl<'a> IntoIterator for &'a Multiaddr {
    type Item = Protocol<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> FromIterator<Protocol<'a>> for Multiaddr {
    fn from_iter<T>(iter: T) -> Self
    where
        T: IntoIterator<Item = Protocol<'a>>,
    {
        let mut bytes = Vec::new();
        for p in iter {
            p.append_to(&mut bytes);
        }
        Multiaddr {
            bytes: Arc::new(bytes),
        }
    }
}

impl FromStr for Multiaddr {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let mut parts = input.split('/').peekable();
        // A multiaddr starts with `/`; the empty string is the empty address.
        if parts.next() != Some("") {
            return Err(Error::InvalidMultiaddr);
        }
        let mut bytes = Vec::new();
        while parts.peek().is_some() {
            Protocol::from_str_parts(&mut parts)?.append_to(&mut bytes);
        }
        Ok(Multiaddr {
            bytes: Arc::new(bytes),
        })
    }
}

/// Iterator over the protocols of a [`Multiaddr`].
#[derive(Debug)]
pub struct Iter<'a>(&'a [u8]);

impl<'a> Iterator for Iter<'a> {
    type Item = Protocol<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // Every `Multiaddr` was checked when made, so this fails only at
        // the end.
        let (p, rest) = Protocol::from_bytes(self.0).ok()?;
        self.0 = rest;
        Some(p)
    }
}

/// Iterator over the names of the protocols of a [`Multiaddr`].
#[derive(Debug)]
pub struct ProtoStackIter<'a> {
    parts: Iter<'a>,
}

impl Iterator for ProtoStackIter<'_> {
    type Item = &'static str;

    fn next(&mut self) -> Option<Self::Item> {
        self.parts.next().as_ref().map(Protocol::tag)
    }
}

impl<'a> From<Protocol<'a>> for Multiaddr {
    fn from(p: Protocol<'a>) -> Multiaddr {
        std::iter::once(p).collect()
    }
}

impl From<IpAddr> for Multiaddr {
    fn from(addr: IpAddr) -> Multiaddr {
        Protocol::from(addr).into()
    }
}

impl From<Ipv4Addr> for Multiaddr {
    fn from(addr: Ipv4Addr) -> Multiaddr {
        Protocol::Ip4(addr).into()
    }
}

impl From<Ipv6Addr> for Multiaddr {
    fn from(addr: Ipv6Addr) -> Multiaddr {
        Protocol::Ip6(addr).into()
    }
}

impl TryFrom<Vec<u8>> for Multiaddr {
    type Error = Error;

    /// Checks that `bytes` is a stack of valid protocols, and keeps them
    /// as they are.
    fn try_from(bytes: Vec<u8>) -> Result<Self> {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            rest = Protocol::from_bytes(rest)?.1;
        }
        Ok(Multiaddr {
            bytes: Arc::new(bytes),
        })
    }
}

impl TryFrom<String> for Multiaddr {
    type Error = Error;

    fn try_from(s: String) -> Result<Multiaddr> {
        s.parse()
    }
}

impl<'a> TryFrom<&'a str> for Multiaddr {
    type Error = Error;

    fn try_from(s: &'a str) -> Result<Multiaddr> {
        s.parse()
    }
}

/// The text form for human-readable formats, the binary form for the
/// others.
impl Serialize for Multiaddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_bytes(&self.bytes)
        }
    }
}

impl<'de> Deserialize<'de> for Multiaddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor {
            human_readable: bool,
        }

        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Multiaddr;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("multiaddress")
            }

            /// Bytes of the text form (human-readable) or of the binary one.
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Multiaddr, A::Error> {
                // Bounded: the size hint comes from the input.
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(byte) = seq.next_element()? {
                    bytes.push(byte);
                }
                if self.human_readable {
                    let text = String::from_utf8(bytes).map_err(A::Error::custom)?;
                    text.parse().map_err(A::Error::custom)
                } else {
                    Multiaddr::try_from(bytes).map_err(A::Error::custom)
                }
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Multiaddr, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Multiaddr, E> {
                Multiaddr::try_from(v.to_vec()).map_err(E::custom)
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> std::result::Result<Multiaddr, E> {
                Multiaddr::try_from(v).map_err(E::custom)
            }
        }

        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Visitor {
                human_readable: true,
            })
        } else {
            deserializer.deserialize_bytes(Visitor {
                human_readable: false,
            })
        }
    }
}

/// A [`Multiaddr`] from [`Protocol`] variants, each with its value (which
/// goes through `Into`): `multiaddr!(Ip4([127, 0, 0, 1]), Tcp(10000u16))`.
#[macro_export]
macro_rules! multiaddr {
    ($($protocol:ident $(($value:expr))*),+) => {
        [$($crate::Protocol::$protocol $(($value.into()))*),+]
            .into_iter()
            .collect::<$crate::Multiaddr>()
    };
}
