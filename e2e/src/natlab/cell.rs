//! One cell of the matrix: a fresh lab with routers of two NAT kinds, the
//! relay on the internet, a headless browser on each laptop (Chromium on
//! both, or Firefox on A and Chromium on B); the pages
//! connect, discover each other, go direct or stay relayed, show that the
//! link is what it says (see `proof.rs`), and chat.

use std::{
    fmt,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    DriverInNamespace, Expected, Lab, NatKind, RELAY_IP,
    proof::{self, RelayDead, RelayedLink},
};
use crate::{
    Browser, BrowserKind, POLL, PageState, RelayProcess, TIMEOUT, artifacts_dir, save_artifact,
    wait_pages,
};

/// How long the pages get to go direct. On a lab without latency the first
/// attempt succeeds within seconds when it can; a cell expected to stay
/// relayed waits all of this (the page's later attempts come after 5, 10,
/// 20 s of backoff: more waiting would not change the answer).
pub const DIRECT_TIMEOUT: Duration = Duration::from_secs(40);
/// Messages each page sends.
pub const MESSAGES_EACH_WAY: usize = 3;
/// How long all messages get to arrive.
pub(super) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// Who sits on the laptops of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    /// A headless Chromium with the page: WebRTC through ICE.
    Browsers,
    /// A headless Firefox with the page on laptop A, Chromium on laptop B:
    /// the two WebRTC stacks through NATs.
    FirefoxChromium,
    /// `chat-peer`: TCP and QUIC, DCUtR hole punching.
    Native,
}

impl Peers {
    /// The browsers on laptops A and B; `None` for native peers.
    pub fn browsers(self) -> Option<(BrowserKind, BrowserKind)> {
        match self {
            Self::Browsers => Some((BrowserKind::Chromium, BrowserKind::Chromium)),
            Self::FirefoxChromium => Some((BrowserKind::Firefox, BrowserKind::Chromium)),
            Self::Native => None,
        }
    }
}

impl fmt::Display for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Browsers => "browsers",
            Self::FirefoxChromium => "firefox",
            Self::Native => "native",
        })
    }
}

/// What a cell saw.
#[derive(Debug, Clone)]
pub struct CellOutcome {
    pub peers: Peers,
    pub a: NatKind,
    pub b: NatKind,
    pub expected: Expected,
    /// `direct`, `relayed`, or what each page showed instead.
    pub link: String,
    /// From the first Connect click until both pages show the other as
    /// direct.
    pub time_to_direct: Option<Duration>,
    /// Messages sent after the link was settled (in a direct browser cell,
    /// after the relay was killed) and how many showed on the other side.
    pub sent: usize,
    pub delivered: usize,
    /// A direct browser cell: what crossed the NATs once the relay was dead.
    pub relay_dead: Option<RelayDead>,
    /// A relayed browser cell: the circuit carrying data, the direct
    /// attempts that failed.
    pub relayed_link: Option<RelayedLink>,
    /// The whole cell, lab included.
    pub took: Duration,
    /// What went wrong before the cell could be measured (the lab, the
    /// relay, a page that did not connect).
    pub error: Option<String>,
}

