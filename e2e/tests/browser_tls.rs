//! HTTPS as a user gets it: the relay, given a domain name, obtains its
//! certificate from an ACME CA (Pebble on loopback, validating with
//! TLS-ALPN-01), and Chromium trusts that certificate the ordinary way,
//! through a root in its NSS database (no `--ignore-certificate-errors`).
//! Two pages load over https, find the relay's secure WebSocket address
//! (`/tls/ws`) prefilled, connect over `wss://` and chat. Pebble issues
//! short-lived certificates, so the relay renews during the test: the
//! served certificate changes (serial, notBefore) while both pages stay
//! connected and go on chatting, and a third page, opened after the
//! renewal, connects with the new certificate and chats too. A
//! Content-Security-Policy violation on any page fails the test (the
//! console recorder counts it as an error; the test ends by making one on
//! purpose and checking that it is recorded).
//!
//! The test name resolves to loopback in Chromium by
//! `--host-resolver-rules`, and for Pebble through a DNS server of the
//! test's own ([`e2e::pebble::LoopbackDns`]).
//!
//! Needs the built page, chromedriver, Chromium, pebble and certutil
//! (`scripts/setup`).

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail, ensure};
use e2e::{
    Browser, Check, ChromeDriver, RelayProcess, TIMEOUT, built_page_dir,
    pebble::Pebble,
    tls_trust::{CertificateFacts, NssHome, https_get, pem_certificates},
    wait_page, wait_pages, wait_until,
};
use rustls::pki_types::CertificateDer;

const PREFIX: &str = "browser_tls";
/// A name no real resolver knows (RFC 2606's `.test`).
const NAME: &str = "relay.browser-chat.test";
/// The certificates' validity: the relay renews after two thirds of it
/// (60 s), which leaves the pages time to load, connect and chat first
/// (about 6 s here alone, more under the whole suite's load).
const VALIDITY: Duration = Duration::from_secs(90);

/// A chat line no earlier run could have left.
fn unique(text: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{text} #{nanos:09}")
}

