//! The page as a browser gets it from the relay, read from the browser's
//! own Resource Timing entries: the wasm comes compressed over the wire,
//! and a second visit downloads nothing but the HTML (the wasm, the JS and
//! the CSS come from the browser's cache, as their hashed names are
//! `immutable`).
//!
//! Needs the built page (`scripts/build-page`), chromedriver and Chromium.

use e2e::{Browser, Check, ChromeDriver, PageRelay, TIMEOUT};
use serde::Deserialize;

const PREFIX: &str = "page_cache";

/// One entry of `performance.getEntriesByType('resource')`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    name: String,
    transfer_size: f64,
    encoded_body_size: f64,
    decoded_body_size: f64,
}

/// The page's resources once its wasm has loaded (the wasm and its JS have
/// entries, and the node has started: the relay address is prefilled).
const RESOURCES: &str = "
    const entries = performance.getEntriesByType('resource');
    const loaded = entries.some((e) => e.name.endsWith('_bg.wasm') && e.responseEnd > 0)
        && document.getElementById('relay-addr').value !== '';
    return loaded ? entries.map((e) => ({
        name: e.name, transferSize: e.transferSize,
        encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize,
    })) : null;";

async fn visit(browser: &Browser, url: &str) -> anyhow::Result<Vec<Resource>> {
    browser.goto(url).await?;
    e2e::wait_until("the page's wasm has loaded", TIMEOUT, || async {
        let value = browser.client.execute(RESOURCES, vec![]).await?;
        Ok(if value.is_null() {
            Check::NotYet("no wasm resource yet, or the relay address is not filled in".to_owned())
        } else {
            Check::Done(serde_json::from_value::<Vec<Resource>>(value)?)
        })
    })
    .await
}

/// The page's own files: not the API it asks for its relay's addresses
/// (`no-store`: data, not the page).
fn page_files(resources: &[Resource]) -> Vec<&Resource> {
    resources
        .iter()
        .filter(|resource| !resource.name.contains("/api/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_visit_downloads_nothing_but_the_html() {
    let relay = PageRelay::start(PREFIX, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let browser = Browser::open(&driver, "A").await.expect("browser opens");
    let url = relay.ports.page_url();

    let first = visit(&browser, &url)
        .await
        .unwrap_or_else(|error| panic!("first visit: {error:#}"));
    let second = visit(&browser, &url)
        .await
        .unwrap_or_else(|error| panic!("second visit: {error:#}"));
    println!("first visit: {first:#?}\nsecond visit: {second:#?}");

    let first_files = page_files(&first);
    let wasm = first_files
        .iter()
        .find(|resource| resource.name.ends_with("_bg.wasm"))
        .expect("the first visit loaded the wasm");
    assert!(
        wasm.transfer_size > 0.0,
        "the first visit downloads the wasm: {wasm:?}"
    );
    assert!(
        wasm.encoded_body_size < wasm.decoded_body_size / 2.0,
        "the wasm comes compressed (less than half its size over the wire): {wasm:?}"
    );

    let second_files = page_files(&second);
    for suffix in ["_bg.wasm", ".js"] {
        assert!(
            second_files
                .iter()
                .any(|resource| resource.name.ends_with(suffix)),
            "the second visit used a {suffix} too: {second_files:#?}"
        );
    }
    let downloaded: Vec<_> = second_files
        .iter()
        .filter(|resource| resource.transfer_size > 0.0)
        .collect();
    assert!(
        downloaded.is_empty(),
        "a second visit takes the page's files from the cache, yet downloaded {downloaded:#?}"
    );

    browser.close().await.expect("close the browser");
    relay.process.kill().await.expect("kill the relay");
}