impl CellOutcome {
    /// A cell not run yet.
    pub fn new(peers: Peers, a: NatKind, b: NatKind) -> Self {
        Self {
            peers,
            a,
            b,
            expected: NatKind::expected(a, b),
            link: "-".to_owned(),
            time_to_direct: None,
            sent: 0,
            delivered: 0,
            relay_dead: None,
            relayed_link: None,
            took: Duration::ZERO,
            error: None,
        }
    }

    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.link == self.expected.to_string()
            && self.delivered == self.sent
            && self.relay_dead_failures().is_empty()
    }

    /// A direct browser cell must have survived the relay's death.
    fn relay_dead_failures(&self) -> Vec<String> {
        match (&self.relay_dead, self.peers.browsers(), self.link.as_str()) {
            (Some(dead), _, _) => dead.failures(),
            (None, Some(_), "direct") => {
                vec!["the relay was not killed once the link was direct".to_owned()]
            }
            (None, _, _) => Vec::new(),
        }
    }

    /// Why the cell failed, in one line; None when it passed.
    pub fn failure(&self) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(format!("{} {} × {}: {error}", self.peers, self.a, self.b));
        }
        let mut wrong = Vec::new();
        if self.link != self.expected.to_string() {
            wrong.push(format!(
                "expected a {} link, got {}",
                self.expected, self.link
            ));
        }
        if self.delivered != self.sent {
            wrong.push(format!(
                "{} of {} messages delivered",
                self.delivered, self.sent
            ));
        }
        wrong.extend(self.relay_dead_failures());
        (!wrong.is_empty()).then(|| {
            format!(
                "{} {} × {}: {}",
                self.peers,
                self.a,
                self.b,
                wrong.join("; ")
            )
        })
    }

    /// The artifact name prefix of the cell.
    pub fn prefix(&self) -> String {
        match self.peers {
            Peers::Browsers => format!("natlab-{}-{}", self.a, self.b),
            Peers::FirefoxChromium => format!("natlab-firefox-{}-{}", self.a, self.b),
            Peers::Native => format!("natlab-native-{}-{}", self.a, self.b),
        }
    }
}

/// The relay binary, the page it serves, and the native peer's binary
/// (needed by native cells only).
#[derive(Debug, Clone)]
pub struct CellSetup {
    pub relay_binary: PathBuf,
    pub page_dir: PathBuf,
    pub chat_peer_binary: Option<PathBuf>,
}

/// Runs one cell. Its logs go to `artifacts/natlab-<a>-<b>-*`: the
/// relay's, each chromedriver's, each Chromium's and each page's console;
/// on failure also a screenshot and the page state of each browser.
pub async fn run_cell(index: usize, a: NatKind, b: NatKind, setup: &CellSetup) -> CellOutcome {
    run_browser_cell(index, Peers::Browsers, a, b, setup).await
}

/// Runs one cell with the browsers of `peers` (see [`run_cell`]; the logs
/// of a Firefox cell go to `artifacts/natlab-firefox-<a>-<b>-*`).
pub async fn run_browser_cell(
    index: usize,
    peers: Peers,
    a: NatKind,
    b: NatKind,
    setup: &CellSetup,
) -> CellOutcome {
    let started = Instant::now();
    let mut outcome = CellOutcome::new(peers, a, b);
    if let Err(error) = run(index, setup, &mut outcome).await {
        outcome.error = Some(format!("{error:#}"));
    }
    outcome.took = started.elapsed();
    outcome
}

async fn run(index: usize, setup: &CellSetup, outcome: &mut CellOutcome) -> anyhow::Result<()> {
    let (a, b) = (outcome.a, outcome.b);
    let prefix = outcome.prefix();
    let (kind_a, kind_b) = outcome
        .peers
        .browsers()
        .context("a browser cell needs browsers")?;
    // Locals drop in reverse order: the browsers first, then the drivers,
    // the relay and, last, the lab (killing whatever is left inside it).
    let lab = Lab::create(&format!("c{index}"), a, b).context("build the lab")?;
    let (relay, _relay_state) = start_relay(&lab, setup, &prefix).await?;
    // Side by side: each takes a second or so on two cores.
    let (log_a, log_b) = (format!("{prefix}-A"), format!("{prefix}-B"));
    let (driver_a, driver_b) = tokio::try_join!(
        DriverInNamespace::start_for(kind_a, &lab.a.host, &log_a),
        DriverInNamespace::start_for(kind_b, &lab.b.host, &log_b),
    )?;
    let (browser_a, browser_b) = tokio::try_join!(
        open_browser(&driver_a, &prefix, "A"),
        open_browser(&driver_b, &prefix, "B"),
    )?;

    let result = measure(&browser_a, &browser_b, relay, outcome).await;
    let passed = result.is_ok() && outcome.passed();
    for browser in [&browser_a, &browser_b] {
        save_console(browser, &prefix).await;
        if !passed {
            browser.save_failure_report(&prefix).await;
        }
    }
    browser_a.close().await.ok();
    browser_b.close().await.ok();
    result
}