/// The certificate HTTPS shows now, checked against Pebble's root only.
async fn served(https: SocketAddr, roots: &[CertificateDer<'static>]) -> anyhow::Result<Vec<u8>> {
    let (shown, status, _) = https_get(https, NAME, roots, "/health").await?;
    ensure!(status == 200, "/health answered {status}");
    Ok(shown)
}

/// How many times the page said it was connected to the relay since
/// Connect (a reconnection adds one).
async fn relay_connections(browser: &Browser) -> anyhow::Result<usize> {
    Ok(browser
        .marks()
        .await?
        .iter()
        .filter(|(name, _)| name == "relay-connected")
        .count())
}

/// Opens `url` and fails, with what Chromium showed instead, unless the
/// page came over https (a certificate Chromium does not trust leaves it
/// on an error page: `chrome-error://`, NET::ERR_CERT_...).
async fn open_page(browser: &Browser, url: &str) -> anyhow::Result<()> {
    browser.goto(url).await?;
    let shown = browser
        .run_async(
            "return [location.href, (document.body && document.body.innerText || '').slice(0, 400)];",
            vec![],
        )
        .await?;
    let href = shown[0].as_str().unwrap_or_default();
    ensure!(
        href.starts_with("https://"),
        "browser {}: {url} did not load over https (does the NSS database trust Pebble's root?); Chromium shows {href}: {}",
        browser.name,
        shown[1].as_str().unwrap_or_default()
    );
    Ok(())
}

/// Waits until HTTPS shows a certificate other than `first`, and returns
/// it; fails at once if a page is not connected to the relay at some look
/// (its status says so for a second at least before it reconnects).
async fn renewed_while_connected(
    pages: &[&Browser],
    https: SocketAddr,
    roots: &[CertificateDer<'static>],
    first: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + VALIDITY + TIMEOUT;
    loop {
        for browser in pages {
            let page = browser.snapshot().await?;
            ensure!(
                page.is_connected(),
                "page {} lost the relay while waiting for the renewal: #status is {:?}\n{page}",
                page.browser,
                page.status
            );
        }
        let seen = match served(https, roots).await {
            Ok(shown) if shown != first => return Ok(shown),
            Ok(_) => "the first certificate".to_owned(),
            Err(error) => format!("{error:#}"),
        };
        if tokio::time::Instant::now() > deadline {
            bail!(
                "no renewed certificate within {:?}: HTTPS still shows {seen}",
                VALIDITY + TIMEOUT
            );
        }
        tokio::time::sleep(e2e::POLL).await;
    }
}

/// `from` sends a new line; `to` shows it.
async fn chat(from: &Browser, from_id: &str, to: &Browser, what: &str) -> anyhow::Result<()> {
    let text = unique(what);
    from.fill("#chat-input", &text).await?;
    from.press_enter("#chat-input").await?;
    wait_page(
        to,
        &format!("{}'s #chat-log shows {text:?}", to.name),
        Duration::from_secs(10),
        |page| (!page.has_message(from_id, &text)).then(|| format!("no {text:?} from {from_id}")),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_trusting_pebbles_root_chat_over_wss_and_stay_connected_while_the_certificate_is_renewed()
 {
    e2e::clear_artifacts(PREFIX).expect("artifacts");
    let dir = tempfile::tempdir().expect("temporary directory");
    let page_dir = built_page_dir().expect("the built page (scripts/build-page)");
    let mut pebble = Pebble::prepare().await.expect("Pebble's files and ports");
    let args: Vec<String> = [
        "--listen-ip=127.0.0.1",
        "--port=0",
        "--websocket-port=0",
        "--webrtc-port=0",
        "--stun-port=0",
        "--quic-port=0",
        "--http-port=0",
        "--https-port=0",
        "--wss-port=0",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        format!("--domain={NAME}"),
        format!("--acme-directory={}", pebble.directory()),
        format!("--acme-root={}", pebble.https_ca_path().display()),
        format!("--state-dir={}", dir.path().join("state").display()),
        format!("--page-dir={}", page_dir.display()),
    ])
    .collect();
    let relay = RelayProcess::start(PREFIX, &args)
        .await
        .expect("the relay starts");
    let url = relay
        .page_urls
        .iter()
        .find(|url| url.starts_with(&format!("https://{NAME}:")))
        .unwrap_or_else(|| panic!("no https page URL printed: {:?}", relay.page_urls))
        .clone();
    let https_port: u16 = url
        .trim_start_matches(&format!("https://{NAME}:"))
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("no port in {url}"));
    let https = SocketAddr::from((Ipv4Addr::LOCALHOST, https_port));
    let secure = relay
        .multiaddrs
        .iter()
        .find(|addr| {
            addr.starts_with(&format!("/dns4/{NAME}/tcp/")) && addr.contains("/tls/ws/p2p/")
        })
        .unwrap_or_else(|| panic!("no /tls/ws address printed: {:?}", relay.multiaddrs))
        .clone();

    // The relay's first order finds no CA yet and is retried.
    pebble.launch(https_port, VALIDITY).expect("Pebble starts");
    let root_pem = pebble.issuing_root().await.expect("Pebble's root");
    let roots = pem_certificates(&root_pem).expect("Pebble's root as DER");
    let first = wait_until(
        "the relay serves a certificate from Pebble",
        TIMEOUT,
        || async { Ok(Check::Done(served(https, &roots).await?)) },
    )
    .await
    .unwrap_or_else(|error| {
        panic!(
            "{error:#}\nPebble's log:\n{}\nrelay log: {}",
            pebble.log(),
            relay.log_path.display()
        )
    });
    let first_facts = CertificateFacts::of(&first).expect("the first certificate parses");
    let first_seen = std::time::Instant::now();

    // Chromium trusts Pebble's root through the NSS database of its HOME,
    // and finds the test name on loopback.
    let home = NssHome::trusting(&root_pem).expect("an NSS database trusting Pebble's root");
    let driver = ChromeDriver::start_wrapped(PREFIX, &home.driver_wrapper(), 0)
        .await
        .expect("chromedriver starts");
    let resolve = format!("--host-resolver-rules=MAP {NAME} 127.0.0.1");
    let a = Browser::open_with_args(&driver, "A", &[&resolve])
        .await
        .expect("browser A opens");
    let b = Browser::open_with_args(&driver, "B", &[&resolve])
        .await
        .expect("browser B opens");
    let mut c: Option<Browser> = None;
    let outcome = async {
        open_page(&a, &url).await?;
        open_page(&b, &url).await?;
        // Served over https, the page prefills the secure address.
        wait_pages(
            &a,
            &b,
            "#relay-addr is prefilled with the /tls/ws address",
            TIMEOUT,
            |page| {
                (page.relay_addr.trim() != secure)
                    .then(|| format!("#relay-addr is {:?}, expected {secure:?}", page.relay_addr))
            },
        )
        .await?;
        a.click("#connect").await?;
        b.click("#connect").await?;
        let (page_a, page_b) = wait_pages(&a, &b, "#status is connected", TIMEOUT, |page| {
            (!page.is_connected() || page.self_peer_id.is_empty())
                .then(|| format!("#status is {:?}", page.status))
        })
        .await?;
        let (id_a, id_b) = (page_a.self_peer_id, page_b.self_peer_id);
        wait_page(&a, "#peers lists B", TIMEOUT, |page| {
            (!page.lists_peer(&id_b)).then(|| format!("#peers does not list {id_b}"))
        })
        .await?;
        chat(&a, &id_a, &b, "hello over wss").await?;
        a.screenshot(PREFIX, "chatted").await?;

        // The renewal must come while the pages are connected.
        let now_served = served(https, &roots).await?;
        ensure!(
            now_served == first,
            "the certificate was renewed before both pages were connected; \
             raise VALIDITY ({VALIDITY:?})"
        );
        let connections = (relay_connections(&a).await?, relay_connections(&b).await?);
        println!(
            "first certificate: serial {}, valid {:?}; pages connected and chatted {:.1} s after it \
             was served; waiting for the renewal",
            first_facts.serial,
            first_facts
                .not_after
                .duration_since(first_facts.not_before)
                .unwrap_or_default(),
            first_seen.elapsed().as_secs_f64()
        );

        // Until the relay serves a new certificate, both pages stay
        // connected at every look.
        let second = renewed_while_connected(&[&a, &b], https, &roots, &first).await?;
        let second_facts = CertificateFacts::of(&second)?;
        println!(
            "renewed: serial {} -> {}, notBefore {} s later",
            first_facts.serial,
            second_facts.serial,
            second_facts
                .not_before
                .duration_since(first_facts.not_before)
                .unwrap_or_default()
                .as_secs()
        );
        ensure!(
            second_facts.serial != first_facts.serial
                && second_facts.not_before > first_facts.not_before,
            "the new certificate is not a later one: {first_facts:?} then {second_facts:?}"
        );

        // Both pages still hold their first connection and chat both ways.
        chat(&b, &id_b, &a, "after the renewal, B to A").await?;
        chat(&a, &id_a, &b, "after the renewal, A to B").await?;
        let after = (relay_connections(&a).await?, relay_connections(&b).await?);
        ensure!(
            after == connections,
            "a page reconnected to the relay during the renewal: \
             relay-connected marks (A, B) were {connections:?}, now {after:?}"
        );

        // A newcomer's handshakes meet the renewed certificate.
        let newcomer = c.insert(
            Browser::open_with_args(&driver, "C", &[&resolve])
                .await
                .context("browser C opens")?,
        );
        open_page(newcomer, &url).await?;
        wait_page(newcomer, "#relay-addr is prefilled", TIMEOUT, |page| {
            (page.relay_addr.trim() != secure)
                .then(|| format!("#relay-addr is {:?}", page.relay_addr))
        })
        .await?;
        newcomer.click("#connect").await?;
        let page_c = wait_page(newcomer, "#status is connected", TIMEOUT, |page| {
            (!page.is_connected() || page.self_peer_id.is_empty())
                .then(|| format!("#status is {:?}", page.status))
        })
        .await?;
        chat(
            newcomer,
            &page_c.self_peer_id,
            &a,
            "C joined after the renewal",
        )
        .await?;
        ensure!(
            served(https, &roots).await? != first,
            "the first certificate is served again"
        );

        // The renewal is counted and the new expiry shown in /metrics.
        let (_, _, metrics) = https_get(https, NAME, &roots, "/metrics").await?;
        let metrics = String::from_utf8_lossy(&metrics);
        let ordered = metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix("relay_tls_certificates_installed_total{source=\"acme-order\"} ")
            })
            .and_then(|count| count.trim().parse::<u64>().ok());
        ensure!(
            ordered.is_some_and(|count| count >= 2),
            "/metrics does not count two certificates from the CA: {ordered:?}\n{metrics}"
        );
        let series = format!("relay_tls_certificate_expiry_seconds{{domain=\"{NAME}\"}} ");
        let left = metrics
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .and_then(|seconds| seconds.trim().parse::<u64>().ok());
        // The renewed certificate's remaining life, as the relay sees it.
        ensure!(
            left.is_some_and(|seconds| seconds > 0 && seconds <= VALIDITY.as_secs()),
            "/metrics shows {series}{left:?}, expected within (0, {}]:\n{metrics}",
            VALIDITY.as_secs()
        );

        a.check_no_page_errors().await?;
        b.check_no_page_errors().await?;
        newcomer.check_no_page_errors().await?;

        // And the check above can fail: a request the relay's policy
        // forbids (connect-src allows only the relay and wss:) is recorded
        // as a page error.
        newcomer
            .run_async(
                "await fetch('https://elsewhere.invalid/').catch(() => {});",
                vec![],
            )
            .await?;
        wait_until(
            "a CSP violation on page C is recorded as a page error",
            Duration::from_secs(5),
            || async {
                let errors = newcomer.page_errors().await?;
                Ok(
                    if errors
                        .iter()
                        .any(|line| line.contains("csp connect-src refused https://elsewhere.invalid"))
                    {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!("page errors: {errors:?}"))
                    },
                )
            },
        )
        .await?;
        // Closing a browser checks its page too: leave this one.
        newcomer.goto("about:blank").await
    }
    .await;
    if let Err(error) = outcome {
        let mut reports = vec![
            a.save_failure_report(PREFIX).await,
            b.save_failure_report(PREFIX).await,
        ];
        if let Some(c) = &c {
            reports.push(c.save_failure_report(PREFIX).await);
        }
        panic!(
            "{error:#}\n\nartifacts:\n{}\nrelay log: {}\nPebble's log:\n{}",
            reports.join("\n"),
            relay.log_path.display(),
            pebble.log()
        );
    }
    a.close().await.expect("close A");
    b.close().await.expect("close B");
    if let Some(c) = c {
        c.close().await.expect("close C");
    }
    relay.kill().await.expect("kill the relay");
}
