//! Interoperability with js-libp2p: our page and a js-libp2p page (libp2p
//! 3.x with `@libp2p/webrtc`, from npm) connect over `/webrtc` through our
//! relay, in both directions, and exchange data on a stream of the direct
//! connection. Our page runs in Chromium in one test and in Firefox in the
//! other; the js-libp2p page runs in Chromium in both. A third test has the
//! js-libp2p page reach the relay over WebRTC-direct: it reserves, pings
//! the relay on streams it closes (js-libp2p waits for the relay's FIN_ACK
//! on each close, and fails it after 10 s without one), and our page
//! reaches it through that reservation.
//!
//! Needs the built page (`scripts/build-page`), the built js-libp2p peer
//! (`scripts/build-js-peer`), chromedriver and Chromium, geckodriver and
//! Firefox.

use e2e::{
    Browser, BrowserKind, Check, ChromeDriver, JsPeer, PageRelay, PageState, RelayPorts,
    RelayProcess, TIMEOUT, click_connect,
};
use serde::Deserialize;

/// Pings per direction, on one stream.
const PING_ROUNDS: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_page_and_a_js_libp2p_page_connect_over_webrtc_in_both_directions() {
    interop("js_interop", BrowserKind::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_page_in_firefox_and_a_js_libp2p_page_connect_over_webrtc_in_both_directions() {
    interop("js_interop_firefox", BrowserKind::Firefox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_libp2p_page_reserves_and_pings_over_webrtc_direct_and_our_page_reaches_it() {
    js_libp2p_over_webrtc_direct("js_interop_webrtc_direct").await;
}

async fn js_libp2p_over_webrtc_direct(prefix: &str) {
    e2e::js_peer_page().unwrap_or_else(|error| panic!("{error:#}"));
    let PageRelay {
        process: relay,
        ports,
        state_dir: _state_dir,
        ..
    } = PageRelay::start(prefix, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let driver = ChromeDriver::start(prefix)
        .await
        .expect("chromedriver starts");
    let rust = Browser::open(&driver, "rust").await.expect("browser opens");
    let js = Browser::open(&driver, "js").await.expect("browser opens");
    let js_peer = JsPeer { browser: &js };

    if let Err(error) = run_webrtc_direct(&relay, &ports, &rust, js_peer).await {
        let rust_report = rust.save_failure_report(prefix).await;
        let js_report = js.save_failure_report(prefix).await;
        let js_state = match js_peer.state().await {
            Ok(state) => state.to_string(),
            Err(error) => format!("(cannot read the js-libp2p page: {error:#})"),
        };
        panic!(
            "{error:#}\n\n{js_state}\nartifacts:\n{rust_report}\n{js_report}\nchromedriver log: {}\nrelay log: {}",
            driver.log_path().display(),
            relay.log_path.display()
        );
    }
    rust.close().await.expect("close the browser");
    js.close().await.expect("close the browser");
    relay.kill().await.expect("kill the relay");
}

/// What `jsPeer.ping` returns.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsPingAny {
    connection: e2e::JsConnection,
    rtts: Vec<f64>,
    /// The whole exchange, the stream's close included.
    total_ms: f64,
}

async fn run_webrtc_direct(
    relay: &RelayProcess,
    ports: &RelayPorts,
    rust: &Browser,
    js: JsPeer<'_>,
) -> anyhow::Result<()> {
    let relay_webrtc_direct = relay
        .multiaddr("webrtc-direct", "127.0.0.1")
        .ok_or_else(|| anyhow::anyhow!("the relay printed no WebRTC-direct address: {relay:?}"))?;
    let relay_id = relay_webrtc_direct
        .rsplit("/p2p/")
        .next()
        .ok_or_else(|| anyhow::anyhow!("no peer id in {relay_webrtc_direct}"))?
        .to_owned();

    // The js-libp2p page reaches the relay over WebRTC-direct and reserves.
    // A second load is allowed for a race that is not this test's subject:
    // libp2p-webrtc 0.10 takes the client's data channels only once its
    // Noise handshake is over, and js-libp2p opens its identify and
    // reservation streams the moment its side of Noise ends, so now and
    // then (2 of 9 runs here) the relay never sees them. Our page waits
    // for the relay's first stream instead (webrtc-p2p `direct.rs`).
    let stun = format!("stun:127.0.0.1:{}", ports.stun);
    let url = e2e::js_peer_url(relay_webrtc_direct, &[stun])?;
    let mut attempt = 1;
    let js_state = loop {
        js.browser.goto(&url).await?;
        let ready = e2e::wait_until(
            "the js-libp2p page is ready with a /p2p-circuit/webrtc address through WebRTC-direct",
            TIMEOUT,
            || async {
                let state = js.state().await?;
                Ok(
                    if state.state == "ready" && state.webrtc_addr.contains("/webrtc-direct/") {
                        Check::Done(state)
                    } else {
                        Check::NotYet(state.to_string())
                    },
                )
            },
        )
        .await;
        match ready {
            Ok(state) => break state,
            Err(error) if attempt == 1 => {
                eprintln!("first load did not reserve (loading it again): {error:#}");
                attempt += 1;
            }
            Err(error) => return Err(error.context("second load")),
        }
    };
    let reserved_ms = js
        .browser
        .run_async("return window.jsPeer.reservedAfterMs();", vec![])
        .await?;
    eprintln!("js-libp2p over WebRTC-direct: reserved {reserved_ms} ms after start");

    // Streams to the relay over WebRTC-direct, each closed by js-libp2p,
    // which waits for the relay's FIN_ACK (and fails without one).
    for round in 1..=2 {
        let value = js
            .browser
            .run_async(
                "return await window.jsPeer.ping(args[0], args[1]);",
                vec![relay_id.clone().into(), PING_ROUNDS.into()],
            )
            .await?;
        let ping: JsPingAny = serde_json::from_value(value)?;
        anyhow::ensure!(
            ping.connection.remote_addr.contains("/webrtc-direct")
                && ping.rtts.len() == PING_ROUNDS as usize,
            "the relay ping did not run {PING_ROUNDS} rounds over WebRTC-direct: {ping:?}"
        );
        eprintln!(
            "js -> relay over WebRTC-direct, stream {round}: {PING_ROUNDS} pings {:?} ms, {:.0} ms with the close",
            ping.rtts, ping.total_ms
        );
    }

    // Our page (over WebSocket) reaches the js page through its
    // reservation over WebRTC-direct and goes direct.
    let relay_ws = relay
        .multiaddr("ws", "127.0.0.1")
        .ok_or_else(|| anyhow::anyhow!("the relay printed no WebSocket address: {relay:?}"))?;
    rust.goto(&ports.page_url()).await?;
    // Typed once the page is up: a click before the page has loaded is
    // lost, and the prefill would overwrite what was typed.
    click_connect(rust, relay_ws, TIMEOUT).await?;
    let ours = wait_rust(rust, "#status is connected", |page| {
        (page.is_connected() && page.self_addr.contains("/p2p-circuit/"))
            .then_some(())
            .ok_or_else(|| format!("#status {:?}", page.status))
    })
    .await?;
    let our_id = ours.self_peer_id.clone();
    rust.fill("#dial-addr", &js_state.webrtc_addr).await?;
    rust.click("#dial").await?;
    wait_rust_shows_direct(rust, &js_state.peer_id).await?;
    let ping = js.ping_direct(&our_id, PING_ROUNDS).await?;
    check_ping(&ping, &our_id)?;
    eprintln!(
        "rust -> js (reserved over WebRTC-direct): direct over {}, pings {:?} ms",
        ping.connection.remote_addr, ping.rtts
    );
    Ok(())
}

/// Our page in a `kind` browser, the js-libp2p page in Chromium.
async fn interop(prefix: &str, kind: BrowserKind) {
    e2e::js_peer_page().unwrap_or_else(|error| panic!("{error:#}"));
    let PageRelay {
        process: relay,
        ports,
        state_dir: _state_dir,
        ..
    } = PageRelay::start(prefix, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));

    let driver = ChromeDriver::start(prefix)
        .await
        .expect("chromedriver starts");
    let rust = match kind {
        BrowserKind::Chromium => Browser::open(&driver, "rust").await,
        BrowserKind::Firefox => Browser::launch(kind, prefix, "rust").await,
    }
    .unwrap_or_else(|error| panic!("{kind} opens: {error:#}"));
    let js = Browser::open(&driver, "js").await.expect("browser opens");
    let js_peer = JsPeer { browser: &js };

    if let Err(error) = run(&relay, &ports, &rust, js_peer, prefix).await {
        let rust_report = rust.save_failure_report(prefix).await;
        let js_report = js.save_failure_report(prefix).await;
        let js_state = match js_peer.state().await {
            Ok(state) => state.to_string(),
            Err(error) => format!("(cannot read the js-libp2p page: {error:#})"),
        };
        panic!(
            "our page in {kind}: {error:#}\n\n{js_state}\nartifacts:\n{rust_report}\n{js_report}\nchromedriver log: {}\nour browser's driver log: {:?}\nrelay log: {}",
            driver.log_path().display(),
            rust.driver_log(),
            relay.log_path.display()
        );
    }
    rust.close().await.expect("close the browser");
    js.close().await.expect("close the browser");
    relay.kill().await.expect("kill the relay");
}

async fn run(
    relay: &RelayProcess,
    ports: &RelayPorts,
    rust: &Browser,
    js: JsPeer<'_>,
    prefix: &str,
) -> anyhow::Result<()> {
    let relay_ws = relay
        .multiaddr("ws", "127.0.0.1")
        .ok_or_else(|| anyhow::anyhow!("the relay printed no WebSocket address: {relay:?}"))?;

    // Our page connects to the relay and gets its circuit address.
    rust.goto(&ports.page_url()).await?;
    // Typed once the page is up: a click before the page has loaded is
    // lost, and the prefill would overwrite what was typed.
    click_connect(rust, relay_ws, TIMEOUT).await?;
    let ours = wait_rust(
        rust,
        "#status is connected with a circuit address",
        |page| {
            (page.is_connected() && page.self_addr.contains("/p2p-circuit/"))
                .then_some(())
                .ok_or_else(|| {
                    format!("#status {:?}, #self-addr {:?}", page.status, page.self_addr)
                })
        },
    )
    .await?;
    let our_id = ours.self_peer_id.clone();
    let our_webrtc_addr =
        ours.self_addr
            .replacen("/p2p-circuit/p2p/", "/p2p-circuit/webrtc/p2p/", 1);

    // The js-libp2p page does the same, with the relay's STUN service.
    let stun = format!("stun:127.0.0.1:{}", ports.stun);
    js.browser
        .goto(&e2e::js_peer_url(relay_ws, &[stun])?)
        .await?;
    let js_state = e2e::wait_until(
        "the js-libp2p page is ready with a /p2p-circuit/webrtc address",
        TIMEOUT,
        || async {
            let state = js.state().await?;
            Ok(if state.state == "ready" && !state.webrtc_addr.is_empty() {
                Check::Done(state)
            } else {
                Check::NotYet(state.to_string())
            })
        },
    )
    .await?;
    let js_id = js_state.peer_id.clone();

    // Rust dials, js answers: our page is the WebRTC offerer.
    rust.fill("#dial-addr", &js_state.webrtc_addr).await?;
    rust.click("#dial").await?;
    wait_rust_shows_direct(rust, &js_id).await?;
    let ping = js.ping_direct(&our_id, PING_ROUNDS).await?;
    check_ping(&ping, &our_id)?;
    eprintln!(
        "rust -> js: direct over {}, js pinged rust {PING_ROUNDS} times: {:?} ms",
        ping.connection.remote_addr, ping.rtts
    );
    rust.screenshot(prefix, "rust-dialed-js").await?;
    check_identified(js, &our_id).await?;

    // Start over: js hangs up, and our page sees the link go.
    js.hang_up(&our_id).await?;
    wait_rust(
        rust,
        "the js-libp2p peer is no longer direct",
        |page| match peer_state(page, &js_id) {
            Some("direct") => Err("still direct".to_owned()),
            _ => Ok(()),
        },
    )
    .await?;

    // js dials, Rust answers: our page is the WebRTC answerer.
    let connection = js.dial(&our_webrtc_addr).await?;
    anyhow::ensure!(
        connection.direct && connection.peer == our_id,
        "js-libp2p dialed {our_webrtc_addr} and got {connection:?}, not a direct connection to {our_id}"
    );
    wait_rust_shows_direct(rust, &js_id).await?;
    let ping = js.ping_direct(&our_id, PING_ROUNDS).await?;
    check_ping(&ping, &our_id)?;
    eprintln!(
        "js -> rust: direct over {}, js pinged rust {PING_ROUNDS} times: {:?} ms",
        ping.connection.remote_addr, ping.rtts
    );
    rust.screenshot(prefix, "js-dialed-rust").await?;
    Ok(())
}

/// js-libp2p read our page's identify answer (`chat_network::identify`):
/// our agent, and the protocols it serves (js-libp2p starts gossipsub to
/// a peer once identify names `/meshsub/`).
async fn check_identified(js: JsPeer<'_>, our_id: &str) -> anyhow::Result<()> {
    let identified = e2e::wait_until(
        "js-libp2p's identify knows our page's agent and protocols",
        TIMEOUT,
        || async {
            let identified = js.identified(our_id).await?;
            let done = identified.as_ref().is_some_and(|known| {
                known
                    .agent
                    .as_deref()
                    .is_some_and(|agent| agent.starts_with("browser-chat-web-peer/"))
                    && ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"]
                        .iter()
                        .all(|p| known.protocols.iter().any(|q| q == p))
                    && known.protocols.iter().any(|p| p.starts_with("/meshsub/"))
            });
            Ok(if done {
                Check::Done(identified)
            } else {
                Check::NotYet(format!("{identified:?}"))
            })
        },
    )
    .await?;
    eprintln!("js-libp2p identified our page: {identified:?}");
    Ok(())
}

fn check_ping(ping: &e2e::JsPing, our_id: &str) -> anyhow::Result<()> {
    let connection = &ping.connection;
    anyhow::ensure!(
        connection.direct
            && !connection.limited
            && connection.peer == our_id
            && connection.remote_addr.contains("/webrtc"),
        "the ping did not run over a direct WebRTC connection to {our_id}: {connection:?}"
    );
    anyhow::ensure!(
        ping.rtts.len() == PING_ROUNDS as usize,
        "{} of {PING_ROUNDS} pings came back: {:?}",
        ping.rtts.len(),
        ping.rtts
    );
    Ok(())
}

fn peer_state<'a>(page: &'a PageState, peer: &str) -> Option<&'a str> {
    page.peers
        .iter()
        .find(|entry| entry.peer_id == peer)
        .and_then(|entry| entry.state.as_deref())
}

async fn wait_rust_shows_direct(rust: &Browser, js_id: &str) -> anyhow::Result<()> {
    wait_rust(
        rust,
        &format!("#peers shows the js-libp2p peer {js_id} as direct"),
        |page| match peer_state(page, js_id) {
            Some("direct") => Ok(()),
            other => Err(format!("its link state is {other:?}")),
        },
    )
    .await
    .map(drop)
}

/// Waits until `ok` holds on our page; `Err` says what is wrong.
async fn wait_rust(
    rust: &Browser,
    what: &str,
    ok: impl Fn(&PageState) -> Result<(), String>,
) -> anyhow::Result<PageState> {
    let ok = &ok;
    e2e::wait_until(&format!("our page: {what}"), TIMEOUT, || async move {
        let page = rust.snapshot().await?;
        Ok(match ok(&page) {
            Ok(()) => Check::Done(page),
            Err(wrong) => Check::NotYet(format!("{wrong}\n{page}")),
        })
    })
    .await
}
