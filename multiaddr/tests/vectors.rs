//! This crate against multiaddr 0.19.1 itself, input by input.
//!
//! `data/vectors.tsv` holds what the original (on this workspace's
//! multibase, as the workspace runs it) did with some 350 inputs, one a
//! line, tab-separated:
//!
//! - `str <text>` then `ok <bytes hex> <text> <protocol_stack> <ip_addr>
//!   <Debug of the protocols> <JSON>`, or `err <Error variant> <message>`;
//! - `hex <bytes>` then `ok <text> <protocol_stack> <ip_addr> <Debug>
//!   <text parsed again: ok <hex> | err <variant>> <bytes as a JSON array
//!   deserialized: ok <hex> | err>`, or `err <variant> <message> <JSON array>`.
//!
//! Texts, Debug output and messages are escaped as by `str::escape_debug`.
//! The inputs cover every protocol and its edge cases (ports 0 and 65535,
//! IPv6 zones, DNS names, ed25519 and SHA-256 peer ids, certhash in several
//! bases, onion, onion3 and garlic addresses, unix paths, percent-encoded
//! paths), unknown codes and names, truncated bytes, bad varints and
//! trailing garbage.

use multiaddr::{Error, Multiaddr, Protocol};

fn esc(s: &str) -> String {
    s.escape_debug().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("vector hex"))
        .collect()
}

