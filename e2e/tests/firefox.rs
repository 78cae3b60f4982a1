//! Firefox and Chromium users chat browser to browser: a Firefox page and
//! a Chromium page connect to the relay, discover each other, chat both
//! ways and go direct over WebRTC, once with the Firefox page as the
//! WebRTC dialer (offerer) and once with the Chromium page. Of two pages
//! the one with the smaller peer id dials; the test gives the Firefox page
//! fresh identities (a tab's identity lives in its `sessionStorage`) until
//! the order is the one the round needs, so each browser dials once for
//! sure. The Firefox page reaches the relay over WebRTC-direct in one
//! round and over WebSocket in the other. Neither page may report an
//! error on its console. Before the rounds, the Firefox page is given the
//! relay's WebRTC-direct address on loopback, which Firefox never
//! connects to over WebRTC: its notice must say so.
//!
//! Needs the built page (`scripts/build-page`), Chromium and chromedriver,
//! Firefox and geckodriver (`scripts/setup` installs them all).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use e2e::{
    Browser, BrowserKind, Check, PageRelay, PageState, RelayProcess, TIMEOUT, open_fresh,
    wait_page, wait_reserved, wait_until,
};

const PREFIX: &str = "firefox_chromium";
/// Each step a user waits for (the other page listed, the direct link, a
/// chat message) comes within this: on loopback each takes about a second.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// Fresh identities tried for the order a round needs: each has one chance
/// in two, so 30 all failing is one in a billion.
const IDENTITY_TRIES: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    WebSocket,
    WebRtcDirect,
}

impl Transport {
    /// The relay's address of this transport on `host`.
    fn relay_addr(self, relay: &RelayProcess, host: &str) -> anyhow::Result<String> {
        let (name, transport) = match self {
            Self::WebSocket => ("WebSocket", "ws"),
            Self::WebRtcDirect => ("WebRTC-direct", "webrtc-direct"),
        };
        relay
            .multiaddr(transport, host)
            .map(str::to_owned)
            .with_context(|| format!("the relay printed no {name} address on {host}: {relay:?}"))
    }
}

/// The relay on loopback, where the pages load from (a secure context),
/// and on this machine's LAN address, where Firefox reaches it (Firefox
/// refuses WebRTC to loopback; see `e2e::lan_ipv4`).
async fn start_relay() -> anyhow::Result<(PageRelay, String)> {
    let lan = e2e::lan_ipv4()?.to_string();
    let relay = PageRelay::start(PREFIX, &[&format!("--listen-ip={lan}")]).await?;
    Ok((relay, lan))
}

/// One round: who dials the WebRTC connection, and how Firefox reaches the relay.
#[derive(Debug, Clone, Copy)]
struct Round {
    dialer: BrowserKind,
    firefox_transport: Transport,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_and_chromium_pages_chat_and_go_direct_with_either_one_dialing() {
    let (
        PageRelay {
            process: relay,
            ports,
            state_dir: _state_dir,
            ..
        },
        lan,
    ) = start_relay()
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let firefox = Browser::launch(BrowserKind::Firefox, PREFIX, "firefox")
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let chromium = Browser::launch(BrowserKind::Chromium, PREFIX, "chromium")
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));

    let rounds = [
        Round {
            dialer: BrowserKind::Firefox,
            firefox_transport: Transport::WebRtcDirect,
        },
        Round {
            dialer: BrowserKind::Chromium,
            firefox_transport: Transport::WebSocket,
        },
    ];
    // First, the trap: a relay on loopback, which Firefox does not reach
    // over WebRTC. The page must say so, not that Noise failed.
    let loopback = loopback_webrtc_direct_says_why(&relay, &ports.page_url(), &firefox).await;
    if let Err(error) = loopback {
        let report = firefox.save_failure_report(PREFIX).await;
        panic!("{error:#}\n\nartifacts:\n{report}");
    }
    for round in rounds {
        let outcome =
            match run_round(&relay, &lan, &ports.page_url(), &firefox, &chromium, round).await {
                Ok(()) => match firefox.check_no_page_errors().await {
                    Ok(()) => chromium.check_no_page_errors().await,
                    error => error,
                },
                error => error,
            };
        if let Err(error) = outcome {
            let firefox_report = firefox.save_failure_report(PREFIX).await;
            let chromium_report = chromium.save_failure_report(PREFIX).await;
            panic!(
                "{round:?}: {error:#}\n\nartifacts:\n{firefox_report}\n{chromium_report}\ndriver logs: {:?} {:?}\nrelay log: {}",
                firefox.driver_log(),
                chromium.driver_log(),
                relay.log_path.display()
            );
        }
    }
    firefox.close().await.expect("close Firefox");
    chromium.close().await.expect("close Chromium");
    relay.kill().await.expect("kill the relay");
}

