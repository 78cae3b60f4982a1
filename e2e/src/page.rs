//! The chat page's DOM contract, read in one script call.

use std::{fmt, time::Duration};

use serde_json::Value;

use crate::{Browser, Check, wait_until};

/// One look at the chat page, read in one script call. The contract:
///
/// | selector | what |
/// | --- | --- |
/// | `#relay-addr` | text input, prefilled from `/api/relay` |
/// | `#connect` | button |
/// | `#status` | `data-state` ∈ idle, connecting, connected, reconnecting, error; human text |
/// | `#notice` | latest error or notice in plain words; `hidden` attribute when none |
/// | `#self-peer-id`, `#self-addr` | own peer id; own circuit address (empty until the reservation is accepted) |
/// | `#copy-addr` | button |
/// | `#peers li[data-peer-id]` | one per discovered peer, with `.peer-name` and `.peer-state[data-state][data-relayed][data-incarnation][data-link]` (relayed connections still open; the peer's comebacks; the connection the link shown stands on), its text ending in ` · <n> ms` when a round trip was measured on the link shown |
/// | `#dial-addr`, `#dial` | input and button |
/// | `#chat-input`, `#send` | text input (Enter sends) and button |
/// | `#chat-log li[data-from][data-via]` | one per message, with `.chat-sender`, `.chat-time`, `.chat-text`; `data-via`: how it arrived (`direct`, `relayed`, `peer`, `forwarded`) |
/// | `#event-log` | a `details` element listing events |
#[derive(Debug, Clone, Default)]
pub struct PageState {
    /// Which browser this is from.
    pub browser: String,
    pub url: String,
    pub ready_state: String,
    /// `#status[data-state]`.
    pub status: Option<String>,
    pub status_text: String,
    /// `#notice` has no `hidden` attribute (and exists).
    pub notice_visible: bool,
    pub notice_text: String,
    /// `#relay-addr`'s value.
    pub relay_addr: String,
    pub self_peer_id: String,
    pub self_addr: String,
    pub peers: Vec<PeerEntry>,
    pub chat: Vec<ChatEntry>,
    /// `#event-log`'s entries (its `li`s, else its lines of text).
    pub events: Vec<String>,
    /// Selectors of the contract the page lacks.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerEntry {
    pub peer_id: String,
    pub name: String,
    pub state: Option<String>,
    /// `.peer-state[data-relayed]`: relayed connections to the peer still
    /// open (`None` when the page does not say).
    pub relayed: Option<u32>,
    /// `.peer-state[data-incarnation]`: how often the peer came back
    /// after every connection to it closed (`None` when the page does
    /// not say).
    pub incarnation: Option<u32>,
    /// `.peer-state[data-link]`: the connection the link shown stands on
    /// (a new one is a new link).
    pub link: Option<String>,
    /// `.peer-state`'s text (`direct (WebRTC) · 2 ms`, say).
    pub text: String,
}

