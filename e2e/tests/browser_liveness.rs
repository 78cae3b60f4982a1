//! A peer that freezes is not shown as direct for long. Two headless
//! Chromium pages go direct (WebRTC) through the relay; then every process
//! of B's browser is stopped (SIGSTOP), as a laptop whose lid closes: no
//! goodbye on any connection. A must show B as not direct within a few
//! seconds (`reconnecting`, without the old round trip), close the dead
//! link soon after, and forget B after the peer expiry. B's browser is
//! killed at the end (or on a failure), so nothing lingers. A's page may
//! report no error on its console, nor B's before it froze.
//!
//! Needs the built page (`scripts/build-page`), chromedriver and Chromium.

use std::time::{Duration, Instant};

use e2e::{Browser, ChromeDriver, PageRelay, TIMEOUT, connect_to_relay, wait_page};

const PREFIX: &str = "browser_liveness";
/// The first upgrade's bound (as in browser_chat): listed, then direct.
const STEP_TIMEOUT: Duration = Duration::from_secs(8);
/// From the freeze until A shows B as not direct: the page calls a link
/// whose pings (one a second) go unanswered for 3 s `reconnecting`.
const NOT_DIRECT_WITHIN: Duration = Duration::from_secs(6);
/// From the freeze until A has closed the dead link (8 s unanswered).
const CLOSED_WITHIN: Duration = Duration::from_secs(12);
/// From the freeze until A has forgotten B: the expiry (60 s since B's
/// last record, which B sends every 20 s), checked every announcement
/// period (20 s), and slack.
const GONE_WITHIN: Duration = Duration::from_secs(95);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_is_shown_not_direct_within_seconds_and_forgotten_after_the_expiry() {
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

    let outcome = run(&a, &b, &ports.page_url(), &relay_addr).await;
    let outcome = match outcome {
        Ok(()) => a.check_no_page_errors().await,
        error => error,
    };
    if let Err(error) = outcome {
        let a_report = a.save_failure_report(PREFIX).await;
        panic!(
            "{error:#}\n\nartifacts:\n{a_report}\nchromedriver log: {}\nrelay log: {}",
            driver.log_path().display(),
            relay.log_path.display()
        );
    }
    a.close().await.expect("close browser A");
    // B's browser was killed: its session goes with the driver.
    drop(b);
    relay.kill().await.expect("kill the relay");
}

async fn run(a: &Browser, b: &Browser, page_url: &str, relay_addr: &str) -> anyhow::Result<()> {
    a.goto(page_url).await?;
    b.goto(page_url).await?;
    let id_a = connect(a, relay_addr).await?;
    let id_b = connect(b, relay_addr).await?;
    for (page, other) in [(a, &id_b), (b, &id_a)] {
        wait_page(
            page,
            &format!("#peers shows {other} direct"),
            2 * STEP_TIMEOUT,
            |state| match state.peer(other) {
                Some(peer) if peer.state.as_deref() == Some("direct") => None,
                found => Some(format!("found {found:?}")),
            },
        )
        .await?;
    }
    // Only the direct link is left (the relayed one gave way), and it
    // shows a round trip.
    wait_page(
        a,
        &format!("#peers shows {id_b} direct, a round trip, no relayed connection"),
        TIMEOUT,
        |state| match state.peer(&id_b) {
            Some(peer)
                if peer.state.as_deref() == Some("direct")
                    && peer.relayed == Some(0)
                    && peer.rtt_ms().is_some() =>
            {
                None
            }
            found => Some(format!("found {found:?}")),
        },
    )
    .await?;
    b.check_no_page_errors().await?;

    let frozen = b.freeze()?;
    let frozen_at = Instant::now();
    eprintln!("froze browser B: {} processes stopped", frozen.pids().len());
    let result = watch_frozen_peer(a, &id_b, frozen_at).await;
    frozen.kill();
    result
}

/// What A shows of the frozen B, from the freeze on: not direct within
/// [`NOT_DIRECT_WITHIN`] (and never an old round trip beside
/// `reconnecting`), closed within [`CLOSED_WITHIN`], gone within
/// [`GONE_WITHIN`].
async fn watch_frozen_peer(a: &Browser, id_b: &str, frozen_at: Instant) -> anyhow::Result<()> {
    let mut watch = Watch {
        page: a,
        peer: id_b,
        frozen_at,
        seen: Vec::new(),
    };
    watch
        .until("not direct", NOT_DIRECT_WITHIN, |state| {
            state != Some("direct")
        })
        .await?;
    watch
        .until(
            "neither direct nor reconnecting (the dead link closed)",
            CLOSED_WITHIN,
            |state| !matches!(state, Some("direct" | "reconnecting")),
        )
        .await?;
    watch
        .until("gone from #peers", GONE_WITHIN, |state| state.is_none())
        .await?;
    Ok(())
}

/// A's view of B, looked at every [`e2e::POLL`], each change of B's
/// state printed with its time after the freeze.
struct Watch<'a> {
    page: &'a Browser,
    peer: &'a str,
    frozen_at: Instant,
    seen: Vec<(f64, String)>,
}

impl Watch<'_> {
    /// Waits until `done` holds for B's link state (`None`: not listed),
    /// at most until `within` after the freeze.
    async fn until(
        &mut self,
        what: &str,
        within: Duration,
        done: impl Fn(Option<&str>) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            let state = self.page.snapshot().await?;
            let peer = state.peer(self.peer);
            let shown = peer.map_or_else(|| "(gone)".to_owned(), |peer| peer.text.clone());
            if self.seen.last().map(|(_, last)| last) != Some(&shown) {
                let at = self.frozen_at.elapsed().as_secs_f64();
                eprintln!("{at:5.1} s after the freeze, A shows B as {shown:?}");
                self.seen.push((at, shown));
            }
            if let Some(peer) = peer
                && peer.state.as_deref() == Some("reconnecting")
                && let Some(rtt) = peer.rtt_ms()
            {
                anyhow::bail!(
                    "page A shows B reconnecting beside an old round trip of {rtt} ms: {peer:?}\n{state}"
                );
            }
            if done(peer.and_then(|peer| peer.state.as_deref())) {
                return Ok(());
            }
            if self.frozen_at.elapsed() >= within {
                anyhow::bail!(
                    "page A did not show B ({}) {what} within {within:?} of B's freeze; it showed {:?}\n{state}",
                    self.peer,
                    self.seen
                );
            }
            tokio::time::sleep(e2e::POLL).await;
        }
    }
}

/// Fills in the relay's address, clicks Connect and waits for the
/// reservation; returns the page's peer id.
async fn connect(page: &Browser, relay_addr: &str) -> anyhow::Result<String> {
    Ok(connect_to_relay(page, relay_addr, TIMEOUT)
        .await?
        .self_peer_id)
}
