//! One protocol of a multiaddr, and the table that says how each is
//! written.
//!
//! Every protocol is a code (from the multicodec table), a name, and a
//! value of one of a few kinds (none, a port, an IP address, a string, a
//! multihash...). [`TABLE`] lists them; [`Protocol::code_and_value`] and
//! [`Protocol::from_value`] are the only places that know the enum's
//! variants, turning a protocol into its code and the value's bytes as they
//! are on the wire and back. Encoding, decoding, parsing and printing then
//! work on (table entry, value bytes) alone, one routine per kind.

use std::{
    borrow::Cow,
    fmt,
    io::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::{self, FromStr},
};

use libp2p_identity::PeerId;
use multibase::Base;
use unsigned_varint::{decode, encode};

use crate::{Error, Result, onion_addr::Onion3Addr};

/// How multiaddrs hold multihashes: digests of up to 64 bytes (SHA-512).
type Multihash = multihash::Multihash<64>;

/// Whether the text form of `/http-path`, `/x-parity-ws` and
/// `/x-parity-wss` percent-encodes `byte`: not ASCII, a control, or a
/// character a URL path segment may not hold (`/` above all, which would
/// split the multiaddr). Written out rather than taken from
/// `percent-encoding`: its 768-byte table and generic code were 1.7 KB of
/// the page for this one kind of value.
fn percent_encodes(byte: u8) -> bool {
    !byte.is_ascii() || byte.is_ascii_control() || b"%/`?{} \"#<>".contains(&byte)
}

/// `value` in text, each byte [`percent_encodes`] as `%XX` (upper-case hex).
fn write_percent_encoded(f: &mut fmt::Formatter<'_>, value: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut plain = 0;
    for (at, &byte) in value.iter().enumerate() {
        if percent_encodes(byte) {
            // What lies before is ASCII: the bytes not encoded.
            f.write_str(str::from_utf8(&value[plain..at]).map_err(|_| fmt::Error)?)?;
            let escaped = [
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ];
            f.write_str(str::from_utf8(&escaped).map_err(|_| fmt::Error)?)?;
            plain = at + 1;
        }
    }
    f.write_str(str::from_utf8(&value[plain..]).map_err(|_| fmt::Error)?)
}

/// The bytes of `text` with each `%` and two hex digits decoded; a `%`
/// without two hex digits after it stays as it is. They must be UTF-8.
fn percent_decode(text: &str) -> Result<Cow<'_, [u8]>> {
    if !text.contains('%') {
        return Ok(Cow::Borrowed(text.as_bytes()));
    }
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(at + 1).and_then(|&b| hex(b)),
                bytes.get(at + 2).and_then(|&b| hex(b)),
            )
        {
            decoded.push((high * 16 + low) as u8);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    str::from_utf8(&decoded)?;
    Ok(Cow::Owned(decoded))
}

/// The kind of a protocol's value: how it is laid out in bytes and written
/// in text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// No value.
    Unit,
    /// One byte; decimal in text (`/ipcidr`).
    U8,
    /// Two bytes, big-endian; decimal in text.
    Port,
    /// Eight bytes, big-endian; decimal in text (`/memory`).
    U64,
    /// Four bytes; dotted decimal in text.
    Ip4,
    /// Sixteen bytes; RFC 5952 in text.
    Ip6,
    /// Length-prefixed UTF-8, the same in text.
    Text,
    /// Length-prefixed UTF-8, percent-encoded in text ([`PATH_SEGMENT`]).
    Path,
    /// A length-prefixed peer id multihash; base58 in text.
    PeerId,
    /// A length-prefixed multihash; multibase (base64url) in text.
    Certhash,
    /// Ten bytes of Tor v2 address and a two-byte port; `base32:port`.
    Onion,
    /// 35 bytes of Tor v3 address and a two-byte port; `base32:port`.
    Onion3,
    /// Length-prefixed I2P destination; I2P's base64 (`-~`) in text.
    Garlic64,
    /// Length-prefixed I2P hash; base32 in text.
    Garlic32,
}

