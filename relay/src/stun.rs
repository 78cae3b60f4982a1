//! Minimal STUN Binding server (RFC 8489, wire-compatible with RFC 5389).
//!
//! Browsers behind NAT need a server-reflexive ICE candidate to reach the
//! relay over WebRTC. Rather than depending on a third-party STUN server, the
//! relay answers Binding requests itself on a UDP port, so a browser can be
//! configured with `stun:<relay-host>:<port>`.
//!
//! This is an unauthenticated binding service: it answers every well-formed
//! Binding request with the source address it came from, and silently drops
//! everything else. Since a UDP responder can be abused for reflection
//! (spoofed source addresses), it never amplifies: an answer is no larger
//! than the request plus the mapped address (optional attributes are left
//! out when they do not fit). Answers are budgeted per source prefix (an
//! IPv4 address or an IPv6 /64), so one sender cannot use up what every
//! browser needs, with a global budget behind it as a backstop against
//! sources spread over many prefixes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::{addresses::IpPrefix, refusals::Refusals};

/// Upper bound on responses per second, across all clients (anti-reflection).
pub const DEFAULT_MAX_RESPONSES_PER_SECOND: u32 = 2000;
/// Responses per second to one IPv4 address or IPv6 /64. A browser's ICE
/// agent sends a handful of requests per STUN server while it gathers
/// (retransmits included); a NAT shared by a few dozen users stays under it.
pub const DEFAULT_MAX_RESPONSES_PER_PREFIX: u32 = 20;
/// Prefixes whose budgets are remembered at once. A prefix idle for a
/// second has a full bucket again and is forgotten; when the table is full
/// of busy prefixes, requests from new ones are dropped.
pub const MAX_TRACKED_PREFIXES: usize = 16_384;

const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;

const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_SOFTWARE: u16 = 0x8022;
const ATTR_FINGERPRINT: u16 = 0x8028;
const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// The FINGERPRINT attribute: 4 bytes of header, a 4-byte CRC.
const FINGERPRINT_LEN: usize = 8;

const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// SOFTWARE attribute value. Only the crate name: no version, to avoid telling
/// scanners which build is running.
const SOFTWARE: &str = env!("CARGO_PKG_NAME");

/// Why a datagram was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("datagram of {0} bytes is shorter than the 20-byte STUN header")]
    TooShort(usize),
    #[error("first two bits are not zero: not a STUN message")]
    NotStun,
    #[error("bad magic cookie {0:#010x}")]
    BadMagicCookie(u32),
    #[error("message length {0} is not a multiple of 4")]
    UnalignedLength(usize),
    #[error("header announces {header} bytes of attributes but the datagram has {actual}")]
    LengthMismatch { header: usize, actual: usize },
    #[error("message type {0:#06x} is not a Binding request")]
    NotBindingRequest(u16),
    #[error("attribute {0:#06x} runs past the end of the message")]
    TruncatedAttribute(u16),
    #[error("FINGERPRINT attribute is malformed, not last, or does not match")]
    BadFingerprint,
}

