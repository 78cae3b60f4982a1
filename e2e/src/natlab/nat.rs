//! The kinds of NAT a lab router can be, each an nftables ruleset loaded
//! inside the router's namespace. Interfaces there: `wan` (on the
//! internet bridge) and `lan` (to the laptop).
//!
//! Terms from RFC 4787: *mapping* is how the router picks the public port
//! of an outgoing flow; *filtering* is which inbound packets it lets
//! through to that port.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use anyhow::bail;

/// How long a mapping stays open without traffic, as home routers keep UDP
/// mappings for a minute or two.
const MAPPING_TIMEOUT: &str = "120s";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NatKind {
    /// No NAT: a plain router; the laptop's address is routed on the
    /// internet side. A sanity check of the lab itself.
    None,
    /// Full cone: endpoint-independent mapping and filtering. Anyone may
    /// send to a mapped port.
    Open,
    /// The common home router (port-restricted cone): endpoint-independent
    /// mapping, address-and-port-dependent filtering.
    Home,
    /// A new random public port for every flow (so every destination),
    /// address-and-port-dependent filtering.
    Symmetric,
}

/// Whether two peers are expected to end up on a direct link or to stay on
/// the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Direct,
    Relayed,
}

impl NatKind {
    /// Every kind, in the order of the matrix.
    pub const ALL: [NatKind; 4] = [
        NatKind::None,
        NatKind::Open,
        NatKind::Home,
        NatKind::Symmetric,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NatKind::None => "none",
            NatKind::Open => "open",
            NatKind::Home => "home",
            NatKind::Symmetric => "symmetric",
        }
    }

    /// Whether the laptop's private subnet is routed on the internet side
    /// (no translation).
    pub fn routes_lan(self) -> bool {
        self == NatKind::None
    }

    /// The link two peers behind `a` and `b` should get. Hole punching
    /// needs one side whose mapping the other can learn from STUN and
    /// reach: a symmetric NAT's port for the peer is not the one STUN saw,
    /// so it works only when the other side lets any sender in (open, or
    /// no NAT). Two symmetric NATs, or symmetric against a filtering home
    /// router, leave the peers on the relay.
    pub fn expected(a: NatKind, b: NatKind) -> Expected {
        let filters = |kind: NatKind| matches!(kind, NatKind::Home | NatKind::Symmetric);
        let unpredictable = |kind: NatKind| kind == NatKind::Symmetric;
        if (unpredictable(a) && filters(b)) || (unpredictable(b) && filters(a)) {
            Expected::Relayed
        } else {
            Expected::Direct
        }
    }

    /// The router's nftables ruleset. `host` is the laptop behind it.
    pub fn ruleset(self, host: Ipv4Addr) -> String {
        // Every NATing kind forwards what the laptop sends and, back in, what
        // belongs to a flow conntrack knows (replies); the rest is dropped,
        // silently as home routers do: also what is addressed to the
        // router itself (no ICMP "port unreachable" back to a peer probing
        // a port that has no mapping for it).
        let forward = |extra: &str| {
            format!(
                r#"
  chain forward {{
    type filter hook forward priority filter; policy drop;
    iifname "lan" oifname "wan" accept
    iifname "wan" oifname "lan" ct state established,related accept{extra}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }}"#
            )
        };
        let body = match self {
            NatKind::None => r#"
  chain forward {
    type filter hook forward priority filter; policy accept;
  }"#
            .to_owned(),
            NatKind::Symmetric => format!(
                r#"
  # fully-random: every new flow gets a random public port, so the port a
  # peer sees is never the one the STUN server saw.
  chain masquerade_wan {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade fully-random
  }}{}"#,
                forward("")
            ),
            NatKind::Open => format!(
                r#"
  # Endpoint-independent mapping: masquerade keeps the laptop's port (a
  # LAN of one host never clashes), so every destination sees the same one.
  chain masquerade_wan {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }}
  # The public UDP ports in use, seen after NAT.
  set mapped {{
    type inet_service
    flags dynamic, timeout
    timeout {MAPPING_TIMEOUT}
  }}
  chain remember_mappings {{
    type filter hook postrouting priority srcnat + 10; policy accept;
    oifname "wan" meta l4proto udp update @mapped {{ udp sport }}
  }}
  # Endpoint-independent filtering: UDP from anyone to a mapped port goes
  # to the laptop, on that same port.
  chain accept_any_sender {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "wan" udp dport @mapped dnat to {host}
  }}{}"#,
                forward("\n    iifname \"wan\" oifname \"lan\" ct status dnat accept")
            ),
            NatKind::Home => format!(
                r#"
  # Endpoint-independent mapping, as for open.
  chain masquerade_wan {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }}
  # (protocol, remote address, remote port, public port) of every flow the
  # laptop has sent, seen after NAT.
  set outbound {{
    type inet_proto . ipv4_addr . inet_service . inet_service
    flags dynamic, timeout
    timeout {MAPPING_TIMEOUT}
  }}
  chain remember_mappings {{
    type filter hook postrouting priority srcnat + 10; policy accept;
    oifname "wan" meta l4proto {{ tcp, udp }} update @outbound {{ meta l4proto . ip daddr . th dport . th sport }}
  }}
  # Address-and-port-dependent filtering, before conntrack (priority raw,
  # -300, below conntrack's -200): a packet from an endpoint the laptop has
  # not sent to is dropped before conntrack records it. Filtering after
  # conntrack instead lets a peer's early ICE check create a flow that
  # takes the laptop's public port; the router then maps the laptop's own
  # packets to that peer to another port and hole punching fails (see
  # NATLAB-NOTES, "the conntrack clash").
  chain drop_unsolicited {{
    type filter hook prerouting priority raw; policy accept;
    iifname "wan" meta l4proto {{ tcp, udp }} meta l4proto . ip saddr . th sport . th dport @outbound accept
    iifname "wan" meta l4proto {{ tcp, udp }} drop
  }}{}"#,
                forward("")
            ),
        };
        format!("table ip natlab {{{body}\n}}\n")
    }
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NatKind {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        match NatKind::ALL.into_iter().find(|kind| kind.name() == name) {
            Some(kind) => Ok(kind),
            None => bail!(
                "unknown NAT kind {name:?}; the kinds are: {}",
                NatKind::ALL.map(NatKind::name).join(", ")
            ),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expected::Direct => "direct",
            Expected::Relayed => "relayed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_symmetric_against_a_filtering_nat_stays_relayed() {
        use NatKind::*;
        for a in NatKind::ALL {
            for b in NatKind::ALL {
                let relayed = matches!((a, b), (Symmetric, Symmetric | Home) | (Home, Symmetric));
                let expected = if relayed {
                    Expected::Relayed
                } else {
                    Expected::Direct
                };
                assert_eq!(NatKind::expected(a, b), expected, "{a} × {b}");
            }
        }
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in NatKind::ALL {
            assert_eq!(kind.name().parse::<NatKind>().expect("parses"), kind);
        }
        let error = "cone".parse::<NatKind>().expect_err("unknown");
        assert!(
            error.to_string().contains("none, open, home, symmetric"),
            "{error}"
        );
    }
}
