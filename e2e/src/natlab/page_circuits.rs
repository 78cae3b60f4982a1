//! Two pages behind symmetric NATs (no direct path: they stay relayed)
//! while the relay's circuits reach their duration limit, set short: the
//! pages must keep each other listed; after each end the page that dials
//! first must say in its event log that the relayed connection ended and
//! that it dials again, and the pair be on a new circuit within
//! [`PAGE_REDIAL_BOUND`] of that (a page's event log telling of the new
//! relayed connection, a ping's round trip over it); and chat crosses
//! every circuit. Logs:
//! `artifacts/natlab-page-circuits-*`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{
    CellSetup, DriverInNamespace, Lab, NatKind, RELAY_IP,
    cell::{open_browser, save_console, start_relay_with},
    proof::peer_state,
};
use crate::{Browser, BrowserKind, POLL, TIMEOUT, wait_page, wait_pages};

/// The relay's circuit duration.
pub const PAGE_CIRCUIT_DURATION: Duration = Duration::from_secs(15);
/// Circuit ends the pages must come through.
pub const PAGE_CIRCUIT_LIFETIMES: usize = 2;
/// How long after a page said it dials again (its circuit ended) the pages
/// must be on a new one: a dial through the relay takes a few round trips
/// (the native peers' bound). Without the page's own redial, the next
/// announcement (every 20 s) would be the next dial.
pub const PAGE_REDIAL_BOUND: Duration = Duration::from_secs(5);
/// How long after a circuit's duration its end must show in a page's event
/// log: the relay's limit check and the close reaching the pages.
const CIRCUIT_END_SLACK: Duration = Duration::from_secs(10);

/// Runs the scenario; what it saw, one line each.
pub async fn pages_across_circuit_lifetimes(setup: &CellSetup) -> anyhow::Result<Vec<String>> {
    let prefix = "natlab-page-circuits";
    crate::clear_artifacts(prefix)?;
    let lab =
        Lab::create("pcirc", NatKind::Symmetric, NatKind::Symmetric).context("build the lab")?;
    let duration = format!("--max-circuit-duration={}", PAGE_CIRCUIT_DURATION.as_secs());
    let (_relay, _relay_state) = start_relay_with(&lab, setup, prefix, &[&duration]).await?;
    let (log_a, log_b) = (format!("{prefix}-A"), format!("{prefix}-B"));
    let (driver_a, driver_b) = tokio::try_join!(
        DriverInNamespace::start_for(BrowserKind::Chromium, &lab.a.host, &log_a),
        DriverInNamespace::start_for(BrowserKind::Chromium, &lab.b.host, &log_b),
    )?;
    let (a, b) = tokio::try_join!(
        open_browser(&driver_a, prefix, "A"),
        open_browser(&driver_b, prefix, "B"),
    )?;
    let result = run(&a, &b).await;
    for browser in [&a, &b] {
        save_console(browser, prefix).await;
        if result.is_err() {
            browser.save_failure_report(prefix).await;
        }
    }
    a.close().await.ok();
    b.close().await.ok();
    result
}

async fn run(a: &Browser, b: &Browser) -> anyhow::Result<Vec<String>> {
    let url = format!("http://{RELAY_IP}:8000/");
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
    wait_relayed_with_rtt(a, b, &id_a, &id_b, TIMEOUT).await?;
    chat_both_ways(a, b, &id_a, &id_b, "on the first circuit").await?;

    for lifetime in 1..=PAGE_CIRCUIT_LIFETIMES {
        let logged = [
            a.snapshot().await?.events.len(),
            b.snapshot().await?.events.len(),
        ];
        // The circuit ends PAGE_CIRCUIT_DURATION after it opened: the
        // page that dials first says so and dials again.
        let redial = wait_logged_by_either(
            [(a, &id_b, logged[0]), (b, &id_a, logged[1])],
            lifetime,
            "line saying the circuit ended and the peer is dialed again (\"the relayed connection to … ended\")",
            PAGE_CIRCUIT_DURATION + CIRCUIT_END_SLACK,
            |line, tail| line.contains("the relayed connection to") && line.contains(tail),
        )
        .await?;
        let line = wait_logged_by_either(
            [(a, &id_b, logged[0]), (b, &id_a, logged[1])],
            lifetime,
            "line with a new relayed connection",
            PAGE_REDIAL_BOUND,
            |line, tail| {
                line.contains("connected to") && line.contains(tail) && line.contains("relayed")
            },
        )
        .await?;
        wait_relayed_with_rtt(a, b, &id_a, &id_b, PAGE_REDIAL_BOUND).await?;
        chat_both_ways(a, b, &id_a, &id_b, &format!("on circuit {}", lifetime + 1)).await?;
        report.push(format!(
            "circuit {lifetime} renewed: {redial}; then {line}; ping and chat crossed it"
        ));
    }
    Ok(report)
}

/// Until either page's event log, past the lines it had (`skip`), has a
/// line `matches` (given the tail of the other's id); that line, after the
/// page's name. Both pages must keep listing each other meanwhile.
async fn wait_logged_by_either(
    pages: [(&Browser, &String, usize); 2],
    lifetime: usize,
    what: &str,
    bound: Duration,
    matches: impl Fn(&str, &str) -> bool,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + bound;
    loop {
        for (page, other, skip) in pages {
            let state = page.snapshot().await?;
            if !state.lists_peer(other) {
                bail!(
                    "page {} stopped listing {other} while its circuits were renewed \
                     (circuit {lifetime})",
                    page.name
                );
            }
            let tail = &other[other.len().saturating_sub(8)..];
            if let Some(line) = state.events.iter().skip(skip).find(|l| matches(l, tail)) {
                return Ok(format!("{}: {line}", page.name));
            }
        }
        if Instant::now() >= deadline {
            bail!("circuit {lifetime}: no {what} in either page's event log within {bound:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Until each page shows the other as relayed with a round trip.
pub(super) async fn wait_relayed_with_rtt(
    a: &Browser,
    b: &Browser,
    id_a: &str,
    id_b: &str,
    bound: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + bound;
    for (page, other) in [(a, id_b), (b, id_a)] {
        loop {
            let state = peer_state(page, other).await?;
            if state.starts_with("relayed") && state.ends_with(" ms") {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "page {} shows {other} as {state:?}, not relayed with a round trip",
                    page.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

pub(super) async fn chat_both_ways(
    a: &Browser,
    b: &Browser,
    id_a: &str,
    id_b: &str,
    label: &str,
) -> anyhow::Result<()> {
    for (from, from_id, to) in [(a, id_a, b), (b, id_b, a)] {
        let text = format!("{label}, from {}", from.name);
        from.fill("#chat-input", &text).await?;
        from.press_enter("#chat-input").await?;
        wait_page(to, &format!("{text:?} arrives"), TIMEOUT, |page| {
            (!page.has_message(from_id, &text)).then(|| format!("no {text:?} yet"))
        })
        .await?;
    }
    Ok(())
}
