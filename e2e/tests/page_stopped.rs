//! A page whose WebAssembly traps says that it stopped. The release page
//! is built without panic machinery (BENCHMARKS.md, "Page weight"), so a
//! panic is a bare `unreachable` trap: the node and the UI stop, and
//! without the page's own handler (`static/index.html`) nothing on screen
//! would change.
//!
//! The trap here is a real one, from a tiny module compiled in the page
//! (the page's own exports give no way to make it trap on purpose), raised
//! as a trap in a callback would be: uncaught in a task of its own. An
//! ordinary script error must not stop the page.
//!
//! Needs the built page (`scripts/build-page`), chromedriver and Chromium.

use std::time::Duration;

use e2e::{Browser, ChromeDriver, PageRelay, TIMEOUT, wait_page};

const PREFIX: &str = "page_stopped";

/// How long the page is given to (wrongly) react to an ordinary error.
const SETTLE: Duration = Duration::from_millis(500);

/// Throws `arguments[0]` from a task of its own: a `WebAssembly.RuntimeError`
/// from a real `unreachable` when it is "trap", else an ordinary `Error`.
const RAISE: &str = r#"
    const kind = args[0];
    // (module (func (export "t") unreachable))
    const bytes = new Uint8Array([
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
        0x03, 0x02, 0x01, 0x00,
        0x07, 0x05, 0x01, 0x01, 0x74, 0x00, 0x00,
        0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b,
    ]);
    const { instance } = await WebAssembly.instantiate(bytes);
    setTimeout(() => {
        if (kind === "trap") instance.exports.t();
        throw new Error("e2e: an ordinary script error");
    });
"#;

/// The page's controls that are disabled (`#connect`, `#send`, ...).
const DISABLED_CONTROLS: &str = r#"
    return Array.from(document.querySelectorAll("button, input"))
        .filter((control) => control.disabled)
        .map((control) => control.id);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_wasm_traps_says_it_stopped_and_an_ordinary_error_does_not_stop_it() {
    let relay = PageRelay::start(PREFIX, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let browser = Browser::open(&driver, "A").await.expect("browser opens");
    if let Err(error) = run(&browser, &relay.ports.page_url()).await {
        let report = browser.save_failure_report(PREFIX).await;
        panic!("{error:#}\n\nartifacts:\n{report}");
    }
    // The errors raised on purpose are on record: not closed with
    // `Browser::close`, which fails on them.
    drop(browser);
    relay.process.kill().await.expect("kill the relay");
}

async fn run(browser: &Browser, url: &str) -> anyhow::Result<()> {
    browser.goto(url).await?;
    // The node runs: it prefilled the relay address from `/api/relay`.
    wait_page(browser, "the page is up", TIMEOUT, |page| {
        page.relay_addr
            .trim()
            .is_empty()
            .then(|| "#relay-addr is empty".to_owned())
    })
    .await?;

    browser.run_async(RAISE, vec!["ordinary".into()]).await?;
    tokio::time::sleep(SETTLE).await;
    let page = browser.snapshot().await?;
    anyhow::ensure!(
        !page.notice_visible && page.status.as_deref() != Some("error"),
        "an ordinary script error stopped the page:\n{page}"
    );
    let disabled = browser.run_async(DISABLED_CONTROLS, vec![]).await?;
    anyhow::ensure!(
        disabled
            .as_array()
            .is_some_and(|ids| !ids.iter().any(|id| id == "connect")),
        "an ordinary script error disabled Connect: {disabled}"
    );

    browser.run_async(RAISE, vec!["trap".into()]).await?;
    let page = wait_page(
        browser,
        "#notice says the page stopped, #status is an error",
        TIMEOUT,
        |page| {
            let notice = page.notice_text.to_lowercase();
            if !page.notice_visible {
                Some("#notice is hidden".to_owned())
            } else if !(notice.contains("stopped") && notice.contains("reload")) {
                Some(format!("#notice: {:?}", page.notice_text))
            } else if page.status.as_deref() != Some("error") {
                Some(format!("#status is {:?}", page.status))
            } else {
                None
            }
        },
    )
    .await?;
    println!("after the trap: {page}");
    let disabled = browser.run_async(DISABLED_CONTROLS, vec![]).await?;
    for control in ["connect", "relay-addr", "send", "chat-input", "dial"] {
        anyhow::ensure!(
            disabled
                .as_array()
                .is_some_and(|ids| ids.iter().any(|id| id == control)),
            "#{control} is still enabled after the trap: disabled are {disabled}"
        );
    }
    browser.screenshot(PREFIX, "stopped").await?;
    Ok(())
}