fn variant(e: &Error) -> String {
    let debug = format!("{e:?}");
    debug
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The fields both kinds of `ok` lines share.
fn describe(m: &Multiaddr) -> Vec<String> {
    let stack: Vec<&str> = m.protocol_stack().collect();
    let ip = m.ip_addr().map_or("-".to_owned(), |ip| ip.to_string());
    let debug = format!("{:?}", m.iter().collect::<Vec<_>>());
    vec![esc(&m.to_string()), stack.join(","), ip, esc(&debug)]
}

fn json_seq(bytes: &[u8]) -> String {
    let json = serde_json::to_string(bytes).expect("serialize");
    match serde_json::from_str::<Multiaddr>(&json) {
        Ok(m) => format!("ok {}", hex(&m.to_vec())),
        Err(_) => "err".to_owned(),
    }
}

fn actual(kind: &str, input: &str) -> Vec<String> {
    match kind {
        "str" => match input.parse::<Multiaddr>() {
            Ok(m) => {
                let json = serde_json::to_string(&m).expect("serialize");
                let back: Multiaddr = serde_json::from_str(&json).expect("deserialize");
                assert_eq!(back, m, "JSON round trip of {input}");
                let mut out = vec!["ok".to_owned(), hex(&m.to_vec())];
                out.extend(describe(&m));
                out.push(esc(&json));
                out
            }
            Err(e) => vec!["err".to_owned(), variant(&e), esc(&e.to_string())],
        },
        "hex" => {
            let bytes = unhex(input);
            match Multiaddr::try_from(bytes.clone()) {
                Ok(m) => {
                    assert_eq!(m.to_vec(), bytes, "bytes kept as given");
                    let reparse = match m.to_string().parse::<Multiaddr>() {
                        Ok(r) => format!("ok {}", hex(&r.to_vec())),
                        Err(e) => format!("err {}", variant(&e)),
                    };
                    let mut out = vec!["ok".to_owned()];
                    out.extend(describe(&m));
                    out.push(reparse);
                    out.push(json_seq(&bytes));
                    out
                }
                Err(e) => {
                    vec![
                        "err".to_owned(),
                        variant(&e),
                        esc(&e.to_string()),
                        json_seq(&bytes),
                    ]
                }
            }
        }
        _ => panic!("unknown vector kind {kind}"),
    }
}

#[test]
fn same_as_multiaddr_0_19_1() {
    let vectors = include_str!("data/vectors.tsv");
    let mut failures = Vec::new();
    let mut count = 0;
    for line in vectors.lines() {
        let mut fields = line.split('\t');
        let kind = fields.next().expect("kind");
        let input = fields.next().expect("input");
        let expected: Vec<&str> = fields.collect();
        let actual = actual(kind, input);
        if actual != expected {
            failures.push(format!(
                "{kind} {input}\n  expected {expected:?}\n  actual   {actual:?}"
            ));
        }
        count += 1;
    }
    assert!(count > 300, "only {count} vectors");
    assert!(
        failures.is_empty(),
        "{} of {count} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every protocol survives bytes -> `Protocol` -> bytes and text ->
/// `Protocol` -> text, one at a time through `Protocol`'s own API.
#[test]
fn protocols_round_trip_alone() {
    for line in include_str!("data/vectors.tsv").lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields[0] != "str" || fields[2] != "ok" {
            continue;
        }
        let m: Multiaddr = fields[1].parse().expect("parses");
        for p in m.iter() {
            let mut bytes = Vec::new();
            p.write_bytes(&mut bytes).expect("write to a Vec");
            let (back, rest) = Protocol::from_bytes(&bytes).expect("reads back");
            assert!(rest.is_empty());
            assert_eq!(back, p);
            let text = p.to_string();
            let mut parts = text.split('/').skip(1);
            assert_eq!(
                Protocol::from_str_parts(&mut parts).expect("parses back"),
                p,
                "{text}"
            );
            assert_eq!(p.clone().acquire(), p);
        }
    }
}

#[test]
fn push_pop_replace_and_affixes() {
    let mut m: Multiaddr = "/ip4/1.2.3.4/tcp/80".parse().expect("parses");
    let tail: Multiaddr = "/tcp/80".parse().expect("parses");
    let head: Multiaddr = "/ip4/1.2.3.4".parse().expect("parses");
    assert!(m.ends_with(&tail) && m.starts_with(&head) && !m.ends_with(&head));
    assert!(m.ends_with(&Multiaddr::empty()) && !tail.starts_with(&m));
    let copy = m.clone();
    m.push(Protocol::Ws("/chat".into()));
    assert_eq!(m.to_string(), "/ip4/1.2.3.4/tcp/80/x-parity-ws/%2Fchat");
    assert_eq!(
        copy.to_string(),
        "/ip4/1.2.3.4/tcp/80",
        "clones do not share pushes"
    );
    assert_eq!(m.pop(), Some(Protocol::Ws("/chat".into())));
    assert_eq!(m, copy);
    assert_eq!(
        m.replace(1, |_| Some(Protocol::Udp(53)))
            .map(|m| m.to_string())
            .as_deref(),
        Some("/ip4/1.2.3.4/udp/53")
    );
    assert_eq!(m.replace(2, |_| Some(Protocol::Udp(53))), None);
    assert_eq!(m.replace(0, |_| None), None);
    let mut single = Multiaddr::from(Protocol::Memory(5));
    assert_eq!(single.pop(), Some(Protocol::Memory(5)));
    assert!(single.is_empty() && single.pop().is_none());
    let built = multiaddr::multiaddr!(Ip4([127, 0, 0, 1]), Tcp(10000u16), P2pCircuit);
    assert_eq!(built.to_string(), "/ip4/127.0.0.1/tcp/10000/p2p-circuit");
    assert_eq!(
        Multiaddr::from(std::net::Ipv6Addr::LOCALHOST).to_string(),
        "/ip6/::1"
    );
}

#[test]
fn with_p2p() {
    let peer_id = |fill: u8| {
        let sha256_multihash = [&[0x12, 0x20][..], &[fill; 32]].concat();
        multiaddr::PeerId::from_bytes(&sha256_multihash).expect("a peer id")
    };
    let (peer, other) = (peer_id(1), peer_id(2));
    let m: Multiaddr = "/dns4/relay.example/tcp/443/wss".parse().expect("parses");
    let with = m.clone().with_p2p(peer).expect("adds the peer");
    assert_eq!(with, m.clone().with(Protocol::P2p(peer)));
    assert_eq!(with.clone().with_p2p(peer), Ok(with.clone()));
    assert_eq!(with.clone().with_p2p(other), Err(with));
}