/// Pure codec: given a datagram and its source, returns the Binding success response to send back.
/// Err for anything that is not a well-formed STUN Binding request (those are silently ignored by the server, logged at trace/debug).
pub fn binding_response(request: &[u8], source: SocketAddr) -> Result<Vec<u8>, StunError> {
    let transaction_id = parse_binding_request(request)?;

    // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the browser's
    // candidate must be the plain IPv4 address it is actually reachable at.
    // (`to_ipv4_mapped`, not `to_ipv4`: deprecated ::a.b.c.d stays IPv6.)
    let ip = match source.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let port = source.port();

    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // length, patched before FINGERPRINT
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(transaction_id);

    // XOR-MAPPED-ADDRESS exists because some NATs rewrite addresses they spot
    // in payloads. The key is the cookie followed by the transaction id; an
    // IPv4 address only uses the cookie part.
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(transaction_id);
    let (family, addr, addr_len) = match ip {
        IpAddr::V4(v4) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&v4.octets());
            (FAMILY_IPV4, a, 4)
        }
        IpAddr::V6(v6) => (FAMILY_IPV6, v6.octets(), 16),
    };
    let xor_addr: [u8; 16] = std::array::from_fn(|i| addr[i] ^ key[i]);
    let xor_port = port ^ (MAGIC_COOKIE >> 16) as u16;

    push_address(
        &mut out,
        ATTR_XOR_MAPPED_ADDRESS,
        family,
        xor_port,
        &xor_addr[..addr_len],
    );
    // No amplification: the answer may be as large as the request plus
    // the one attribute it exists for, and no larger. The optional
    // attributes follow in order of use while they fit: FINGERPRINT (what
    // a client that sent one may check), MAPPED-ADDRESS (for older clients
    // that only read it), SOFTWARE.
    let address_attribute_len = 4 + 4 + addr_len;
    let budget = request.len() + address_attribute_len;
    let with_fingerprint = out.len() + FINGERPRINT_LEN <= budget;
    let room = budget - out.len() - if with_fingerprint { FINGERPRINT_LEN } else { 0 };
    let mut used = 0;
    if used + address_attribute_len <= room {
        push_address(
            &mut out,
            ATTR_MAPPED_ADDRESS,
            family,
            port,
            &addr[..addr_len],
        );
        used += address_attribute_len;
    }
    if used + 4 + padded(SOFTWARE.len()) <= room {
        push_attribute(&mut out, ATTR_SOFTWARE, SOFTWARE.as_bytes());
    }

    if with_fingerprint {
        // The CRC covers the header whose length already counts the 8-byte
        // FINGERPRINT attribute that follows it.
        let body_len = out.len() - HEADER_LEN + FINGERPRINT_LEN;
        set_length(&mut out, body_len);
        let crc = fingerprint(&out);
        push_attribute(&mut out, ATTR_FINGERPRINT, &crc.to_be_bytes());
    } else {
        let body_len = out.len() - HEADER_LEN;
        set_length(&mut out, body_len);
    }
    debug_assert!(out.len() <= budget);
    Ok(out)
}

/// Validates a Binding request and returns its 12-byte transaction id.
fn parse_binding_request(msg: &[u8]) -> Result<&[u8], StunError> {
    let header = msg
        .get(..HEADER_LEN)
        .ok_or(StunError::TooShort(msg.len()))?;
    let msg_type = u16::from_be_bytes([header[0], header[1]]);
    // The top two bits tell STUN apart from other protocols sharing a port (RFC 7983).
    if msg_type & 0xC000 != 0 {
        return Err(StunError::NotStun);
    }
    let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if cookie != MAGIC_COOKIE {
        // Also rejects classic RFC 3489 requests (no cookie); browsers always
        // send it, and the cookie keeps us from answering random UDP junk.
        return Err(StunError::BadMagicCookie(cookie));
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if !length.is_multiple_of(4) {
        return Err(StunError::UnalignedLength(length));
    }
    if length != msg.len() - HEADER_LEN {
        return Err(StunError::LengthMismatch {
            header: length,
            actual: msg.len() - HEADER_LEN,
        });
    }
    if msg_type != BINDING_REQUEST {
        return Err(StunError::NotBindingRequest(msg_type));
    }
    check_attributes(msg)?;
    Ok(&header[8..HEADER_LEN])
}

/// Walks the attribute TLVs so a garbled body is rejected, and verifies
/// FINGERPRINT when the client sent one. Everything else is ignored on purpose:
/// there are no credentials to check MESSAGE-INTEGRITY against, and unknown
/// attributes carry nothing a binding answer depends on.
fn check_attributes(msg: &[u8]) -> Result<(), StunError> {
    let mut offset = HEADER_LEN;
    // The body length is a multiple of 4 and every attribute is padded to 4,
    // so whenever `offset < len` at least a 4-byte attribute header remains.
    while let Some(h) = msg.get(offset..offset + 4) {
        let attr_type = u16::from_be_bytes([h[0], h[1]]);
        let value_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let value_start = offset + 4;
        let next = value_start + padded(value_len);
        if next > msg.len() {
            return Err(StunError::TruncatedAttribute(attr_type));
        }
        if attr_type == ATTR_FINGERPRINT {
            let expected = fingerprint(&msg[..offset]).to_be_bytes();
            if next != msg.len() || value_len != 4 || msg[value_start..next] != expected {
                return Err(StunError::BadFingerprint);
            }
        }
        offset = next;
    }
    Ok(())
}

fn fingerprint(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes) ^ FINGERPRINT_XOR
}

fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

fn set_length(msg: &mut [u8], body_len: usize) {
    // Responses are a few dozen bytes, far below u16::MAX.
    msg[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
}

fn push_attribute(out: &mut Vec<u8>, attr_type: u16, value: &[u8]) {
    out.extend_from_slice(&attr_type.to_be_bytes());
    // Only our own short constant values get here.
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + padded(value.len()) - value.len(), 0);
}

