//! Gossipsub interoperability with js-libp2p: our page (gossipsub-lite)
//! and the js-libp2p chat page (`e2e/js-peer/chat.html`: libp2p 3.x with
//! `@libp2p/gossipsub`, from npm), each in its own headless Chromium on
//! one relay over WebSocket. Their discovery records cross through the
//! relay's gossipsub (rust-libp2p's), so each lists the other; they go
//! direct over browser-to-browser WebRTC (of two pages, the one with the
//! smaller peer id dials); the relayed connection between them closes;
//! then a chat message goes each way, once with the relay up and once
//! after the relay process was killed: gossip between gossipsub-lite and
//! `@libp2p/gossipsub` with no relay between them. Neither page may
//! report an error on its console.
//!
//! That the second round went over the direct link: the direct connection
//! is the only one left between the pages (our page's `#peers` entry
//! counts no relayed connection, js-libp2p lists none), the relay is gone,
//! and each receiver names the sender itself as the peer the message came
//! from (our page's `data-via="direct"`; on the js page, the propagation
//! source `@libp2p/gossipsub` reports). With the relay up, which copy
//! comes first (the sender's or the relay's) is a race, and in about one
//! run of four here the relay's did: the first round checks delivery only.
//!
//! Needs the built page (`scripts/build-page`), the built js-libp2p pages
//! (`scripts/build-js-peer`), chromedriver and Chromium.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::json;

use e2e::{
    Browser, Check, ChromeDriver, JsConnection, PageRelay, PageState, RelayPorts, RelayProcess,
    TIMEOUT, connect_to_relay, wait_page, wait_until,
};

