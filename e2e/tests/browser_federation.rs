//! Pages on different relays of a federation reach each other, and a page
//! whose relay dies moves to another. Three relay processes on loopback,
//! B federated with A and C only (A and C find each other through the
//! federation's DHT), each serving the built page; headless Chromium
//! pages:
//!
//! - a page on A and a page on C discover each other, chat both ways and
//!   go direct (WebRTC): each dials the other's circuit through the
//!   other's relay, which its own relay lists in `/api/relay`;
//! - B is killed (SIGKILL): a new page on A still reaches the page on C;
//! - A is killed: both its pages move to C within [`FAILOVER_WITHIN`]
//!   (the status says so), the first is listed again by the page on C,
//!   and they chat.
//!
//! And by lookup (a second test, six relays): a page reaches, by its id
//! alone, a page on a relay its own relay's list does not make it trust,
//! goes direct and chats; an unknown id gets the lookup's clear refusal.
//!
//! No page may report an error on its console.
//!
//! Needs the built page (`scripts/build-page`), chromedriver and Chromium.

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use e2e::{
    Browser, Check, ChromeDriver, PageRelay, RelayProcess, TIMEOUT, connect_to_relay, open_fresh,
    wait_page, wait_until,
};
use relay::state::seeded_keypair;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PREFIX: &str = "browser_federation";
/// From the SIGKILL of A until its pages are reserved on C: the page sees
/// its WebSocket close at once on loopback, dials A again after 1 s, gives
/// that dial 3 s (Chromium holds back a WebSocket to a port that refused
/// one), then moves: about 5 s, or 8 s when the page's last list (read
/// every 30 s) still names the dead B, which comes first and gets 3 s.
const FAILOVER_WITHIN: Duration = Duration::from_secs(15);
/// Two pages on different relays find each other and go direct: records
/// are announced every 20 s, and a page's first announcement may come
/// before its peer's relay was trusted.
const DIRECT_WITHIN: Duration = Duration::from_secs(60);
/// Identities of A, B and C (`--secret-key-seed`), so that the federation
/// file can name them before they start.
const SEEDS: [u8; 3] = [31, 32, 33];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_on_two_relays_go_direct_and_a_page_whose_relay_dies_moves_to_another() {
    let dir = tempfile::tempdir().expect("temp dir");
    let members = members_file(dir.path(), &SEEDS);
    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let b = start_relay("B", SEEDS[1], &members, None).await;
    let a = start_relay("A", SEEDS[0], &members, Some(&b.process)).await;
    let c = start_relay("C", SEEDS[2], &members, Some(&b.process)).await;
    let mut relays = Relays {
        a: Some(a),
        b: Some(b),
        c,
    };
    let mut pages = Vec::new();
    let outcome = run(&driver, &mut relays, &mut pages).await;
    finish(outcome, pages, &driver, &relays.log_paths()).await;
}

/// Fails the test with each page's report and the logs when the scenario
/// or a page's console says so; closes the pages otherwise.
async fn finish(
    outcome: anyhow::Result<()>,
    pages: Vec<Browser>,
    driver: &ChromeDriver,
    relay_logs: &str,
) {
    let outcome = match outcome {
        Ok(()) => check_consoles(&pages).await,
        error => error,
    };
    if let Err(error) = outcome {
        let mut reports = String::new();
        for page in &pages {
            reports.push_str(&page.save_failure_report(PREFIX).await);
            reports.push('\n');
        }
        panic!(
            "{error:#}\n\nartifacts:\n{reports}chromedriver log: {}\nrelay logs: {relay_logs}",
            driver.log_path().display(),
        );
    }
    for page in pages {
        page.close().await.expect("close the browser");
    }
}

/// The relays still running.
struct Relays {
    a: Option<PageRelay>,
    b: Option<PageRelay>,
    c: PageRelay,
}

