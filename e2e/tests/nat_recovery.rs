//! The NAT lab (`e2e::natlab::recovery`) when the network changes under a
//! pair of native peers (`chat-peer`) that is already connected:
//!
//! - `native_peers_go_direct_again_after_router_b_forgets_its_mappings`:
//!   home × home, direct; router B's conntrack table and its memory of
//!   outbound flows are flushed, first under live traffic, then as it
//!   reboots (its link down 8 s, then back empty); after each, a ping is
//!   answered over a direct path and a message crosses each way within
//!   `RECOVERY_BOUND` (30 s);
//! - `native_peers_go_direct_again_after_laptop_b_moves_to_another_network`:
//!   the same after laptop B moves to another network (a Wi-Fi switch: its
//!   link and address go, it comes up at 10.0.3.2 behind a new home router
//!   at 198.51.100.13);
//! - `native_peers_punch_again_after_a_failed_hole_punch`: home × home,
//!   with the routers' path cut until a peer reports its hole punch
//!   failed; then the path opens, and the pair must be direct, a message
//!   crossing each way, within `PUNCH_RETRY_BOUND` (30 s) of the failure;
//! - `a_native_peer_restarted_behind_its_nat_goes_direct_again`: home ×
//!   home, both reach the relay over QUIC; B's `chat-peer` is killed and
//!   started again with its key three times; each time the pair is direct
//!   again, with a message each way, within 10 s of the restart;
//! - `native_peers_behind_symmetric_nats_chat_across_circuit_lifetimes`:
//!   symmetric × symmetric, relayed for good, the relay's circuits last
//!   12 s: after each of two circuit ends the peer that dials first says it
//!   dials again, both are on a new circuit within 5 s, a ping and a
//!   message each way cross it, and neither forgets the other.
//! - `pages_behind_symmetric_nats_chat_across_circuit_lifetimes`: the
//!   same with two pages (Chromium) and 15 s circuits: each page keeps
//!   listing the other; after each circuit end the page that dials first
//!   logs that the relayed connection ended and that it dials again, a new
//!   relayed connection shows in an event log within 5 s of that, a ping's
//!   round trip shows over it and a message crosses each way. Needs the
//!   built page;
//! - `pages_go_direct_again_after_router_b_reboots`: two pages, home ×
//!   home, direct; router B reboots (link down 8 s, mappings flushed); both
//!   show the other direct with a round trip within 45 s, chat crosses,
//!   and with the relay killed a message and a perf transfer still cross
//!   each way;
//! - `pages_go_direct_again_after_laptop_b_moves_to_another_network`: the
//!   same after laptop B moves to another network; page B must also log
//!   that it gave up its silent relay connection, a new connection to the
//!   relay, and a new direct connection to A, each within 45 s.
//!
//! Needs root, `ip`, `nft`, `sysctl` and `conntrack` (see `nat_matrix.rs`
//! for `NATLAB_SKIP=1`). Each prints what it saw. Logs:
//! `artifacts/natlab-{flush,moved,punch-retry,restart,circuits,page-reboot,page-moved}-*`.

use e2e::natlab::{self, CellSetup, recovery};

fn setup() -> CellSetup {
    natlab::check_prerequisites().unwrap_or_else(|error| panic!("{error:#}"));
    recovery::check_conntrack().unwrap_or_else(|error| panic!("{error:#}"));
    let stale =
        natlab::remove_stale().unwrap_or_else(|error| panic!("remove stale namespaces: {error:#}"));
    if !stale.is_empty() {
        eprintln!("removed namespaces left by earlier runs: {stale:?}");
    }
    natlab::remove_on_signal().expect("signal handler");
    CellSetup {
        relay_binary: e2e::relay_binary().unwrap_or_else(|error| panic!("{error:#}")),
        // Native peers need no page; the relay serves whatever is there.
        page_dir: e2e::repo_root().join("dist"),
        chat_peer_binary: Some(e2e::chat_peer_binary().unwrap_or_else(|error| panic!("{error:#}"))),
    }
}

fn print_or_fail(what: &str, result: anyhow::Result<Vec<String>>) {
    match result {
        Ok(report) => println!("{what}:\n  {}", report.join("\n  ")),
        Err(error) => panic!("{what}: {error:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn native_peers_go_direct_again_after_router_b_forgets_its_mappings() {
    let setup = setup();
    print_or_fail("router B flushed", recovery::mappings_flushed(&setup).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn native_peers_go_direct_again_after_laptop_b_moves_to_another_network() {
    let setup = setup();
    print_or_fail(
        "laptop B moved",
        recovery::moved_to_another_network(&setup).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn native_peers_punch_again_after_a_failed_hole_punch() {
    let setup = setup();
    print_or_fail(
        "hole punch retried",
        recovery::hole_punch_retried(&setup).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn native_peers_behind_symmetric_nats_chat_across_circuit_lifetimes() {
    let setup = setup();
    print_or_fail("circuits renewed", recovery::circuits_renewed(&setup).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn a_native_peer_restarted_behind_its_nat_goes_direct_again() {
    let setup = setup();
    print_or_fail("B restarted", recovery::restarted_behind_nat(&setup).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn pages_behind_symmetric_nats_chat_across_circuit_lifetimes() {
    let mut setup = setup();
    setup.page_dir = e2e::built_page_dir().unwrap_or_else(|error| panic!("{error:#}"));
    print_or_fail(
        "pages across circuits",
        natlab::pages_across_circuit_lifetimes(&setup).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn pages_go_direct_again_after_router_b_reboots() {
    let mut setup = setup();
    setup.page_dir = e2e::built_page_dir().unwrap_or_else(|error| panic!("{error:#}"));
    print_or_fail(
        "pages, router B rebooted",
        natlab::pages_recover(&setup, natlab::PageChange::RouterReboots).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn pages_go_direct_again_after_laptop_b_moves_to_another_network() {
    let mut setup = setup();
    setup.page_dir = e2e::built_page_dir().unwrap_or_else(|error| panic!("{error:#}"));
    print_or_fail(
        "pages, laptop B moved",
        natlab::pages_recover(&setup, natlab::PageChange::LaptopMoves).await,
    );
}