const PREFIX: &str = "js_chat_interop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_page_and_the_js_libp2p_chat_page_discover_each_other_go_direct_and_chat_over_gossipsub()
 {
    let chat_page = js_chat_page().unwrap_or_else(|error| panic!("{error:#}"));
    let PageRelay {
        process,
        ports,
        state_dir: _state_dir,
        ..
    } = PageRelay::start(PREFIX, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    // Declared after the relay: dropped (browsers first, then
    // chromedriver) before it, even when the test panics.
    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let rust = Browser::open(&driver, "rust").await.expect("browser opens");
    let js = Browser::open(&driver, "js").await.expect("browser opens");
    let js_chat = JsChat { browser: &js };

    let relay_log = process.log_path.clone();
    let mut relay = Some(process);
    let outcome = match run(&mut relay, &ports, &rust, js_chat, &chat_page).await {
        Ok(()) => match rust.check_no_page_errors().await {
            Ok(()) => js.check_no_page_errors().await,
            error => error,
        },
        error => error,
    };
    if let Err(error) = outcome {
        let rust_report = rust.save_failure_report(PREFIX).await;
        let js_report = js.save_failure_report(PREFIX).await;
        let js_state = match js_chat.state().await {
            Ok(state) => state.to_string(),
            Err(error) => format!("(cannot read the js-libp2p chat page: {error:#})"),
        };
        panic!(
            "{error:#}\n\n{js_state}\nartifacts:\n{rust_report}\n{js_report}\nchromedriver log: {}\nrelay log: {}",
            driver.log_path().display(),
            relay_log.display()
        );
    }
    rust.close().await.expect("close the browser");
    js.close().await.expect("close the browser");
    if let Some(relay) = relay {
        relay.kill().await.expect("kill the relay");
    }
}

async fn run(
    relay: &mut Option<RelayProcess>,
    ports: &RelayPorts,
    rust: &Browser,
    js: JsChat<'_>,
    chat_page: &url::Url,
) -> anyhow::Result<()> {
    let relay_ws = relay
        .as_ref()
        .and_then(|relay| relay.multiaddr("ws", "127.0.0.1"))
        .ok_or_else(|| anyhow::anyhow!("the relay printed no WebSocket address: {relay:?}"))?
        .to_owned();
    let relay_ws = relay_ws.as_str();

    // Our page connects and reserves.
    rust.goto(&ports.page_url()).await?;
    let ours = connect_to_relay(rust, relay_ws, TIMEOUT).await?;
    let our_id = ours.self_peer_id.clone();

    // The js-libp2p chat page connects the same way, with the relay's
    // STUN service, as bench/browser-pair.mjs opens it.
    let mut url = chat_page.clone();
    url.query_pairs_mut()
        .append_pair("relay", relay_ws)
        .append_pair("ice", &format!("stun:127.0.0.1:{}", ports.stun));
    js.browser.goto(url.as_str()).await?;
    js.wait("Connect is enabled", |state| {
        state.connect_enabled.then_some(()).ok_or("not yet")
    })
    .await?;
    js.browser.click("#connect").await?;
    let js_state = js
        .wait("#status is ready (reserved at the relay)", |state| {
            (state.state == "ready").then_some(()).ok_or("not ready")
        })
        .await?;
    let js_id = js_state.peer_id.clone();
    eprintln!("our page {our_id}, js-libp2p chat page {js_id}");

    // 1. Discovery records cross between gossipsub-lite and
    // @libp2p/gossipsub through the relay: each lists the other.
    wait_page(
        rust,
        &format!("#peers lists the js-libp2p page {js_id}"),
        TIMEOUT,
        |page| (!page.lists_peer(&js_id)).then(|| format!("#peers does not list {js_id}")),
    )
    .await?;
    js.wait(&format!("#peers lists our page {our_id}"), |state| {
        state
            .peers
            .contains(&our_id)
            .then_some(())
            .ok_or("#peers does not list it")
    })
    .await?;

    // 2. The direct WebRTC connection comes up, and 3. the relayed one
    // closes: our page shows the js page as direct with no relayed
    // connection left, and js-libp2p has only direct connections to us.
    wait_page(
        rust,
        &format!("#peers shows {js_id} direct, with no relayed connection left"),
        TIMEOUT,
        |page| {
            let peer = page.peer(&js_id);
            match peer.map(|peer| (peer.state.as_deref(), peer.relayed)) {
                Some((Some("direct"), Some(0))) => None,
                found => Some(format!(
                    "its (link state, relayed connections) is {found:?}"
                )),
            }
        },
    )
    .await?;
    wait_js_only_direct(js, &our_id).await?;
    // js-libp2p's gossipsub knows our page subscribes to the chat topic,
    // and has a gossipsub stream each way with it: opened on the direct
    // connection, the only one left between them. Publishing straight to
    // our page needs the outbound one (without it, js-libp2p publishes to
    // the relay alone, which forwards).
    wait_until(
        "the js-libp2p page's gossipsub has our page as a chat subscriber, with a stream each way",
        TIMEOUT,
        || async {
            let gossip = js.gossip(&our_id).await?;
            Ok(
                if gossip.chat_subscriber && gossip.inbound && gossip.outbound {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("{gossip:?}\n{}", js.state().await?))
                },
            )
        },
    )
    .await?;

    // 3. Chat both ways with the relay still up: each receiver may get
    // the message from the sender or from the relay, whichever copy comes
    // first (both are in each page's chat mesh).
    chat_both_ways(rust, js, &our_id, &js_id, "relay up", false).await?;
    check_only_direct(&rust.snapshot().await?, js, &js_id, &our_id).await?;

    // Then with the relay process gone: gossip can only flow over the
    // direct link, and each receiver names the sender itself as the peer
    // the message came from.
    relay
        .take()
        .context("the relay runs")?
        .kill()
        .await
        .context("kill the relay")?;
    wait_page(
        rust,
        "#status leaves connected after the relay stopped",
        TIMEOUT,
        |page| {
            page.is_connected()
                .then(|| "#status is still connected".to_owned())
        },
    )
    .await?;
    chat_both_ways(rust, js, &our_id, &js_id, "relay down", true).await?;

    // Still no relayed connection: the messages had only the direct one.
    check_only_direct(&rust.snapshot().await?, js, &js_id, &our_id).await?;
    rust.screenshot(PREFIX, "chatted").await?;
    js.browser.screenshot(PREFIX, "chatted").await?;
    Ok(())
}

