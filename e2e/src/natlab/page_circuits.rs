//! Two pages behind symmetric NATs (no direct path: they stay relayed)
//! while the relay's circuits reach their duration limit, set short: the
//! pages must keep each other listed, be on a new circuit after each end
//! (a ping's round trip over it, and the page's event log telling of the
//! new relayed connection), and chat across every circuit. Logs:
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
/// How long after a circuit ended the pages must be on a new one: the
/// page dials a known, unconnected peer at its next announcement (every
/// 20 s), so one announcement period and some slack.
pub const PAGE_REDIAL_BOUND: Duration = Duration::from_secs(30);

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
        // The circuit ends PAGE_CIRCUIT_DURATION after it opened; a new
        // relayed connection shows in either page's event log.
        let deadline = Instant::now() + PAGE_CIRCUIT_DURATION + PAGE_REDIAL_BOUND;
        let line = loop {
            let mut found = None;
            for (index, (page, other)) in [(a, &id_b), (b, &id_a)].into_iter().enumerate() {
                let state = page.snapshot().await?;
                if !state.lists_peer(other) {
                    bail!(
                        "page {} stopped listing {other} while its circuits were renewed \
                         (circuit {lifetime})",
                        page.name
                    );
                }
                let tail = &other[other.len().saturating_sub(8)..];
                found = found.or_else(|| {
                    state
                        .events
                        .iter()
                        .skip(logged[index])
                        .find(|line| {
                            line.contains("connected to")
                                && line.contains(tail)
                                && line.contains("relayed")
                        })
                        .map(|line| format!("{}: {line}", page.name))
                });
            }
            if let Some(line) = found {
                break line;
            }
            if Instant::now() >= deadline {
                bail!(
                    "circuit {lifetime}: no new relayed connection in either page's event log within \
                     {:?} (the circuit's duration and the redial bound)",
                    PAGE_CIRCUIT_DURATION + PAGE_REDIAL_BOUND
                );
            }
            tokio::time::sleep(POLL).await;
        };
        wait_relayed_with_rtt(a, b, &id_a, &id_b, PAGE_REDIAL_BOUND).await?;
        chat_both_ways(a, b, &id_a, &id_b, &format!("on circuit {}", lifetime + 1)).await?;
        report.push(format!(
            "circuit {lifetime} renewed: {line}; ping and chat crossed it"
        ));
    }
    Ok(report)
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