fn push_address(out: &mut Vec<u8>, attr_type: u16, family: u8, port: u16, addr: &[u8]) {
    let mut value = [0u8; 20];
    value[1] = family;
    value[2..4].copy_from_slice(&port.to_be_bytes());
    value[4..4 + addr.len()].copy_from_slice(addr);
    push_attribute(out, attr_type, &value[..4 + addr.len()]);
}

/// Token bucket: at most one second's worth of responses in a burst,
/// refilled continuously at `rate` per second. One per source prefix, and
/// one over all of them (spoofed sources spread over many prefixes would
/// get past per-prefix budgets alone).
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(per_second: u32, now: Instant) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Whether the bucket would be full at `now`: it then behaves as a new
    /// one, and may be forgotten.
    fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.rate
    }

    /// `now` is a parameter so tests can drive time without tokio's test-util.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Budgets per source prefix, bounded to [`MAX_TRACKED_PREFIXES`].
#[derive(Debug)]
pub(crate) struct PrefixBudgets {
    per_second: u32,
    buckets: HashMap<IpPrefix, TokenBucket>,
    last_sweep: Instant,
}

/// Why a well-formed request was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverBudget {
    Prefix,
    TooManyPrefixes,
    Global,
}

impl PrefixBudgets {
    pub(crate) fn new(per_second: u32, now: Instant) -> Self {
        Self {
            per_second,
            buckets: HashMap::new(),
            last_sweep: now,
        }
    }

    pub(crate) fn try_take(&mut self, prefix: IpPrefix, now: Instant) -> Result<(), OverBudget> {
        if !self.buckets.contains_key(&prefix) && self.buckets.len() >= MAX_TRACKED_PREFIXES {
            // At most one sweep a second: a flood of new prefixes must not
            // make every request walk the table.
            if now.saturating_duration_since(self.last_sweep) >= Duration::from_secs(1) {
                self.last_sweep = now;
                self.buckets.retain(|_, bucket| !bucket.is_full_at(now));
            }
            if self.buckets.len() >= MAX_TRACKED_PREFIXES {
                return Err(OverBudget::TooManyPrefixes);
            }
        }
        let per_second = self.per_second;
        let bucket = self
            .buckets
            .entry(prefix)
            .or_insert_with(|| TokenBucket::new(per_second, now));
        if bucket.try_take(now) {
            Ok(())
        } else {
            Err(OverBudget::Prefix)
        }
    }
}

/// The budgets a [`StunServer`] answers within.
#[derive(Debug, Clone, Copy)]
pub struct StunLimits {
    /// Responses per second over all clients.
    pub per_second: u32,
    /// Responses per second to one IPv4 address or IPv6 /64.
    pub per_prefix_per_second: u32,
}

/// UDP STUN Binding responder. A budget of 0 responses per second answers nothing.
#[derive(Debug)]
pub struct StunServer {
    socket: UdpSocket,
    local_addr: SocketAddr,
    limiter: TokenBucket,
    per_prefix: PrefixBudgets,
}

impl StunServer {
    /// Binds the UDP socket (tokio). Errors are std::io::Error (caller names the flag in its message).
    ///
    /// An IPv6 address is bound IPv6-only, so that an IPv4 socket on the
    /// same port can sit beside it (the relay listens on both families).
    pub async fn bind(addr: SocketAddr, limits: StunLimits) -> std::io::Result<Self> {
        let socket = UdpSocket::from_std(crate::sockets::bind_udp(addr)?)?;
        Self::new(socket, limits)
    }

