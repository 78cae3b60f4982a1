//! A page that reloads comes back direct. Two headless Chromium pages go
//! direct (WebRTC) through the relay; then one of them reloads (same tab,
//! so the same peer id) and clicks Connect again, as people do. Both must
//! show the other direct again, on a new link, within the bound the first
//! upgrade met, and a chat message and the pings must cross that direct
//! link. Three rounds, alternating which side reloads: the page with the
//! larger peer id, then the smaller (which dials the WebRTC connection, see
//! `network/src/dial.rs`), then the larger again. Neither page may report
//! an error on its console (checked before each reload, since a reload
//! starts a new console, and at the end).
//!
//! The same runs with a Firefox page and a Chromium page.
//!
//! Needs the built page (`scripts/build-page`), chromedriver and Chromium,
//! and for the second test Firefox and geckodriver.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use e2e::{
    Browser, BrowserKind, Check, ChromeDriver, PageRelay, PageState, TIMEOUT, connect_to_relay,
    wait_page, wait_until,
};

const PREFIX: &str = "browser_reload";
/// The bound each step of the first upgrade meets (as in browser_chat:
/// the other page listed, then the direct link, each within this).
const STEP_TIMEOUT: Duration = Duration::from_secs(8);
/// After a reload, from the reloaded page's reservation to both pages
/// showing the other direct on a new link: the first upgrade's two steps
/// (listed, then direct), no more.
const BACK_DIRECT_TIMEOUT: Duration = Duration::from_secs(16);
/// From the reload until the other page no longer shows the old link as
/// direct: the old page's peer connection closes with it, and the other
/// page's connection ends with its SCTP association.
const OLD_LINK_GONE_WITHIN: Duration = Duration::from_millis(2500);
/// Each way and round, messages are sent until one arrives straight over
/// the direct link, for at most this long: a copy forwarded by the relay
/// may arrive first (gossip sends every message both ways), and a gossip
/// stream whose setup stalled is given up and opened again by gossipsub
/// after its 10 s negotiation timeout.
const CHAT_DIRECT_WITHIN: Duration = Duration::from_secs(15);
const ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_reloads_goes_direct_again_whichever_side_dials() {
    let PageRelay {
        process: relay,
        ports,
        state_dir: _state_dir,
        ..
    } = PageRelay::start(PREFIX, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let a = Browser::open(&driver, "A").await.expect("browser A opens");
    let b = Browser::open(&driver, "B").await.expect("browser B opens");
    let relay_addr = relay
        .multiaddr("ws", "127.0.0.1")
        .expect("the relay printed a WebSocket address")
        .to_owned();
    let pages = [Page::new(&a, &relay_addr), Page::new(&b, &relay_addr)];
    if let Err(error) = run_checked(pages, &ports.page_url(), PREFIX).await {
        panic!(
            "{error}chromedriver log: {}\nrelay log: {}",
            driver.log_path().display(),
            relay.log_path.display()
        );
    }
    a.close().await.expect("close browser A");
    b.close().await.expect("close browser B");
    relay.kill().await.expect("kill the relay");
}

/// The same in Firefox and Chromium: Firefox reaches the relay at this
/// machine's LAN address (it makes no WebRTC connection to loopback, see
/// `e2e::lan_ipv4`), Chromium on loopback, each over WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firefox_or_chromium_page_that_reloads_goes_direct_again() {
    let lan = e2e::lan_ipv4()
        .unwrap_or_else(|error| panic!("{error:#}"))
        .to_string();
    let prefix = format!("{PREFIX}_firefox");
    let PageRelay {
        process: relay,
        ports,
        state_dir: _state_dir,
        ..
    } = PageRelay::start(&prefix, &[&format!("--listen-ip={lan}")])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let firefox = Browser::launch(BrowserKind::Firefox, &prefix, "firefox")
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let chromium = Browser::launch(BrowserKind::Chromium, &prefix, "chromium")
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let relay_addr = |host: &str| {
        relay
            .multiaddr("ws", host)
            .unwrap_or_else(|| panic!("the relay printed no WebSocket address on {host}"))
            .to_owned()
    };
    let (firefox_relay, chromium_relay) = (relay_addr(&lan), relay_addr("127.0.0.1"));
    let pages = [
        Page::new(&firefox, &firefox_relay),
        Page::new(&chromium, &chromium_relay),
    ];
    if let Err(error) = run_checked(pages, &ports.page_url(), &prefix).await {
        panic!(
            "{error}driver logs: {:?} {:?}\nrelay log: {}",
            firefox.driver_log(),
            chromium.driver_log(),
            relay.log_path.display()
        );
    }
    firefox.close().await.expect("close Firefox");
    chromium.close().await.expect("close Chromium");
    relay.kill().await.expect("kill the relay");
}