impl Kind {
    /// The bytes of a value of fixed size; `None` for the length-prefixed
    /// kinds.
    fn fixed_len(self) -> Option<usize> {
        Some(match self {
            Kind::Unit => 0,
            Kind::U8 => 1,
            Kind::Port => 2,
            Kind::U64 => 8,
            Kind::Ip4 => 4,
            Kind::Ip6 => 16,
            Kind::Onion => 12,
            Kind::Onion3 => 37,
            _ => return None,
        })
    }
}

/// One protocol of the multiaddr spec: its multicodec code, the name it
/// has in text, the kind of its value.
#[derive(Debug)]
struct Entry {
    code: u32,
    name: &'static str,
    kind: Kind,
}

const fn entry(code: u32, name: &'static str, kind: Kind) -> Entry {
    Entry { code, name, kind }
}

/// Every protocol [`Protocol`] has (multiformats/multiaddr's
/// `protocols.csv`, plus the non-standard `x-parity-ws(s)`, a `/ws` or
/// `/wss` with a path). Where two names share a code, the first is the
/// one printed: `ipfs` is read as `p2p`.
const TABLE: &[Entry] = &[
    entry(4, "ip4", Kind::Ip4),
    entry(6, "tcp", Kind::Port),
    entry(33, "dccp", Kind::Port),
    entry(41, "ip6", Kind::Ip6),
    entry(42, "ip6zone", Kind::Text),
    entry(43, "ipcidr", Kind::U8),
    entry(53, "dns", Kind::Text),
    entry(54, "dns4", Kind::Text),
    entry(55, "dns6", Kind::Text),
    entry(56, "dnsaddr", Kind::Text),
    entry(132, "sctp", Kind::Port),
    entry(273, "udp", Kind::Port),
    entry(275, "p2p-webrtc-star", Kind::Unit),
    entry(276, "p2p-webrtc-direct", Kind::Unit),
    entry(277, "p2p-stardust", Kind::Unit),
    entry(280, "webrtc-direct", Kind::Unit),
    entry(281, "webrtc", Kind::Unit),
    entry(290, "p2p-circuit", Kind::Unit),
    entry(301, "udt", Kind::Unit),
    entry(302, "utp", Kind::Unit),
    entry(400, "unix", Kind::Text),
    entry(421, "p2p", Kind::PeerId),
    entry(421, "ipfs", Kind::PeerId),
    entry(443, "https", Kind::Unit),
    entry(444, "onion", Kind::Onion),
    entry(445, "onion3", Kind::Onion3),
    entry(446, "garlic64", Kind::Garlic64),
    entry(447, "garlic32", Kind::Garlic32),
    entry(448, "tls", Kind::Unit),
    entry(449, "sni", Kind::Text),
    entry(454, "noise", Kind::Unit),
    entry(460, "quic", Kind::Unit),
    entry(461, "quic-v1", Kind::Unit),
    entry(465, "webtransport", Kind::Unit),
    entry(466, "certhash", Kind::Certhash),
    entry(477, "ws", Kind::Unit),
    entry(478, "wss", Kind::Unit),
    entry(479, "p2p-websocket-star", Kind::Unit),
    entry(480, "http", Kind::Unit),
    entry(481, "http-path", Kind::Path),
    entry(777, "memory", Kind::U64),
    entry(4770, "x-parity-ws", Kind::Path),
    entry(4780, "x-parity-wss", Kind::Path),
];

fn by_code(code: u32) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.code == code)
}

fn by_name(name: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.name == name)
}

