//! A headless browser session (Chromium or Firefox) over WebDriver.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, anyhow};
use fantoccini::{Client, ClientBuilder, Locator, wd::WebDriverCompatibleCommand};
use serde_json::{Value, json};

use crate::{
    BrowserKind, Driver, PageState, chromedriver::http_request_blocking, firefox,
    page::SNAPSHOT_SCRIPT, sanitize, save_artifact, save_screenshot, tail, tail_of_file,
};

/// The flags every Chromium session gets (plus `--user-data-dir`).
/// `WebRtcHideLocalIpsWithMdns` is off so ICE candidates carry real IPs
/// (loopback and namespace addresses) instead of `.local` names no resolver
/// here answers. Firefox's counterparts: [`crate::FIREFOX_PREFS`].
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--window-size=1200,900",
];

/// One headless browser, with its own fresh profile, driven over
/// WebDriver. Its session (and so the browser) is closed on drop, even
/// when a test panics.
#[derive(Debug)]
pub struct Browser {
    /// A short name for messages and artifact files ("A", "B").
    pub name: String,
    pub kind: BrowserKind,
    pub client: Client,
    session_id: String,
    driver_port: u16,
    closed: bool,
    // Dropped after the session is closed (fields drop in order): the
    // driver this browser owns, if any, then the profile.
    own_driver: Option<Driver>,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Opens a session of `driver`'s browser with its default arguments
    /// ([`CHROMIUM_ARGS`], [`crate::FIREFOX_ARGS`]).
    pub async fn open(driver: &Driver, name: &str) -> anyhow::Result<Self> {
        Self::open_with_args(driver, name, &[]).await
    }

    /// Starts a driver for a `kind` browser of its own (logging to
    /// `<repo>/artifacts/<log_name>-<name>-<driver>.log`) and opens a
    /// session on it; the driver goes with the browser. Firefox needs this:
    /// geckodriver runs one session at a time.
    pub async fn launch(kind: BrowserKind, log_name: &str, name: &str) -> anyhow::Result<Self> {
        let driver = Driver::start_for(kind, &format!("{log_name}-{name}")).await?;
        let mut browser = Self::open(&driver, name).await?;
        browser.own_driver = Some(driver);
        Ok(browser)
    }

    /// The log of the driver this browser owns ([`Browser::launch`]).
    pub fn driver_log(&self) -> Option<PathBuf> {
        self.own_driver
            .as_ref()
            .map(|driver| driver.log_path().to_path_buf())
    }

