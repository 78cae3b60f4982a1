//! A federation cell (issue #14): the lab with a second relay on the
//! internet (198.51.100.3), federated with the first, and a `chat-peer` on
//! each laptop, each on its own relay. Laptop A pings laptop B by its peer
//! id: its relay looks B up (B is reserved on the other relay), A dials
//! B's circuit through that relay, and DCUtR makes the link direct where
//! the two NATs allow it (home × home). Then they chat both ways. Logs:
//! `artifacts/natlab-federation-<a>-<b>-*`.

use std::{
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{
    DIRECT_TIMEOUT, Lab, NatKind, Netns, RELAY_IP,
    cell::DELIVERY_TIMEOUT,
    native::{NativePeer, RELAY_TCP_PORT},
    topology::plug_into_internet,
};
use crate::{RelayProcess, TIMEOUT};

/// The second relay's public address.
pub const SECOND_RELAY_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
/// Identities of the two relays (`--secret-key-seed`: their peer ids are
/// known before they start, for the federation file).
const SEEDS: [u8; 2] = [71, 72];

/// What the cell saw.
#[derive(Debug, Default)]
pub struct FederationOutcome {
    /// The relay A's relay named for B.
    pub located_on: String,
    /// The path of A's last answered ping to B.
    pub link: String,
    /// From A's first ping to the first ping answered over a direct link.
    pub time_to_direct: Option<Duration>,
    pub delivered: usize,
    pub sent: usize,
}

/// The peer id of the relay started with `--secret-key-seed=<seed>`: an
/// ed25519 key whose secret is `seed` and 31 zero bytes (the relay's
/// `state::seeded_keypair`).
fn peer_id(seed: u8) -> String {
    let mut secret = [0u8; 32];
    secret[0] = seed;
    libp2p::identity::Keypair::ed25519_from_bytes(secret)
        .expect("32 bytes are a valid ed25519 secret")
        .public()
        .to_peer_id()
        .to_string()
}

/// Runs the cell with routers of kinds `a` and `b`.
pub async fn run_federation_cell(
    relay_binary: &Path,
    chat_peer: &Path,
    a: NatKind,
    b: NatKind,
) -> anyhow::Result<FederationOutcome> {
    let prefix = format!("natlab-federation-{a}-{b}");
    let lab = Lab::create("fed", a, b).context("build the lab")?;
    let second = Netns::create("fed-relay2")?;
    plug_into_internet(&lab.internet, &second, "relay2", SECOND_RELAY_IP)?;

    let dir = tempfile::tempdir().context("temp dir")?;
    let members = dir.path().join("federation");
    std::fs::write(
        &members,
        format!("{}\n{}\n", peer_id(SEEDS[0]), peer_id(SEEDS[1])),
    )
    .context("write the federation file")?;
    let page_dir = dir.path().join("page");
    std::fs::create_dir(&page_dir).context("page dir")?;
    std::fs::write(
        page_dir.join("index.html"),
        "<!doctype html><title>chat</title>",
    )
    .context("index.html")?;
    let first_addr = format!(
        "/ip4/{RELAY_IP}/tcp/{RELAY_TCP_PORT}/p2p/{}",
        peer_id(SEEDS[0])
    );
    let second_addr = format!(
        "/ip4/{SECOND_RELAY_IP}/tcp/{RELAY_TCP_PORT}/p2p/{}",
        peer_id(SEEDS[1])
    );
    let start_relay =
        |netns: &Netns, ip: Ipv4Addr, seed: u8, name: &str, federate: Option<&str>| {
            let state = dir.path().join(format!("state-{name}"));
            let mut command = netns.command(relay_binary);
            command
                .arg(format!("--listen-ip={ip}"))
                .arg(format!("--external-address={ip}"))
                .arg(format!("--page-dir={}", page_dir.display()))
                .arg(format!("--state-dir={}", state.display()))
                .arg(format!("--secret-key-seed={seed}"))
                .arg(format!("--federation-peers={}", members.display()))
                .args(federate.map(|addr| format!("--federate={addr}")));
            let log = format!("{prefix}-{name}");
            async move { RelayProcess::start_command(&log, command).await }
        };
    let _first = start_relay(&lab.relay, RELAY_IP, SEEDS[0], "relay1", None)
        .await
        .context("start the first relay")?;
    let _second = start_relay(
        &second,
        SECOND_RELAY_IP,
        SEEDS[1],
        "relay2",
        Some(&first_addr),
    )
    .await
    .context("start the second relay")?;

    let keys = tempfile::tempdir().context("temp dir for the peers' keys")?;
    let mut peer_a = NativePeer::start(
        &lab.a.host,
        chat_peer,
        &first_addr,
        keys.path(),
        &prefix,
        "A",
    )?;
    let mut peer_b = NativePeer::start(
        &lab.b.host,
        chat_peer,
        &second_addr,
        keys.path(),
        &prefix,
        "B",
    )?;
    let _id_a = peer_a.own_id().await?;
    let id_b = peer_b.own_id().await?;

    // A pings B by id until a ping crosses a direct link (the relays may
    // still be linking up at first: a lookup then finds nobody).
    let mut outcome = FederationOutcome::default();
    let started = Instant::now();
    let deadline = started + DIRECT_TIMEOUT + TIMEOUT;
    loop {
        let mark = peer_a.mark();
        peer_a.send_line(&format!("/ping {id_b}")).await?;
        let ping = peer_a
            .wait_since(mark, &format!("a ping to {id_b} ends"), TIMEOUT, |event| {
                event["peer"] == id_b.as_str()
                    && (event["event"] == "ping" || event["event"] == "ping_failed")
            })
            .await?;
        if let Some(located) = peer_a
            .seen_since(mark)
            .iter()
            .find(|event| event["event"] == "located")
        {
            outcome.located_on = located["relay"].as_str().unwrap_or_default().to_owned();
        }
        outcome.link = ping["path"].as_str().unwrap_or("(failed)").to_owned();
        if outcome.link == "direct" {
            outcome.time_to_direct = Some(started.elapsed());
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Chat both ways.
    let texts = [("A", "hello B, from another relay"), ("B", "hello A, back")];
    for (name, text) in texts {
        let sender = if name == "A" {
            &mut peer_a
        } else {
            &mut peer_b
        };
        sender.send_line(text).await?;
        outcome.sent += 1;
    }
    for (name, text) in texts {
        let receiver = if name == "A" {
            &mut peer_b
        } else {
            &mut peer_a
        };
        let arrived = receiver
            .poll_for(DELIVERY_TIMEOUT, |event| {
                event["event"] == "chat" && event["own"] == false && event["text"] == text
            })
            .await;
        if arrived {
            outcome.delivered += 1;
        }
    }
    peer_a.quit().await;
    peer_b.quit().await;
    if outcome.located_on.is_empty() {
        bail!("A's relay never located B: {outcome:?}");
    }
    Ok(outcome)
}

/// The second relay's peer id.
pub fn second_relay_id() -> String {
    peer_id(SEEDS[1])
}