/// `Protocol` describes all possible multiaddress protocols.
///
/// For `Unix`, `Ws` and `Wss` we use `&str` instead of `Path` to allow
/// cross-platform usage of `Protocol` since encoding `Paths` to bytes is
/// platform-specific. This means that the actual validation of paths needs to
/// happen separately.
#[derive(PartialEq, Eq, Clone, Debug)]
#[non_exhaustive]
pub enum Protocol<'a> {
    Dccp(u16),
    Dns(Cow<'a, str>),
    Dns4(Cow<'a, str>),
    Dns6(Cow<'a, str>),
    Dnsaddr(Cow<'a, str>),
    Http,
    Https,
    Ip4(Ipv4Addr),
    Ip6(Ipv6Addr),
    P2pWebRtcDirect,
    P2pWebRtcStar,
    WebRTCDirect,
    Certhash(Multihash),
    P2pWebSocketStar,
    /// Contains the "port" to contact. Similar to TCP or UDP, 0 means "assign me a port".
    Memory(u64),
    Onion(Cow<'a, [u8; 10]>, u16),
    Onion3(Onion3Addr<'a>),
    P2p(PeerId),
    P2pCircuit,
    Quic,
    QuicV1,
    Sctp(u16),
    Tcp(u16),
    Tls,
    Noise,
    Udp(u16),
    Udt,
    Unix(Cow<'a, str>),
    Utp,
    WebTransport,
    Ws(Cow<'a, str>),
    Wss(Cow<'a, str>),
    Ip6zone(Cow<'a, str>),
    Ipcidr(u8),
    Garlic64(Cow<'a, [u8]>),
    Garlic32(Cow<'a, [u8]>),
    Sni(Cow<'a, str>),
    P2pStardust,
    WebRTC,
    HttpPath(Cow<'a, str>),
}

impl<'a> Protocol<'a> {
    /// Parses a protocol from the `/`-separated parts of a textual
    /// multiaddr: its name, then its value if it has one.
    pub fn from_str_parts<I>(mut iter: I) -> Result<Self>
    where
        I: Iterator<Item = &'a str>,
    {
        let name = iter.next().ok_or(Error::InvalidProtocolString)?;
        let entry = by_name(name).ok_or_else(|| Error::UnknownProtocolString(name.to_owned()))?;
        let text = match entry.kind {
            Kind::Unit => "",
            _ => iter.next().ok_or(Error::InvalidProtocolString)?,
        };
        Self::from_value(entry.code, parse_value(entry.kind, text)?)
    }

    /// Reads the protocol at the start of `input`; returns it and the bytes
    /// after it.
    pub fn from_bytes(input: &'a [u8]) -> Result<(Self, &'a [u8])> {
        let (code, rest) = decode::u32(input)?;
        let entry = by_code(code).ok_or(Error::UnknownProtocolId(code))?;
        let (len, rest) = match entry.kind.fixed_len() {
            Some(len) => (len, rest),
            None => decode::usize(rest)?,
        };
        if rest.len() < len {
            return Err(Error::DataLessThanLen);
        }
        let (value, rest) = rest.split_at(len);
        Ok((Self::from_value(code, Cow::Borrowed(value))?, rest))
    }

    /// Writes the protocol's binary form to `w`.
    pub fn write_bytes<W: Write>(&self, w: &mut W) -> Result<()> {
        let mut bytes = Vec::new();
        self.append_to(&mut bytes);
        Ok(w.write_all(&bytes)?)
    }

    /// Appends the protocol's binary form: its code, then its value
    /// (length-prefixed if the kind's size varies).
    pub(crate) fn append_to(&self, out: &mut Vec<u8>) {
        let (code, value) = self.code_and_value();
        let mut buf = encode::u64_buffer();
        out.extend_from_slice(encode::u32(code, &mut encode::u32_buffer()));
        if by_code(code).is_some_and(|e| e.kind.fixed_len().is_none()) {
            out.extend_from_slice(encode::u64(value.len() as u64, &mut buf));
        }
        out.extend_from_slice(&value);
    }

    /// The same protocol, owning all of its data.
    pub fn acquire<'b>(self) -> Protocol<'b> {
        use Protocol::*;
        fn own<T: ToOwned + ?Sized>(c: Cow<'_, T>) -> Cow<'static, T> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Dccp(a) => Dccp(a),
            Dns(s) => Dns(own(s)),
            Dns4(s) => Dns4(own(s)),
            Dns6(s) => Dns6(own(s)),
            Dnsaddr(s) => Dnsaddr(own(s)),
            Http => Http,
            Https => Https,
            Ip4(a) => Ip4(a),
            Ip6(a) => Ip6(a),
            P2pWebRtcDirect => P2pWebRtcDirect,
            P2pWebRtcStar => P2pWebRtcStar,
            WebRTCDirect => WebRTCDirect,
            Certhash(hash) => Certhash(hash),
            P2pWebSocketStar => P2pWebSocketStar,
            Memory(a) => Memory(a),
            Onion(addr, port) => Onion(own(addr), port),
            Onion3(addr) => Onion3(addr.acquire()),
            P2p(a) => P2p(a),
            P2pCircuit => P2pCircuit,
            Quic => Quic,
            QuicV1 => QuicV1,
            Sctp(a) => Sctp(a),
            Tcp(a) => Tcp(a),
            Tls => Tls,
            Noise => Noise,
            Udp(a) => Udp(a),
            Udt => Udt,
            Unix(s) => Unix(own(s)),
            Utp => Utp,
            WebTransport => WebTransport,
            Ws(s) => Ws(own(s)),
            Wss(s) => Wss(own(s)),
            Ip6zone(s) => Ip6zone(own(s)),
            Ipcidr(a) => Ipcidr(a),
            Garlic64(b) => Garlic64(own(b)),
            Garlic32(b) => Garlic32(own(b)),
            Sni(s) => Sni(own(s)),
            P2pStardust => P2pStardust,
            WebRTC => WebRTC,
            HttpPath(s) => HttpPath(own(s)),
        }
    }

    /// The protocol's name, as in its text form (`Ws` with a path other
    /// than `/` is `x-parity-ws`).
    pub fn tag(&self) -> &'static str {
        by_code(self.code_and_value().0).map_or("", |e| e.name)
    }

    /// The protocol's code and its value as it is on the wire (without the
    /// length prefix). One of the two places that know the variants.
    fn code_and_value(&self) -> (u32, Cow<'_, [u8]>) {
        use Protocol::*;
        let none = Cow::Borrowed(&[][..]);
        let port = |p: &u16| Cow::Owned(p.to_be_bytes().to_vec());
        match self {
            Dccp(p) => (33, port(p)),
            Dns(s) => (53, Cow::Borrowed(s.as_bytes())),
            Dns4(s) => (54, Cow::Borrowed(s.as_bytes())),
            Dns6(s) => (55, Cow::Borrowed(s.as_bytes())),
            Dnsaddr(s) => (56, Cow::Borrowed(s.as_bytes())),
            Http => (480, none),
            Https => (443, none),
            Ip4(a) => (4, Cow::Owned(a.octets().to_vec())),
            Ip6(a) => (41, Cow::Owned(a.octets().to_vec())),
            P2pWebRtcDirect => (276, none),
            P2pWebRtcStar => (275, none),
            WebRTCDirect => (280, none),
            Certhash(hash) => (466, Cow::Owned(hash.to_bytes())),
            P2pWebSocketStar => (479, none),
            Memory(n) => (777, Cow::Owned(n.to_be_bytes().to_vec())),
            Onion(addr, p) => (444, Cow::Owned([&addr[..], &p.to_be_bytes()].concat())),
            Onion3(addr) => (
                445,
                Cow::Owned([&addr.hash()[..], &addr.port().to_be_bytes()].concat()),
            ),
            P2p(peer) => (421, Cow::Owned(peer.to_bytes())),
            P2pCircuit => (290, none),
            Quic => (460, none),
            QuicV1 => (461, none),
            Sctp(p) => (132, port(p)),
            Tcp(p) => (6, port(p)),
            Tls => (448, none),
            Noise => (454, none),
            Udp(p) => (273, port(p)),
            Udt => (301, none),
            Unix(s) => (400, Cow::Borrowed(s.as_bytes())),
            Utp => (302, none),
            WebTransport => (465, none),
            Ws(path) if path == "/" => (477, none),
            Ws(path) => (4770, Cow::Borrowed(path.as_bytes())),
            Wss(path) if path == "/" => (478, none),
            Wss(path) => (4780, Cow::Borrowed(path.as_bytes())),
            Ip6zone(s) => (42, Cow::Borrowed(s.as_bytes())),
            Ipcidr(n) => (43, Cow::Owned(vec![*n])),
            Garlic64(b) => (446, Cow::Borrowed(&b[..])),
            Garlic32(b) => (447, Cow::Borrowed(&b[..])),
            Sni(s) => (449, Cow::Borrowed(s.as_bytes())),
            P2pStardust => (277, none),
            WebRTC => (281, none),
            HttpPath(s) => (481, Cow::Borrowed(s.as_bytes())),
        }
    }

    /// The protocol of `code` with `value`, its bytes as they are on the
    /// wire, of the length its kind has. The other place that knows the
    /// variants.
    fn from_value(code: u32, value: Cow<'a, [u8]>) -> Result<Self> {
        use Protocol::*;
        let port = || u16::from_be_bytes(array(&value));
        Ok(match code {
            4 => Ip4(Ipv4Addr::from(array::<4>(&value))),
            6 => Tcp(port()),
            33 => Dccp(port()),
            41 => Ip6(Ipv6Addr::from(array::<16>(&value))),
            42 => Ip6zone(utf8(value)?),
            43 => Ipcidr(value[0]),
            53 => Dns(utf8(value)?),
            54 => Dns4(utf8(value)?),
            55 => Dns6(utf8(value)?),
            56 => Dnsaddr(utf8(value)?),
            132 => Sctp(port()),
            273 => Udp(port()),
            275 => P2pWebRtcStar,
            276 => P2pWebRtcDirect,
            277 => P2pStardust,
            280 => WebRTCDirect,
            281 => WebRTC,
            290 => P2pCircuit,
            301 => Udt,
            302 => Utp,
            400 => Unix(utf8(value)?),
            421 => P2p(PeerId::from_bytes(&value).map_err(Error::parsing)?),
            443 => Https,
            444 => Onion(
                Cow::Owned(array(&value)),
                u16::from_be_bytes(array(&value[10..])),
            ),
            445 => Onion3((array(&value), u16::from_be_bytes(array(&value[35..]))).into()),
            446 => Garlic64(value),
            447 => Garlic32(value),
            448 => Tls,
            449 => Sni(utf8(value)?),
            454 => Noise,
            460 => Quic,
            461 => QuicV1,
            465 => WebTransport,
            466 => Certhash(Multihash::from_bytes(&value)?),
            477 => Ws(Cow::Borrowed("/")),
            478 => Wss(Cow::Borrowed("/")),
            479 => P2pWebSocketStar,
            480 => Http,
            481 => HttpPath(utf8(value)?),
            777 => Memory(u64::from_be_bytes(array(&value))),
            4770 => Ws(utf8(value)?),
            4780 => Wss(utf8(value)?),
            _ => return Err(Error::UnknownProtocolId(code)),
        })
    }
}

/// The first `N` bytes of `bytes`, which has at least as many: the callers
/// hold values of their kind's fixed length.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn utf8(bytes: Cow<'_, [u8]>) -> Result<Cow<'_, str>> {
    Ok(match bytes {
        Cow::Borrowed(b) => Cow::Borrowed(str::from_utf8(b)?),
        Cow::Owned(b) => Cow::Owned(String::from_utf8(b)?),
    })
}

/// A value's bytes, as on the wire, from its text form.
fn parse_value(kind: Kind, text: &str) -> Result<Cow<'_, [u8]>> {
    Ok(Cow::Owned(match kind {
        Kind::Unit => Vec::new(),
        Kind::U8 => vec![text.parse::<u8>()?],
        Kind::Port => text.parse::<u16>()?.to_be_bytes().to_vec(),
        Kind::U64 => text.parse::<u64>()?.to_be_bytes().to_vec(),
        Kind::Ip4 => Ipv4Addr::from_str(text)?.octets().to_vec(),
        Kind::Ip6 => Ipv6Addr::from_str(text)?.octets().to_vec(),
        Kind::Text => return Ok(Cow::Borrowed(text.as_bytes())),
        Kind::Path => return percent_decode(text),
        Kind::PeerId => Base::Base58Btc.decode(text)?,
        Kind::Certhash => multibase::decode(text)?.1,
        Kind::Onion => onion_value(text, 16)?,
        Kind::Onion3 => onion_value(text, 56)?,
        Kind::Garlic64 => {
            // An I2P destination: 387 bytes at least, with a certificate
            // that may add some (516 to 616 characters).
            if !(516..=616).contains(&text.len()) {
                return Err(Error::InvalidProtocolString);
            }
            let standard: String = text
                .chars()
                .map(|c| match c {
                    '-' => '+',
                    '~' => '/',
                    c => c,
                })
                .collect();
            Base::Base64.decode(standard)?
        }
        Kind::Garlic32 => {
            // A b32 address (32 bytes, 52 characters), or an encrypted
            // lease set's (35 bytes or more).
            if text.len() < 55 && text.len() != 52 {
                return Err(Error::InvalidProtocolString);
            }
            Base::Base32Lower.decode(text)?
        }
    }))
}

/// An onion address's bytes from `<base32 host>:<port>`: the host of
/// `host_len` characters, the port not zero.
fn onion_value(text: &str, host_len: usize) -> Result<Vec<u8>> {
    let mut parts = text.split(':');
    let (Some(host), Some(port), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::InvalidMultiaddr);
    };
    if host.len() != host_len {
        return Err(Error::InvalidMultiaddr);
    }
    let port = port.parse::<u16>()?;
    // As the original: padded base32 of either case, whatever it decodes
    // to filling the address from the start (`aaaaaaaaaaaaaaa=` is nine
    // zero bytes, so ten).
    let mut bytes = Base::Base32PadUpper
        .decode(host)
        .map_err(|_| Error::InvalidMultiaddr)?;
    bytes.resize(host_len * 5 / 8, 0);
    if port == 0 {
        return Err(Error::InvalidMultiaddr);
    }
    bytes.extend_from_slice(&port.to_be_bytes());
    Ok(bytes)
}

impl fmt::Display for Protocol<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Protocol::P2p(peer) = self {
            return write!(f, "/p2p/{peer}");
        }
        let (code, value) = self.code_and_value();
        let Some(entry) = by_code(code) else {
            return Err(fmt::Error);
        };
        write!(f, "/{}", entry.name)?;
        if entry.kind == Kind::Unit {
            return Ok(());
        }
        f.write_str("/")?;
        let value = &value[..];
        match entry.kind {
            Kind::U8 => write!(f, "{}", value[0]),
            Kind::Port => write!(f, "{}", u16::from_be_bytes(array(value))),
            Kind::U64 => write!(f, "{}", u64::from_be_bytes(array(value))),
            Kind::Ip4 => write!(f, "{}", Ipv4Addr::from(array::<4>(value))),
            Kind::Ip6 => write!(f, "{}", Ipv6Addr::from(array::<16>(value))),
            Kind::Text => f.write_str(str::from_utf8(value).map_err(|_| fmt::Error)?),
            Kind::Path => write_percent_encoded(f, value),
            Kind::Certhash => f.write_str(&multibase::encode(Base::Base64Url, value)),
            Kind::Onion | Kind::Onion3 => {
                let (host, port) = value.split_at(value.len() - 2);
                let port = u16::from_be_bytes(array(port));
                write!(f, "{}:{port}", Base::Base32Lower.encode(host))
            }
            Kind::Garlic64 => {
                let i2p: String = Base::Base64
                    .encode(value)
                    .chars()
                    .map(|c| match c {
                        '+' => '-',
                        '/' => '~',
                        c => c,
                    })
                    .collect();
                f.write_str(&i2p)
            }
            Kind::Garlic32 => f.write_str(&Base::Base32Lower.encode(value)),
            Kind::Unit | Kind::PeerId => Ok(()),
        }
    }
}

impl From<IpAddr> for Protocol<'_> {
    fn from(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(addr) => Protocol::Ip4(addr),
            IpAddr::V6(addr) => Protocol::Ip6(addr),
        }
    }
}

impl From<Ipv4Addr> for Protocol<'_> {
    fn from(addr: Ipv4Addr) -> Self {
        Protocol::Ip4(addr)
    }
}

impl From<Ipv6Addr> for Protocol<'_> {
    fn from(addr: Ipv6Addr) -> Self {
        Protocol::Ip6(addr)
    }
}