async fn run_round(
    relay: &RelayProcess,
    lan: &str,
    page_url: &str,
    firefox: &Browser,
    chromium: &Browser,
    round: Round,
) -> anyhow::Result<()> {
    // Fresh pages with fresh identities: nothing left of an earlier round.
    let (firefox_id, chromium_id) =
        loop_until_order(firefox, chromium, page_url, round.dialer).await?;
    let (dialer, listener) = match round.dialer {
        BrowserKind::Firefox => ((firefox, &firefox_id), (chromium, &chromium_id)),
        BrowserKind::Chromium => ((chromium, &chromium_id), (firefox, &firefox_id)),
    };
    eprintln!(
        "{round:?}: {} page {} dials {} page {}",
        dialer.0.kind, dialer.1, listener.0.kind, listener.1
    );

    let firefox_relay = round.firefox_transport.relay_addr(relay, lan)?;
    let chromium_relay = Transport::WebSocket.relay_addr(relay, "127.0.0.1")?;
    for (page, addr) in [(firefox, &firefox_relay), (chromium, &chromium_relay)] {
        page.fill("#relay-addr", addr).await?;
        page.click("#connect").await?;
    }
    for page in [firefox, chromium] {
        wait_reserved(page, TIMEOUT).await?;
    }

    for ((page, _), (_, other)) in [(dialer, listener), (listener, dialer)] {
        wait_peer_state(page, other, "listed", |state| state.is_some()).await?;
    }
    for ((page, _), (_, other)) in [(dialer, listener), (listener, dialer)] {
        wait_peer_state(page, other, "direct (WebRTC)", |state| {
            state == Some("direct")
        })
        .await?;
    }
    chat(firefox, chromium, &firefox_id).await?;
    chat(chromium, firefox, &chromium_id).await?;
    // The relayed connections give way: each page ends with the other
    // direct and nothing relayed.
    for ((page, _), (_, other)) in [(dialer, listener), (listener, dialer)] {
        wait_page(
            page,
            &format!("#peers shows {other} direct with no relayed connection left"),
            TIMEOUT,
            |state| match state.peers.iter().find(|peer| peer.peer_id == *other) {
                Some(peer)
                    if peer.state.as_deref() == Some("direct") && peer.relayed == Some(0) =>
                {
                    None
                }
                found => Some(format!("found {found:?}")),
            },
        )
        .await?;
    }
    let label = format!("{}-dials", round.dialer.name());
    firefox.screenshot(PREFIX, &label).await?;
    chromium.screenshot(PREFIX, &label).await?;
    Ok(())
}

/// The Firefox page, given the relay's WebRTC-direct address on loopback,
/// fails to connect and its notice names loopback as the reason.
async fn loopback_webrtc_direct_says_why(
    relay: &RelayProcess,
    page_url: &str,
    firefox: &Browser,
) -> anyhow::Result<()> {
    open_fresh(firefox, page_url).await?;
    let loopback = Transport::WebRtcDirect.relay_addr(relay, "127.0.0.1")?;
    firefox.fill("#relay-addr", &loopback).await?;
    firefox.click("#connect").await?;
    let page = wait_page(
        firefox,
        "#notice says the relay at a loopback address cannot be reached over WebRTC",
        TIMEOUT,
        |state| {
            (!(state.notice_visible && state.notice_text.contains("loopback")))
                .then(|| format!("#notice {:?}", state.notice_text))
        },
    )
    .await?;
    eprintln!("Firefox, relay on loopback: {}", page.notice_text);
    Ok(())
}

/// Gives both pages fresh identities until `dialer` has the smaller peer
/// id (the page's rule for who dials); returns Firefox's id and
/// Chromium's. Both change at each try, so each is an even chance: with
/// Chromium's kept, a very small one (`12D3KooW9x…`, seen) left Firefox almost
/// none, and 30 tries in a row failed.
async fn loop_until_order(
    firefox: &Browser,
    chromium: &Browser,
    url: &str,
    dialer: BrowserKind,
) -> anyhow::Result<(String, String)> {
    for _ in 0..IDENTITY_TRIES {
        let chromium_id = open_fresh(chromium, url).await?;
        let firefox_id = open_fresh(firefox, url).await?;
        // Ed25519 peer ids are base58 strings of one length, whose order
        // is that of their bytes (the order libp2p's PeerId compares by).
        let firefox_smaller =
            (firefox_id.len(), firefox_id.as_str()) < (chromium_id.len(), chromium_id.as_str());
        if firefox_smaller == (dialer == BrowserKind::Firefox) {
            return Ok((firefox_id, chromium_id));
        }
    }
    anyhow::bail!("{IDENTITY_TRIES} pairs of fresh identities, none puts the {dialer} page first")
}

/// Waits until `page` lists `other` with a link state that satisfies `ok`.
async fn wait_peer_state(
    page: &Browser,
    other: &str,
    what: &str,
    ok: impl Fn(Option<&str>) -> bool,
) -> anyhow::Result<PageState> {
    let ok = &ok;
    wait_page(
        page,
        &format!("#peers shows {other} {what}"),
        STEP_TIMEOUT,
        |state| {
            let peer = state.peers.iter().find(|peer| peer.peer_id == other);
            let link = peer.and_then(|peer| peer.state.as_deref());
            match peer {
                Some(_) if ok(link) => None,
                Some(_) => Some(format!("its link state is {link:?}")),
                None => Some("not listed".to_owned()),
            }
        },
    )
    .await
}

/// `from` types a unique message and presses Enter; it shows up in `to`'s
/// chat log, attributed to `from_id`.
async fn chat(from: &Browser, to: &Browser, from_id: &str) -> anyhow::Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let text = format!("hello from {} #{nanos:09}", from.kind);
    from.fill("#chat-input", &text).await?;
    from.press_enter("#chat-input").await?;
    let text = &text;
    wait_until(
        &format!("{}'s #chat-log shows {text:?} from {from_id}", to.kind),
        STEP_TIMEOUT,
        || async move {
            let receiver = to.snapshot().await?;
            Ok(if receiver.has_message(from_id, text) {
                Check::Done(())
            } else {
                Check::NotYet(receiver.to_string())
            })
        },
    )
    .await
}