    /// Opens a session with the default arguments plus `extra_args` on the
    /// browser's command line; the browser binary is
    /// [`BrowserKind::binary`].
    pub async fn open_with_args(
        driver: &Driver,
        name: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        let kind = driver.kind();
        let profile = tempfile::Builder::new()
            .prefix(&format!("e2e-{}-{}-", kind.name(), sanitize(name)))
            .tempdir()
            .context("temp dir for the browser profile")?;
        let capabilities = match kind {
            BrowserKind::Chromium => {
                let binary = kind.binary()?;
                let mut args: Vec<String> =
                    CHROMIUM_ARGS.iter().map(|arg| (*arg).to_owned()).collect();
                args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
                args.push(format!("--user-data-dir={}", profile.path().display()));
                json!({
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": binary,
                        "args": args,
                    },
                })
            }
            BrowserKind::Firefox => firefox::capabilities(profile.path(), extra_args)?,
        };
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        let driver_name = kind.driver_name();
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .with_context(|| {
                format!(
                    "browser {name}: {driver_name} did not start a {kind} session; its log {}:\n{}",
                    driver.log_path().display(),
                    tail_of_file(driver.log_path(), 40)
                )
            })?;
        let session_id = client
            .session_id()
            .await
            .context("session id")?
            .ok_or_else(|| anyhow!("{driver_name} gave no session id"))?;
        let browser = Self {
            name: name.to_owned(),
            kind,
            client,
            session_id,
            driver_port: driver.port(),
            closed: false,
            own_driver: None,
            profile,
        };
        browser.record_console().await?;
        if kind == BrowserKind::Firefox {
            // As Chromium's `--window-size`: screenshots of one size.
            browser
                .client
                .set_window_size(1200, 900)
                .await
                .context("set Firefox's window size")?;
        }
        Ok(browser)
    }

    /// Installs, for every document this session loads from now on, a hook
    /// that keeps the last 1000 console lines, uncaught errors and
    /// unhandled rejections in `window.__e2eConsole` (see
    /// [`Browser::console`]): through Chrome's DevTools protocol in
    /// Chromium, through WebDriver BiDi in Firefox.
    async fn record_console(&self) -> anyhow::Result<()> {
        match self.kind {
            BrowserKind::Chromium => {
                self.add_init_script(CONSOLE_HOOK)
                    .await
                    .context("install the console recorder")?;
            }
            BrowserKind::Firefox => {
                let url = self
                    .client
                    .capabilities()
                    .and_then(|capabilities| capabilities.get("webSocketUrl"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        anyhow!("geckodriver's session has no webSocketUrl (WebDriver BiDi)")
                    })?
                    .to_owned();
                firefox::install_console_hook(&url, CONSOLE_HOOK)
                    .await
                    .context("install the console recorder (WebDriver BiDi)")?;
            }
        }
        Ok(())
    }

    /// Runs `source` in every document this session loads from now on,
    /// before the document's own scripts (Chromium only: through Chrome's
    /// DevTools protocol, as the console recorder is installed).
    pub async fn add_init_script(&self, source: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.kind == BrowserKind::Chromium,
            "add_init_script: Chromium only"
        );
        self.client
            .issue_cmd(Cdp {
                cmd: "Page.addScriptToEvaluateOnNewDocument",
                params: json!({ "source": source }),
            })
            .await
            .context("add a script for new documents (CDP)")?;
        Ok(())
    }

    /// Reloads the page, as a user pressing F5: the tab (and so its
    /// `sessionStorage`, and the page's peer id) stays.
    pub async fn reload(&self) -> anyhow::Result<()> {
        self.client
            .refresh()
            .await
            .with_context(|| format!("browser {}: reload", self.name))
    }

    /// Stops this browser's every process (SIGSTOP), as a laptop that
    /// sleeps: no goodbye on any connection. They are killed when the
    /// returned [`Frozen`] is (or on its drop); the session is lost then.
    pub fn freeze(&self) -> anyhow::Result<crate::Frozen> {
        crate::Frozen::stop_tree_of(self.profile.path())
            .with_context(|| format!("browser {}: stop its processes", self.name))
    }

    /// Navigates to `url`.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("browser {}: open {url}", self.name))
    }

    /// The page's console so far (see [`Browser::record_console`]).
    pub async fn console(&self) -> anyhow::Result<Vec<String>> {
        let value = self
            .client
            .execute("return window.__e2eConsole || [];", vec![])
            .await
            .context("read the console")?;
        Ok(value
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .map(|line| line.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// What the page reported as broken so far: `console.error` calls,
    /// uncaught exceptions, unhandled promise rejections and
    /// Content-Security-Policy violations, in order.
    /// The first 200 are kept, whatever the page logs besides.
    pub async fn page_errors(&self) -> anyhow::Result<Vec<String>> {
        let value = self
            .client
            .execute("return window.__e2eErrors || [];", vec![])
            .await
            .context("read the page's errors")?;
        Ok(value
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .map(|line| line.as_str().unwrap_or_default().to_owned())
                    .filter(|line| is_page_error(line))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Fails, listing them, if the page reported any error (see
    /// [`Browser::page_errors`]). A page's flow is only as good as its
    /// console: an exception thrown from a callback shows nowhere else.
    pub async fn check_no_page_errors(&self) -> anyhow::Result<()> {
        let errors = self
            .page_errors()
            .await
            .with_context(|| format!("browser {}: read its console", self.name))?;
        anyhow::ensure!(
            errors.is_empty(),
            "browser {}: the page reported {} error(s), expected none:\n{}",
            self.name,
            errors.len(),
            errors.join("\n")
        );
        Ok(())
    }

    /// The page's User Timing marks named `browser-chat:...` (see
    /// `web-peer/src/ui/marks.rs`), each as its name without the prefix
    /// and its time in milliseconds after `browser-chat:connect` (the
    /// latest Connect click), in the order they happened. Empty before
    /// Connect.
    pub async fn marks(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let value = self
            .client
            .execute(
                "const marks = performance.getEntriesByType('mark')\n                   .filter((m) => m.name.startsWith('browser-chat:'));\n                 const connect = marks.find((m) => m.name === 'browser-chat:connect');\n                 if (!connect) return [];\n                 return marks.sort((x, y) => x.startTime - y.startTime)\n                   .map((m) => [m.name.slice('browser-chat:'.length), m.startTime - connect.startTime]);",
                vec![],
            )
            .await
            .with_context(|| format!("browser {}: read the marks", self.name))?;
        Ok(value
            .as_array()
            .map(|marks| {
                marks
                    .iter()
                    .filter_map(|mark| Some((mark[0].as_str()?.to_owned(), mark[1].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The chat page's state (see [`PageState`]).
    pub async fn snapshot(&self) -> anyhow::Result<PageState> {
        let value = self
            .client
            .execute(SNAPSHOT_SCRIPT, vec![])
            .await
            .with_context(|| format!("browser {}: read the page", self.name))?;
        Ok(PageState::from_json(&self.name, &value))
    }

    /// Runs `body` as the body of an async JavaScript function called with
    /// `args`, and returns what it resolves to; a rejection is an error
    /// carrying the JavaScript error's stack.
    pub async fn run_async(
        &self,
        body: &str,
        args: Vec<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let script = format!(
            "const done = arguments[arguments.length - 1];\n\
             const args = Array.from(arguments).slice(0, -1);\n\
             (async (...args) => {{ {body} }})(...args).then(\n\
               (value) => done({{ ok: value === undefined ? null : value }}),\n\
               (error) => done({{ error: String((error && error.stack) || error) }}));"
        );
        let outcome = self
            .client
            .execute_async(&script, args)
            .await
            .with_context(|| format!("browser {}: run script {body:?}", self.name))?;
        match outcome.get("error").and_then(|error| error.as_str()) {
            Some(error) => anyhow::bail!("browser {}: script {body:?} failed: {error}", self.name),
            None => Ok(outcome.get("ok").cloned().unwrap_or_default()),
        }
    }

    /// Replaces the value of the input at `css` as a user would: clears
    /// it, then types `text`. Typing takes a while (Firefox sends key by
    /// key), and a page may fill the input meanwhile (the relay address is
    /// prefilled once `/api/relay` answers, if the input is empty): the
    /// value is checked afterwards and typed again if it is not `text`.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        const ATTEMPTS: usize = 3;
        let mut value = String::new();
        for _ in 0..ATTEMPTS {
            let input = self
                .client
                .find(Locator::Css(css))
                .await
                .with_context(|| format!("browser {}: find {css}", self.name))?;
            input
                .clear()
                .await
                .with_context(|| format!("browser {}: clear {css}", self.name))?;
            input
                .send_keys(text)
                .await
                .with_context(|| format!("browser {}: type into {css}", self.name))?;
            value = input
                .prop("value")
                .await
                .with_context(|| format!("browser {}: read {css}'s value", self.name))?
                .unwrap_or_default();
            if value == text {
                return Ok(());
            }
        }
        anyhow::bail!(
            "browser {}: typed {text:?} into {css} {ATTEMPTS} times, and it holds {value:?}",
            self.name
        )
    }

    /// Presses Enter in the element at `css`.
    pub async fn press_enter(&self, css: &str) -> anyhow::Result<()> {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("browser {}: find {css}", self.name))?;
        element
            .send_keys(&char::from(fantoccini::key::Key::Enter).to_string())
            .await
            .with_context(|| format!("browser {}: press Enter in {css}", self.name))
    }

    /// Clicks the element at `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("browser {}: find {css}", self.name))?
            .click()
            .await
            .with_context(|| format!("browser {}: click {css}", self.name))
    }

    /// Saves a screenshot as `<repo>/artifacts/<prefix>-<name>-<label>.png`.
    pub async fn screenshot(&self, prefix: &str, label: &str) -> anyhow::Result<PathBuf> {
        save_screenshot(&self.client, &format!("{prefix}-{}-{label}", self.name)).await
    }

    /// After a failure: a screenshot and a text report (page state and
    /// console) under `<repo>/artifacts/<prefix>-<name>-failure.*`. Returns
    /// what it saved, or why it could not.
    pub async fn save_failure_report(&self, prefix: &str) -> String {
        let mut saved = Vec::new();
        match self.screenshot(prefix, "failure").await {
            Ok(path) => saved.push(path.display().to_string()),
            Err(error) => saved.push(format!("(no screenshot: {error:#})")),
        }
        let state = match self.snapshot().await {
            Ok(state) => state.to_string(),
            Err(error) => format!("(cannot read the page: {error:#})"),
        };
        let console = match self.console().await {
            Ok(lines) => lines.join("\n"),
            Err(error) => format!("(cannot read the console: {error:#})"),
        };
        let report = format!("{state}\n\nconsole:\n{console}\n");
        match save_artifact(
            &format!("{prefix}-{}-failure.txt", self.name),
            report.as_bytes(),
        ) {
            Ok(path) => saved.push(path.display().to_string()),
            Err(error) => saved.push(format!("(no report: {error:#})")),
        }
        format!(
            "browser {}: {}\nlast console lines:\n{}",
            self.name,
            saved.join(", "),
            tail(&console, 30)
        )
    }

    /// Ends the session (and the browser). An error, after closing, if the
    /// page reported errors ([`Browser::check_no_page_errors`]): every test
    /// that closes its browsers this way fails on an uncaught page error.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let page_errors = self.check_no_page_errors().await;
        self.closed = true;
        self.client
            .clone()
            .close()
            .await
            .context("close the session")?;
        page_errors
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // The test may be unwinding inside the runtime that would carry
        // fantoccini's own close: end the session with a plain request.
        let path = format!("/session/{}", self.session_id);
        let _ = http_request_blocking(
            self.driver_port,
            "DELETE",
            &path,
            None,
            Duration::from_secs(10),
        );
    }
}

/// Whether a line of [`Browser::console`] is an error: its level (the
/// word after the time) is `error`, `uncaught`, `unhandledrejection` or
/// `csp` (a Content-Security-Policy violation).
fn is_page_error(line: &str) -> bool {
    matches!(
        line.split(' ').nth(1),
        Some("error" | "uncaught" | "unhandledrejection" | "csp")
    )
}

/// A Chrome DevTools Protocol command through chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()),
        )
    }
}

const CONSOLE_HOOK: &str = r#"(() => {
  if (window.__e2eConsole) return;
  const log = [];
  window.__e2eConsole = log;
  // Errors are also kept apart, so that chatty logs cannot push them out.
  const errors = [];
  window.__e2eErrors = errors;
  const show = (a) => {
    // Chromium's stack starts with "Error: message"; Firefox's is the
    // frames alone, so the message is added where the stack lacks it.
    if (a instanceof Error) { const text = String(a); return a.stack && a.stack.includes(text) ? a.stack : text + (a.stack ? '\n' + a.stack : ''); }
    if (typeof a === 'object' && a !== null) { try { return JSON.stringify(a); } catch (_) { return String(a); } }
    return String(a);
  };
  const push = (level, args) => {
    try {
      const line = new Date().toISOString().slice(11, 23) + ' ' + level + ' ' + Array.from(args).map(show).join(' ');
      log.push(line);
      if (log.length > 1000) log.splice(0, log.length - 1000);
      if (['error', 'uncaught', 'unhandledrejection', 'csp'].includes(level) && errors.length < 200) errors.push(line);
    } catch (_) {}
  };
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    const original = console[level].bind(console);
    console[level] = (...args) => { push(level, args); return original(...args); };
  }
  window.addEventListener('error', (e) => push('uncaught', [e.message + ' at ' + e.filename + ':' + e.lineno]));
  window.addEventListener('unhandledrejection', (e) => push('unhandledrejection', [e.reason]));
  // The browser reports a Content-Security-Policy violation here, not
  // through console.error, so the page would not see it otherwise.
  document.addEventListener('securitypolicyviolation', (e) => push('csp', [e.effectiveDirective + ' refused ' + (e.blockedURI || '(inline)') + ' at ' + e.sourceFile + ':' + e.lineNumber]));
})();"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_errors_are_errors_uncaught_exceptions_and_rejections() {
        for line in [
            "10:00:00.000 error something failed",
            "10:00:00.000 uncaught Error: closure invoked recursively or after being dropped at x.js:1",
            "10:00:00.000 unhandledrejection \"nope\"",
            "10:00:00.000 csp connect-src refused wss://elsewhere.example at https://relay/x.js:1",
        ] {
            assert!(is_page_error(line), "{line:?} is an error");
        }
        for line in [
            "10:00:00.000 log the word error in a log line",
            "10:00:00.000 warn slow",
            "",
        ] {
            assert!(!is_page_error(line), "{line:?} is not an error");
        }
    }
}
