//! Two headless Chromium pages connect to the relay, over WebSocket in one
//! test and over WebRTC-direct in the other, with the same expectations:
//! they chat through the relay, upgrade to a direct WebRTC link, keep
//! chatting over it while the relay process is killed, and reconnect when
//! it is back. Neither page may report an error on its console (an
//! exception thrown from a callback, say) at any time.
//!
//! Needs the built page (`scripts/build-page` writes `dist/`), chromedriver
//! and Chromium. Screenshots, the chromedriver log and, on failure, a
//! report of each page go to `artifacts/`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use e2e::{
    Browser, Check, ChromeDriver, PageRelay, PageState, RelayPorts, RelayProcess, TIMEOUT,
    wait_page, wait_pages, wait_until,
};

/// The page reconnects with backoff after the relay comes back.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Each step a user waits for (the other page listed, the direct link, a
/// chat message arriving) comes within this, whichever transport the
/// pages reach the relay over: over WebSocket each takes well under a
/// second on loopback. Slack for a busy machine, yet far below the 10 s
/// and more that a stalled stream waits for some unrelated event.
const STEP_TIMEOUT: Duration = Duration::from_secs(8);
/// Not a multiaddr: the port is not a number.
const MALFORMED_ADDR: &str = "/ip4/127.0.0.1/tcp/notaport/ws";

/// How the pages reach the relay.
#[derive(Debug, Clone, Copy)]
enum RelayTransport {
    WebSocket,
    /// WebRTC-direct served by the relay's default listener, its own
    /// (str0m).
    WebRtcDirect,
    /// WebRTC-direct served by the fallback listener, libp2p-webrtc 0.10
    /// (`--webrtc-direct-listener libp2p`).
    WebRtcDirectLibp2p,
}

