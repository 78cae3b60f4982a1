//! The page: it turns clicks into [`Command`]s and renders [`Event`]s.

mod bench;
mod dom;
mod marks;

use chat_network::{Link, short};
use chat_protocol::{ChatMessage, MAX_CHAT_MESSAGE_BYTES};
use futures::{StreamExt as _, channel::mpsc};
use libp2p::PeerId;
use wasm_bindgen::JsValue;
use web_sys::{Element, HtmlButtonElement, HtmlElement, HtmlInputElement, KeyboardEvent};

use crate::{
    events::{Command, Event, RelayStatus, Via},
    page_config::{self, RelayInfo},
    relay_addr,
};

/// Chat lines and event-log lines kept on the page.
const MAX_CHAT_LINES: u32 = 500;
const MAX_LOG_LINES: u32 = 300;

pub struct Ui {
    status: HtmlElement,
    notice: HtmlElement,
    self_peer_id: HtmlElement,
    self_addr: HtmlElement,
    copy_addr: HtmlButtonElement,
    peers: Element,
    peer_count: HtmlElement,
    chat_input: HtmlInputElement,
    chat_hint: HtmlElement,
    chat_log: Element,
    event_log: Element,
    own_id: Option<PeerId>,
}

impl Ui {
    /// Finds the page's elements and wires its controls to `commands`.
    pub fn mount(commands: mpsc::Sender<Command>) -> Result<Self, JsValue> {
        let relay_input: HtmlInputElement = dom::by_id("relay-addr")?;
        let connect: HtmlElement = dom::by_id("connect")?;
        let dial_input: HtmlInputElement = dom::by_id("dial-addr")?;
        let dial: HtmlElement = dom::by_id("dial")?;
        let send: HtmlElement = dom::by_id("send")?;
        let ui = Self {
            status: dom::by_id("status")?,
            notice: dom::by_id("notice")?,
            self_peer_id: dom::by_id("self-peer-id")?,
            self_addr: dom::by_id("self-addr")?,
            copy_addr: dom::by_id("copy-addr")?,
            peers: dom::by_id("peers")?,
            peer_count: dom::by_id("peer-count")?,
            chat_input: dom::by_id("chat-input")?,
            chat_hint: dom::by_id("chat-hint")?,
            chat_log: dom::by_id("chat-log")?,
            event_log: dom::by_id("event-log-lines")?,
            own_id: None,
        };

        bench::install(commands.clone())?;

        let send_command = {
            let event_log = ui.event_log.clone();
            move |command: Command| {
                // The node drains commands at once; a full queue means a
                // stuck node, and dropping one click is all we can do:
                // the user learns it in the event log (a release page logs
                // nothing to the console, src/console_log.rs).
                if commands.clone().try_send(command).is_err() {
                    let _ = append_log(
                        &event_log,
                        "the node is not taking commands: that action was dropped (reload the page)",
                    );
                }
            }
        };

        let connect_command = {
            let (send_command, relay_input) = (send_command.clone(), relay_input.clone());
            move || {
                marks::mark(marks::CONNECT);
                send_command(Command::Connect(relay_input.value()))
            }
        };
        dom::on(&connect, "click", {
            let connect_command = connect_command.clone();
            move |_: web_sys::MouseEvent| connect_command()
        })?;
        dom::on(&relay_input, "keydown", move |event: KeyboardEvent| {
            if event.key() == "Enter" {
                connect_command();
            }
        })?;
        dom::on(&dial, "click", {
            let (send_command, dial_input) = (send_command.clone(), dial_input.clone());
            move |_: web_sys::MouseEvent| send_command(Command::Dial(dial_input.value()))
        })?;

        wasm_bindgen_futures::spawn_local(prefill(
            relay_input.clone(),
            send_command.clone(),
            ui.event_log.clone(),
        ));
        let send_chat = {
            let (input, hint) = (ui.chat_input.clone(), ui.chat_hint.clone());
            move || {
                let text = input.value();
                if text.trim().is_empty() {
                    return;
                }
                // Checked here too, so an over-long message stays in the
                // input with the reason beside it.
                match ChatMessage::new(text.clone()) {
                    Ok(_) => {
                        input.set_value("");
                        show_hint(&hint, "");
                        send_command(Command::SendChat(text));
                    }
                    Err(error) => show_hint(&hint, &format!("{error}. Shorten it to send.")),
                }
            }
        };
        dom::on(&ui.chat_input, "keydown", {
            let send_chat = send_chat.clone();
            move |event: KeyboardEvent| {
                if event.key() == "Enter" && !event.shift_key() {
                    event.prevent_default();
                    send_chat();
                }
            }
        })?;
        dom::on(&send, "click", move |_: web_sys::MouseEvent| send_chat())?;
        dom::on(&ui.chat_input, "input", {
            let (input, hint) = (ui.chat_input.clone(), ui.chat_hint.clone());
            move |_: web_sys::Event| {
                let len = input.value().len();
                let text = if len > MAX_CHAT_MESSAGE_BYTES {
                    format!("{len} of {MAX_CHAT_MESSAGE_BYTES} bytes: too long to send.")
                } else if len > MAX_CHAT_MESSAGE_BYTES * 9 / 10 {
                    format!("{len} of {MAX_CHAT_MESSAGE_BYTES} bytes.")
                } else {
                    String::new()
                };
                show_hint(&hint, &text);
            }
        })?;
        dom::on(&ui.copy_addr, "click", {
            let self_addr = ui.self_addr.clone();
            move |_: web_sys::MouseEvent| copy_to_clipboard(&self_addr)
        })?;

        Ok(ui)
    }

    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        while let Some(event) = events.next().await {
            if let Err(error) = self.render(event) {
                let line = format!(
                    "cannot show an event: {}",
                    page_config::describe_js_error(&error)
                );
                let _ = self.log(&line);
            }
        }
    }

    fn render(&mut self, event: Event) -> Result<(), JsValue> {
        match event {
            Event::Identity { peer_id } => {
                self.own_id = Some(peer_id);
                self.self_peer_id
                    .set_text_content(Some(&peer_id.to_string()));
            }
            Event::Status(status) => self.render_status(&status)?,
            Event::Notice(text) => {
                self.notice.set_text_content(Some(&text));
                self.notice.set_hidden(false);
                self.log(&text)?;
            }
            Event::ClearNotice => self.notice.set_hidden(true),
            Event::Addresses(addrs) => {
                let first = addrs.first().map(ToString::to_string).unwrap_or_default();
                let had_none = self.self_addr.text_content().unwrap_or_default().is_empty();
                if had_none && !first.is_empty() {
                    marks::mark(marks::RESERVED);
                }
                self.self_addr.set_text_content(Some(&first));
                self.copy_addr.set_disabled(first.is_empty());
            }
            Event::Peer {
                peer,
                link,
                rtt,
                direct_failed,
                relayed,
                incarnation,
                link_id,
            } => self.render_peer(
                &peer,
                &link,
                rtt,
                direct_failed.as_deref(),
                (relayed, incarnation, link_id.as_deref()),
            )?,
            Event::PeerGone { peer } => {
                if let Some(item) = self.peer_item(&peer)? {
                    item.remove();
                }
                self.update_peer_count();
            }
            Event::Chat {
                from,
                text,
                own,
                via,
            } => self.render_chat(&from, &text, own, via)?,
            Event::ChatNotSent { text, reason } => {
                if self.chat_input.value().is_empty() {
                    self.chat_input.set_value(&text);
                }
                self.log(&format!("message not sent: {reason}"))?;
                show_hint(&self.chat_hint, &reason);
            }
            Event::Log(line) => self.log(&line)?,
        }
        Ok(())
    }

    fn render_status(&self, status: &RelayStatus) -> Result<(), JsValue> {
        let text = match status {
            RelayStatus::Idle => "Not connected".to_owned(),
            RelayStatus::Connecting { relay } => format!("Connecting to relay {}…", short(relay)),
            RelayStatus::Connected {
                relay,
                moved_from: None,
            } => format!("Connected to relay {}", short(relay)),
            RelayStatus::Connected {
                relay,
                moved_from: Some(from),
            } => format!(
                "Connected to relay {}: moved here from relay {}, which went away",
                short(relay),
                short(from)
            ),
            RelayStatus::Reconnecting { retry_in, .. } => {
                format!(
                    "Connection to the relay lost. Trying again in {} s…",
                    retry_in.as_secs().max(1)
                )
            }
            RelayStatus::Failed { .. } => "Not connected".to_owned(),
        };
        if matches!(status, RelayStatus::Connected { .. }) {
            marks::mark(marks::RELAY_CONNECTED);
        }
        self.status.set_text_content(Some(&text));
        self.status.set_attribute("data-state", status.name())
    }

    fn peer_item(&self, peer: &PeerId) -> Result<Option<Element>, JsValue> {
        // Peer ids are base58: safe inside a quoted attribute selector.
        self.peers
            .query_selector(&format!("li[data-peer-id=\"{peer}\"]"))
    }

    fn render_peer(
        &self,
        peer: &PeerId,
        link: &Link,
        rtt: Option<std::time::Duration>,
        direct_failed: Option<&str>,
        (relayed, incarnation, link_id): (usize, u32, Option<&str>),
    ) -> Result<(), JsValue> {
        let item = match self.peer_item(peer)? {
            Some(item) => item,
            None => {
                let item = dom::element("li", "peer", "")?;
                item.set_attribute("data-peer-id", &peer.to_string())?;
                let name = dom::element("span", "peer-name", &short(peer))?;
                name.set_attribute("title", &peer.to_string())?;
                item.append_child(&name)?;
                let child = dom::element("span", "peer-state", "")?;
                item.append_child(&child)?;
                self.peers.append_child(&item)?;
                marks::mark_peer(marks::PEER_LISTED, peer);
                item
            }
        };
        let mut text = match link {
            Link::Discovered => "discovered".to_owned(),
            Link::Dialing => "dialing…".to_owned(),
            Link::Connected(chat_network::Path::Relayed) if direct_failed.is_some() => {
                "relayed (no direct path)".to_owned()
            }
            Link::Connected(chat_network::Path::Relayed) => "relayed".to_owned(),
            Link::Connected(chat_network::Path::Direct) => "direct (WebRTC)".to_owned(),
            // Its pings go unanswered: it recovers, or is closed soon.
            Link::Reconnecting(_) => "reconnecting…".to_owned(),
            Link::Unreachable(_) => "unreachable".to_owned(),
        };
        if let Some(rtt) = rtt.filter(|_| matches!(link, Link::Connected(_))) {
            // As u64: formatting a u128 is 1.2 KB of wasm of its own.
            text.push_str(&format!(" · {} ms", rtt.as_millis() as u64));
        }
        if let Some(state) = item.query_selector(".peer-state")? {
            let was = state.get_attribute("data-state");
            if link.name() == "direct" && was.as_deref() != Some("direct") {
                marks::mark_peer(marks::DIRECT, peer);
            }
            state.set_text_content(Some(&text));
            state.set_attribute("data-state", link.name())?;
            // For tests and the curious: whether a relayed connection is
            // still open beside the direct one.
            state.set_attribute("data-relayed", &relayed.to_string())?;
            // And how often it came back (a reload): a new link, not the old.
            state.set_attribute("data-incarnation", &incarnation.to_string())?;
            match link_id {
                Some(id) => state.set_attribute("data-link", id)?,
                None => state.remove_attribute("data-link")?,
            }
            match (link, direct_failed) {
                (Link::Unreachable(reason), _) => state.set_attribute("title", reason)?,
                (Link::Connected(_), Some(reason)) => state.set_attribute("title", reason)?,
                _ => state.remove_attribute("title")?,
            }
        }
        self.update_peer_count();
        Ok(())
    }

    fn update_peer_count(&self) {
        let count = self.peers.child_element_count();
        let text = match count {
            0 => "No one yet".to_owned(),
            1 => "1 peer".to_owned(),
            n => format!("{n} peers"),
        };
        self.peer_count.set_text_content(Some(&text));
    }

    fn render_chat(
        &self,
        from: &PeerId,
        text: &str,
        own: bool,
        via: Option<Via>,
    ) -> Result<(), JsValue> {
        let item = dom::element("li", if own { "chat own" } else { "chat" }, "")?;
        item.set_attribute("data-from", &from.to_string())?;
        if let Some(via) = via {
            item.set_attribute("data-via", via.name())?;
        }
        if own {
            item.set_attribute("data-self", "true")?;
        }
        let sender = dom::element(
            "span",
            "chat-sender",
            &if own { "you".to_owned() } else { short(from) },
        )?;
        sender.set_attribute("title", &from.to_string())?;
        item.append_child(&sender)?;
        let child = dom::element("time", "chat-time", &dom::clock())?;
        item.append_child(&child)?;
        let child = dom::element("span", "chat-text", text)?;
        item.append_child(&child)?;
        self.chat_log.append_child(&item)?;
        if !own {
            marks::mark_peer(marks::CHAT, from);
        }
        dom::trim(&self.chat_log, MAX_CHAT_LINES);
        item.scroll_into_view_with_bool(false);
        Ok(())
    }

    fn log(&self, line: &str) -> Result<(), JsValue> {
        append_log(&self.event_log, line)
    }
}

