//! The NAT lab (`e2e::natlab`): two laptops behind home routers of every
//! pair of NAT kinds, and the relay on a make-believe internet, all in
//! network namespaces on this machine.
//!
//! - `nat_kinds_map_and_filter_as_named`: each router kind, probed with
//!   plain UDP, maps and filters as its name says (no browsers);
//! - `every_pair_of_nat_kinds_chats_and_goes_direct_where_hole_punching_can`:
//!   the matrix. For each pair, a headless Chromium on each laptop opens
//!   the page the relay serves, connects, discovers the other, goes direct
//!   or stays relayed, shows the link for what it is (direct: the relay is
//!   killed and a message typed at once, chat and perf still cross both
//!   ways; relayed: a ping crosses the circuit, direct attempts failed),
//!   and chats; then the home × home cell again with Firefox on laptop A
//!   (Chromium on B); then, for some pairs, two native peers
//!   (`chat-peer`) do the same with DCUtR and ping. The table is printed
//!   and a cell that misses its expectation fails the test.
//!
//! Needs root, `ip`, `nft` and `sysctl` (CI has them); without them the tests fail
//! saying what is missing, unless `NATLAB_SKIP=1` asks to skip them. The
//! skip happens when the tests are built (`e2e/build.rs`): they are then
//! marked ignored, and nextest counts them as skipped (`--status-level
//! skip` lists them), never as passed.
//! `NATLAB_CELLS=home-symmetric,firefox:home-home,native:home-home` runs
//! only those cells
//! (`scripts/natlab home symmetric` runs one by hand). Logs of each cell:
//! `artifacts/natlab-<a>-<b>-*`.

use std::time::Instant;

use e2e::natlab::{self, CellOutcome, CellSetup, Expected, Lab, NatKind, Peers, Table};

/// Checks what the lab needs (a missing prerequisite fails the test, saying
/// what is missing) and removes what killed runs left behind.
fn prepare_lab() {
    natlab::check_prerequisites().unwrap_or_else(|error| panic!("{error:#}"));
    let stale =
        natlab::remove_stale().unwrap_or_else(|error| panic!("remove stale namespaces: {error:#}"));
    if !stale.is_empty() {
        eprintln!("removed namespaces left by earlier runs: {stale:?}");
    }
}