impl Relays {
    fn log_paths(&self) -> String {
        [self.a.as_ref(), self.b.as_ref(), Some(&self.c)]
            .into_iter()
            .flatten()
            .map(|relay| relay.process.log_path.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

async fn run(
    driver: &ChromeDriver,
    relays: &mut Relays,
    pages: &mut Vec<Browser>,
) -> anyhow::Result<()> {
    let ids = SEEDS.map(|seed| seeded_keypair(seed).public().to_peer_id().to_string());
    let [id_relay_a, id_relay_b, id_relay_c] = ids.clone();
    let c = &relays.c;
    let a = relays.a.as_ref().context("A runs")?;

    // A and C were told only of B: each lists the other once the DHT
    // has introduced them.
    let started = Instant::now();
    wait_for_members(a, "A", &[&id_relay_b, &id_relay_c]).await?;
    wait_for_members(c, "C", &[&id_relay_a, &id_relay_b]).await?;
    eprintln!(
        "measured: A and C list each other in /api/relay {:.1} s after C started",
        started.elapsed().as_secs_f64()
    );

    // A page on A and a page on C: discovered, direct, chatting.
    let on_a = open_page(driver, "A1", a, pages).await?;
    let on_c = open_page(driver, "C1", c, pages).await?;
    let (page_a, page_c) = (&pages[on_a], &pages[on_c]);
    let id_a = connect(page_a, a).await?;
    let id_c = connect(page_c, c).await?;
    let started = Instant::now();
    wait_direct(page_a, &id_c).await?;
    wait_direct(page_c, &id_a).await?;
    eprintln!(
        "measured: pages on A and C direct {:.1} s after both reserved",
        started.elapsed().as_secs_f64()
    );
    chat(page_a, page_c, &id_a, "A to C").await?;
    chat(page_c, page_a, &id_c, "C to A").await?;

    // B dies: A and C stay federated, and a new page on A reaches C's.
    relays.b.take().context("B runs")?.process.kill().await?;
    wait_for_members(a, "A, B killed", &[&id_relay_c]).await?;
    let on_a2 = open_page(driver, "A2", a, pages).await?;
    let (page_a2, page_c) = (&pages[on_a2], &pages[on_c]);
    let id_a2 = connect(page_a2, a).await?;
    wait_direct(page_a2, &id_c).await?;
    wait_direct(page_c, &id_a2).await?;
    chat(page_a2, page_c, &id_a2, "A2 to C, B dead").await?;
    chat(page_c, page_a2, &id_c, "C to A2, B dead").await?;

    // A dies: its pages move to C.
    relays.a.take().context("A runs")?.process.kill().await?;
    let killed = Instant::now();
    for index in [on_a, on_a2] {
        let page = &pages[index];
        wait_page(
            page,
            &format!("reserved on C ({id_relay_c}), saying it moved from A"),
            FAILOVER_WITHIN,
            |state| {
                let moved = state.is_connected()
                    && state.status_text.contains(&short(&id_relay_c))
                    && state.status_text.contains("moved here from relay")
                    && state.status_text.contains(&short(&id_relay_a));
                let reserved_on_c = state
                    .self_addr
                    .contains(&format!("/p2p/{id_relay_c}/p2p-circuit"));
                (!(moved && reserved_on_c)).then(|| {
                    format!(
                        "#status {:?}, #self-addr {:?}",
                        state.status_text, state.self_addr
                    )
                })
            },
        )
        .await?;
        eprintln!(
            "measured: page {} moved to C {:.1} s after A was killed (bound {FAILOVER_WITHIN:?})",
            page.name,
            killed.elapsed().as_secs_f64()
        );
    }
    let moved = moved_in(&relays.c).await?;
    // Both: C knows a page was on A from the record A sent it when the
    // page reserved there. (A2 reserved after B died: A's record once
    // waited for the dead B in a DHT walk, and A was killed before it
    // left; records now go straight to the connected members.)
    eprintln!("measured: C counts {moved} pages moved in (2 moved)");
    anyhow::ensure!(
        moved == 2,
        "C's /metrics counts {moved} pages moved in, after both of A's pages moved there"
    );
    let (page_a, page_c) = (&pages[on_a], &pages[on_c]);
    wait_page(
        page_c,
        &format!("#peers lists the moved page {id_a}"),
        TIMEOUT,
        |state| (!state.lists_peer(&id_a)).then(|| format!("#peers does not list {id_a}")),
    )
    .await?;
    chat(page_a, page_c, &id_a, "A1 to C, moved").await?;
    chat(page_c, page_a, &id_c, "C to A1, moved").await?;
    Ok(())
}

/// Identities of the six relays of the lookup test.
const LOOKUP_SEEDS: [u8; 6] = [41, 42, 43, 44, 45, 46];
/// Fresh page identities tried until the pair's ids are in the order a
/// round wants.
const IDENTITY_TRIES: usize = 20;

/// Six relays, all federated through B. A page trusts its own relay and
/// the first `MAX_FEDERATION_RELAYS` = 4 of the others it lists (by peer
/// id): A and C have the two largest ids, so a page on A trusts neither C
/// (and cannot dial a page reserved there, though it hears its record)
/// nor is trusted by a page on C. Only a lookup gets them together: the
/// page on A asks A which relay holds the page on C's reservation, and
/// dials its circuit through C at the browser address A's answer gives.
/// Twice: with the smaller id on A, then on C. The smaller id upgrades
/// to WebRTC: the page on A at the `/webrtc` twin of the located circuit,
/// the page on C at the twin of the circuit it accepted (it has no
/// address of A's page through a relay it trusts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_reaches_a_page_on_a_relay_it_does_not_trust_by_its_id_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let members = members_file(dir.path(), &LOOKUP_SEEDS);
    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let mut by_id: Vec<(libp2p::PeerId, u8)> = LOOKUP_SEEDS
        .iter()
        .map(|seed| (seeded_keypair(*seed).public().to_peer_id(), *seed))
        .collect();
    by_id.sort();
    // The smallest is B (everyone's first contact), the two largest A and C.
    let seed_b = by_id[0].1;
    let (seed_a, seed_c) = (by_id[4].1, by_id[5].1);
    let b = start_relay("lookup-B", seed_b, &members, None).await;
    let mut relays = vec![];
    for (_, seed) in &by_id[1..] {
        let name = match *seed {
            s if s == seed_a => "lookup-A".to_owned(),
            s if s == seed_c => "lookup-C".to_owned(),
            s => format!("lookup-{s}"),
        };
        relays.push(start_relay(&name, *seed, &members, Some(&b.process)).await);
    }
    relays.push(b);
    let mut pages = Vec::new();
    let outcome = lookup(&driver, &relays, seed_a, seed_c, &mut pages).await;
    let logs: Vec<String> = relays
        .iter()
        .map(|relay| relay.process.log_path.display().to_string())
        .collect();
    finish(outcome, pages, &driver, &logs.join(" ")).await;
}

async fn lookup(
    driver: &ChromeDriver,
    relays: &[PageRelay],
    seed_a: u8,
    seed_c: u8,
    pages: &mut Vec<Browser>,
) -> anyhow::Result<()> {
    let id_of = |seed: u8| seeded_keypair(seed).public().to_peer_id().to_string();
    let all: Vec<String> = LOOKUP_SEEDS.iter().map(|seed| id_of(*seed)).collect();
    let relay_of = |seed: u8| {
        relays
            .iter()
            .find(|relay| relay.process.peer_id == id_of(seed))
            .context("the relay runs")
    };
    let (a, c) = (relay_of(seed_a)?, relay_of(seed_c)?);
    let (id_relay_a, id_relay_c) = (id_of(seed_a), id_of(seed_c));
    let others = |me: &str| -> Vec<String> { all.iter().filter(|id| *id != me).cloned().collect() };
    let started = Instant::now();
    for (relay, id) in [(a, &id_relay_a), (c, &id_relay_c)] {
        let others = others(id);
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        wait_for_members(relay, id, &others).await?;
    }
    eprintln!(
        "measured: A and C list the five others {:.1} s after the last relay started",
        started.elapsed().as_secs_f64()
    );

    let on_a = open_page(driver, "lookup-A1", a, pages).await?;
    let on_c = open_page(driver, "lookup-C1", c, pages).await?;
    let (page_a, page_c) = (&pages[on_a], &pages[on_c]);
    for (round, a_first) in [(1, true), (2, false)] {
        let (id_a, id_c) = fresh_pair(page_a, a, page_c, c, a_first).await?;
        eprintln!(
            "round {round}: the smaller id on {}",
            if a_first { "A" } else { "C" }
        );
        lookup_round(page_a, a, &id_a, page_c, c, &id_c, &id_relay_c, round == 1)
            .await
            .with_context(|| format!("round {round} (the smaller id on A: {a_first})"))?;
    }
    Ok(())
}

/// Fresh identities for both pages until the page on A's id is the
/// smaller (`a_first`) or the larger; returns them.
async fn fresh_pair(
    page_a: &Browser,
    a: &PageRelay,
    page_c: &Browser,
    c: &PageRelay,
    a_first: bool,
) -> anyhow::Result<(String, String)> {
    for _ in 0..IDENTITY_TRIES {
        let id_a = open_fresh(page_a, &a.ports.page_url()).await?;
        let id_c = open_fresh(page_c, &c.ports.page_url()).await?;
        // Ed25519 peer ids are base58 strings of one length, ordered as
        // their bytes (the order the upgrade's rule compares).
        if ((id_a.len(), id_a.as_str()) < (id_c.len(), id_c.as_str())) == a_first {
            return Ok((id_a, id_c));
        }
    }
    anyhow::bail!("{IDENTITY_TRIES} pairs of fresh identities, none in the order wanted")
}

/// The page on A, connected to A, reaches the page on C by its id alone.
/// `refusals`: first try a bad id and an id nobody holds.
#[allow(clippy::too_many_arguments)]
async fn lookup_round(
    page_a: &Browser,
    a: &PageRelay,
    id_a: &str,
    page_c: &Browser,
    c: &PageRelay,
    id_c: &str,
    id_relay_c: &str,
    refusals: bool,
) -> anyhow::Result<()> {
    connect(page_a, a).await?;
    connect(page_c, c).await?;
    // Each hears the other's record (the relays forward it) but cannot
    // dial it: its circuit goes through a relay the page does not trust.
    wait_page(
        page_a,
        &format!("#peers lists {id_c}, heard through the federation"),
        DIRECT_WITHIN,
        |state| (!state.lists_peer(id_c)).then(|| format!("#peers does not list {id_c}")),
    )
    .await?;
    let state = page_a.snapshot().await?;
    let link = state.peer(id_c).and_then(|peer| peer.state.clone());
    anyhow::ensure!(
        !matches!(link.as_deref(), Some("relayed" | "direct")),
        "the page on A is linked to the page on C ({link:?}) before any lookup:\n{state}"
    );

    if refusals {
        // A bad id, then an id nobody holds: clear refusals in the page.
        page_a.fill("#dial-addr", "12D3KooWnot-a-peer").await?;
        page_a.click("#dial").await?;
        wait_notice(page_a, "is neither a multiaddr nor a peer id").await?;
        let nobody = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
            .to_string();
        page_a.fill("#dial-addr", &nobody).await?;
        page_a.click("#dial").await?;
        wait_notice(
            page_a,
            "no relay of the federation holds a reservation for that peer",
        )
        .await?;
    }

    // The page on C by its id alone.
    let asked = Instant::now();
    page_a.fill("#dial-addr", id_c).await?;
    page_a.click("#dial").await?;
    // The log shows short ids as `…` and their last 8 characters.
    let located = format!(
        "{} is reserved on relay …{}",
        short(id_c),
        short(id_relay_c)
    );
    wait_page(
        page_a,
        &format!("#event-log says {located:?}"),
        TIMEOUT,
        |state| {
            (!state.events.iter().any(|event| event.contains(&located)))
                .then(|| "not yet".to_owned())
        },
    )
    .await?;
    wait_direct(page_a, id_c).await?;
    wait_direct(page_c, id_a).await?;
    eprintln!(
        "measured: the page on A direct with the page on C {:.1} s after it asked for its id",
        asked.elapsed().as_secs_f64()
    );
    anyhow::ensure!(
        !page_a.snapshot().await?.notice_visible,
        "a notice is shown after the lookup succeeded"
    );
    chat(page_a, page_c, id_a, "A to C, by id").await?;
    chat(page_c, page_a, id_c, "C to A, by id").await?;
    Ok(())
}

/// `page`'s `#notice` shows `text`.
async fn wait_notice(page: &Browser, text: &str) -> anyhow::Result<()> {
    wait_page(page, &format!("#notice says {text:?}"), TIMEOUT, |state| {
        (!(state.notice_visible && state.notice_text.contains(text)))
            .then(|| format!("#notice: {:?}", state.notice_text))
    })
    .await
    .map(drop)
}

/// A federation file naming the relays of `seeds`.
fn members_file(dir: &Path, seeds: &[u8]) -> std::path::PathBuf {
    let path = dir.join("federation");
    let text: String = seeds
        .iter()
        .map(|seed| format!("{}\n", seeded_keypair(*seed).public().to_peer_id()))
        .collect();
    std::fs::write(&path, text).expect("federation file");
    path
}

/// Starts relay `name` with identity `seed`, the federation file
/// `members`, and `--federate` to `federate`'s TCP address.
async fn start_relay(
    name: &str,
    seed: u8,
    members: &Path,
    federate: Option<&RelayProcess>,
) -> PageRelay {
    let mut extra = vec![
        format!("--secret-key-seed={seed}"),
        format!("--federation-peers={}", members.display()),
    ];
    if let Some(other) = federate {
        let tcp = other
            .multiaddr("tcp", "127.0.0.1")
            .expect("the relay printed a TCP address");
        extra.push(format!("--federate={tcp}"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    PageRelay::start(&format!("{PREFIX}-{name}"), &extra)
        .await
        .unwrap_or_else(|error| panic!("relay {name}: {error:#}"))
}

/// `GET /api/relay` of `relay`, as JSON.
async fn api_relay(relay: &PageRelay) -> anyhow::Result<serde_json::Value> {
    let body = http_get(relay, "/api/relay").await?;
    serde_json::from_str(&body).with_context(|| format!("/api/relay is JSON: {body}"))
}

/// The body of `GET path` from `relay` (a raw HTTP/1.0 request: the relay
/// is on loopback, and nothing else here speaks HTTP).
async fn http_get(relay: &PageRelay, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", relay.ports.http))
        .await
        .context("connect to the relay's HTTP port")?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (_, body) = response
        .split_once("\r\n\r\n")
        .context("an HTTP response")?;
    Ok(body.to_owned())
}

/// `relay_federation_moved_in_total` in `relay`'s `/metrics`.
async fn moved_in(relay: &PageRelay) -> anyhow::Result<u64> {
    let metrics = http_get(relay, "/metrics").await?;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("relay_federation_moved_in_total "))
        .with_context(|| format!("no relay_federation_moved_in_total in /metrics:\n{metrics}"))?
        .trim()
        .parse()
        .context("a count")
}

/// Waits until `relay`'s `/api/relay` lists exactly `expected` as its
/// federation.
async fn wait_for_members(relay: &PageRelay, name: &str, expected: &[&str]) -> anyhow::Result<()> {
    wait_until(
        &format!("relay {name} lists {expected:?} in /api/relay"),
        TIMEOUT,
        || async move {
            let info = api_relay(relay).await?;
            let mut listed: Vec<String> = info["federation"]
                .as_array()
                .map(|members| {
                    members
                        .iter()
                        .filter_map(|member| member["peer_id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            listed.sort();
            let mut expected: Vec<String> = expected.iter().map(|id| (*id).to_owned()).collect();
            expected.sort();
            Ok(if listed == expected {
                Check::Done(())
            } else {
                Check::NotYet(format!("it lists {listed:?}"))
            })
        },
    )
    .await
}

/// Opens a browser named `name` on the page `relay` serves; returns its
/// index in `pages`.
async fn open_page(
    driver: &ChromeDriver,
    name: &str,
    relay: &PageRelay,
    pages: &mut Vec<Browser>,
) -> anyhow::Result<usize> {
    let page = Browser::open(driver, name).await?;
    pages.push(page);
    let page = pages.last().context("just pushed")?;
    page.goto(&relay.ports.page_url()).await?;
    Ok(pages.len() - 1)
}

/// Connects `page` to `relay` over WebSocket; returns the page's peer id.
async fn connect(page: &Browser, relay: &PageRelay) -> anyhow::Result<String> {
    let addr = relay
        .process
        .multiaddr("ws", "127.0.0.1")
        .context("the relay printed a WebSocket address")?;
    Ok(connect_to_relay(page, addr, TIMEOUT).await?.self_peer_id)
}

/// `page` shows `other` on a direct (WebRTC) link.
async fn wait_direct(page: &Browser, other: &str) -> anyhow::Result<()> {
    wait_page(
        page,
        &format!("#peers shows {other} direct"),
        DIRECT_WITHIN,
        |state| match state.peer(other) {
            Some(peer) if peer.state.as_deref() == Some("direct") => None,
            found => Some(format!("found {found:?}")),
        },
    )
    .await
    .map(drop)
}

/// `from` sends a unique message; `to` shows it, from `from_id`.
async fn chat(from: &Browser, to: &Browser, from_id: &str, round: &str) -> anyhow::Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let text = format!("hello ({round}) #{nanos:09}");
    from.fill("#chat-input", &text).await?;
    from.press_enter("#chat-input").await?;
    let text = &text;
    wait_page(
        to,
        &format!("#chat-log shows {text:?} from {from_id}"),
        TIMEOUT,
        |state| (!state.has_message(from_id, text)).then(|| "not there".to_owned()),
    )
    .await
    .map(drop)
}

/// The short form of a peer id the page shows (`chat_network::short`:
/// its last 8 characters).
fn short(peer_id: &str) -> String {
    peer_id[peer_id.len().saturating_sub(8)..].to_owned()
}

async fn check_consoles(pages: &[Browser]) -> anyhow::Result<()> {
    for page in pages {
        page.check_no_page_errors().await?;
    }
    Ok(())
}