/// Adds `line` to the event log `list`, with the time, keeping the last
/// [`MAX_LOG_LINES`].
fn append_log(list: &Element, line: &str) -> Result<(), JsValue> {
    let item = dom::element("li", "", "")?;
    let child = dom::element("time", "", &dom::clock())?;
    item.append_child(&child)?;
    let child = dom::element("span", "", line)?;
    item.append_child(&child)?;
    list.append_child(&item)?;
    dom::trim(list, MAX_LOG_LINES);
    Ok(())
}

fn show_hint(hint: &HtmlElement, text: &str) {
    hint.set_text_content(Some(text));
    hint.set_hidden(text.is_empty());
}

fn copy_to_clipboard(source: &HtmlElement) {
    let Some(text) = source.text_content().filter(|text| !text.is_empty()) else {
        return;
    };
    let Some(window) = web_sys::window() else {
        return;
    };
    // The clipboard API exists only on secure pages (https, localhost).
    let clipboard = js_sys::Reflect::get(&window.navigator(), &JsValue::from_str("clipboard"))
        .ok()
        .filter(|value| !value.is_undefined());
    match clipboard {
        Some(_) => {
            let _ = window.navigator().clipboard().write_text(&text);
        }
        None => {
            // Select the text so that Ctrl-C copies it.
            if let (Ok(Some(selection)), Ok(range)) = (
                window.get_selection(),
                dom::document().and_then(|d| d.create_range()),
            ) {
                let _ = range.select_node_contents(source);
                let _ = selection.remove_all_ranges();
                let _ = selection.add_range(&range);
            }
        }
    }
}

