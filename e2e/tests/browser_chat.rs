//! Two headless Chromium pages chat through the relay, upgrade to a direct
//! WebRTC link, keep chatting over it while the relay process is killed,
//! and reconnect when it is back.
//!
//! Needs the built page (`scripts/build-page` writes `dist/`), chromedriver
//! and Chromium. Screenshots, the chromedriver log and, on failure, a
//! report of each page go to `artifacts/`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::{
    Browser, Check, ChromeDriver, PageRelay, PageState, RelayPorts, RelayProcess, TIMEOUT,
    wait_page, wait_pages, wait_until,
};

/// Artifact names start with this.
const PREFIX: &str = "browser_chat";
/// The page reconnects with backoff after the relay comes back.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Not a multiaddr: the port is not a number.
const MALFORMED_ADDR: &str = "/ip4/127.0.0.1/tcp/notaport/ws";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_chat_through_the_relay_and_again_after_it_restarts() {
    let PageRelay {
        process: relay,
        ports,
        args: relay_args,
        state_dir: _state_dir,
    } = PageRelay::start(PREFIX, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));

    // Declared after the relay: dropped (browsers first, then chromedriver)
    // before it, even when the test panics.
    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let a = Browser::open(&driver, "A").await.expect("browser A opens");
    let b = Browser::open(&driver, "B").await.expect("browser B opens");

    let mut test = Scenario {
        a: &a,
        b: &b,
        ports,
        relay_args,
        relay: Some(relay),
    };
    let relay_log = test
        .relay
        .as_ref()
        .map(|relay| relay.log_path.clone())
        .unwrap_or_default();
    if let Err(error) = test.run().await {
        let a_report = a.save_failure_report(PREFIX).await;
        let b_report = b.save_failure_report(PREFIX).await;
        panic!(
            "{error:#}\n\nartifacts:\n{a_report}\n{b_report}\nchromedriver log: {}\nrelay log: {}",
            driver.log_path().display(),
            relay_log.display()
        );
    }
    if let Some(relay) = test.relay.take() {
        relay.kill().await.expect("kill the relay");
    }
    a.close().await.expect("close browser A");
    b.close().await.expect("close browser B");
}

struct Scenario<'a> {
    a: &'a Browser,
    b: &'a Browser,
    ports: RelayPorts,
    relay_args: Vec<String>,
    relay: Option<RelayProcess>,
}

impl Scenario<'_> {
    async fn run(&mut self) -> anyhow::Result<()> {
        let (a, b) = (self.a, self.b);
        let relay = self.relay.as_ref().expect("the relay runs");
        let relay_peer_id = relay.peer_id.clone();
        let relay_addrs = relay.multiaddrs.clone();

        let url = self.ports.page_url();
        a.goto(&url).await?;
        b.goto(&url).await?;

        // The page fills in the relay's address from /api/relay.
        let prefilled = wait_pages(
            a,
            b,
            "#relay-addr is prefilled with the relay's address",
            TIMEOUT,
            |page| {
                page.relay_addr
                    .trim()
                    .is_empty()
                    .then(|| "#relay-addr is empty".to_owned())
            },
        )
        .await?;
        let prefilled = prefilled.0.relay_addr.trim().to_owned();
        anyhow::ensure!(
            relay_addrs.contains(&prefilled),
            "#relay-addr was prefilled with {prefilled:?}, which is none of the relay's addresses {relay_addrs:?}"
        );

        // A malformed address is refused in plain words, without connecting.
        a.fill("#relay-addr", MALFORMED_ADDR).await?;
        a.click("#connect").await?;
        wait_page(
            a,
            "#notice shows that the address is not valid, and #status is not connected",
            TIMEOUT,
            |page| {
                let notice = page.notice_text.to_lowercase();
                if page.is_connected() {
                    Some("#status is connected with a malformed address".to_owned())
                } else if !page.notice_visible {
                    Some("#notice is hidden".to_owned())
                } else if !(notice.contains("multiaddr") || notice.contains("address")) {
                    Some(format!(
                        "#notice does not mention the address: {:?}",
                        page.notice_text
                    ))
                } else {
                    None
                }
            },
        )
        .await?;
        a.screenshot(PREFIX, "malformed-address").await?;
        a.fill("#relay-addr", &prefilled).await?;

        // Both connect and get a circuit address.
        a.click("#connect").await?;
        b.click("#connect").await?;
        let (page_a, page_b) = wait_connected(a, b, TIMEOUT).await?;
        let (id_a, id_b) = (page_a.self_peer_id, page_b.self_peer_id);
        anyhow::ensure!(
            !id_a.is_empty() && !id_b.is_empty(),
            "#self-peer-id is empty: A {id_a:?}, B {id_b:?}"
        );
        anyhow::ensure!(id_a != id_b, "both pages show the same peer id {id_a}");
        for (name, addr, id) in [
            ("A", &page_a.self_addr, &id_a),
            ("B", &page_b.self_addr, &id_b),
        ] {
            anyhow::ensure!(
                addr.contains("/p2p-circuit")
                    && addr.contains(&relay_peer_id)
                    && addr.ends_with(id.as_str()),
                "page {name}'s #self-addr {addr:?} is not a circuit address through relay {relay_peer_id} ending in its peer id {id}"
            );
        }

        wait_discovered(a, b, &id_a, &id_b).await?;
        // They upgrade to a direct browser-to-browser WebRTC connection.
        wait_direct(a, b, &id_a, &id_b).await?;
        chat(a, b, &id_a, "first").await?;
        chat(b, a, &id_b, "first").await?;
        a.screenshot(PREFIX, "after-first-chat").await?;
        b.screenshot(PREFIX, "after-first-chat").await?;

        // The relayed connection between them gives way to the direct one,
        // on one page or the other (whichever closes it first).
        wait_until(
            "a page closes its relayed connection to the other",
            TIMEOUT,
            || async {
                let (page_a, page_b) = (a.snapshot().await?, b.snapshot().await?);
                let closed = |page: &PageState| {
                    page.events
                        .iter()
                        .any(|line| line.contains("closing the relayed connection"))
                };
                Ok(if closed(&page_a) || closed(&page_b) {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("neither event log says so\n{page_a}{page_b}"))
                })
            },
        )
        .await?;

        // The relay process is killed: both pages notice.
        let relay = self.relay.take().expect("the relay runs");
        relay.kill().await?;
        wait_pages(
            a,
            b,
            "#status leaves connected after the relay stopped",
            TIMEOUT,
            |page| {
                page.is_connected()
                    .then(|| "#status is still connected".to_owned())
            },
        )
        .await?;

        // The direct link does not need the relay: chat flows both ways.
        wait_direct(a, b, &id_a, &id_b).await?;
        chat(a, b, &id_a, "relay down").await?;
        chat(b, a, &id_b, "relay down").await?;
        a.screenshot(PREFIX, "relay-down").await?;

        // It comes back on the same ports with the same identity: both
        // pages reconnect by themselves and chat again.
        let relay = RelayProcess::start(PREFIX, &self.relay_args).await?;
        anyhow::ensure!(
            relay.peer_id == relay_peer_id,
            "the restarted relay has peer id {}, not {relay_peer_id}",
            relay.peer_id
        );
        self.relay = Some(relay);
        wait_connected(a, b, RECONNECT_TIMEOUT).await?;
        wait_discovered(a, b, &id_a, &id_b).await?;
        chat(a, b, &id_a, "after the restart").await?;
        chat(b, a, &id_b, "after the restart").await?;
        a.screenshot(PREFIX, "end").await?;
        b.screenshot(PREFIX, "end").await?;
        Ok(())
    }
}