    fn new(socket: UdpSocket, limits: StunLimits) -> std::io::Result<Self> {
        let local_addr = socket.local_addr()?;
        let now = Instant::now();
        Ok(Self {
            socket,
            local_addr,
            limiter: TokenBucket::new(limits.per_second, now),
            per_prefix: PrefixBudgets::new(limits.per_prefix_per_second, now),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until the future is dropped. Counts answered requests in the
    /// given counter, and refused ones in `refusals`.
    pub async fn run(mut self, answered: Counter, refusals: Refusals) {
        tracing::info!(addr = %self.local_addr, "STUN server listening");
        // Binding requests are tiny; a larger datagram gets truncated here and
        // then fails the length check, which is what we want.
        let mut buf = [0u8; 1500];
        loop {
            let (len, source) = match self.socket.recv_from(&mut buf).await {
                Ok(received) => received,
                Err(error) => {
                    // Transient (e.g. ICMP errors surfacing on some OSes). The
                    // pause keeps a persistent error from spinning a core.
                    tracing::debug!(%error, "STUN recv failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let response = match binding_response(&buf[..len], source) {
                Ok(response) => response,
                Err(error) => {
                    tracing::trace!(%source, %error, "ignoring datagram");
                    continue;
                }
            };
            // Checked after parsing so junk traffic does not eat the budget
            // (it gets no answer, so it amplifies nothing).
            if let Err(over) = self.take_budget(source, Instant::now()) {
                let prefix = IpPrefix::of(source.ip());
                match over {
                    OverBudget::Prefix => refusals.refused("stun-per-ip", || {
                        format!("STUN request from {source} dropped: {prefix} is over its budget")
                    }),
                    OverBudget::TooManyPrefixes => refusals.refused("stun-prefixes", || {
                        format!(
                            "STUN request from {source} dropped: {MAX_TRACKED_PREFIXES} other prefixes are busy"
                        )
                    }),
                    OverBudget::Global => refusals.refused("stun-global", || {
                        format!("STUN request from {source} dropped: the global budget is used up")
                    }),
                };
                continue;
            }
            match self.socket.send_to(&response, source).await {
                Ok(_) => {
                    answered.inc();
                }
                Err(error) => tracing::debug!(%source, %error, "STUN send failed"),
            }
        }
    }

    /// The prefix's budget first: a sender over its share does not take
    /// from the global budget.
    fn take_budget(&mut self, source: SocketAddr, now: Instant) -> Result<(), OverBudget> {
        self.per_prefix.try_take(IpPrefix::of(source.ip()), now)?;
        if self.limiter.try_take(now) {
            Ok(())
        } else {
            Err(OverBudget::Global)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hasher};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    /// A random-enough transaction id without pulling in `rand`.
    fn random_tx_id() -> [u8; 12] {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0);
        let a = h.finish().to_be_bytes();
        h.write_u64(1);
        let b = h.finish().to_be_bytes();
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&a);
        id[8..].copy_from_slice(&b[..4]);
        id
    }

    /// A Binding request as Chrome's ICE agent sends to a `stun:` server:
    /// header only, no attributes.
    fn binding_request(tx_id: [u8; 12]) -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0x00, 0x00];
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&tx_id);
        m
    }

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
            .collect()
    }

    /// Independent (test-side) decoding of a response.
    struct Parsed {
        msg_type: u16,
        tx_id: Vec<u8>,
        attrs: Vec<(u16, Vec<u8>)>,
    }

    fn parse(msg: &[u8]) -> Parsed {
        let parsed = parse_unfingerprinted(msg);
        // FINGERPRINT must be last and cover everything before it.
        let (t, v) = parsed.attrs.last().expect("attributes");
        assert_eq!(*t, ATTR_FINGERPRINT);
        let expected = crc32fast::hash(&msg[..msg.len() - 8]) ^ 0x5354_554E;
        assert_eq!(v[..], expected.to_be_bytes());
        parsed
    }

    fn parse_unfingerprinted(msg: &[u8]) -> Parsed {
        assert!(
            msg.len() >= 20 && msg.len().is_multiple_of(4),
            "bad size {}",
            msg.len()
        );
        assert_eq!(
            usize::from(u16::from_be_bytes([msg[2], msg[3]])),
            msg.len() - 20
        );
        assert_eq!(msg[4..8], MAGIC_COOKIE.to_be_bytes());
        let mut attrs = Vec::new();
        let mut at = 20;
        while at < msg.len() {
            let t = u16::from_be_bytes([msg[at], msg[at + 1]]);
            let l = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
            attrs.push((t, msg[at + 4..at + 4 + l].to_vec()));
            at += 4 + l.div_ceil(4) * 4;
        }
        assert_eq!(
            at,
            msg.len(),
            "attributes must end exactly at the message end"
        );
        Parsed {
            msg_type: u16::from_be_bytes([msg[0], msg[1]]),
            tx_id: msg[8..20].to_vec(),
            attrs,
        }
    }

    fn attr(p: &Parsed, t: u16) -> &[u8] {
        &p.attrs
            .iter()
            .find(|(at, _)| *at == t)
            .expect("attribute present")
            .1
    }