impl RelayTransport {
    /// Artifact names start with this.
    fn prefix(self) -> &'static str {
        match self {
            Self::WebSocket => "browser_chat_ws",
            Self::WebRtcDirect => "browser_chat_webrtc_direct",
            Self::WebRtcDirectLibp2p => "browser_chat_webrtc_direct_libp2p",
        }
    }

    /// What the relay is started with besides the ports.
    fn relay_args(self) -> &'static [&'static str] {
        match self {
            Self::WebSocket | Self::WebRtcDirect => &[],
            Self::WebRtcDirectLibp2p => &["--webrtc-direct-listener", "libp2p"],
        }
    }

    /// Whether `addr` (one the relay printed) is of this transport.
    fn is_of(self, addr: &str) -> bool {
        match self {
            Self::WebSocket => addr.contains("/ws/"),
            Self::WebRtcDirect | Self::WebRtcDirectLibp2p => {
                addr.contains("/webrtc-direct/certhash/")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_chat_over_a_websocket_relay_and_again_after_it_restarts() {
    two_pages_chat(RelayTransport::WebSocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_chat_over_a_webrtc_direct_relay_and_again_after_it_restarts() {
    two_pages_chat(RelayTransport::WebRtcDirect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_chat_over_the_libp2p_webrtc_direct_listener_and_again_after_it_restarts() {
    two_pages_chat(RelayTransport::WebRtcDirectLibp2p).await;
}

async fn two_pages_chat(transport: RelayTransport) {
    let prefix = transport.prefix();
    let PageRelay {
        process: relay,
        ports,
        args: relay_args,
        state_dir: _state_dir,
    } = PageRelay::start(prefix, transport.relay_args())
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));

    // Declared after the relay: dropped (browsers first, then chromedriver)
    // before it, even when the test panics.
    let driver = ChromeDriver::start(prefix)
        .await
        .expect("chromedriver starts");
    let a = Browser::open(&driver, "A").await.expect("browser A opens");
    let b = Browser::open(&driver, "B").await.expect("browser B opens");

    let mut test = Scenario {
        a: &a,
        b: &b,
        transport,
        ports,
        relay_args,
        relay: Some(relay),
    };
    let relay_log = test
        .relay
        .as_ref()
        .map(|relay| relay.log_path.clone())
        .unwrap_or_default();
    let outcome = match test.run().await {
        // The whole flow, the relay's restart included, without an error
        // on either page.
        Ok(()) => match a.check_no_page_errors().await {
            Ok(()) => b.check_no_page_errors().await,
            error => error,
        },
        error => error,
    };
    if let Err(error) = outcome {
        let a_report = a.save_failure_report(prefix).await;
        let b_report = b.save_failure_report(prefix).await;
        panic!(
            "over {transport:?}: {error:#}\n\nartifacts:\n{a_report}\n{b_report}\nchromedriver log: {}\nrelay log: {}",
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
    transport: RelayTransport,
    ports: RelayPorts,
    relay_args: Vec<String>,
    relay: Option<RelayProcess>,
}

impl Scenario<'_> {
    async fn run(&mut self) -> anyhow::Result<()> {
        let (a, b) = (self.a, self.b);
        let prefix = self.transport.prefix();
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
        a.screenshot(prefix, "malformed-address").await?;

        // Both connect over the transport under test, as a user who pasted
        // the relay's address of that kind.
        let relay_addr = relay_addrs
            .iter()
            .find(|addr| self.transport.is_of(addr))
            .with_context(|| {
                format!(
                    "the relay printed no {:?} address: {relay_addrs:?}",
                    self.transport
                )
            })?
            .clone();
        a.fill("#relay-addr", &relay_addr).await?;
        b.fill("#relay-addr", &relay_addr).await?;
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

        wait_discovered(a, b, &id_a, &id_b, STEP_TIMEOUT).await?;
        // They upgrade to a direct browser-to-browser WebRTC connection.
        wait_direct(a, b, &id_a, &id_b, STEP_TIMEOUT).await?;
        chat(a, b, &id_a, "first", STEP_TIMEOUT).await?;
        chat(b, a, &id_b, "first", STEP_TIMEOUT).await?;
        a.screenshot(prefix, "after-first-chat").await?;
        b.screenshot(prefix, "after-first-chat").await?;
        for page in [a, b] {
            print_marks(page, self.transport).await?;
        }

        // The relayed connections between them give way to the direct
        // one: a page closes them, and then neither page holds one.
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
        for (page, other, name) in [(a, &id_b, "B"), (b, &id_a, "A")] {
            wait_page(
                page,
                &format!("#peers shows {name} ({other}) direct, with no relayed connection left"),
                TIMEOUT,
                |state| {
                    let peer = state.peers.iter().find(|peer| peer.peer_id == *other);
                    match peer.map(|peer| (peer.state.as_deref(), peer.relayed)) {
                        Some((Some("direct"), Some(0))) => None,
                        found => Some(format!(
                            "{name}'s (link state, relayed connections) is {found:?}"
                        )),
                    }
                },
            )
            .await?;
        }

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
        wait_direct(a, b, &id_a, &id_b, TIMEOUT).await?;
        chat(a, b, &id_a, "relay down", STEP_TIMEOUT).await?;
        chat(b, a, &id_b, "relay down", STEP_TIMEOUT).await?;
        a.screenshot(prefix, "relay-down").await?;

        // It comes back on the same ports with the same identity: both
        // pages reconnect by themselves and chat again.
        let relay = RelayProcess::start(prefix, &self.relay_args).await?;
        anyhow::ensure!(
            relay.peer_id == relay_peer_id,
            "the restarted relay has peer id {}, not {relay_peer_id}",
            relay.peer_id
        );
        self.relay = Some(relay);
        wait_connected(a, b, RECONNECT_TIMEOUT).await?;
        wait_discovered(a, b, &id_a, &id_b, TIMEOUT).await?;
        chat(a, b, &id_a, "after the restart", STEP_TIMEOUT).await?;
        chat(b, a, &id_b, "after the restart", STEP_TIMEOUT).await?;
        a.screenshot(prefix, "end").await?;
        b.screenshot(prefix, "end").await?;
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
async fn wait_direct(
    a: &Browser,
    b: &Browser,
    id_a: &str,
    id_b: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    for (page, other, name) in [(a, id_b, "B"), (b, id_a, "A")] {
        wait_page(
            page,
            &format!("#peers shows {name} ({other}) as direct"),
            timeout,
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

async fn wait_discovered(
    a: &Browser,
    b: &Browser,
    id_a: &str,
    id_b: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_page(a, &format!("#peers lists B ({id_b})"), timeout, |page| {
        (!page.lists_peer(id_b)).then(|| format!("#peers does not list {id_b}"))
    })
    .await?;
    wait_page(b, &format!("#peers lists A ({id_a})"), timeout, |page| {
        (!page.lists_peer(id_a)).then(|| format!("#peers does not list {id_a}"))
    })
    .await?;
    Ok(())
}

/// `from` types a unique message and presses Enter; it shows up in `to`'s
/// chat log, attributed to `from_id`.
async fn chat(
    from: &Browser,
    to: &Browser,
    from_id: &str,
    round: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
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
    wait_until(&what, timeout, || async move {
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

/// Prints when each mark of `page` came, after its Connect click: the
/// moments the benchmarks measure, for a look at a run.
async fn print_marks(page: &Browser, transport: RelayTransport) -> anyhow::Result<()> {
    let marks = page.marks().await?;
    let line = marks
        .iter()
        .map(|(name, after)| {
            // Peer marks end in the other's peer id: the moment is enough.
            let moment = name.split(' ').next().unwrap_or(name);
            format!("{moment} {after:.0} ms")
        })
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!("marks of page {} over {transport:?}: {line}", page.name);
    Ok(())
}
