//! Harness for the end-to-end tests: the built page in headless Chromium
//! or Firefox, driven over WebDriver (chromedriver or geckodriver +
//! fantoccini), against the relay binary run as its own process.
//!
//! - [`RelayPorts`], [`relay_args`]: the ports a relay on 127.0.0.1 bound
//!   (port 0) and printed, so it can be killed and started again where
//!   pages expect it;
//! - [`RelayProcess`]: the relay binary as a child process, read back from
//!   what it prints, killed with SIGKILL on request and on drop;
//! - [`Driver`] (alias [`ChromeDriver`]): a chromedriver or geckodriver
//!   child process, killed on drop (with its browser);
//! - [`BrowserKind`]: Chromium or Firefox, their binaries and drivers;
//! - [`ChatPeerProcess`]: the native peer (`chat-peer --json chat`) as a
//!   child process: its output parsed, its input written, killed on drop;
//! - [`JsPeer`]: the js-libp2p peer page (`e2e/js-peer/`) in a browser;
//! - [`Browser`]: one headless Chromium or Firefox session with its own
//!   fresh profile, closed on drop; it records the page's console (and so
//!   its uncaught errors) in either browser; [`Browser::freeze`] stops
//!   its processes as a frozen laptop would ([`Frozen`]);
//! - [`wait_until`] and [`Check`]: every wait polls a condition until a
//!   deadline and fails saying what it expected and what it saw instead;
//! - [`PageState`]: one snapshot of the chat page's DOM contract (the
//!   selectors are listed there), read in a single script call;
//! - [`lan_ipv4`]: this machine's LAN address, where a relay listens for
//!   Firefox, which refuses WebRTC to loopback;
//! - [`pebble`]: Pebble, the test ACME CA, on loopback with a DNS server
//!   of its own; [`tls_trust`]: a home whose NSS database trusts its root
//!   (for Chromium), and what an HTTPS server presents;
//! - [`natlab`]: the NAT lab, two laptops behind NATs and a relay in
//!   network namespaces (root only).
//!
//! Nothing here sleeps as an assertion: sleeps only space out polls.

mod browser;
mod browser_kind;
mod chat_peer;
mod chromedriver;
mod firefox;
mod host;
mod js_peer;
pub mod natlab;
mod page;
pub mod pebble;
mod ports;
mod process_tree;
mod relay_process;
pub mod tls_trust;

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use fantoccini::Client;

pub use browser::{Browser, CHROMIUM_ARGS};
pub use browser_kind::BrowserKind;
pub use chat_peer::ChatPeerProcess;
pub use chromedriver::{ChromeDriver, Driver};
pub use firefox::{FIREFOX_ARGS, FIREFOX_PREFS};
pub use host::lan_ipv4;
pub use js_peer::{
    JsConnection, JsIdentified, JsPeer, JsPeerState, JsPing, js_peer_page, js_peer_url,
};
pub use page::{
    ChatEntry, PageState, PeerEntry, click_connect, connect_to_relay, open_fresh, wait_page,
    wait_pages, wait_reserved,
};
pub use ports::{RelayPorts, relay_args};
pub use process_tree::Frozen;
pub use relay_process::{PageRelay, RelayProcess, chat_peer_binary, relay_binary};

/// How often a wait looks again.
pub const POLL: Duration = Duration::from_millis(100);
/// Bound on an ordinary wait: a page reacting, a peer appearing, a message
/// arriving.
pub const TIMEOUT: Duration = Duration::from_secs(30);

// Paths and artifacts

/// The workspace root (the directory above this crate).
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `<repo>/artifacts`, created if missing: screenshots, logs and failure
/// reports go there (it is gitignored).
pub fn artifacts_dir() -> anyhow::Result<PathBuf> {
    let dir = repo_root().join("artifacts");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// `<repo>/dist`, the page built by `scripts/build-page`; an error telling
/// to build it when `index.html` is missing. `$E2E_PAGE_DIR` points the
/// tests at another directory instead (to check the harness with a stand-in
/// page).
pub fn built_page_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("E2E_PAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("dist"));
    let index = dir.join("index.html");
    if !index.is_file() {
        bail!(
            "the page is not built: {} is missing. Run `scripts/build-page`, \
             then run the tests again",
            index.display()
        );
    }
    Ok(dir)
}

/// Removes `<repo>/artifacts/<prefix>-*` left by an earlier run, so that
/// what is there after a run is from that run.
pub fn clear_artifacts(prefix: &str) -> anyhow::Result<()> {
    let dir = artifacts_dir()?;
    let prefix = format!("{}-", sanitize(prefix));
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        let ours = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(&prefix));
        if ours && path.is_file() {
            std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `<repo>/artifacts/<name>` and returns the path.
pub fn save_artifact(name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = artifacts_dir()?.join(sanitize(name));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Takes a screenshot of `client`'s page (PNG) and saves it as
/// `<repo>/artifacts/<name>.png`.
pub async fn save_screenshot(client: &Client, name: &str) -> anyhow::Result<PathBuf> {
    let png = client
        .screenshot()
        .await
        .with_context(|| format!("screenshot {name}"))?;
    save_artifact(&format!("{name}.png"), &png)
}

pub(crate) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub(crate) fn tail_of_file(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => tail(&text, lines),
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[... {skip} earlier lines]\n"));
    }
    out.push_str(&all[skip..].join("\n"));
    out
}

// Waiting

/// What one look at a condition found.
#[derive(Debug)]
pub enum Check<T> {
    /// The condition holds; the wait returns this value.
    Done(T),
    /// Not yet: what was seen instead (goes into the failure message).
    NotYet(String),
}

/// Looks at `check` every [`POLL`] until it is [`Check::Done`] or `timeout`
/// has passed. The failure says `what` was expected and what the last look
/// saw. An error from `check` (say, a WebDriver call during a navigation)
/// counts as "not yet" and is reported if it is the last thing seen.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Check<T>>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut seen = String::from("(nothing: the first look did not finish)");
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(Check::Done(value))) => return Ok(value),
            Ok(Ok(Check::NotYet(now))) => seen = now,
            Ok(Err(error)) => seen = format!("(the look failed: {error:#})"),
            Err(_) => break,
        }
        if tokio::time::Instant::now() + POLL >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    bail!(
        "timed out after {:.1} s waiting until {what}.\nInstead:\n{seen}",
        started.elapsed().as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_until_reports_what_it_saw_last() {
        let mut looks = 0;
        let error = wait_until("never", Duration::from_millis(350), || {
            looks += 1;
            let look = looks;
            async move { Ok(Check::<()>::NotYet(format!("look {look}"))) }
        })
        .await
        .expect_err("times out");
        let message = format!("{error:#}");
        assert!(message.contains("waiting until never"), "{message}");
        assert!(message.contains(&format!("look {looks}")), "{message}");
        assert!(looks >= 3, "polled {looks} times");

        let value = wait_until("soon", TIMEOUT, || async { Ok(Check::Done(7)) })
            .await
            .expect("done at once");
        assert_eq!(value, 7);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "[... 1 earlier lines]\nb\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