    fn decode_xor_address(v: &[u8], tx_id: &[u8]) -> SocketAddr {
        let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
        let mut key = MAGIC_COOKIE.to_be_bytes().to_vec();
        key.extend_from_slice(tx_id);
        let ip: Vec<u8> = v[4..].iter().zip(&key).map(|(a, k)| a ^ k).collect();
        match v[1] {
            1 => SocketAddr::new(
                IpAddr::from(<[u8; 4]>::try_from(&ip[..]).expect("v4")),
                port,
            ),
            2 => SocketAddr::new(
                IpAddr::from(<[u8; 16]>::try_from(&ip[..]).expect("v6")),
                port,
            ),
            f => panic!("family {f}"),
        }
    }

    fn decode_plain_address(v: &[u8]) -> SocketAddr {
        let port = u16::from_be_bytes([v[2], v[3]]);
        match v[1] {
            1 => SocketAddr::new(
                IpAddr::from(<[u8; 4]>::try_from(&v[4..]).expect("v4")),
                port,
            ),
            2 => SocketAddr::new(
                IpAddr::from(<[u8; 16]>::try_from(&v[4..]).expect("v6")),
                port,
            ),
            f => panic!("family {f}"),
        }
    }

    /// A header-only request gets XOR-MAPPED-ADDRESS alone (no room for
    /// more); one with room gets every attribute.
    fn check_round_trip(source: SocketAddr, expected: SocketAddr) {
        let tx = random_tx_id();
        let request = binding_request(tx);
        let response = binding_response(&request, source).expect("valid request");
        let p = parse_unfingerprinted(&response);
        assert_eq!(p.msg_type, 0x0101);
        assert_eq!(p.tx_id, tx);
        assert_eq!(
            decode_xor_address(attr(&p, ATTR_XOR_MAPPED_ADDRESS), &tx),
            expected
        );
        assert_eq!(p.attrs.len(), 1, "only the mapped address fits");

        let big = padded_request(tx, 64);
        let p = parse(&binding_response(&big, source).expect("valid request"));
        assert_eq!(
            decode_plain_address(attr(&p, ATTR_MAPPED_ADDRESS)),
            expected
        );
        assert_eq!(attr(&p, ATTR_SOFTWARE), SOFTWARE.as_bytes());
    }

    /// A Binding request with an unknown attribute of `value_len` bytes.
    fn padded_request(tx_id: [u8; 12], value_len: u16) -> Vec<u8> {
        let mut m = binding_request(tx_id);
        m[2..4].copy_from_slice(&(4 + value_len).to_be_bytes());
        m.extend_from_slice(&[0x7f, 0xfe]);
        m.extend_from_slice(&value_len.to_be_bytes());
        m.resize(m.len() + usize::from(value_len), 0);
        m
    }

    /// Size of the mapped-address attribute for the source's family.
    fn mapped_len(source: SocketAddr) -> usize {
        let ip = match source.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if ip.is_ipv4() { 12 } else { 24 }
    }

    #[test]
    fn answers_are_never_larger_than_the_request_plus_the_mapped_address() {
        let sources: [SocketAddr; 3] = [
            "203.0.113.7:5000".parse().expect("addr"),
            "[2001:db8::1]:5000".parse().expect("addr"),
            "[::ffff:198.51.100.2]:4000".parse().expect("addr"),
        ];
        let mut requests = vec![binding_request(random_tx_id()), hex(RFC5769_REQUEST)];
        for value_len in [0u16, 4, 8, 12, 20, 40, 100] {
            requests.push(padded_request(random_tx_id(), value_len));
        }
        for source in sources {
            for request in &requests {
                let response = binding_response(request, source).expect("valid");
                assert!(
                    response.len() <= request.len() + mapped_len(source),
                    "a {}-byte request from {source} got a {}-byte answer",
                    request.len(),
                    response.len()
                );
            }
        }
    }

    #[test]
    fn a_request_with_a_fingerprint_gets_one_back_when_it_fits() {
        let source: SocketAddr = "203.0.113.7:5000".parse().expect("addr");
        // The RFC 5769 request has a FINGERPRINT and room for everything.
        let p = parse(&binding_response(&hex(RFC5769_REQUEST), source).expect("valid"));
        assert!(p.attrs.iter().any(|(t, _)| *t == ATTR_MAPPED_ADDRESS));
    }

    #[test]
    fn answers_ipv4() {
        let a = SocketAddr::from((Ipv4Addr::new(203, 0, 113, 7), 54321));
        check_round_trip(a, a);
    }

