//! The lab's network: an "internet" (a bridge on 198.51.100.0/24, TEST-NET-2)
//! with the relay and two home routers on it, and behind each router a
//! laptop on its own private subnet.
//!
//! ```text
//!                       internet (bridge br0, 198.51.100.0/24)
//!              ┌──────────────────┼──────────────────┐
//!     relay 198.51.100.2   router-a wan .11     router-b wan .12
//!                          router-a lan 10.0.1.1  router-b lan 10.0.2.1
//!                                 │                  │
//!                          laptop-a 10.0.1.2    laptop-b 10.0.2.2
//! ```
//!
//! Every node is its own namespace; links are veth pairs created directly
//! between two of them. Nothing touches the machine's own namespace, and
//! forwarding is on only inside the routers. No latency or loss: the
//! kernel here has no `netem` (`CONFIG_NET_SCH_NETEM` is not set).

use std::net::Ipv4Addr;

use anyhow::Context as _;

use super::{NatKind, Netns};

/// The relay's public address.
pub const RELAY_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const INTERNET_PREFIX: u8 = 24;

/// One side of the lab: a router of some NAT kind and the laptop behind it.
#[derive(Debug)]
pub struct Site {
    pub kind: NatKind,
    /// The router's public address.
    pub wan_ip: Ipv4Addr,
    /// `10.0.<n>.0/24`.
    pub lan_subnet: String,
    /// The laptop's private address.
    pub host_ip: Ipv4Addr,
    /// Declared first: dropped (its processes killed) before its router.
    pub host: Netns,
    pub router: Netns,
}

/// The whole lab; every namespace is removed on drop.
#[derive(Debug)]
pub struct Lab {
    pub a: Site,
    pub b: Site,
    pub relay: Netns,
    pub internet: Netns,
}

impl Lab {
    /// Builds the lab with router A of kind `kind_a` and B of `kind_b`.
    /// `tag` tells this lab's namespaces from others of the same run.
    pub fn create(tag: &str, kind_a: NatKind, kind_b: NatKind) -> anyhow::Result<Self> {
        let internet = Netns::create(&format!("{tag}-internet"))?;
        internet.ip(&["link", "add", "br0", "type", "bridge"])?;
        internet.ip(&["link", "set", "br0", "up"])?;

        let relay = Netns::create(&format!("{tag}-relay"))?;
        plug_into_internet(&internet, &relay, "relay", RELAY_IP)?;

        let a = Site::create(&internet, tag, "a", 1, kind_a)?;
        let b = Site::create(&internet, tag, "b", 2, kind_b)?;

        // A router without NAT leaves its laptop's subnet visible: the rest
        // of the internet routes it through that router.
        for site in [&a, &b] {
            if !site.kind.routes_lan() {
                continue;
            }
            let via = site.wan_ip.to_string();
            for other in [&relay, &a.router, &b.router] {
                if other.name() != site.router.name() {
                    other.ip(&["route", "add", &site.lan_subnet, "via", &via])?;
                }
            }
        }
        Ok(Self {
            a,
            b,
            relay,
            internet,
        })
    }

    /// The two sites, A first.
    pub fn sites(&self) -> [&Site; 2] {
        [&self.a, &self.b]
    }
}

impl Site {
    fn create(
        internet: &Netns,
        tag: &str,
        side: &str,
        number: u8,
        kind: NatKind,
    ) -> anyhow::Result<Self> {
        let wan_ip = Ipv4Addr::new(198, 51, 100, 10 + number);
        let router_lan_ip = Ipv4Addr::new(10, 0, number, 1);
        let host_ip = Ipv4Addr::new(10, 0, number, 2);
        let lan_subnet = format!("10.0.{number}.0/24");

        let router = Netns::create(&format!("{tag}-router-{side}"))?;
        plug_into_internet(internet, &router, &format!("router-{side}"), wan_ip)?;
        let host = Netns::create(&format!("{tag}-laptop-{side}"))?;
        veth(&router, "lan", &host, "eth0")?;
        router.ip(&["addr", "add", &format!("{router_lan_ip}/24"), "dev", "lan"])?;
        router.ip(&["link", "set", "lan", "up"])?;
        host.ip(&["addr", "add", &format!("{host_ip}/24"), "dev", "eth0"])?;
        host.ip(&["link", "set", "eth0", "up"])?;
        host.ip(&["route", "add", "default", "via", &router_lan_ip.to_string()])?;

        router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        router
            .exec_with_input("nft", &["-f", "-"], &kind.ruleset(host_ip))
            .with_context(|| format!("load the {kind} ruleset into router {side}"))?;
        Ok(Self {
            kind,
            wan_ip,
            lan_subnet,
            host_ip,
            host,
            router,
        })
    }
}

/// Connects `node` to the internet's bridge: `wan` (or `eth0` for the
/// relay) inside it with `ip`, a port of `br0` named `port` on the other end.
pub(super) fn plug_into_internet(
    internet: &Netns,
    node: &Netns,
    port: &str,
    ip: Ipv4Addr,
) -> anyhow::Result<()> {
    let inside = if port == "relay" { "eth0" } else { "wan" };
    veth(internet, port, node, inside)?;
    internet.ip(&["link", "set", port, "master", "br0", "up"])?;
    node.ip(&[
        "addr",
        "add",
        &format!("{ip}/{INTERNET_PREFIX}"),
        "dev",
        inside,
    ])?;
    node.ip(&["link", "set", inside, "up"])?;
    Ok(())
}

/// A veth pair with one end in each namespace, created there directly (no
/// end ever sits in the machine's own namespace).
pub(super) fn veth(
    left: &Netns,
    left_name: &str,
    right: &Netns,
    right_name: &str,
) -> anyhow::Result<()> {
    super::netns::run(
        "ip",
        &[
            "link",
            "add",
            "name",
            left_name,
            "netns",
            left.name(),
            "type",
            "veth",
            "peer",
            "name",
            right_name,
            "netns",
            right.name(),
        ],
    )?;
    Ok(())
}
