//! Native peers (`chat-peer`) in the lab when the network changes under a
//! pair that is already connected:
//!
//! - [`mappings_flushed`]: router B forgets every mapping (its conntrack
//!   table and the filter's memory of outbound flows are flushed), first
//!   while traffic flows, then as it reboots (its link down for longer
//!   than the peers wait for a ping, then back with an empty table);
//! - [`moved_to_another_network`]: laptop B moves to another network, as
//!   in a Wi-Fi switch: its old link and address are gone, and it comes up
//!   behind a new home router with a new private and public address;
//! - [`restarted_behind_nat`]: B's `chat-peer` is killed and started again
//!   with its key, behind its home router, reaching the relay over QUIC;
//! - [`circuits_renewed`]: two peers behind symmetric NATs, with no direct
//!   path, chat across several lifetimes of the relay's circuits (the
//!   relay's `--max-circuit-duration` set short).
//!
//! Each returns what it saw, one line each, and fails saying what did not
//! happen within its bound. Logs: `artifacts/<prefix>-*`.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{
    CellSetup, DIRECT_TIMEOUT, Lab, NatKind, Netns, RELAY_IP,
    cell::start_relay_with,
    native::{NativePeer, RELAY_QUIC_PORT, RELAY_TCP_PORT},
    topology::{plug_into_internet, veth},
};
use crate::{RelayProcess, TIMEOUT};

/// How long after the network changed the pair must be direct again, a
/// ping answered over the direct path and a message crossed each way:
/// the dead connections are noticed in 5 s (chat-peer's pings, every
/// second), the relay is dialed again after 1 s (2 s if it still held the
/// old connection), then reservation, discovery and DCUtR take a few
/// seconds (the first upgrade here takes about 2 s).
pub const RECOVERY_BOUND: Duration = Duration::from_secs(30);
/// How long a pair gets for its first direct link, before the change a
/// test is about: what the NAT matrix gives ([`DIRECT_TIMEOUT`]), and
/// time for a punch that failed (three dials of 10 s) to be tried again
/// (5 to 10 s later). The report says how long it took.
pub const FIRST_DIRECT_TIMEOUT: Duration = Duration::from_secs(DIRECT_TIMEOUT.as_secs() + 40);
/// How long router B's internet link is down as it reboots in
/// [`mappings_flushed`]: longer than chat-peer waits for a ping answer
/// (5 s), so every connection through it is given up for dead.
pub const REBOOT_OUTAGE: Duration = Duration::from_secs(8);
/// How long after B's restart in [`restarted_behind_nat`] the pair must
/// be direct again, a message crossed each way: the process starts, dials
/// the relay (refused once while the relay still holds its old QUIC
/// connection, then again a second later), reserves, announces, and DCUtR
/// punches: about 3 s here, against 1 s for the first upgrade. Without the
/// relay's refusal the returning peer cannot publish through the relay,
/// and the pair waited for A's periodic dial (2 to 12 s here).
pub const RESTART_BOUND: Duration = Duration::from_secs(10);
/// How long [`hole_punch_retried`] waits for the first failed hole punch
/// with the routers' path cut: DCUtR's three attempts, each a dial that
/// times out.
pub const PUNCH_FAILURE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long after that failure, the path open again, the pair must be
/// direct with a message crossed each way, by a try: chat-peer punches
/// again 5 s after a failed punch (then 10 s, 20 s), and a punch takes a
/// few round trips.
pub const PUNCH_RETRY_BOUND: Duration = Duration::from_secs(30);
/// How often [`restarted_behind_nat`] restarts B.
pub const RESTARTS: usize = 3;
/// The relay's circuit duration in [`circuits_renewed`].
pub const CIRCUIT_DURATION: Duration = Duration::from_secs(12);
/// How many circuit lifetimes [`circuits_renewed`] chats across.
pub const CIRCUIT_LIFETIMES: usize = 2;
/// How long after a circuit ended the pair must be on a new one: the
/// redial is immediate, a circuit takes a few round trips.
pub const REDIAL_BOUND: Duration = Duration::from_secs(5);
/// Laptop B's new network in [`moved_to_another_network`]: its address,
/// its router's LAN address and its router's public address.
const NEW_HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);
const NEW_ROUTER_LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);
const NEW_WAN_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 13);