    #[test]
    fn answers_ipv6() {
        let a = SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6), 443));
        check_round_trip(a, a);
    }

    #[test]
    fn ipv4_mapped_source_is_reported_as_ipv4() {
        let v4 = Ipv4Addr::new(198, 51, 100, 2);
        let mapped = SocketAddr::V6(SocketAddrV6::new(v4.to_ipv6_mapped(), 4000, 0, 0));
        check_round_trip(mapped, SocketAddr::from((v4, 4000)));
    }

    // RFC 5769 test vectors (transaction id b7e7a701 bc34d686 fa87dfae).
    const RFC5769_REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae
        802200105354554e207465737420636c69656e74 002400046e0001ff
        80290008932ff9b151263b36 000600096576746a3a68367659202020
        000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2 80280004e57a3bcf";
    const RFC5769_IPV4_RESPONSE: &str = "0101003c2112a442b7e7a701bc34d686fa87dfae
        8022000b7465737420766563746f7220 002000080001a147e112a643
        000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7 80280004c07d4c96";

    #[test]
    fn rfc5769_request_with_ice_attributes_is_accepted() {
        // Unknown/unverified attributes (PRIORITY, ICE-CONTROLLED, USERNAME,
        // MESSAGE-INTEGRITY) are ignored; its FINGERPRINT checks out.
        let request = hex(RFC5769_REQUEST);
        assert_eq!(request.len(), 108);
        let source = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 32853));
        let response = binding_response(&request, source).expect("accepted");
        let p = parse(&response);
        // Known answer from RFC 5769 section 2.2.
        assert_eq!(attr(&p, ATTR_XOR_MAPPED_ADDRESS), hex("0001a147e112a643"));

        let v6: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .expect("addr");
        let p = parse(&binding_response(&request, v6).expect("accepted"));
        // Known answer from RFC 5769 section 2.3.
        assert_eq!(
            attr(&p, ATTR_XOR_MAPPED_ADDRESS),
            hex("0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9")
        );
    }

    #[test]
    fn fingerprint_matches_rfc5769() {
        let response = hex(RFC5769_IPV4_RESPONSE);
        assert_eq!(response.len(), 80);
        assert_eq!(fingerprint(&response[..72]).to_be_bytes(), response[76..]);
    }

    #[test]
    fn malformed_requests_are_rejected() {
        let src = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
        let good = binding_request(random_tx_id());

        assert_eq!(binding_response(&[], src), Err(StunError::TooShort(0)));
        assert_eq!(
            binding_response(&good[..19], src),
            Err(StunError::TooShort(19))
        );

        let mut m = good.clone();
        m[0] = 0x40; // e.g. a DTLS/RTP-looking first byte
        assert_eq!(binding_response(&m, src), Err(StunError::NotStun));

        let mut m = good.clone();
        m[4] ^= 0xff;
        assert!(matches!(
            binding_response(&m, src),
            Err(StunError::BadMagicCookie(_))
        ));

        let mut m = good.clone();
        m[3] = 2;
        m.extend_from_slice(&[0, 0]);
        assert_eq!(
            binding_response(&m, src),
            Err(StunError::UnalignedLength(2))
        );

        let mut m = good.clone();
        m[3] = 8; // announces an 8-byte body that is not there
        assert!(matches!(
            binding_response(&m, src),
            Err(StunError::LengthMismatch { .. })
        ));
        let mut m = good.clone();
        m.extend_from_slice(&[0; 4]); // trailing bytes not counted in the header
        assert!(matches!(
            binding_response(&m, src),
            Err(StunError::LengthMismatch { .. })
        ));

        for t in [
            0x0011u16, /* Binding indication */
            0x0003,    /* Allocate */
            0x0111,
        ] {
            let mut m = good.clone();
            m[..2].copy_from_slice(&t.to_be_bytes());
            assert_eq!(
                binding_response(&m, src),
                Err(StunError::NotBindingRequest(t))
            );
        }

        // A Binding response fed back must not be answered (no ping-pong between servers).
        let response = binding_response(&good, src).expect("valid");
        assert_eq!(
            binding_response(&response, src),
            Err(StunError::NotBindingRequest(0x0101))
        );

        // Attribute claiming more bytes than the message holds.
        let mut m = good.clone();
        m[3] = 8;
        m.extend_from_slice(&[0x80, 0x22, 0x00, 0x08, b'a', b'b', b'c', b'd']);
        assert_eq!(
            binding_response(&m, src),
            Err(StunError::TruncatedAttribute(0x8022))
        );

        // Corrupted FINGERPRINT.
        let mut m = hex(RFC5769_REQUEST);
        m[107] ^= 1;
        assert_eq!(binding_response(&m, src), Err(StunError::BadFingerprint));
    }

    #[test]
    fn unknown_attributes_are_ignored() {
        let src = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
        let mut m = binding_request(random_tx_id());
        m[3] = 12;
        // Comprehension-required 0x7fff with 5 bytes of value and 3 of padding.
        m.extend_from_slice(&[0x7f, 0xff, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
        assert!(binding_response(&m, src).is_ok());
    }

    #[test]
    fn token_bucket_refills_per_second() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5, t0);
        assert!((0..5).all(|_| bucket.try_take(t0)));
        assert!(!bucket.try_take(t0));
        let t1 = t0 + Duration::from_millis(200);
        assert!(bucket.try_take(t1));
        assert!(!bucket.try_take(t1));
        // Idle time never stores more than one second's worth.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!((0..20).filter(|_| bucket.try_take(t2)).count(), 5);

        let mut zero = TokenBucket::new(0, t0);
        assert!(!zero.try_take(t2));
    }

    async fn start(budget: u32) -> (SocketAddr, Counter, tokio::task::JoinHandle<()>) {
        start_with(StunLimits {
            per_second: budget,
            per_prefix_per_second: budget,
        })
        .await
    }

    async fn start_with(limits: StunLimits) -> (SocketAddr, Counter, tokio::task::JoinHandle<()>) {
        let server = StunServer::bind((Ipv4Addr::LOCALHOST, 0).into(), limits)
            .await
            .expect("bind");
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let counter = Counter::default();
        let task = tokio::spawn(server.run(counter.clone(), Refusals::default()));
        (addr, counter, task)
    }

    #[test]
    fn the_budget_is_per_prefix_and_a_flood_from_one_leaves_the_others_theirs() {
        let t0 = Instant::now();
        let mut budgets = PrefixBudgets::new(3, t0);
        let attacker = IpPrefix::of("2001:db8:1:2::1".parse().expect("ip"));
        let same_64 = IpPrefix::of("2001:db8:1:2::ffff".parse().expect("ip"));
        let other = IpPrefix::of("192.0.2.1".parse().expect("ip"));
        assert_eq!(
            (0..100)
                .filter(|_| budgets.try_take(attacker, t0).is_ok())
                .count(),
            3
        );
        assert_eq!(budgets.try_take(same_64, t0), Err(OverBudget::Prefix));
        assert_eq!(
            (0..3)
                .filter(|_| budgets.try_take(other, t0).is_ok())
                .count(),
            3
        );
    }

    #[test]
    fn the_prefix_table_is_bounded_and_forgets_idle_prefixes() {
        let t0 = Instant::now();
        let mut budgets = PrefixBudgets::new(2, t0);
        let v4 = |n: u32| IpPrefix::of(IpAddr::from(std::net::Ipv4Addr::from_bits(n)));
        for n in 0..MAX_TRACKED_PREFIXES as u32 {
            assert!(budgets.try_take(v4(n), t0).is_ok());
        }
        let newcomer = v4(u32::MAX);
        assert_eq!(
            budgets.try_take(newcomer, t0),
            Err(OverBudget::TooManyPrefixes)
        );
        // A second later every bucket is full again: the table is swept.
        let t1 = t0 + Duration::from_secs(1);
        assert!(budgets.try_take(newcomer, t1).is_ok());
        assert!(budgets.buckets.len() <= MAX_TRACKED_PREFIXES);
    }

    #[tokio::test]
    async fn a_flood_from_one_address_leaves_another_address_its_answers() {
        let (server, answered, task) = start_with(StunLimits {
            per_second: 1000,
            per_prefix_per_second: 3,
        })
        .await;
        let attacker = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
            .await
            .expect("bind attacker");
        for _ in 0..50 {
            attacker
                .send_to(&binding_request(random_tx_id()), server)
                .await
                .expect("send");
        }
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind client");
        let tx = random_tx_id();
        client
            .send_to(&binding_request(tx), server)
            .await
            .expect("send");
        let mut buf = [0u8; 1500];
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("the other address is answered despite the flood")
            .expect("recv");
        assert_eq!(parse_unfingerprinted(&buf[..len]).tx_id, tx);
        let mut attacker_replies = 0;
        while let Ok(r) =
            tokio::time::timeout(Duration::from_millis(200), attacker.recv_from(&mut buf)).await
        {
            let (len, _) = r.expect("recv");
            assert!(len <= 20 + 12, "answer of {len} bytes to a 20-byte request");
            attacker_replies += 1;
        }
        assert_eq!(
            attacker_replies, 3,
            "the flooding address got more than its budget"
        );
        assert_eq!(answered.get(), 4);
        task.abort();
    }

    #[tokio::test]
    async fn server_reports_client_address() {
        let (server, answered, task) = start(DEFAULT_MAX_RESPONSES_PER_SECOND).await;
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind client");

        // Junk first: it must get no answer and not be counted.
        client
            .send_to(b"hello, not stun", server)
            .await
            .expect("send");
        let tx = random_tx_id();
        client
            .send_to(&binding_request(tx), server)
            .await
            .expect("send");

        let mut buf = [0u8; 1500];
        let (len, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("response in time")
            .expect("recv");
        assert_eq!(from, server);
        let p = parse_unfingerprinted(&buf[..len]);
        assert_eq!(p.tx_id, tx);
        let mapped = decode_xor_address(attr(&p, ATTR_XOR_MAPPED_ADDRESS), &tx);
        assert_eq!(mapped, client.local_addr().expect("local addr"));
        assert_eq!(answered.get(), 1);
        task.abort();
    }

    #[tokio::test]
    async fn server_drops_requests_beyond_budget() {
        let (server, answered, task) = start(3).await;
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind client");
        for _ in 0..10 {
            client
                .send_to(&binding_request(random_tx_id()), server)
                .await
                .expect("send");
        }
        let mut buf = [0u8; 1500];
        let mut replies = 0;
        // Collect until the server has been silent for a while. At 3/s, the
        // refill during this short window stays below one token.
        while let Ok(r) =
            tokio::time::timeout(Duration::from_millis(200), client.recv_from(&mut buf)).await
        {
            r.expect("recv");
            replies += 1;
        }
        assert_eq!(replies, 3);
        assert_eq!(answered.get(), 3);
        task.abort();
    }

    /// Cross-check against an independent implementation (webrtc-rs `stun`).
    mod interop {
        use super::*;
        use stun::addr::MappedAddress;
        use stun::agent::TransactionId;
        use stun::fingerprint::FINGERPRINT;
        use stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Getter, Message, Setter};
        use stun::textattrs::TextAttribute;
        use stun::xoraddr::XorMappedAddress;

        fn request_from_stun_crate() -> Message {
            let mut m = Message::new();
            let setters: Vec<Box<dyn Setter>> = vec![
                Box::new(TransactionId::new()),
                Box::new(BINDING_REQUEST),
                Box::new(FINGERPRINT),
            ];
            m.build(&setters).expect("build request");
            m
        }

        fn decode(raw: Vec<u8>) -> Message {
            let mut m = Message::new();
            m.raw = raw;
            m.decode().expect("stun crate decodes our response");
            m
        }

        #[test]
        fn stun_crate_accepts_our_responses() {
            for source in [
                "198.51.100.9:3478".parse::<SocketAddr>().expect("addr"),
                "[2001:db8::42]:61000".parse().expect("addr"),
            ] {
                let request = request_from_stun_crate();
                let response = binding_response(&request.raw, source).expect("we accept it");
                let m = decode(response);
                assert_eq!(m.typ, BINDING_SUCCESS);
                assert_eq!(m.transaction_id, request.transaction_id);
                FINGERPRINT.check(&m).expect("fingerprint verifies");

                let mut xor = XorMappedAddress::default();
                xor.get_from(&m).expect("XOR-MAPPED-ADDRESS");
                assert_eq!(SocketAddr::new(xor.ip, xor.port), source);
                // A header and a FINGERPRINT leave room for nothing else.
                let mut plain = MappedAddress::default();
                assert!(plain.get_from(&m).is_err(), "no room for MAPPED-ADDRESS");
            }
        }

        #[test]
        fn stun_crate_reads_every_attribute_when_the_request_has_room() {
            let source = "198.51.100.9:3478".parse::<SocketAddr>().expect("addr");
            let request = hex(RFC5769_REQUEST);
            let m = decode(binding_response(&request, source).expect("we accept it"));
            FINGERPRINT.check(&m).expect("fingerprint verifies");
            let mut plain = MappedAddress::default();
            plain.get_from(&m).expect("MAPPED-ADDRESS");
            assert_eq!(SocketAddr::new(plain.ip, plain.port), source);
            let software =
                TextAttribute::get_from_as(&m, stun::attributes::ATTR_SOFTWARE).expect("SOFTWARE");
            assert_eq!(software.text, SOFTWARE);
        }
    }
}