/// The relay in the lab's relay namespace, on its public address, with
/// its state in a temporary directory (returned: keep it while it runs).
pub(super) async fn start_relay(
    lab: &Lab,
    setup: &CellSetup,
    prefix: &str,
) -> anyhow::Result<(RelayProcess, tempfile::TempDir)> {
    start_relay_with(lab, setup, prefix, &[]).await
}

/// [`start_relay`] with `flags` added to the relay's command line.
pub(super) async fn start_relay_with(
    lab: &Lab,
    setup: &CellSetup,
    prefix: &str,
    flags: &[&str],
) -> anyhow::Result<(RelayProcess, tempfile::TempDir)> {
    let state_dir = tempfile::tempdir().context("temp dir for the relay's state")?;
    let mut relay_command = lab.relay.command(&setup.relay_binary);
    relay_command
        .arg(format!("--listen-ip={RELAY_IP}"))
        .arg(format!("--external-address={RELAY_IP}"))
        .arg(format!("--page-dir={}", setup.page_dir.display()))
        .arg(format!("--state-dir={}", state_dir.path().display()))
        .args(flags);
    let relay = RelayProcess::start_command(prefix, relay_command)
        .await
        .context("start the relay in its namespace")?;
    Ok((relay, state_dir))
}

pub(super) async fn open_browser(
    driver: &DriverInNamespace,
    prefix: &str,
    name: &str,
) -> anyhow::Result<Browser> {
    let args = match driver.kind() {
        BrowserKind::Chromium => {
            let chromium_log = artifacts_dir()?.join(format!("{prefix}-{name}-chromium.log"));
            let log_file = format!("--log-file={}", chromium_log.display());
            // The lab has no DNS: a laptop's lookups reach no server, and
            // Chromium's first tab waited for them, 8 to 13 s per session.
            // The page is addressed by IP, so every name fails at once
            // instead.
            let no_name_lookups =
                format!("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {RELAY_IP}");
            vec!["--enable-logging".to_owned(), log_file, no_name_lookups]
        }
        // Firefox's own output goes to geckodriver's log; its background
        // requests are off (`crate::FIREFOX_PREFS`).
        BrowserKind::Firefox => Vec::new(),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Browser::open_with_args(driver, name, &args)
        .await
        .with_context(|| format!("open browser {name}"))
}

pub(super) async fn save_console(browser: &Browser, prefix: &str) {
    let console = match browser.console().await {
        Ok(lines) => lines.join("\n"),
        Err(error) => format!("(cannot read the console: {error:#})"),
    };
    let _ = save_artifact(
        &format!("{prefix}-{}-console.log", browser.name),
        console.as_bytes(),
    );
}

/// Connects both pages, waits for discovery and for the link, shows the
/// link for what it is (a direct one: by killing `relay`), chats, and fills
/// in `outcome`.
async fn measure(
    a: &Browser,
    b: &Browser,
    relay: RelayProcess,
    outcome: &mut CellOutcome,
) -> anyhow::Result<()> {
    // `?bench`: the page's perf handle, which proves a direct link.
    let url = format!("http://{RELAY_IP}:8000/?bench");
    a.goto(&url).await?;
    b.goto(&url).await?;
    wait_pages(
        a,
        b,
        "#relay-addr is prefilled from /api/relay",
        TIMEOUT,
        |page| {
            page.relay_addr
                .trim()
                .is_empty()
                .then(|| "#relay-addr is empty".to_owned())
        },
    )
    .await?;

    let connect_clicked = Instant::now();
    a.click("#connect").await?;
    b.click("#connect").await?;
    let (page_a, page_b) = wait_pages(
        a,
        b,
        "#status is connected and #self-addr is shown",
        TIMEOUT,
        |page| {
            if !page.is_connected() {
                Some(format!(
                    "#status is {:?}",
                    page.status.as_deref().unwrap_or("(none)")
                ))
            } else if page.self_addr.trim().is_empty() {
                Some("#self-addr is empty".to_owned())
            } else {
                None
            }
        },
    )
    .await?;
    let (id_a, id_b) = (page_a.self_peer_id, page_b.self_peer_id);
    wait_pages(a, b, "each page lists the other", TIMEOUT, |page| {
        let other = if page.self_peer_id == id_a {
            &id_b
        } else {
            &id_a
        };
        (!page.lists_peer(other)).then(|| format!("#peers does not list {other}"))
    })
    .await?;

    let (link, direct_at) = wait_for_direct(a, b, &id_a, &id_b).await?;
    outcome.link = link;
    outcome.time_to_direct = direct_at.map(|at| at.duration_since(connect_clicked));
    match outcome.link.as_str() {
        "direct" => {
            outcome.relay_dead =
                Some(proof::kill_relay_then_chat_and_perf(relay, a, b, &id_a, &id_b).await?);
        }
        "relayed" => {
            outcome.relayed_link = Some(proof::relayed_link(a, b, &id_a, &id_b).await?);
        }
        // Neither: the cell fails on its link; the chat below still says
        // whether messages got through.
        _ => {}
    }

    // Both ways, interleaved; then every message must show up on the other
    // page.
    let mut expected: Vec<(&Browser, &str, String)> = Vec::new();
    for round in 1..=MESSAGES_EACH_WAY {
        for (from, from_id, to) in [(a, id_a.as_str(), b), (b, id_b.as_str(), a)] {
            let text = format!(
                "message {round} from {} ({} × {})",
                from.name, outcome.a, outcome.b
            );
            from.fill("#chat-input", &text).await?;
            from.press_enter("#chat-input").await?;
            outcome.sent += 1;
            expected.push((to, from_id, text));
        }
    }
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let (page_a, page_b) = (a.snapshot().await?, b.snapshot().await?);
        let page_of = |browser: &Browser| {
            if browser.name == a.name {
                &page_a
            } else {
                &page_b
            }
        };
        outcome.delivered = expected
            .iter()
            .filter(|(to, from_id, text)| page_of(to).has_message(from_id, text))
            .count();
        if outcome.delivered == outcome.sent || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Polls both pages until each shows the other as direct, or for
/// [`DIRECT_TIMEOUT`]. Returns the link (`direct`, `relayed`, or each
/// page's state when they differ) and when it went direct.
async fn wait_for_direct(
    a: &Browser,
    b: &Browser,
    id_a: &str,
    id_b: &str,
) -> anyhow::Result<(String, Option<Instant>)> {
    let deadline = Instant::now() + DIRECT_TIMEOUT;
    let state = |page: &PageState, other: &str| -> String {
        page.peers
            .iter()
            .find(|peer| peer.peer_id == other)
            .and_then(|peer| peer.state.clone())
            .unwrap_or_else(|| "(not listed)".to_owned())
    };
    loop {
        let (page_a, page_b) = (a.snapshot().await?, b.snapshot().await?);
        let (state_a, state_b) = (state(&page_a, id_b), state(&page_b, id_a));
        if state_a == "direct" && state_b == "direct" {
            return Ok(("direct".to_owned(), Some(Instant::now())));
        }
        if Instant::now() >= deadline {
            let link = if state_a == state_b {
                state_a
            } else {
                format!("A: {state_a}, B: {state_b}")
            };
            return Ok((link, None));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The matrix as a Markdown table, one row per cell.
#[derive(Debug)]
pub struct Table<'a>(pub &'a [CellOutcome]);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| peers | NAT A | NAT B | expected | link | time to direct | chat with the relay dead | relayed link | sent | delivered | cell took | result |"
        )?;
        writeln!(
            f,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        )?;
        for cell in self.0 {
            let time_to_direct = cell
                .time_to_direct
                .map(|time| format!("{:.1} s", time.as_secs_f64()))
                .unwrap_or_else(|| "-".to_owned());
            let result = if cell.passed() {
                "ok"
            } else if cell.error.is_some() {
                "ERROR"
            } else {
                "FAIL"
            };
            let relay_dead = cell
                .relay_dead
                .as_ref()
                .map_or_else(|| "-".to_owned(), RelayDead::summary);
            let relayed = cell
                .relayed_link
                .as_ref()
                .map_or_else(|| "-".to_owned(), RelayedLink::summary);
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s | {} |",
                cell.peers,
                cell.a,
                cell.b,
                cell.expected,
                cell.link,
                time_to_direct,
                relay_dead,
                relayed,
                cell.sent,
                cell.delivered,
                cell.took.as_secs_f64(),
                result
            )?;
        }
        Ok(())
    }
}
