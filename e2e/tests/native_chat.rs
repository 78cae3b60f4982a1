//! A browser page and the native peer (`chat-peer`) join the same relay,
//! discover each other and chat both ways: the page over WebSocket, the
//! native peer over TCP, gossip flowing through the relay.
//!
//! Needs the built page (`dist/`), chromedriver and Chromium, and the
//! relay and chat-peer binaries next to the test executable. The page's
//! report, the relay's log and chat-peer's log go to `artifacts/`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use e2e::{
    Browser, ChatPeerProcess, ChromeDriver, PageRelay, PageState, RelayPorts, RelayProcess,
    TIMEOUT, wait_page,
};

/// A relay process, a browser page and `chat-peer`, with their logs.
struct Fixture {
    // Dropped in this order, even when the test panics: the peer and the
    // browser before the relay.
    native: ChatPeerProcess,
    page: Browser,
    driver: ChromeDriver,
    relay: RelayProcess,
    ports: RelayPorts,
    prefix: &'static str,
    _state_dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts the relay with `relay_flags` and a `chat-peer` connected to it
    /// over TCP, and opens a browser (not yet on the page).
    async fn start(prefix: &'static str, relay_flags: &[&str]) -> Self {
        let PageRelay {
            process: relay,
            ports,
            state_dir,
            ..
        } = PageRelay::start(prefix, relay_flags)
            .await
            .unwrap_or_else(|error| panic!("{error:#}"));
        let relay_tcp = relay
            .multiaddr("tcp", "127.0.0.1")
            .unwrap_or_else(|| {
                panic!(
                    "the relay printed no TCP address on 127.0.0.1: {:?}",
                    relay.multiaddrs
                )
            })
            .to_owned();
        let driver = ChromeDriver::start(prefix)
            .await
            .expect("chromedriver starts");
        let page = Browser::open(&driver, "page")
            .await
            .expect("the browser opens");
        let native = ChatPeerProcess::start(prefix, &relay_tcp)
            .await
            .unwrap_or_else(|error| panic!("chat-peer starts: {error:#}"));
        Self {
            native,
            page,
            driver,
            relay,
            ports,
            prefix,
            _state_dir: state_dir,
        }
    }

    /// Panics with `error` and where the logs are.
    async fn fail(&self, error: anyhow::Error) -> ! {
        let report = self.page.save_failure_report(self.prefix).await;
        panic!(
            "{error:#}\n\nartifacts:\n{report}\nchromedriver log: {}\nrelay log: {}\nchat-peer log: {}",
            self.driver.log_path().display(),
            self.relay.log_path.display(),
            self.native.log_path.display()
        );
    }

