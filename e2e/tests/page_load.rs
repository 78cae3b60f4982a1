//! The page asks the relay that served it for its addresses (`/api/relay`)
//! once on load, from its inline script while the wasm downloads
//! (`static/index.html`), and the wasm takes that answer
//! (`web-peer/src/page_config.rs`) instead of asking again a round trip
//! later: the relay address is filled from it, and the relay saw one
//! request. The page's console stays free of errors.
//!
//! Needs the built page (`scripts/build-page`), chromedriver and Chromium.

use e2e::{Browser, ChromeDriver, PageRelay, TIMEOUT, wait_page};

const PREFIX: &str = "page_load";

/// Counts the document's `fetch` calls for `/api/relay` in
/// `window.__apiRelayFetches`, installed before any of its scripts run.
/// (Resource Timing cannot tell: a response whose body nobody reads never
/// makes an entry.)
const COUNT_API_FETCHES: &str = r#"(() => {
  const fetch = window.fetch;
  window.__apiRelayFetches = 0;
  window.fetch = function (input) {
    const url = typeof input === "string" ? input : input.url;
    if (new URL(url, location.href).pathname === "/api/relay") window.__apiRelayFetches += 1;
    return fetch.apply(this, arguments);
  };
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_reads_the_relays_addresses_once_asked_while_the_wasm_downloads() {
    let relay = PageRelay::start(PREFIX, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let browser = Browser::open(&driver, "A").await.expect("browser opens");
    browser
        .add_init_script(COUNT_API_FETCHES)
        .await
        .expect("fetch counter installed");
    if let Err(error) = run(&browser, &relay.ports.page_url()).await {
        let report = browser.save_failure_report(PREFIX).await;
        panic!("{error:#}\n\nartifacts:\n{report}");
    }
    browser.close().await.expect("no page errors");
    relay.process.kill().await.expect("kill the relay");
}

async fn run(browser: &Browser, url: &str) -> anyhow::Result<()> {
    browser.goto(url).await?;
    let page = wait_page(browser, "the relay address is filled", TIMEOUT, |page| {
        page.relay_addr
            .trim()
            .is_empty()
            .then(|| "#relay-addr is empty".to_owned())
    })
    .await?;
    anyhow::ensure!(
        page.relay_addr.contains("/p2p/"),
        "#relay-addr is not one of the relay's addresses: {:?}",
        page.relay_addr
    );
    let fetches = browser
        .run_async("return window.__apiRelayFetches;", vec![])
        .await?;
    println!("fetches of /api/relay on load: {fetches}");
    anyhow::ensure!(
        fetches == 1,
        "the page fetched /api/relay {fetches} times on load: the wasm did not take \
         the inline script's answer"
    );
    Ok(())
}