/// What [`mappings_flushed`] needs beyond the lab's prerequisites
/// ([`super::check_prerequisites`]): the `conntrack` tool.
pub fn check_conntrack() -> anyhow::Result<()> {
    let found = std::process::Command::new("conntrack")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        bail!(
            "`conntrack` is missing (Debian: conntrack; scripts/natlab installs it): the test \
             flushes a router's connection tracking table with it"
        );
    }
    Ok(())
}

/// Two native peers on laptops A and B of a lab, both reserved on the
/// relay and each aware of the other.
struct Pair {
    // Dropped in this order: the peers, the relay, the lab.
    a: NativePeer,
    b: NativePeer,
    id_a: String,
    id_b: String,
    /// How the peers reach the relay.
    relay_addr: String,
    _relay: RelayProcess,
    _relay_state: tempfile::TempDir,
    keys: tempfile::TempDir,
    lab: Lab,
}

/// How the peers of a [`Pair`] reach the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelayTransport {
    Tcp,
    Quic,
}

impl Pair {
    async fn start(
        tag: &str,
        kinds: (NatKind, NatKind),
        setup: &CellSetup,
        relay_flags: &[&str],
        prefix: &str,
        transport: RelayTransport,
    ) -> anyhow::Result<Self> {
        crate::clear_artifacts(prefix).context("clear earlier artifacts")?;
        let lab = Lab::create(tag, kinds.0, kinds.1).context("build the lab")?;
        Self::start_in(lab, setup, relay_flags, prefix, transport).await
    }

    /// [`Self::start`] in a lab already built (and changed: a path cut).
    async fn start_in(
        lab: Lab,
        setup: &CellSetup,
        relay_flags: &[&str],
        prefix: &str,
        transport: RelayTransport,
    ) -> anyhow::Result<Self> {
        let chat_peer = setup
            .chat_peer_binary
            .as_deref()
            .context("no chat-peer binary given")?;
        let (relay, relay_state) = start_relay_with(&lab, setup, prefix, relay_flags).await?;
        let relay_addr = match transport {
            RelayTransport::Tcp => format!("/ip4/{RELAY_IP}/tcp/{RELAY_TCP_PORT}"),
            RelayTransport::Quic => format!("/ip4/{RELAY_IP}/udp/{RELAY_QUIC_PORT}/quic-v1"),
        } + &format!("/p2p/{}", relay.peer_id);
        let keys = tempfile::tempdir().context("temp dir for the peers' keys")?;
        let mut a = NativePeer::start(
            &lab.a.host,
            chat_peer,
            &relay_addr,
            keys.path(),
            prefix,
            "A",
        )?;
        let mut b = NativePeer::start(
            &lab.b.host,
            chat_peer,
            &relay_addr,
            keys.path(),
            prefix,
            "B",
        )?;
        let id_a = a.own_id().await?;
        let id_b = b.own_id().await?;
        for (peer, other) in [(&mut a, &id_b), (&mut b, &id_a)] {
            peer.wait(&format!("it discovers {other}"), TIMEOUT, |event| {
                event["event"] == "discovered" && event["peer"] == other.as_str()
            })
            .await?;
        }
        Ok(Self {
            a,
            b,
            id_a,
            id_b,
            relay_addr,
            _relay: relay,
            _relay_state: relay_state,
            keys,
            lab,
        })
    }

    /// A pings B: the path of the answer, or why there was none.
    async fn ping_path(&mut self) -> anyhow::Result<Result<String, String>> {
        let mark = self.a.mark();
        let id_b = self.id_b.clone();
        self.a.send_line(&format!("/ping {id_b}")).await?;
        let answer = self
            .a
            .wait_since(mark, &format!("a ping to {id_b} ends"), TIMEOUT, |event| {
                event["peer"] == id_b.as_str()
                    && (event["event"] == "ping" || event["event"] == "ping_failed")
            })
            .await?;
        Ok(if answer["event"] == "ping" {
            Ok(answer["path"].as_str().unwrap_or("(no path)").to_owned())
        } else {
            Err(answer["reason"]
                .as_str()
                .unwrap_or("(no reason)")
                .to_owned())
        })
    }