/// A message from our page to the js-libp2p page, then one back. With
/// `straight`, each must have come from its sender itself, not forwarded.
async fn chat_both_ways(
    rust: &Browser,
    js: JsChat<'_>,
    our_id: &str,
    js_id: &str,
    round: &str,
    straight: bool,
) -> anyhow::Result<()> {
    let text = unique(&format!("hello from our page ({round})"));
    rust.fill("#chat-input", &text).await?;
    rust.press_enter("#chat-input").await?;
    let find = |state: &JsChatState| {
        state
            .chat
            .iter()
            .find(|line| line.from == our_id && line.text == text)
            .cloned()
    };
    let state = js
        .wait(
            &format!("#chat-log shows {text:?} from {our_id}"),
            |state| find(state).map(drop).ok_or("not there"),
        )
        .await?;
    let via = find(&state).context("the chat line went away")?.via;
    anyhow::ensure!(
        !straight || via == our_id,
        "the js-libp2p page got {text:?} from {via}, not straight from our page {our_id}"
    );
    eprintln!("our page -> js-libp2p chat page ({round}): delivered, from {via}");

    let text = unique(&format!("hello from the js-libp2p page ({round})"));
    js.send(&text).await?;
    let page = wait_page(
        rust,
        &format!("#chat-log shows {text:?} from {js_id}"),
        TIMEOUT,
        |page| (!page.has_message(js_id, &text)).then(|| "not there".to_owned()),
    )
    .await?;
    let via = page.message(js_id, &text).and_then(|line| line.via.clone());
    anyhow::ensure!(
        !straight || via.as_deref() == Some("direct"),
        "our page got {text:?} via {via:?}, not straight from the js-libp2p page on the direct link"
    );
    eprintln!("js-libp2p chat page -> our page ({round}): delivered, via {via:?}");
    Ok(())
}

/// `<repo>/e2e/js-peer/chat.html` as a `file://` URL (a secure context, as
/// WebCrypto needs), or an error telling how to build it.
fn js_chat_page() -> anyhow::Result<url::Url> {
    let dir = e2e::repo_root().join("e2e/js-peer");
    anyhow::ensure!(
        dir.join("dist/chat.js").is_file(),
        "the js-libp2p chat page is not built: {} is missing. Run `scripts/build-js-peer`, \
         then run the tests again",
        dir.join("dist/chat.js").display()
    );
    let page = dir.join("chat.html");
    url::Url::from_file_path(&page)
        .map_err(|()| anyhow::anyhow!("{} is not an absolute path", page.display()))
}

fn unique(text: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{text} #{nanos:09}")
}

async fn wait_js_only_direct(js: JsChat<'_>, our_id: &str) -> anyhow::Result<()> {
    wait_until(
        "the js-libp2p page's connections to our page are all direct",
        TIMEOUT,
        || async {
            let connections = js.connections(our_id).await?;
            Ok(
                if !connections.is_empty() && connections.iter().all(|conn| conn.direct) {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("{connections:?}\n{}", js.state().await?))
                },
            )
        },
    )
    .await
}

async fn check_only_direct(
    ours: &PageState,
    js: JsChat<'_>,
    js_id: &str,
    our_id: &str,
) -> anyhow::Result<()> {
    let peer = ours.peer(js_id);
    anyhow::ensure!(
        peer.map(|peer| (peer.state.as_deref(), peer.relayed)) == Some((Some("direct"), Some(0))),
        "after the chat, our page's entry for {js_id} is {peer:?}, not direct with no relayed connection"
    );
    let connections = js.connections(our_id).await?;
    anyhow::ensure!(
        !connections.is_empty() && connections.iter().all(|conn| conn.direct),
        "after the chat, the js-libp2p page's connections to our page are {connections:?}, not only direct ones"
    );
    Ok(())
}