/// A page under test and the relay address it connects with.
#[derive(Clone, Copy)]
struct Page<'a> {
    browser: &'a Browser,
    relay_addr: &'a str,
}

impl<'a> Page<'a> {
    fn new(browser: &'a Browser, relay_addr: &'a str) -> Self {
        Self {
            browser,
            relay_addr,
        }
    }
}

/// [`run`], then no console error on either page; on a failure, what
/// went wrong and where each page's report was saved.
async fn run_checked(pages: [Page<'_>; 2], page_url: &str, prefix: &str) -> Result<(), String> {
    let [a, b] = pages;
    let outcome = match run(a, b, page_url).await {
        Ok(()) => match a.browser.check_no_page_errors().await {
            Ok(()) => b.browser.check_no_page_errors().await,
            error => error,
        },
        error => error,
    };
    let Err(error) = outcome else {
        return Ok(());
    };
    let a_report = a.browser.save_failure_report(prefix).await;
    let b_report = b.browser.save_failure_report(prefix).await;
    Err(format!("{error:#}\n\nartifacts:\n{a_report}\n{b_report}\n"))
}

async fn run(a: Page<'_>, b: Page<'_>, page_url: &str) -> anyhow::Result<()> {
    a.browser.goto(page_url).await?;
    b.browser.goto(page_url).await?;
    let id_a = connect(a).await?;
    let id_b = connect(b).await?;
    anyhow::ensure!(id_a != id_b, "both pages show the peer id {id_a}");
    let started = Instant::now();
    for (page, other) in [(a, &id_b), (b, &id_a)] {
        wait_peer(page.browser, other, "listed", STEP_TIMEOUT, |_| None).await?;
    }
    for (page, other) in [(a, &id_b), (b, &id_a)] {
        wait_peer(page.browser, other, "direct", STEP_TIMEOUT, is_direct).await?;
    }
    eprintln!(
        "first upgrade: both direct {:.1} s after both reserved",
        started.elapsed().as_secs_f64()
    );
    let (small, large) = if id_a < id_b {
        ((a, &id_a), (b, &id_b))
    } else {
        ((b, &id_b), (a, &id_a))
    };
    for round in 0..ROUNDS {
        // The larger id first: the other page, which dials the WebRTC
        // connection, stays; then the dialer itself reloads.
        let ((reloader, reloader_id), (stayer, stayer_id)) = if round % 2 == 0 {
            (large, small)
        } else {
            (small, large)
        };
        let dials = if reloader_id < stayer_id {
            "dials"
        } else {
            "is dialed"
        };
        eprintln!(
            "round {}: page {} ({reloader_id}, which {dials}) reloads",
            round + 1,
            reloader.browser.name
        );
        reload_and_come_back(
            (reloader, reloader_id),
            (stayer.browser, stayer_id),
            round + 1,
        )
        .await
        .with_context(|| {
            format!(
                "round {} (page {} reloads)",
                round + 1,
                reloader.browser.name
            )
        })?;
    }
    Ok(())
}

/// `reloader` reloads, clicks Connect, and the pair is direct again on a
/// new link that carries chat both ways and the pings.
async fn reload_and_come_back(
    (page, reloader_id): (Page<'_>, &str),
    (stayer, stayer_id): (&Browser, &str),
    round: usize,
) -> anyhow::Result<()> {
    let reloader = page.browser;
    let before = stayer.snapshot().await?;
    let old_link = before
        .peer(reloader_id)
        .and_then(|peer| peer.link.clone())
        .with_context(|| {
            format!(
                "page {} shows no link to {reloader_id}\n{before}",
                stayer.name
            )
        })?;
    // The console starts anew with the document: read it first.
    reloader.check_no_page_errors().await?;
    reloader.reload().await?;
    let reloaded = Instant::now();
    // The old link goes with the old page: the stayer stops showing it
    // as direct at once (its SCTP association ended), long before the
    // liveness rule would call it reconnecting (3 s).
    wait_peer(
        stayer,
        reloader_id,
        &format!("no longer direct on the old link (connection {old_link})"),
        OLD_LINK_GONE_WITHIN,
        |peer| {
            (peer.state.as_deref() == Some("direct") && peer.link.as_deref() == Some(&old_link))
                .then(|| format!("still direct on it: {:?}", peer.text))
        },
    )
    .await?;
    eprintln!(
        "round {round}: page {} stopped showing the old link as direct {:.1} s after the reload",
        stayer.name,
        reloaded.elapsed().as_secs_f64()
    );
    let id = connect(page).await?;
    anyhow::ensure!(
        id == reloader_id,
        "page {} has peer id {id} after the reload, not {reloader_id}",
        reloader.name
    );
    let reserved = Instant::now();
    // The stayer shows the reloaded page direct on a new link (not the
    // old one, dead since the reload), with the round trip of its pings;
    // the reloaded page shows the stayer direct.
    wait_peer(
        stayer,
        reloader_id,
        &format!("direct on a new link (not connection {old_link}), its round trip shown"),
        BACK_DIRECT_TIMEOUT,
        |peer| match &peer.link {
            Some(link) if *link != old_link => is_direct_with_rtt(peer),
            link => Some(format!("on connection {link:?}, the old link {old_link}")),
        },
    )
    .await?;
    wait_peer(
        reloader,
        stayer_id,
        "direct, its round trip shown",
        BACK_DIRECT_TIMEOUT.saturating_sub(reserved.elapsed()),
        is_direct_with_rtt,
    )
    .await?;
    eprintln!(
        "round {round}: both direct again {:.1} s after the reloaded page reserved",
        reserved.elapsed().as_secs_f64()
    );
    // The relayed connections give way: the direct link alone is left.
    for (page, other) in [(stayer, reloader_id), (reloader, stayer_id)] {
        wait_peer(
            page,
            other,
            "direct with no relayed connection left",
            TIMEOUT,
            |peer| {
                is_direct(peer).or_else(|| {
                    (peer.relayed != Some(0))
                        .then(|| format!("relayed connections {:?}", peer.relayed))
                })
            },
        )
        .await?;
    }
    chat_over_direct_link(reloader, stayer, reloader_id, round).await?;
    chat_over_direct_link(stayer, reloader, stayer_id, round).await?;
    reloader
        .screenshot(PREFIX, &format!("round-{round}"))
        .await?;
    stayer.screenshot(PREFIX, &format!("round-{round}")).await?;
    Ok(())
}

/// Fills in the relay's address, clicks Connect and waits for the
/// reservation; returns the page's peer id.
async fn connect(
    Page {
        browser: page,
        relay_addr,
    }: Page<'_>,
) -> anyhow::Result<String> {
    let state = connect_to_relay(page, relay_addr, TIMEOUT).await?;
    anyhow::ensure!(
        !state.self_peer_id.is_empty(),
        "page {} shows no peer id",
        page.name
    );
    Ok(state.self_peer_id)
}

fn is_direct(peer: &e2e::PeerEntry) -> Option<String> {
    (peer.state.as_deref() != Some("direct")).then(|| format!("link state {:?}", peer.state))
}

fn is_direct_with_rtt(peer: &e2e::PeerEntry) -> Option<String> {
    is_direct(peer).or_else(|| {
        peer.rtt_ms()
            .is_none()
            .then(|| format!("no round trip shown: {:?}", peer.text))
    })
}

/// Waits until `page` lists `peer` and `ok` (None: fine) holds for its entry.
async fn wait_peer(
    page: &Browser,
    peer: &str,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&e2e::PeerEntry) -> Option<String>,
) -> anyhow::Result<PageState> {
    wait_page(
        page,
        &format!("#peers shows {peer} {what}"),
        timeout,
        |state| match state.peer(peer) {
            Some(entry) => ok(entry),
            None => Some(format!("#peers does not list {peer}")),
        },
    )
    .await
}

/// `from` sends messages until one arrives at `to` straight over their
/// direct link (`data-via="direct"`), for at most [`CHAT_DIRECT_WITHIN`].
async fn chat_over_direct_link(
    from: &Browser,
    to: &Browser,
    from_id: &str,
    round: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut vias = Vec::new();
    for attempt in 1.. {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        let text = format!(
            "hello from {} (round {round}, #{attempt}) {nanos:09}",
            from.name
        );
        from.fill("#chat-input", &text).await?;
        from.press_enter("#chat-input").await?;
        let what = format!(
            "page {}'s #chat-log shows {text:?} from page {} ({from_id})",
            to.name, from.name
        );
        let text = &text;
        let via = wait_until(&what, STEP_TIMEOUT, || async move {
            let receiver = to.snapshot().await?;
            Ok(match receiver.message(from_id, text) {
                Some(line) => Check::Done(line.via.clone().unwrap_or_default()),
                None => Check::NotYet(format!("not there\n{receiver}")),
            })
        })
        .await?;
        if via == "direct" {
            eprintln!(
                "round {round}: chat {} -> {} crossed the direct link with message #{attempt}, {:.1} s after the first (earlier ones came via {vias:?})",
                from.name,
                to.name,
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        vias.push(via);
        if started.elapsed() >= CHAT_DIRECT_WITHIN {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let receiver = to.snapshot().await?;
    anyhow::bail!(
        "no message from page {} reached page {} over the direct link within {CHAT_DIRECT_WITHIN:?}: {} messages came via {vias:?}\n{receiver}",
        from.name,
        to.name,
        vias.len()
    )
}
