//! The js-libp2p peer page (`e2e/js-peer/`: libp2p 3.x with
//! `@libp2p/webrtc`, from npm, bundled by `scripts/build-js-peer`) in a
//! browser, driven through the `window.jsPeer` functions it exposes.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::json;

use crate::{Browser, repo_root};

/// `<repo>/e2e/js-peer/index.html`, or an error telling how to build it.
pub fn js_peer_page() -> anyhow::Result<PathBuf> {
    let dir = repo_root().join("e2e/js-peer");
    if !dir.join("dist/peer.js").is_file() {
        bail!(
            "the js-libp2p peer is not built: {} is missing. Run `scripts/build-js-peer`, \
             then run the tests again",
            dir.join("dist/peer.js").display()
        );
    }
    Ok(dir.join("index.html"))
}

/// The page's URL for a relay at `relay` (a WebSocket multiaddr) and the
/// ICE servers `ice` (e.g. `stun:127.0.0.1:3478`). The page loads from a
/// `file://` URL: a secure context, as WebCrypto needs, with no server.
pub fn js_peer_url(relay: &str, ice: &[String]) -> anyhow::Result<String> {
    let page = js_peer_page()?;
    let mut url = url::Url::from_file_path(&page)
        .map_err(|()| anyhow::anyhow!("{} is not an absolute path", page.display()))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("relay", relay);
        for server in ice {
            query.append_pair("ice", server);
        }
    }
    Ok(url.to_string())
}

/// What the page shows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsPeerState {
    /// `#status[data-state]`: starting, connecting, ready or failed.
    pub state: String,
    pub status_text: String,
    pub peer_id: String,
    /// Its `/p2p-circuit/webrtc` address through the relay's WebSocket.
    pub webrtc_addr: String,
    pub log: Vec<String>,
}

impl std::fmt::Display for JsPeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "--- js-libp2p peer {}", self.peer_id)?;
        writeln!(f, "  #status: {} ({:?})", self.state, self.status_text)?;
        writeln!(f, "  #webrtc-addr: {:?}", self.webrtc_addr)?;
        for line in self.log.iter().rev().take(30).rev() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// One of its connections, as `window.jsPeer` describes it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JsConnection {
    pub peer: String,
    pub remote_addr: String,
    pub direction: String,
    /// A relayed circuit (js-libp2p marks those as limited).
    pub limited: bool,
    /// Not limited, and WebRTC: browser to browser.
    pub direct: bool,
    pub status: String,
}

/// The result of `jsPeer.identified`.
#[derive(Debug, Clone, Deserialize)]
pub struct JsIdentified {
    pub protocols: Vec<String>,
    pub agent: Option<String>,
}

/// The result of `jsPeer.pingDirect`.
#[derive(Debug, Clone, Deserialize)]
pub struct JsPing {
    pub connection: JsConnection,
    /// Round-trip times in milliseconds, one per round.
    pub rtts: Vec<f64>,
}

/// The js-libp2p page open in `browser`.
#[derive(Debug, Clone, Copy)]
pub struct JsPeer<'a> {
    pub browser: &'a Browser,
}

impl JsPeer<'_> {
    pub async fn state(&self) -> anyhow::Result<JsPeerState> {
        let value = self
            .browser
            .run_async(
                "const text = (id) => (document.getElementById(id) || {}).textContent || '';
                 return {
                   state: document.getElementById('status').dataset.state || '',
                   statusText: text('status'),
                   peerId: text('peer-id'),
                   webrtcAddr: text('webrtc-addr'),
                   log: Array.from(document.querySelectorAll('#log li'), (li) => li.textContent),
                 };",
                vec![],
            )
            .await?;
        serde_json::from_value(value).context("read the js-libp2p page's state")
    }

    pub async fn connections(&self, peer: &str) -> anyhow::Result<Vec<JsConnection>> {
        let value = self
            .browser
            .run_async(
                "return await window.jsPeer.connections(args[0]);",
                vec![json!(peer)],
            )
            .await?;
        serde_json::from_value(value).context("read jsPeer.connections")
    }

    /// What js-libp2p's identify learned of `peer` (`None` before it
    /// learned anything).
    pub async fn identified(&self, peer: &str) -> anyhow::Result<Option<JsIdentified>> {
        let value = self
            .browser
            .run_async(
                "return await window.jsPeer.identified(args[0]);",
                vec![json!(peer)],
            )
            .await?;
        serde_json::from_value(value).context("read jsPeer.identified")
    }

    /// Dials `addr` from the js-libp2p side.
    pub async fn dial(&self, addr: &str) -> anyhow::Result<JsConnection> {
        let value = self
            .browser
            .run_async(
                "return await window.jsPeer.dial(args[0]);",
                vec![json!(addr)],
            )
            .await?;
        serde_json::from_value(value).context("read jsPeer.dial's connection")
    }

    /// `rounds` pings to `peer` on one stream of the direct connection.
    pub async fn ping_direct(&self, peer: &str, rounds: u32) -> anyhow::Result<JsPing> {
        let value = self
            .browser
            .run_async(
                "return await window.jsPeer.pingDirect(args[0], args[1]);",
                vec![json!(peer), json!(rounds)],
            )
            .await?;
        serde_json::from_value(value).context("read jsPeer.pingDirect's result")
    }

    pub async fn hang_up(&self, peer: &str) -> anyhow::Result<()> {
        self.browser
            .run_async("await window.jsPeer.hangUp(args[0]);", vec![json!(peer)])
            .await
            .map(drop)
    }
}
