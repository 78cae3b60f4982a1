//! What a headless Firefox session needs: its capabilities (binary,
//! arguments, fresh profile, the preferences WebRTC needs in a test), and
//! the console recorder installed through WebDriver BiDi, since Firefox has
//! neither Chrome's DevTools commands nor its log API.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, anyhow, bail};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::BrowserKind;

/// The preferences every Firefox session gets, and why.
pub const FIREFOX_PREFS: &[(&str, bool)] = &[
    // Host candidates carry real IPs instead of `.local` mDNS names, which
    // no resolver here answers (Chromium's `WebRtcHideLocalIpsWithMdns`).
    ("media.peerconnection.ice.obfuscate_host_addresses", false),
    // The page's console goes to Firefox's standard output, which the
    // driver's log keeps (`<prefix>-geckodriver.log`).
    ("devtools.console.stdout.content", true),
    // No background requests: the NAT lab has no DNS and no internet, and
    // a probe waiting for either only slows a test down.
    ("network.captive-portal-service.enabled", false),
    ("network.connectivity-service.enabled", false),
    ("browser.safebrowsing.update.enabled", false),
    ("app.update.enabled", false),
    ("datareporting.policy.dataSubmissionEnabled", false),
    // No `media.peerconnection.ice.loopback`: Firefox 153 gathers no
    // loopback candidates with it either, so the tests reach a relay over
    // WebRTC at this machine's LAN address (see `crate::lan_ipv4`).
];

/// Arguments every Firefox session gets (plus `-profile <dir>`). Its
/// window size is set over WebDriver: Firefox 153 has no `-width` flag.
pub const FIREFOX_ARGS: &[&str] = &["-headless"];

/// The new-session capabilities of a headless Firefox with the profile at
/// `profile` (fresh, empty: geckodriver writes the preferences into it)
/// and `extra_args` on its command line. `webSocketUrl` asks for a WebDriver
/// BiDi connection, through which [`install_console_hook`] works.
pub fn capabilities(profile: &Path, extra_args: &[&str]) -> anyhow::Result<Value> {
    let binary = BrowserKind::Firefox.binary()?;
    let mut args: Vec<String> = FIREFOX_ARGS.iter().map(|arg| (*arg).to_owned()).collect();
    args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
    args.push("-profile".to_owned());
    args.push(profile.display().to_string());
    let prefs: serde_json::Map<String, Value> = FIREFOX_PREFS
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Value::Bool(*value)))
        .collect();
    Ok(json!({
        "browserName": "firefox",
        "webSocketUrl": true,
        "moz:firefoxOptions": {
            "binary": binary,
            "args": args,
            "prefs": prefs,
        },
    }))
}

/// Installs `hook` (a script) to run in every document the session loads
/// from now on, before the page's own scripts: WebDriver BiDi's
/// `script.addPreloadScript`, over the session's `web_socket_url`. The
/// counterpart of Chromium's `Page.addScriptToEvaluateOnNewDocument`, so
/// that an error thrown while the page loads is recorded too.
pub async fn install_console_hook(web_socket_url: &str, hook: &str) -> anyhow::Result<()> {
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(web_socket_url),
    )
    .await
    .map_err(|_| anyhow!("no WebDriver BiDi connection to {web_socket_url} within 10 s"))?
    .with_context(|| format!("connect to WebDriver BiDi at {web_socket_url}"))?;
    let command = json!({
        "id": 1,
        "method": "script.addPreloadScript",
        "params": { "functionDeclaration": format!("() => {{ {hook} }}") },
    });
    socket
        .send(Message::text(command.to_string()))
        .await
        .context("send script.addPreloadScript")?;
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            let message = message.context("read WebDriver BiDi")?;
            let Message::Text(text) = message else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).context("WebDriver BiDi's JSON")?;
            if reply["id"] == 1 {
                return Ok(reply);
            }
        }
        bail!("WebDriver BiDi closed before answering")
    })
    .await
    .map_err(|_| anyhow!("WebDriver BiDi did not answer script.addPreloadScript in 10 s"))??;
    if reply["type"] != "success" {
        bail!("script.addPreloadScript failed: {reply}");
    }
    // The preload script belongs to the session, not to this connection.
    let _ = socket.close(None).await;
    Ok(())
}