async fn wait_connected(
    a: &Browser,
    b: &Browser,
    timeout: Duration,
) -> anyhow::Result<(PageState, PageState)> {
    wait_pages(
        a,
        b,
        "#status is connected and #self-addr is shown",
        timeout,
        |page| {
            if !page.is_connected() {
                Some(format!(
                    "#status is {:?}",
                    page.status.as_deref().unwrap_or("(no data-state)")
                ))
            } else if page.self_addr.trim().is_empty() {
                Some("#self-addr is empty".to_owned())
            } else {
                None
            }
        },
    )
    .await
}

/// Each page shows the other on a direct (WebRTC) link.
async fn wait_direct(a: &Browser, b: &Browser, id_a: &str, id_b: &str) -> anyhow::Result<()> {
    for (page, other, name) in [(a, id_b, "B"), (b, id_a, "A")] {
        wait_page(
            page,
            &format!("#peers shows {name} ({other}) as direct"),
            TIMEOUT,
            |state| {
                let peer = state.peers.iter().find(|peer| peer.peer_id == other);
                match peer.and_then(|peer| peer.state.as_deref()) {
                    Some("direct") => None,
                    found => Some(format!("{name}'s link state is {found:?}")),
                }
            },
        )
        .await?;
    }
    Ok(())
}

async fn wait_discovered(a: &Browser, b: &Browser, id_a: &str, id_b: &str) -> anyhow::Result<()> {
    wait_page(a, &format!("#peers lists B ({id_b})"), TIMEOUT, |page| {
        (!page.lists_peer(id_b)).then(|| format!("#peers does not list {id_b}"))
    })
    .await?;
    wait_page(b, &format!("#peers lists A ({id_a})"), TIMEOUT, |page| {
        (!page.lists_peer(id_a)).then(|| format!("#peers does not list {id_a}"))
    })
    .await?;
    Ok(())
}

/// `from` types a unique message and presses Enter; it shows up in `to`'s
/// chat log, attributed to `from_id`.
async fn chat(from: &Browser, to: &Browser, from_id: &str, round: &str) -> anyhow::Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let text = format!("hello from {} ({round}) #{nanos:09}", from.name);
    from.fill("#chat-input", &text).await?;
    from.press_enter("#chat-input").await?;
    let what = format!(
        "page {}'s #chat-log shows {text:?} from page {} ({from_id})",
        to.name, from.name
    );
    let text = &text;
    let sent = std::time::Instant::now();
    wait_until(&what, TIMEOUT, || async move {
        let receiver = to.snapshot().await?;
        if receiver.has_message(from_id, text) {
            eprintln!(
                "chat {} -> {} ({round}) delivered after {:.1} s",
                from.name,
                to.name,
                sent.elapsed().as_secs_f64()
            );
            return Ok(Check::Done(()));
        }
        // What the sender shows matters too (a notice about the send, say).
        let sender = from.snapshot().await?;
        Ok(Check::NotYet(format!(
            "no li[data-from={from_id:?}] whose .chat-text is {text:?} on page {}\n{receiver}{sender}",
            to.name
        )))
    })
    .await
}
