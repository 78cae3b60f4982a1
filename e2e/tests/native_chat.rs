//! A browser page and the native peer (`chat-peer`) join the same relay,
//! discover each other and chat both ways: the page over WebSocket, the
//! native peer over TCP, gossip flowing through the relay.
//!
//! Needs the built page (`dist/`), chromedriver and Chromium, and the
//! relay and chat-peer binaries next to the test executable. The page's
//! report, the relay's log and chat-peer's log go to `artifacts/`.

use std::time::{SystemTime, UNIX_EPOCH};

use e2e::{
    Browser, ChatPeerProcess, Check, ChromeDriver, PageState, RelayPorts, RelayProcess, TIMEOUT,
    wait_until,
};

/// Artifact names start with this.
const PREFIX: &str = "native_chat";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_and_a_native_peer_discover_each_other_and_chat_both_ways() {
    let page_dir = e2e::built_page_dir().unwrap_or_else(|error| panic!("{error:#}"));
    e2e::clear_artifacts(PREFIX).expect("clear earlier artifacts");
    let state_dir = tempfile::tempdir().expect("temp dir for the relay's state");
    let ports = RelayPorts::pick().expect("free ports for the relay");
    let relay_args = e2e::relay_args(&ports, state_dir.path(), &page_dir, &[]);
    let relay = RelayProcess::start(PREFIX, &relay_args)
        .await
        .unwrap_or_else(|error| panic!("the relay starts: {error:#}"));
    let relay_tcp = relay
        .multiaddr("tcp", "127.0.0.1")
        .unwrap_or_else(|| {
            panic!(
                "the relay printed no TCP address on 127.0.0.1: {:?}",
                relay.multiaddrs
            )
        })
        .to_owned();

    // Dropped before the relay, even when the test panics.
    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let page = Browser::open(&driver, "page")
        .await
        .expect("the browser opens");
    let mut native = ChatPeerProcess::start(PREFIX, &relay_tcp)
        .await
        .unwrap_or_else(|error| panic!("chat-peer starts: {error:#}"));

    if let Err(error) = run(&page, &mut native, &ports).await {
        let report = page.save_failure_report(PREFIX).await;
        panic!(
            "{error:#}\n\nartifacts:\n{report}\nchromedriver log: {}\nrelay log: {}\nchat-peer log: {}",
            driver.log_path().display(),
            relay.log_path.display(),
            native.log_path.display()
        );
    }
    drop(native);
    page.close().await.expect("close the browser");
    relay.kill().await.expect("kill the relay");
}

async fn run(
    page: &Browser,
    native: &mut ChatPeerProcess,
    ports: &RelayPorts,
) -> anyhow::Result<()> {
    // The page connects over WebSocket (its prefilled address).
    page.goto(&ports.page_url()).await?;
    let page_id = connect_page(page).await?.self_peer_id;

    // The native peer reserves over TCP.
    native
        .wait_for("a reservation on the relay", TIMEOUT, |line| {
            (line["event"] == "reserved").then_some(())
        })
        .await?;

    // Each discovers the other from its signed record.
    let native_id = native.peer_id.clone();
    native
        .wait_for(
            &format!("discovering the page {page_id}"),
            TIMEOUT,
            |line| {
                (line["event"] == "discovered" && line["peer"] == page_id.as_str()).then_some(())
            },
        )
        .await?;
    wait_page(
        page,
        &format!("#peers lists the native peer {native_id}"),
        |state| {
            (!state.lists_peer(&native_id)).then(|| format!("#peers does not list {native_id}"))
        },
    )
    .await?;

    // Page to native peer.
    let text = unique("hello from the page");
    page.fill("#chat-input", &text).await?;
    page.press_enter("#chat-input").await?;
    native
        .wait_for(
            &format!("the page's message {text:?} from {page_id}"),
            TIMEOUT,
            |line| {
                (line["event"] == "chat"
                    && line["own"] == false
                    && line["peer"] == page_id.as_str()
                    && line["text"] == text.as_str())
                .then_some(())
            },
        )
        .await?;

    // Native peer to page, attributed to the native peer's id.
    let text = unique("hello from the terminal");
    native.send_line(&text).await?;
    wait_page(
        page,
        &format!("#chat-log shows {text:?} from {native_id}"),
        |state| {
            (!state.has_message(&native_id, &text))
                .then(|| format!("no li[data-from={native_id:?}] whose .chat-text is {text:?}"))
        },
    )
    .await?;
    page.screenshot(PREFIX, "end").await?;
    Ok(())
}

/// Waits for `#relay-addr` to be prefilled from `/api/relay`, clicks
/// Connect, and waits until the page has a circuit address.
async fn connect_page(page: &Browser) -> anyhow::Result<PageState> {
    wait_page(page, "#relay-addr is prefilled", |state| {
        state
            .relay_addr
            .trim()
            .is_empty()
            .then(|| "#relay-addr is empty".to_owned())
    })
    .await?;
    page.click("#connect").await?;
    wait_page(
        page,
        "#status is connected and #self-addr is shown",
        |state| {
            if !state.is_connected() {
                Some(format!(
                    "#status is {:?}",
                    state.status.as_deref().unwrap_or("(no data-state)")
                ))
            } else if state.self_addr.trim().is_empty() || state.self_peer_id.is_empty() {
                Some("#self-addr or #self-peer-id is empty".to_owned())
            } else {
                None
            }
        },
    )
    .await
}

/// Waits until `page_ok` (None: fine; Some: what is wrong) holds on the
/// page.
async fn wait_page(
    page: &Browser,
    what: &str,
    page_ok: impl Fn(&PageState) -> Option<String>,
) -> anyhow::Result<PageState> {
    let page_ok = &page_ok;
    wait_until(&format!("page: {what}"), TIMEOUT, || async move {
        let state = page.snapshot().await?;
        Ok(match page_ok(&state) {
            None => Check::Done(state),
            Some(wrong) => Check::NotYet(format!("{wrong}\n{state}")),
        })
    })
    .await
}

/// `prefix` and a number that makes the text this run's own.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix} #{nanos:09}")
}