    async fn stop(self) {
        drop(self.native);
        self.page.close().await.expect("close the browser");
        self.relay.kill().await.expect("kill the relay");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_and_a_native_peer_discover_each_other_and_chat_both_ways() {
    let mut fixture = Fixture::start("native_chat", &[]).await;
    if let Err(error) = discover_and_chat(&mut fixture).await {
        fixture.fail(error).await;
    }
    fixture.stop().await;
}

async fn discover_and_chat(fixture: &mut Fixture) -> anyhow::Result<()> {
    let Fixture {
        page,
        native,
        ports,
        ..
    } = fixture;
    // The page connects over WebSocket (its prefilled address).
    page.goto(&ports.page_url()).await?;
    let page_id = connect_page(page).await?.self_peer_id;

    // The native peer reserves over TCP.
    native
        .wait_for("a reservation on the relay", TIMEOUT, |line| {
            (line["event"] == "reserved").then_some(())
        })
        .await?;

    // Each discovers the other from its signed record. The page's first
    // record already names its circuit's `/webrtc` twin: the page
    // announces 1 ms after the addresses of its reservation change, and
    // the twin comes in the same turn of its swarm (with the circuit alone,
    // its peers would dial a plain circuit and upgrade it later).
    let native_id = native.peer_id.clone();
    let addrs = native
        .wait_for(
            &format!("discovering the page {page_id}"),
            TIMEOUT,
            |line| {
                (line["event"] == "discovered" && line["peer"] == page_id.as_str())
                    .then(|| line["addrs"].to_string())
            },
        )
        .await?;
    anyhow::ensure!(
        addrs.contains("/p2p-circuit/webrtc") && addrs.contains("/p2p-circuit/p2p/"),
        "the page's first record should name its circuit and the circuit's /webrtc twin: {addrs}"
    );
    wait_page(
        page,
        &format!("#peers lists the native peer {native_id}"),
        TIMEOUT,
        |state| {
            (!state.lists_peer(&native_id)).then(|| format!("#peers does not list {native_id}"))
        },
    )
    .await?;
    chat_both_ways(page, native, &page_id).await?;
    stays_relayed_after_an_unsupported_punch(native, &page_id).await?;
    page.screenshot("native_chat", "end").await?;
    Ok(())
}

/// A page speaks no DCUtR: when it dialed the native peer's circuit, the
/// native peer's DCUtR fails at once as unsupported, and that is no punch
/// to try again: the relayed connection stays (a try would close it 5 s
/// later). When the native peer dialed, no punch runs at all: said, and
/// nothing to check.
async fn stays_relayed_after_an_unsupported_punch(
    native: &mut ChatPeerProcess,
    page_id: &str,
) -> anyhow::Result<()> {
    let about_the_page = |line: &serde_json::Value, events: &[&str]| {
        line["peer"] == page_id && events.iter().any(|event| line["event"] == *event)
    };
    let punched = native
        .wait_for(
            "a failed punch with the page",
            Duration::from_secs(3),
            |line| about_the_page(line, &["hole_punch"]).then_some(()),
        )
        .await
        .is_ok();
    if !punched {
        println!("the native peer dialed the page: no punch ran, nothing to check");
        return Ok(());
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    let closed = native
        .wait_for(
            "the page's circuit closed",
            Duration::from_millis(100),
            |line| {
                about_the_page(line, &["punching_again", "disconnected"])
                    .then(|| line["event"].to_string())
            },
        )
        .await;
    if let Ok(event) = closed {
        bail!(
            "the native peer's punch with the page failed (a page speaks no DCUtR), and then it \
             said {event}: a failure that is no punch was tried again"
        );
    }
    println!("the page's unsupported punch was not tried again: relayed for 12 s after it");
    Ok(())
}

/// The classic case: a home machine listed in a private relay's authorized
/// peers file, and a browser elsewhere, a guest. The guest is refused a
/// reservation with `PERMISSION_DENIED` and gets no gossip from the relay
/// (no discovery records), yet, dialing the home machine's circuit address
/// by hand, reaches it through a circuit the relay serves itself, and they
/// chat over that circuit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_private_relay_a_guest_page_reaches_the_listed_native_peer_and_they_chat() {
    let list_dir = tempfile::tempdir().expect("temp dir for the authorized peers file");
    let list = list_dir.path().join("authorized_peers");
    std::fs::write(&list, "# the home machine, added once it has an id\n").expect("write");
    let flag = format!("--authorized-peers={}", list.display());
    let mut fixture = Fixture::start("native_chat_private", &[&flag]).await;
    if let Err(error) = guest_reaches_home(&mut fixture, &list).await {
        fixture.fail(error).await;
    }
    fixture.stop().await;
}

async fn guest_reaches_home(fixture: &mut Fixture, list: &std::path::Path) -> anyhow::Result<()> {
    let Fixture {
        page,
        native,
        ports,
        relay,
        ..
    } = fixture;
    // Listed while connected, as an operator would: the relay applies the
    // edit without a restart, and the peer's retry gets its reservation.
    let native_id = native.peer_id.clone();
    std::fs::write(list, format!("{native_id}  # home machine\n"))?;
    native
        .wait_for("a reservation once listed", TIMEOUT, |line| {
            (line["event"] == "reserved").then_some(())
        })
        .await?;

    page.goto(&ports.page_url()).await?;
    click_connect(page).await?;
    let state = wait_page(
        page,
        "the refused reservation is explained",
        TIMEOUT,
        |state| {
            (!state.is_connected() || !state.notice_text.contains("refused a reservation"))
                .then(|| format!("#notice is {:?}", state.notice_text))
        },
    )
    .await?;
    anyhow::ensure!(
        state.notice_text.contains("PERMISSION_DENIED"),
        "the notice should name the relay's status: {:?}",
        state.notice_text
    );
    let page_id = state.self_peer_id;

    // The page dials the home machine's circuit address, pasted by hand (a
    // guest hears no records from a private relay): a guest's circuit.
    let relay_ws = relay.multiaddr("ws", "127.0.0.1").ok_or_else(|| {
        anyhow::anyhow!("the relay printed no /ws address: {:?}", relay.multiaddrs)
    })?;
    page.fill(
        "#dial-addr",
        &format!("{relay_ws}/p2p-circuit/p2p/{native_id}"),
    )
    .await?;
    page.click("#dial").await?;
    wait_page(
        page,
        &format!("#peers shows {native_id} connected through the relay"),
        TIMEOUT,
        |state| {
            let entry = state.peers.iter().find(|peer| peer.peer_id == native_id);
            match entry.and_then(|peer| peer.state.as_deref()) {
                Some("relayed") => None,
                other => Some(format!("{native_id} is {other:?}")),
            }
        },
    )
    .await?;
    native
        .wait_for(
            &format!("a relayed connection from the page {page_id}"),
            TIMEOUT,
            |line| {
                (line["event"] == "connected"
                    && line["peer"] == page_id.as_str()
                    && line["path"] == "relayed")
                    .then_some(())
            },
        )
        .await?;
    chat_both_ways(page, native, &page_id).await?;
    page.screenshot("native_chat_private", "end").await?;
    Ok(())
}

async fn chat_both_ways(
    page: &Browser,
    native: &mut ChatPeerProcess,
    page_id: &str,
) -> anyhow::Result<()> {
    let native_id = native.peer_id.clone();
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
                    && line["peer"] == page_id
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
        TIMEOUT,
        |state| {
            (!state.has_message(&native_id, &text))
                .then(|| format!("no li[data-from={native_id:?}] whose .chat-text is {text:?}"))
        },
    )
    .await?;
    Ok(())
}

/// Waits for `#relay-addr` to be prefilled from `/api/relay` and clicks
/// Connect.
async fn click_connect(page: &Browser) -> anyhow::Result<()> {
    wait_page(page, "#relay-addr is prefilled", TIMEOUT, |state| {
        state
            .relay_addr
            .trim()
            .is_empty()
            .then(|| "#relay-addr is empty".to_owned())
    })
    .await?;
    page.click("#connect").await?;
    Ok(())
}

/// Clicks Connect and waits until the page has a circuit address.
async fn connect_page(page: &Browser) -> anyhow::Result<PageState> {
    click_connect(page).await?;
    wait_page(
        page,
        "#status is connected and #self-addr is shown",
        TIMEOUT,
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

/// `prefix` and a number that makes the text this run's own.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix} #{nanos:09}")
}