/// Prefills the relay address from the relay that served the page, and
/// hands the node its ICE servers: those of the page's `?ice=` parameter
/// (comma-separated `stun:`/`turn:` URLs), else the relay's STUN service.
/// Without an answer, the event log says why.
async fn prefill(input: HtmlInputElement, send_command: impl Fn(Command), event_log: Element) {
    let configured = page_config::ice_servers_from_url();
    if let Some(urls) = &configured {
        send_command(Command::SetIceServers(urls.clone()));
    }
    match page_config::fetch_relay_info().await {
        Ok(RelayInfo {
            addrs,
            stun_urls,
            host,
            federation,
            secure_page,
        }) => {
            send_command(Command::Federation {
                relays: federation,
                secure_page,
            });
            if configured.is_none() && !stun_urls.is_empty() {
                send_command(Command::SetIceServers(stun_urls));
            }
            if let Some(addr) = relay_addr::prefill(addrs.iter().map(String::as_str), &host)
                && input.value().trim().is_empty()
            {
                input.set_value(addr);
            }
        }
        Err(error) => {
            let _ = append_log(
                &event_log,
                &format!("no relay information ({error}): paste the relay's address to connect"),
            );
        }
    }
    refresh_federation(send_command).await;
}

/// How often the page reads its relay's federation list again: relays
/// join and leave, and a page moves to one of the last list it read when
/// its relay dies. Ten thousand pages on one relay make about 330 small
/// requests a second at this period.
const FEDERATION_REFRESH_MS: u32 = 30_000;

/// Reads `/api/relay`'s federation list every [`FEDERATION_REFRESH_MS`]
/// and hands it to the node. A failed read (the relay that served the
/// page is down) leaves the node with the last list.
async fn refresh_federation(send_command: impl Fn(Command)) {
    loop {
        gloo_timers::future::TimeoutFuture::new(FEDERATION_REFRESH_MS).await;
        if let Ok(info) = page_config::fetch_relay_info().await {
            send_command(Command::Federation {
                relays: info.federation,
                secure_page: info.secure_page,
            });
        }
    }
}
