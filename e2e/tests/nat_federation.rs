//! The NAT lab's federation cell (`e2e::natlab::federation`): two relays
//! on the make-believe internet, federated; a `chat-peer` behind a home
//! router on each relay. Laptop A pings laptop B by its peer id alone: A's
//! relay says B is reserved on the other relay, A dials B's circuit
//! through it, and DCUtR goes direct (home × home); chat crosses both
//! ways.
//!
//! Needs root, `ip`, `nft` and `sysctl`, as the other NAT lab tests
//! (`NATLAB_SKIP=1` marks it ignored).

use e2e::natlab::{self, NatKind, federation};

#[tokio::test]
#[cfg_attr(natlab_skip, ignore = "built with NATLAB_SKIP=1")]
async fn laptops_on_two_federated_relays_find_each_other_go_direct_and_chat() {
    natlab::check_prerequisites().unwrap_or_else(|error| panic!("{error:#}"));
    natlab::remove_stale().unwrap_or_else(|error| panic!("remove stale namespaces: {error:#}"));
    natlab::remove_on_signal().expect("signal handler");
    let relay = e2e::relay_binary().unwrap_or_else(|error| panic!("{error:#}"));
    let chat_peer = e2e::chat_peer_binary().unwrap_or_else(|error| panic!("{error:#}"));
    let outcome = federation::run_federation_cell(&relay, &chat_peer, NatKind::Home, NatKind::Home)
        .await
        .unwrap_or_else(|error| panic!("the federation cell failed: {error:#}"));
    eprintln!("measured: federation cell home × home: {outcome:?}");
    assert_eq!(
        outcome.located_on,
        federation::second_relay_id(),
        "A's relay names the second relay as B's"
    );
    assert_eq!(
        outcome.link, "direct",
        "home × home goes direct across relays: {outcome:?}"
    );
    assert_eq!(
        outcome.delivered, outcome.sent,
        "every chat message was delivered: {outcome:?}"
    );
}