/// What the js-libp2p chat page shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsChatState {
    /// `#status[data-state]`: loading, starting, idle, connecting, ready
    /// or failed.
    state: String,
    status_text: String,
    connect_enabled: bool,
    peer_id: String,
    self_addr: String,
    /// `#peers li[data-peer-id]`.
    peers: Vec<String>,
    chat: Vec<JsChatLine>,
    log: Vec<String>,
}

/// What `jsChat.gossip` says of a peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsGossip {
    chat_subscriber: bool,
    /// A gossipsub stream from the peer is open.
    inbound: bool,
    /// A gossipsub stream to the peer is open.
    outbound: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct JsChatLine {
    /// Who signed it.
    from: String,
    /// The peer it came from (its sender, or one that forwarded it).
    via: String,
    text: String,
}

impl std::fmt::Display for JsChatState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "--- js-libp2p chat page {}", self.peer_id)?;
        writeln!(f, "  #status: {} ({:?})", self.state, self.status_text)?;
        writeln!(f, "  #self-addr: {:?}", self.self_addr)?;
        writeln!(f, "  #peers: {:?}", self.peers)?;
        for line in &self.chat {
            writeln!(f, "  chat: {line:?}")?;
        }
        for line in self.log.iter().rev().take(30).rev() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// The js-libp2p chat page open in `browser`, read from its DOM and
/// driven through `window.jsChat`.
#[derive(Debug, Clone, Copy)]
struct JsChat<'a> {
    browser: &'a Browser,
}

impl JsChat<'_> {
    async fn state(&self) -> anyhow::Result<JsChatState> {
        let value = self
            .browser
            .run_async(
                "const text = (id) => (document.getElementById(id) || {}).textContent || '';
                 const connect = document.getElementById('connect');
                 return {
                   state: (document.getElementById('status') || { dataset: {} }).dataset.state || '',
                   statusText: text('status'),
                   connectEnabled: connect != null && !connect.disabled,
                   peerId: text('peer-id'),
                   selfAddr: text('self-addr'),
                   peers: Array.from(document.querySelectorAll('#peers li[data-peer-id]'), (li) => li.dataset.peerId),
                   chat: Array.from(document.querySelectorAll('#chat-log li'), (li) => ({
                     from: li.dataset.from || '',
                     via: li.dataset.via || '',
                     text: li.textContent.slice((li.dataset.from || '').length + 2),
                   })),
                   log: Array.from(document.querySelectorAll('#log li'), (li) => li.textContent),
                 };",
                vec![],
            )
            .await?;
        serde_json::from_value(value).context("read the js-libp2p chat page's state")
    }

    /// Waits until `ok` holds on the page; `Err` says what is wrong.
    async fn wait(
        &self,
        what: &str,
        ok: impl Fn(&JsChatState) -> Result<(), &'static str>,
    ) -> anyhow::Result<JsChatState> {
        let ok = &ok;
        wait_until(
            &format!("the js-libp2p chat page: {what}"),
            TIMEOUT,
            || async move {
                let state = self.state().await?;
                Ok(match ok(&state) {
                    Ok(()) => Check::Done(state),
                    Err(wrong) => Check::NotYet(format!("{wrong}\n{state}")),
                })
            },
        )
        .await
    }

    async fn send(&self, text: &str) -> anyhow::Result<()> {
        self.browser
            .run_async("await window.jsChat.send(args[0]);", vec![json!(text)])
            .await
            .map(drop)
    }

    async fn connections(&self, peer: &str) -> anyhow::Result<Vec<JsConnection>> {
        let value = self
            .browser
            .run_async(
                "return await window.jsChat.connections(args[0]);",
                vec![json!(peer)],
            )
            .await?;
        serde_json::from_value(value).context("read jsChat.connections")
    }

    async fn gossip(&self, peer: &str) -> anyhow::Result<JsGossip> {
        let value = self
            .browser
            .run_async(
                "return await window.jsChat.gossip(args[0]);",
                vec![json!(peer)],
            )
            .await?;
        serde_json::from_value(value).context("read jsChat.gossip")
    }
}