    /// Pings until an answer comes over `path`, by `deadline`; how long it
    /// took from `since`.
    async fn wait_path(
        &mut self,
        path: &str,
        since: Instant,
        deadline: Instant,
    ) -> anyhow::Result<Duration> {
        loop {
            let answer = self.ping_path().await?;
            if answer.as_deref() == Ok(path) {
                return Ok(since.elapsed());
            }
            if Instant::now() >= deadline {
                // CI shows this message, not the artifacts: what each
                // peer saw says where it stuck.
                bail!(
                    "A's ping to B was not answered over a {path} path within {:?}; the last \
                     answer: {answer:?}; A saw: {}; B saw: {}",
                    deadline.saturating_duration_since(since),
                    Pair::story(&self.a, 0),
                    Pair::story(&self.b, 0)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A message each way, each arriving by `deadline`.
    async fn chat_both_ways(&mut self, label: &str, deadline: Instant) -> anyhow::Result<()> {
        for from_a in [true, false] {
            let (from, to, from_id) = if from_a {
                (&mut self.a, &mut self.b, self.id_a.clone())
            } else {
                (&mut self.b, &mut self.a, self.id_b.clone())
            };
            let text = format!("{label}, from {}", if from_a { "A" } else { "B" });
            let mark = to.mark();
            from.send_line(&text).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            to.wait_since(mark, &format!("{text:?} arrives"), left, |event| {
                event["event"] == "chat"
                    && event["own"] == false
                    && event["peer"] == from_id.as_str()
                    && event["text"] == text.as_str()
            })
            .await?;
        }
        Ok(())
    }

    /// The events of `peer` (A or B) from `mark` on, as `event:path` words
    /// for the report (connections and the relay's).
    fn story(peer: &NativePeer, mark: usize) -> String {
        peer.seen_since(mark)
            .iter()
            .filter_map(|event: &Value| {
                let name = event["event"].as_str()?;
                match name {
                    "connected" | "disconnected" => {
                        Some(format!("{name}:{}", event["path"].as_str().unwrap_or("?")))
                    }
                    "hole_punch" if event["ok"] == false => Some(format!(
                        "hole_punch_failed({})",
                        event["error"].as_str().unwrap_or("?")
                    )),
                    "relay_lost" | "relay_connected" | "reserved" | "redialing" | "hole_punch"
                    | "punching_again" | "discovered" | "gone" => Some(name.to_owned()),
                    _ => None,
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn quit(mut self) {
        self.a.quit().await;
        self.b.quit().await;
    }
}

/// Home × home: direct, then router B forgets its mappings twice: once
/// while traffic flows (a flush), once as it reboots (its internet link
/// down for [`REBOOT_OUTAGE`], longer than the peers wait for a ping
/// answer, then back with an empty table). After each, a ping is answered
/// over a direct path and a message crosses each way within
/// [`RECOVERY_BOUND`].
pub async fn mappings_flushed(setup: &CellSetup) -> anyhow::Result<Vec<String>> {
    let kinds = (NatKind::Home, NatKind::Home);
    let mut pair = Pair::start(
        "flush",
        kinds,
        setup,
        &[],
        "natlab-flush",
        RelayTransport::Tcp,
    )
    .await?;
    let mut report = Vec::new();
    let started = Instant::now();
    let took = pair
        .wait_path("direct", started, started + FIRST_DIRECT_TIMEOUT)
        .await?;
    report.push(format!(
        "direct {:.1} s after both discovered",
        took.as_secs_f64()
    ));
    pair.chat_both_ways("before the flush", Instant::now() + TIMEOUT)
        .await?;

    for reboot in [false, true] {
        let what = if reboot { "the reboot" } else { "the flush" };
        let (mark_a, mark_b) = (pair.a.mark(), pair.b.mark());
        let router = &pair.lab.b.router;
        let flows = tracked_flows(router)?;
        if reboot {
            router.ip(&["link", "set", "wan", "down"])?;
            tokio::time::sleep(REBOOT_OUTAGE).await;
        }
        forget_mappings(router)?;
        if reboot {
            router.ip(&["link", "set", "wan", "up"])?;
        }
        let back = Instant::now();
        let deadline = back + RECOVERY_BOUND;
        let took = pair.wait_path("direct", back, deadline).await?;
        pair.chat_both_ways(&format!("after {what}"), deadline)
            .await?;
        report.push(format!(
            "{what} (router B forgot {flows} flows{}): direct again {:.1} s later, chat both \
             ways {:.1} s (bound {:?})",
            if reboot {
                format!(", its link down {REBOOT_OUTAGE:?} before")
            } else {
                String::new()
            },
            took.as_secs_f64(),
            back.elapsed().as_secs_f64(),
            RECOVERY_BOUND
        ));
        report.push(format!("  A saw: {}", Pair::story(&pair.a, mark_a)));
        report.push(format!("  B saw: {}", Pair::story(&pair.b, mark_b)));
    }
    pair.quit().await;
    Ok(report)
}

/// How many flows `router`'s conntrack table holds; an error if none (a
/// flush would then prove nothing).
pub(super) fn tracked_flows(router: &Netns) -> anyhow::Result<usize> {
    let listed = router
        .exec("conntrack", &["-L"])
        .context("list router B's conntrack table")?;
    let flows = listed
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count();
    if flows == 0 {
        bail!("router B's conntrack table is empty before the flush: the lab is not what it seems");
    }
    Ok(flows)
}

/// Flushes `router`'s conntrack table and its filter's memory of outbound
/// flows. (Taking its link down has already dropped the flows masqueraded
/// through it: the kernel forgets those when the interface goes down.)
pub(super) fn forget_mappings(router: &Netns) -> anyhow::Result<()> {
    router
        .exec("conntrack", &["-F"])
        .context("flush router B's conntrack table")?;
    router
        .exec("nft", &["flush", "set", "ip", "natlab", "outbound"])
        .context("flush router B's memory of outbound flows")?;
    Ok(())
}

/// Home × home over QUIC to the relay: direct; then B's `chat-peer` is
/// killed (SIGKILL) and started again with its key, three times. Each time
/// A must see the old connections go, and the pair must be direct again,
/// with a message each way, within [`RESTART_BOUND`] of the restart. The
/// relay hears no goodbye over QUIC, so it still holds B's old connection
/// when B comes back (its QUIC idle timeout is 10 s).
pub async fn restarted_behind_nat(setup: &CellSetup) -> anyhow::Result<Vec<String>> {
    let kinds = (NatKind::Home, NatKind::Home);
    let prefix = "natlab-restart";
    let mut pair = Pair::start("restart", kinds, setup, &[], prefix, RelayTransport::Quic).await?;
    let chat_peer = setup
        .chat_peer_binary
        .as_deref()
        .context("no chat-peer binary given")?;
    let mut report = Vec::new();
    let started = Instant::now();
    let took = pair
        .wait_path("direct", started, started + FIRST_DIRECT_TIMEOUT)
        .await?;
    report.push(format!(
        "direct {:.1} s after both discovered",
        took.as_secs_f64()
    ));
    for round in 1..=RESTARTS {
        let mark_a = pair.a.mark();
        pair.b.kill().await?;
        let killed = Instant::now();
        let id_b = pair.id_b.clone();
        pair.a
            .wait_since(
                mark_a,
                "the killed B's direct connection closes",
                TIMEOUT,
                |event| {
                    event["event"] == "disconnected"
                        && event["path"] == "direct"
                        && event["peer"] == id_b.as_str()
                },
            )
            .await?;
        let noticed = killed.elapsed();
        pair.b = NativePeer::start(
            &pair.lab.b.host,
            chat_peer,
            &pair.relay_addr,
            pair.keys.path(),
            prefix,
            "B",
        )?;
        let restarted = Instant::now();
        let id = pair.b.own_id().await?;
        if id != pair.id_b {
            bail!(
                "B came back as {id}, not {}: the key file was not reused",
                pair.id_b
            );
        }
        let reserved = restarted.elapsed();
        let deadline = restarted + RESTART_BOUND;
        let took = pair.wait_path("direct", restarted, deadline).await?;
        pair.chat_both_ways(&format!("after restart {round}"), deadline)
            .await?;
        report.push(format!(
            "restart {round}: A saw B gone after {:.1} s; B reserved {:.1} s after it started, \
             direct {:.1} s after it started (bound {:?}); chat both ways",
            noticed.as_secs_f64(),
            reserved.as_secs_f64(),
            took.as_secs_f64(),
            RESTART_BOUND
        ));
        report.push(format!("  B saw: {}", Pair::story(&pair.b, 0)));
    }
    pair.quit().await;
    Ok(report)
}

/// Home × home: direct, then laptop B moves to another network (a Wi-Fi
/// switch): its old link and address are gone, and it comes up behind a
/// new home router with a new private address ([`NEW_HOST_IP`]) and a new
/// public one ([`NEW_WAN_IP`]). Direct again within [`RECOVERY_BOUND`].
pub async fn moved_to_another_network(setup: &CellSetup) -> anyhow::Result<Vec<String>> {
    let kinds = (NatKind::Home, NatKind::Home);
    let mut pair = Pair::start(
        "moved",
        kinds,
        setup,
        &[],
        "natlab-moved",
        RelayTransport::Tcp,
    )
    .await?;
    let mut report = Vec::new();
    let started = Instant::now();
    let took = pair
        .wait_path("direct", started, started + FIRST_DIRECT_TIMEOUT)
        .await?;
    report.push(format!(
        "direct {:.1} s after both discovered",
        took.as_secs_f64()
    ));
    pair.chat_both_ways("before the move", Instant::now() + TIMEOUT)
        .await?;

    let (mark_a, mark_b) = (pair.a.mark(), pair.b.mark());
    let _new_router = move_b_to_new_network(&pair.lab).context("move laptop B")?;
    let moved = Instant::now();
    let deadline = moved + RECOVERY_BOUND;
    let took = pair.wait_path("direct", moved, deadline).await?;
    pair.chat_both_ways("after the move", deadline).await?;
    report.push(format!(
        "B moved from {} behind {} to {NEW_HOST_IP} behind {NEW_WAN_IP}: direct again {:.1} s \
         later, chat both ways {:.1} s (bound {:?})",
        pair.lab.b.host_ip,
        pair.lab.b.wan_ip,
        took.as_secs_f64(),
        moved.elapsed().as_secs_f64(),
        RECOVERY_BOUND
    ));
    report.push(format!("A saw: {}", Pair::story(&pair.a, mark_a)));
    report.push(format!("B saw: {}", Pair::story(&pair.b, mark_b)));
    pair.quit().await;
    Ok(report)
}

/// Home × home, with the internet dropping every packet between the two
/// routers at first: each peer's hole punch fails and says so. Then the
/// path opens, and the pair must be direct within [`PUNCH_RETRY_BOUND`]
/// of the first failure, a message crossing each way: a pair that missed
/// its one chance (a lost packet, a router slow to map) is not relayed
/// for good.
pub async fn hole_punch_retried(setup: &CellSetup) -> anyhow::Result<Vec<String>> {
    let prefix = "natlab-punch-retry";
    crate::clear_artifacts(prefix).context("clear earlier artifacts")?;
    let lab = Lab::create("punch", NatKind::Home, NatKind::Home).context("build the lab")?;
    cut_between(&lab).context("cut the routers' path")?;
    let mut pair = Pair::start_in(lab, setup, &[], prefix, RelayTransport::Tcp).await?;
    let mut report = Vec::new();

    let started = Instant::now();
    let deadline = started + PUNCH_FAILURE_TIMEOUT;
    let failed = |event: &Value| event["event"] == "hole_punch" && event["ok"] == false;
    let first = loop {
        if pair.a.poll_for(Duration::from_millis(200), failed).await {
            break "A";
        }
        if pair.b.poll_for(Duration::from_millis(200), failed).await {
            break "B";
        }
        if Instant::now() >= deadline {
            bail!(
                "neither peer reported a failed hole punch within {PUNCH_FAILURE_TIMEOUT:?} \
                 with the routers' path cut; A saw: {}; B saw: {}",
                Pair::story(&pair.a, 0),
                Pair::story(&pair.b, 0)
            );
        }
    };
    let failed_at = Instant::now();
    report.push(format!(
        "path cut: {first}'s hole punch failed {:.1} s after both discovered",
        failed_at.duration_since(started).as_secs_f64()
    ));

    heal_between(&pair.lab).context("open the routers' path")?;
    let deadline = failed_at + PUNCH_RETRY_BOUND;
    let took = pair.wait_path("direct", failed_at, deadline).await?;
    pair.chat_both_ways("after the path opened", deadline)
        .await?;
    // Direct by the retry, not by some other way round.
    let punched_again = |peer: &NativePeer| {
        peer.seen_since(0)
            .iter()
            .any(|event| event["event"] == "punching_again")
    };
    if !punched_again(&pair.a) && !punched_again(&pair.b) {
        bail!(
            "direct, but neither peer said it punched again; A saw: {}; B saw: {}",
            Pair::story(&pair.a, 0),
            Pair::story(&pair.b, 0)
        );
    }
    report.push(format!(
        "path open: direct {:.1} s after the failure, chat both ways (bound {PUNCH_RETRY_BOUND:?})",
        took.as_secs_f64()
    ));
    report.push(format!("A saw: {}", Pair::story(&pair.a, 0)));
    report.push(format!("B saw: {}", Pair::story(&pair.b, 0)));
    pair.quit().await;
    Ok(report)
}

/// The nftables table, in each router, that drops what its laptop sends
/// to the other router.
const CUT_TABLE: &str = "natlab_cut";

/// Each router drops what its laptop sends to the other router, before
/// its connection tracking sees it (priority raw - 10): a packet lost on
/// the way out leaves no state in any router. (Dropped on the internet
/// instead, the punch's SYNs leave half-open TCP flows in both routers'
/// conntrack for two minutes, and a later punch between the same ports
/// fails in this lab until they expire.)
fn cut_between(lab: &Lab) -> anyhow::Result<()> {
    for (router, other) in [(&lab.a.router, lab.b.wan_ip), (&lab.b.router, lab.a.wan_ip)] {
        let ruleset = format!(
            "table ip {CUT_TABLE} {{\n  chain cut {{\n    type filter hook prerouting priority raw - 10;\n    \
             iifname \"lan\" ip daddr {other} drop\n  }}\n}}\n"
        );
        router.exec_with_input("nft", &["-f", "-"], &ruleset)?;
    }
    Ok(())
}

fn heal_between(lab: &Lab) -> anyhow::Result<()> {
    for router in [&lab.a.router, &lab.b.router] {
        router.exec("nft", &["delete", "table", "ip", CUT_TABLE])?;
    }
    Ok(())
}

/// Unplugs laptop B from router B (its `eth0` goes, and with it its
/// address and every socket's path) and plugs it into a new home router on
/// the internet. Returns the new router (removed on drop).
pub(super) fn move_b_to_new_network(lab: &Lab) -> anyhow::Result<Netns> {
    let host = &lab.b.host;
    let router = Netns::create(&format!("{}-router-b2", lab_tag(lab)))?;
    plug_into_internet(&lab.internet, &router, "router-b2", NEW_WAN_IP)?;
    host.ip(&["link", "del", "eth0"])?;
    veth(&router, "lan", host, "eth0")?;
    router.ip(&[
        "addr",
        "add",
        &format!("{NEW_ROUTER_LAN_IP}/24"),
        "dev",
        "lan",
    ])?;
    router.ip(&["link", "set", "lan", "up"])?;
    host.ip(&["addr", "add", &format!("{NEW_HOST_IP}/24"), "dev", "eth0"])?;
    host.ip(&["link", "set", "eth0", "up"])?;
    host.ip(&[
        "route",
        "add",
        "default",
        "via",
        &NEW_ROUTER_LAN_IP.to_string(),
    ])?;
    router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
    router
        .exec_with_input("nft", &["-f", "-"], &NatKind::Home.ruleset(NEW_HOST_IP))
        .context("load the home ruleset into the new router")?;
    Ok(router)
}

/// The tag the lab's namespaces were made with (`natlab-<pid>-<tag>-relay`).
fn lab_tag(lab: &Lab) -> String {
    let name = lab.relay.name();
    let name = name.strip_suffix("-relay").unwrap_or(name);
    name.splitn(3, '-').nth(2).unwrap_or(name).to_owned()
}

/// Symmetric × symmetric (relayed for good), circuits of
/// [`CIRCUIT_DURATION`]: across [`CIRCUIT_LIFETIMES`] circuit ends, the
/// peer that dials first says it dials again and does, both are on a new
/// circuit within [`REDIAL_BOUND`], neither forgets the other, and a
/// ping and a message each way cross every new circuit.
pub async fn circuits_renewed(setup: &CellSetup) -> anyhow::Result<Vec<String>> {
    let kinds = (NatKind::Symmetric, NatKind::Symmetric);
    let duration = format!("--max-circuit-duration={}", CIRCUIT_DURATION.as_secs());
    let mut pair = Pair::start(
        "circuits",
        kinds,
        setup,
        &[&duration],
        "natlab-circuits",
        RelayTransport::Tcp,
    )
    .await?;
    let mut report = Vec::new();
    let started = Instant::now();
    pair.wait_path("relayed", started, started + TIMEOUT)
        .await?;
    pair.chat_both_ways("on the first circuit", Instant::now() + TIMEOUT)
        .await?;
    let (first_a, first_b) = (pair.a.mark(), pair.b.mark());

    for lifetime in 1..=CIRCUIT_LIFETIMES {
        let (mark_a, mark_b) = (pair.a.mark(), pair.b.mark());
        let (id_a, id_b) = (pair.id_a.clone(), pair.id_b.clone());
        let ended_bound = CIRCUIT_DURATION + REDIAL_BOUND;
        let is_event = |name: &'static str, path: &'static str, other: String| {
            move |event: &Value| {
                event["event"] == name && event["path"] == path && event["peer"] == other.as_str()
            }
        };
        // Each peer's new connection is the first after its old one ended:
        // one made earlier (both peers dialing at once) is not a renewal.
        let ended_a = pair
            .a
            .wait_index_since(
                mark_a,
                &format!("circuit {lifetime} to B ends"),
                ended_bound,
                is_event("disconnected", "relayed", id_b.clone()),
            )
            .await?;
        let ended = Instant::now();
        let ended_b = pair
            .b
            .wait_index_since(
                mark_b,
                &format!("circuit {lifetime} to A ends"),
                REDIAL_BOUND,
                is_event("disconnected", "relayed", id_a.clone()),
            )
            .await?;
        pair.a
            .wait_since(
                ended_a + 1,
                &format!("a new circuit to B after circuit {lifetime}"),
                REDIAL_BOUND,
                is_event("connected", "relayed", id_b.clone()),
            )
            .await?;
        pair.b
            .wait_since(
                ended_b + 1,
                &format!("a new circuit to A after circuit {lifetime}"),
                REDIAL_BOUND,
                is_event("connected", "relayed", id_a.clone()),
            )
            .await?;
        let renewed = ended.elapsed();
        // The side that dials first (the smaller id) said so before its
        // new circuit came up.
        let redialing = |peer: &NativePeer, mark: usize, other: &str| {
            peer.seen_since(mark)
                .iter()
                .find(|event| event["event"] == "redialing" && event["peer"] == other)
                .cloned()
        };
        let redial = redialing(&pair.a, mark_a, &id_b)
            .or_else(|| redialing(&pair.b, mark_b, &id_a))
            .with_context(|| {
                format!(
                    "circuit {lifetime} ended and a new one came up, but neither peer said it \
                     dialed the other again; A saw: {}; B saw: {}",
                    Pair::story(&pair.a, mark_a),
                    Pair::story(&pair.b, mark_b)
                )
            })?;
        let deadline = Instant::now() + REDIAL_BOUND;
        pair.wait_path("relayed", Instant::now(), deadline).await?;
        pair.chat_both_ways(&format!("on circuit {}", lifetime + 1), deadline)
            .await?;
        report.push(format!(
            "circuit {lifetime} ended ({}); on a new one {:.1} s later; ping and chat crossed it",
            redial["reason"].as_str().unwrap_or("?"),
            renewed.as_secs_f64()
        ));
    }
    for (peer, mark, other) in [
        (&pair.a, first_a, &pair.id_b),
        (&pair.b, first_b, &pair.id_a),
    ] {
        if let Some(gone) = peer
            .seen_since(mark)
            .iter()
            .find(|event| event["event"] == "gone" && event["peer"] == other.as_str())
        {
            bail!("a peer forgot the other while its circuits were renewed: {gone}");
        }
    }
    report.push(format!("A saw: {}", Pair::story(&pair.a, first_a)));
    report.push(format!("B saw: {}", Pair::story(&pair.b, first_b)));
    pair.quit().await;
    Ok(report)
}
