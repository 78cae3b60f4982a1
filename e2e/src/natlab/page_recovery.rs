//! Two pages behind home routers, direct, when the network changes under
//! B: its router reboots (link down [`super::recovery::REBOOT_OUTAGE`],
//! back with every mapping forgotten), or its laptop moves to another
//! network. Afterwards both pages must show the other as direct with a
//! round trip again, and a message must cross each way, within
//! [`PAGE_RECOVERY_BOUND`]; then the relay is killed, and a message typed
//! on each page must still reach the other within
//! [`super::FIRST_MESSAGE_BOUND`] and a perf transfer cross each way (see
//! `proof.rs`): only a live direct link carries them, not a stale label.
//! Logs: `artifacts/natlab-page-{reboot,moved}-*`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{
    CellSetup, DIRECT_TIMEOUT, DriverInNamespace, Lab, NatKind, RELAY_IP,
    cell::{open_browser, save_console, start_relay_with},
    page_circuits::chat_both_ways,
    proof::{self, peer_state},
    recovery::{REBOOT_OUTAGE, forget_mappings, move_b_to_new_network, tracked_flows},
};
use crate::{Browser, BrowserKind, POLL, RelayProcess, TIMEOUT, wait_pages};

/// How long after the change both pages must show the other as direct
/// again, with a message across each way.
pub const PAGE_RECOVERY_BOUND: Duration = Duration::from_secs(45);

/// What happens to B's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageChange {
    RouterReboots,
    LaptopMoves,
}

/// Runs the scenario; what it saw, one line each.
pub async fn pages_recover(setup: &CellSetup, change: PageChange) -> anyhow::Result<Vec<String>> {
    let (prefix, tag) = match change {
        PageChange::RouterReboots => ("natlab-page-reboot", "preboot"),
        PageChange::LaptopMoves => ("natlab-page-moved", "pmoved"),
    };
    crate::clear_artifacts(prefix)?;
    let lab = Lab::create(tag, NatKind::Home, NatKind::Home).context("build the lab")?;
    let (relay, _relay_state) = start_relay_with(&lab, setup, prefix, &[]).await?;
    let (log_a, log_b) = (format!("{prefix}-A"), format!("{prefix}-B"));
    let (driver_a, driver_b) = tokio::try_join!(
        DriverInNamespace::start_for(BrowserKind::Chromium, &lab.a.host, &log_a),
        DriverInNamespace::start_for(BrowserKind::Chromium, &lab.b.host, &log_b),
    )?;
    let (a, b) = tokio::try_join!(
        open_browser(&driver_a, prefix, "A"),
        open_browser(&driver_b, prefix, "B"),
    )?;
    let mut new_router = None;
    let result = run(&a, &b, &lab, relay, change, &mut new_router).await;
    for browser in [&a, &b] {
        save_console(browser, prefix).await;
        if result.is_err() {
            browser.save_failure_report(prefix).await;
        }
    }
    a.close().await.ok();
    b.close().await.ok();
    drop(new_router);
    result
}