#[tokio::test]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn nat_kinds_map_and_filter_as_named() {
    prepare_lab();
    natlab::remove_on_signal().expect("signal handler");
    let mut wrong = Vec::new();
    for kind in NatKind::ALL {
        let lab = Lab::create(&format!("probe-{kind}"), kind, kind)
            .unwrap_or_else(|error| panic!("build the lab for {kind}: {error:#}"));
        let seen =
            natlab::probe(&lab, &lab.a).unwrap_or_else(|error| panic!("probe {kind}: {error:#}"));
        eprintln!("{kind}: {seen}");
        // (translated, endpoint-independent mapping, other port gets in,
        // stranger gets in, early peer keeps the mapping); a reply always
        // gets in.
        let (translated, independent, other_port, stranger, early_peer) = match kind {
            NatKind::None => (false, true, true, true, true),
            NatKind::Open => (true, true, true, true, true),
            NatKind::Home => (true, true, false, false, true),
            NatKind::Symmetric => (true, false, false, false, false),
        };
        let expected = format!(
            "translated {translated}, endpoint-independent mapping {independent}, reply gets in true, \
             other port gets in {other_port}, stranger gets in {stranger}, \
             early peer keeps the mapping {early_peer}"
        );
        let actual = format!(
            "translated {}, endpoint-independent mapping {}, reply gets in {}, other port gets in {}, \
             stranger gets in {}, early peer keeps the mapping {}",
            *seen.public.ip() == lab.a.wan_ip,
            seen.endpoint_independent_mapping,
            seen.reply_gets_in,
            seen.other_port_gets_in,
            seen.stranger_gets_in,
            seen.early_peer_keeps_mapping
        );
        if actual != expected {
            wrong.push(format!(
                "{kind}: expected {expected}\n  got {actual} ({seen})"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "routers that do not behave as their kind:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn every_pair_of_nat_kinds_chats_and_goes_direct_where_hole_punching_can() {
    prepare_lab();
    natlab::remove_on_signal().expect("signal handler");
    let setup = CellSetup {
        relay_binary: e2e::relay_binary().unwrap_or_else(|error| panic!("{error:#}")),
        page_dir: e2e::built_page_dir().unwrap_or_else(|error| panic!("{error:#}")),
        chat_peer_binary: Some(e2e::chat_peer_binary().unwrap_or_else(|error| panic!("{error:#}"))),
    };
    let cells = cells_to_run().unwrap_or_else(|error| panic!("{error:#}"));
    e2e::clear_artifacts("natlab").expect("clear earlier artifacts");

    let started = Instant::now();
    let mut outcomes: Vec<CellOutcome> = Vec::new();
    for (index, (peers, a, b)) in cells.into_iter().enumerate() {
        eprintln!(
            "cell {peers} {a} × {b}: expecting {}",
            NatKind::expected(a, b)
        );
        let outcome = match peers {
            Peers::Browsers | Peers::FirefoxChromium => {
                natlab::run_browser_cell(index, peers, a, b, &setup).await
            }
            Peers::Native => natlab::run_native_cell(index, a, b, &setup).await,
        };
        eprintln!(
            "cell {peers} {a} × {b}: {} ({}/{} delivered) in {:.0} s{}",
            outcome.link,
            outcome.delivered,
            outcome.sent,
            outcome.took.as_secs_f64(),
            outcome
                .error
                .as_deref()
                .map(|error| format!("\n  error: {error}"))
                .unwrap_or_default()
        );
        outcomes.push(outcome);
    }
    let table = Table(&outcomes);
    println!(
        "\nNAT matrix ({} cells, {:.0} s; direct within {} s, {} messages each way):\n\n{table}",
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        natlab::DIRECT_TIMEOUT.as_secs(),
        natlab::MESSAGES_EACH_WAY,
    );
    let failures: Vec<String> = outcomes.iter().filter_map(CellOutcome::failure).collect();
    assert!(
        failures.is_empty(),
        "cells that missed their expectation (logs: artifacts/natlab-<a>-<b>-*):\n{}\n\n{table}",
        failures.join("\n")
    );
}

/// Native peers are tried on the pairs that tell DCUtR's story: the lab
/// without NAT, two home routers and a full cone against one (direct), and
/// symmetric against home or symmetric (relayed). Not a full cone against
/// a symmetric NAT: unlike ICE, DCUtR learns no peer-reflexive address, so
/// the punch works only if the symmetric side starts the QUIC handshake,
/// and which side does depends on the peer ids (one run here stayed
/// relayed, where the browsers go direct).
const NATIVE_CELLS: [(NatKind, NatKind); 5] = [
    (NatKind::None, NatKind::None),
    (NatKind::Home, NatKind::Home),
    (NatKind::Open, NatKind::Home),
    (NatKind::Home, NatKind::Symmetric),
    (NatKind::Symmetric, NatKind::Symmetric),
];

/// Browsers on every unordered pair of kinds (A's kind first in
/// [`NatKind::ALL`] order), Firefox and Chromium behind two home routers
/// (the common case, with both WebRTC stacks), then native peers on
/// [`NATIVE_CELLS`]; or the cells `NATLAB_CELLS` names (`a-b` for
/// Chromium on both laptops, `firefox:a-b`, `native:a-b`).
fn cells_to_run() -> anyhow::Result<Vec<(Peers, NatKind, NatKind)>> {
    if let Ok(list) = std::env::var("NATLAB_CELLS") {
        return list
            .split(',')
            .map(|cell| {
                let cell = cell.trim();
                let (peers, pair) = if let Some(pair) = cell.strip_prefix("native:") {
                    (Peers::Native, pair)
                } else if let Some(pair) = cell.strip_prefix("firefox:") {
                    (Peers::FirefoxChromium, pair)
                } else {
                    (Peers::Browsers, cell)
                };
                let (a, b) = pair.split_once('-').ok_or_else(|| {
                    anyhow::anyhow!("NATLAB_CELLS: {cell:?} is not [native:|firefox:]<kind>-<kind>")
                })?;
                Ok((peers, a.parse()?, b.parse()?))
            })
            .collect();
    }
    let mut cells = Vec::new();
    for (i, &a) in NatKind::ALL.iter().enumerate() {
        for &b in &NatKind::ALL[i..] {
            // No NAT is a sanity check of the lab: once, against itself.
            if (a == NatKind::None) != (b == NatKind::None) {
                continue;
            }
            cells.push((Peers::Browsers, a, b));
        }
    }
    cells.push((Peers::FirefoxChromium, NatKind::Home, NatKind::Home));
    cells.extend(NATIVE_CELLS.map(|(a, b)| (Peers::Native, a, b)));
    Ok(cells)
}

#[test]
fn the_matrix_covers_every_pair_of_nat_kinds_once() {
    if std::env::var_os("NATLAB_CELLS").is_some() {
        return;
    }
    let cells = cells_to_run().expect("the default matrix");
    let names: Vec<String> = cells
        .iter()
        .map(|(peers, a, b)| match peers {
            Peers::Browsers => format!("{a}-{b}"),
            Peers::FirefoxChromium => format!("firefox:{a}-{b}"),
            Peers::Native => format!("native:{a}-{b}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "none-none",
            "open-open",
            "open-home",
            "open-symmetric",
            "home-home",
            "home-symmetric",
            "symmetric-symmetric",
            "firefox:home-home",
            "native:none-none",
            "native:home-home",
            "native:open-home",
            "native:home-symmetric",
            "native:symmetric-symmetric",
        ]
    );
    let relayed: Vec<&String> = names
        .iter()
        .zip(&cells)
        .filter(|(_, (_, a, b))| NatKind::expected(*a, *b) == Expected::Relayed)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        relayed,
        [
            "home-symmetric",
            "symmetric-symmetric",
            "native:home-symmetric",
            "native:symmetric-symmetric"
        ]
    );
}