impl PeerEntry {
    /// The round trip the entry shows (` · <n> ms` at the end of its text).
    pub fn rtt_ms(&self) -> Option<u64> {
        let (_, rest) = self.text.rsplit_once(" · ")?;
        rest.strip_suffix(" ms")?.trim().parse().ok()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatEntry {
    pub from: String,
    pub sender: String,
    pub time: String,
    pub text: String,
    /// `data-via`: how the message arrived (`direct`, `relayed`: straight
    /// from its sender on a link of that kind; `peer`: straight from its
    /// sender on either; `forwarded`: through another peer or a relay).
    pub via: Option<String>,
}

impl PageState {
    pub(crate) fn from_json(browser: &str, value: &Value) -> Self {
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
        let list = |key: &str| -> Vec<Value> { value[key].as_array().cloned().unwrap_or_default() };
        Self {
            browser: browser.to_owned(),
            url: text("url"),
            ready_state: text("readyState"),
            status: value["status"].as_str().map(str::to_owned),
            status_text: text("statusText"),
            notice_visible: value["noticeVisible"].as_bool().unwrap_or(false),
            notice_text: text("noticeText"),
            relay_addr: text("relayAddr"),
            self_peer_id: text("selfPeerId"),
            self_addr: text("selfAddr"),
            peers: list("peers")
                .iter()
                .map(|peer| PeerEntry {
                    peer_id: peer["id"].as_str().unwrap_or_default().to_owned(),
                    name: peer["name"].as_str().unwrap_or_default().to_owned(),
                    state: peer["state"].as_str().map(str::to_owned),
                    relayed: peer["relayed"]
                        .as_str()
                        .and_then(|count| count.parse().ok()),
                    incarnation: peer["incarnation"]
                        .as_str()
                        .and_then(|count| count.parse().ok()),
                    link: peer["link"].as_str().map(str::to_owned),
                    text: peer["text"].as_str().unwrap_or_default().to_owned(),
                })
                .collect(),
            chat: list("chat")
                .iter()
                .map(|line| ChatEntry {
                    from: line["from"].as_str().unwrap_or_default().to_owned(),
                    sender: line["sender"].as_str().unwrap_or_default().to_owned(),
                    time: line["time"].as_str().unwrap_or_default().to_owned(),
                    text: line["text"].as_str().unwrap_or_default().to_owned(),
                    via: line["via"].as_str().map(str::to_owned),
                })
                .collect(),
            events: list("events")
                .iter()
                .map(|event| event.as_str().unwrap_or_default().to_owned())
                .collect(),
            missing: list("missing")
                .iter()
                .map(|selector| selector.as_str().unwrap_or_default().to_owned())
                .collect(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.status.as_deref() == Some("connected")
    }

    /// Whether `#peers` lists `peer_id`.
    pub fn lists_peer(&self, peer_id: &str) -> bool {
        self.peers.iter().any(|peer| peer.peer_id == peer_id)
    }

    /// Whether `#chat-log` has a message from `from` whose text is `text`.
    pub fn has_message(&self, from: &str, text: &str) -> bool {
        self.message(from, text).is_some()
    }

    /// The message from `from` whose text is `text`, if `#chat-log` has it.
    pub fn message(&self, from: &str, text: &str) -> Option<&ChatEntry> {
        self.chat
            .iter()
            .find(|line| line.from == from && line.text.trim() == text)
    }

    /// `#peers`' entry for `peer_id`.
    pub fn peer(&self, peer_id: &str) -> Option<&PeerEntry> {
        self.peers.iter().find(|peer| peer.peer_id == peer_id)
    }
}

impl fmt::Display for PageState {
    /// Everything a failure message needs: status, notice, identity, peers,
    /// the last chat lines and the last events.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.browser;
        writeln!(f, "--- page {name} ({}, {})", self.url, self.ready_state)?;
        if !self.missing.is_empty() {
            writeln!(f, "  MISSING from the page: {}", self.missing.join(", "))?;
        }
        writeln!(
            f,
            "  #status: data-state={} text={:?}",
            self.status.as_deref().unwrap_or("(none)"),
            self.status_text
        )?;
        writeln!(
            f,
            "  #notice: {} text={:?}",
            if self.notice_visible {
                "visible"
            } else {
                "hidden"
            },
            self.notice_text
        )?;
        writeln!(f, "  #relay-addr: {:?}", self.relay_addr)?;
        writeln!(f, "  #self-peer-id: {:?}", self.self_peer_id)?;
        writeln!(f, "  #self-addr: {:?}", self.self_addr)?;
        writeln!(f, "  #peers ({}):", self.peers.len())?;
        for peer in &self.peers {
            writeln!(
                f,
                "    {} name={:?} state={} relayed={} incarnation={} link={} text={:?}",
                peer.peer_id,
                peer.name,
                peer.state.as_deref().unwrap_or("(none)"),
                peer.relayed
                    .map_or_else(|| "(none)".to_owned(), |count| count.to_string()),
                peer.incarnation
                    .map_or_else(|| "(none)".to_owned(), |count| count.to_string()),
                peer.link.as_deref().unwrap_or("(none)"),
                peer.text
            )?;
        }
        let skip = self.chat.len().saturating_sub(10);
        writeln!(
            f,
            "  #chat-log ({} messages, last {}):",
            self.chat.len(),
            self.chat.len() - skip
        )?;
        for line in &self.chat[skip..] {
            writeln!(
                f,
                "    [{}] {} ({}, via {}): {:?}",
                line.time,
                line.sender,
                line.from,
                line.via.as_deref().unwrap_or("(none)"),
                line.text
            )?;
        }
        let skip = self.events.len().saturating_sub(25);
        writeln!(
            f,
            "  #event-log ({} entries, last {}):",
            self.events.len(),
            self.events.len() - skip
        )?;
        for event in &self.events[skip..] {
            writeln!(f, "    {event}")?;
        }
        Ok(())
    }
}

pub(crate) const SNAPSHOT_SCRIPT: &str = r#"
const missing = [];
const find = (selector) => {
  const element = document.querySelector(selector);
  if (!element) missing.push(selector);
  return element;
};
const text = (element) => (element ? (element.textContent || '').trim() : '');
const attr = (element, name) => (element ? element.getAttribute(name) : null);
const status = find('#status');
const notice = find('#notice');
const relayAddr = find('#relay-addr');
for (const selector of ['#connect', '#copy-addr', '#dial-addr', '#dial', '#chat-input', '#send', '#peers', '#chat-log']) {
  find(selector);
}
const eventLog = find('#event-log');
let events = [];
if (eventLog) {
  const items = eventLog.querySelectorAll('li');
  events = items.length > 0
    ? Array.from(items).map((item) => (item.textContent || '').trim())
    : (eventLog.innerText || eventLog.textContent || '').split('\n').map((line) => line.trim()).filter((line) => line);
}
return {
  url: location.href,
  readyState: document.readyState,
  status: attr(status, 'data-state'),
  statusText: text(status),
  noticeVisible: !!notice && !notice.hasAttribute('hidden'),
  noticeText: text(notice),
  relayAddr: relayAddr ? relayAddr.value : '',
  selfPeerId: text(find('#self-peer-id')),
  selfAddr: text(find('#self-addr')),
  peers: Array.from(document.querySelectorAll('#peers li')).map((item) => ({
    id: item.getAttribute('data-peer-id'),
    name: text(item.querySelector('.peer-name')),
    state: attr(item.querySelector('.peer-state'), 'data-state'),
    relayed: attr(item.querySelector('.peer-state'), 'data-relayed'),
    incarnation: attr(item.querySelector('.peer-state'), 'data-incarnation'),
    link: attr(item.querySelector('.peer-state'), 'data-link'),
    text: text(item.querySelector('.peer-state')),
  })),
  chat: Array.from(document.querySelectorAll('#chat-log li')).map((item) => ({
    from: item.getAttribute('data-from'),
    sender: text(item.querySelector('.chat-sender')),
    time: text(item.querySelector('.chat-time')),
    text: text(item.querySelector('.chat-text')),
    via: item.getAttribute('data-via'),
  })),
  events,
  missing,
};
"#;

/// Waits until `page_ok` (`None`: fine; `Some`: what is wrong) holds on
/// `browser`'s page, and returns the page as it was then.
pub async fn wait_page(
    browser: &Browser,
    what: &str,
    timeout: Duration,
    page_ok: impl Fn(&PageState) -> Option<String>,
) -> anyhow::Result<PageState> {
    let page_ok = &page_ok;
    wait_until(
        &format!("page {}: {what}", browser.name),
        timeout,
        || async move {
            let page = browser.snapshot().await?;
            Ok(match page_ok(&page) {
                None => Check::Done(page),
                Some(wrong) => Check::NotYet(format!("{wrong}\n{page}")),
            })
        },
    )
    .await
}

/// Types `relay_addr` into the page's relay field and clicks Connect, once
/// the page is up (its field is prefilled from `/api/relay`: typing before
/// that would be overwritten).
pub async fn click_connect(
    page: &Browser,
    relay_addr: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_page(page, "#relay-addr is prefilled", timeout, |state| {
        state
            .relay_addr
            .trim()
            .is_empty()
            .then(|| "#relay-addr is empty".to_owned())
    })
    .await?;
    page.fill("#relay-addr", relay_addr).await?;
    page.click("#connect").await
}

/// Loads `url` in `page` with a fresh identity (a tab keeps its identity
/// in `sessionStorage`, per origin and tab: cleared where it lives) and
/// returns the peer id the page shows.
pub async fn open_fresh(page: &Browser, url: &str) -> anyhow::Result<String> {
    page.goto(url).await?;
    page.client
        .execute("sessionStorage.clear();", vec![])
        .await
        .map_err(|error| anyhow::anyhow!("clear sessionStorage: {error}"))?;
    page.goto(url).await?;
    let state = wait_page(page, "#self-peer-id is shown", crate::TIMEOUT, |state| {
        state
            .self_peer_id
            .is_empty()
            .then(|| "#self-peer-id is empty".to_owned())
    })
    .await?;
    Ok(state.self_peer_id)
}

/// Waits until the page is connected to its relay and shows a circuit
/// address (its reservation stands), and returns the page as it was then.
pub async fn wait_reserved(page: &Browser, timeout: Duration) -> anyhow::Result<PageState> {
    wait_page(
        page,
        "#status is connected and #self-addr is a circuit address",
        timeout,
        |state| {
            (!(state.is_connected() && state.self_addr.contains("/p2p-circuit"))).then(|| {
                format!(
                    "#status {:?}, #self-addr {:?}",
                    state.status, state.self_addr
                )
            })
        },
    )
    .await
}

/// [`click_connect`], then [`wait_reserved`].
pub async fn connect_to_relay(
    page: &Browser,
    relay_addr: &str,
    timeout: Duration,
) -> anyhow::Result<PageState> {
    click_connect(page, relay_addr, timeout).await?;
    wait_reserved(page, timeout).await
}

/// [`wait_page`] on two pages at once: until `page_ok` holds on both.
pub async fn wait_pages(
    a: &Browser,
    b: &Browser,
    what: &str,
    timeout: Duration,
    page_ok: impl Fn(&PageState) -> Option<String>,
) -> anyhow::Result<(PageState, PageState)> {
    let page_ok = &page_ok;
    wait_until(&format!("on both pages: {what}"), timeout, || async move {
        let (page_a, page_b) = (a.snapshot().await?, b.snapshot().await?);
        Ok(match (page_ok(&page_a), page_ok(&page_b)) {
            (None, None) => Check::Done((page_a, page_b)),
            (wrong_a, wrong_b) => Check::NotYet(format!(
                "page A: {}\npage B: {}\n{page_a}{page_b}",
                wrong_a.as_deref().unwrap_or("fine"),
                wrong_b.as_deref().unwrap_or("fine"),
            )),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn page_state_reads_the_snapshot_and_describes_it() {
        let value = json!({
            "url": "http://127.0.0.1:1/", "readyState": "complete",
            "status": "connected", "statusText": "Connected",
            "noticeVisible": false, "noticeText": "",
            "relayAddr": "/ip4/127.0.0.1/tcp/2/ws/p2p/R", "selfPeerId": "A", "selfAddr": "x",
            "peers": [{ "id": "B", "name": "bee", "state": "relayed", "relayed": "1",
                        "incarnation": "2", "link": "7", "text": "relayed · 41 ms" }],
            "chat": [{ "from": "B", "sender": "bee", "time": "12:00", "text": "hi", "via": "direct" }],
            "events": ["connected"], "missing": ["#dial"],
        });
        let page = PageState::from_json("A", &value);
        assert!(page.is_connected());
        assert!(page.lists_peer("B") && !page.lists_peer("C"));
        assert_eq!(page.peers[0].relayed, Some(1));
        assert_eq!(page.peers[0].incarnation, Some(2));
        assert_eq!(page.peers[0].link.as_deref(), Some("7"));
        assert_eq!(page.peer("B").and_then(PeerEntry::rtt_ms), Some(41));
        assert_eq!(
            page.message("B", "hi").and_then(|m| m.via.as_deref()),
            Some("direct")
        );
        assert!(page.has_message("B", "hi") && !page.has_message("A", "hi"));
        let text = page.to_string();
        for expected in [
            "data-state=connected",
            "MISSING from the page: #dial",
            "bee",
            "\"hi\"",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
    }
}