async fn run(
    a: &Browser,
    b: &Browser,
    lab: &Lab,
    relay: RelayProcess,
    change: PageChange,
    new_router: &mut Option<super::Netns>,
) -> anyhow::Result<Vec<String>> {
    // `?bench`: the perf handle the relay-dead proof uses.
    let url = format!("http://{RELAY_IP}:8000/?bench");
    a.goto(&url).await?;
    b.goto(&url).await?;
    wait_pages(a, b, "#relay-addr is prefilled", TIMEOUT, |page| {
        page.relay_addr
            .trim()
            .is_empty()
            .then(|| "#relay-addr is empty".to_owned())
    })
    .await?;
    a.click("#connect").await?;
    b.click("#connect").await?;
    let (page_a, page_b) = wait_pages(a, b, "#status is connected", TIMEOUT, |page| {
        (!page.is_connected() || page.self_peer_id.is_empty())
            .then(|| format!("#status is {:?}", page.status))
    })
    .await?;
    let (id_a, id_b) = (page_a.self_peer_id, page_b.self_peer_id);
    let mut report = Vec::new();
    let took = wait_direct_with_rtt(a, b, &id_a, &id_b, DIRECT_TIMEOUT).await?;
    report.push(format!(
        "direct with a round trip {:.1} s after Connect",
        took.as_secs_f64()
    ));
    chat_both_ways(a, b, &id_a, &id_b, "before the change").await?;

    let logged_b = b.snapshot().await?.events.len();
    let changed = match change {
        PageChange::RouterReboots => {
            let router = &lab.b.router;
            let flows = tracked_flows(router)?;
            router.ip(&["link", "set", "wan", "down"])?;
            tokio::time::sleep(REBOOT_OUTAGE).await;
            forget_mappings(router)?;
            router.ip(&["link", "set", "wan", "up"])?;
            format!("router B rebooted (link down {REBOOT_OUTAGE:?}, {flows} flows forgotten)")
        }
        PageChange::LaptopMoves => {
            *new_router = Some(move_b_to_new_network(lab)?);
            "laptop B moved to another network".to_owned()
        }
    };
    let since = Instant::now();
    if change == PageChange::LaptopMoves {
        // B's old links are dead: it must say its relay connection is
        // lost, reconnect to the relay, and the pair must make a new
        // direct connection (the labels alone could be stale ones).
        let tail_a = &id_a[id_a.len().saturating_sub(8)..];
        let relay_lost =
            wait_logged(b, logged_b, "relay connection lost: no answer for", since).await?;
        let relay_back = wait_logged(b, logged_b, "connected to the relay", since).await?;
        let direct_back = wait_logged(
            b,
            logged_b,
            &format!("connected to …{tail_a} (direct"),
            since,
        )
        .await?;
        report.push(format!(
            "page B gave up its relay connection {:.1} s after the move, reconnected to the \
             relay {:.1} s after it and made a new direct connection {:.1} s after it",
            relay_lost.as_secs_f64(),
            relay_back.as_secs_f64(),
            direct_back.as_secs_f64()
        ));
    }
    let took = wait_direct_with_rtt(a, b, &id_a, &id_b, PAGE_RECOVERY_BOUND).await?;
    chat_both_ways(a, b, &id_a, &id_b, "after the change").await?;
    report.push(format!(
        "{changed}: direct with a round trip {:.1} s later, chat both ways {:.1} s (bound {:?})",
        took.as_secs_f64(),
        since.elapsed().as_secs_f64(),
        PAGE_RECOVERY_BOUND
    ));
    let dead = proof::kill_relay_then_chat_and_perf(relay, a, b, &id_a, &id_b).await?;
    let failures = dead.failures();
    if !failures.is_empty() {
        bail!(
            "{changed}: the pages showed a direct link, but with the relay killed: {}",
            failures.join("; ")
        );
    }
    report.push(format!("relay killed: {}", dead.summary()));
    Ok(report)
}

/// Until each page shows the other as direct with a round trip; how long
/// it took.
async fn wait_direct_with_rtt(
    a: &Browser,
    b: &Browser,
    id_a: &str,
    id_b: &str,
    bound: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let deadline = started + bound;
    for (page, other) in [(a, id_b), (b, id_a)] {
        loop {
            let state = peer_state(page, other).await?;
            if state.starts_with("direct") && state.ends_with(" ms") {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "page {} shows {other} as {state:?}, not direct with a round trip, {bound:?} on",
                    page.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(started.elapsed())
}

/// Waits until `page`'s event log has, after its first `skip` lines, one
/// containing `text`, at most [`PAGE_RECOVERY_BOUND`] after `since`; how
/// long after `since` it was seen.
async fn wait_logged(
    page: &Browser,
    skip: usize,
    text: &str,
    since: Instant,
) -> anyhow::Result<Duration> {
    loop {
        let events = page.snapshot().await?.events;
        if events.iter().skip(skip).any(|line| line.contains(text)) {
            return Ok(since.elapsed());
        }
        if since.elapsed() >= PAGE_RECOVERY_BOUND {
            let new: Vec<&String> = events.iter().skip(skip).collect();
            bail!(
                "page {}: no event-log line with {text:?} within {PAGE_RECOVERY_BOUND:?}; its new \
                 lines: {new:?}",
                page.name
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
