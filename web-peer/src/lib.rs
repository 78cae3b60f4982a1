//! The browser peer: it connects to a relay, reserves a slot, announces its
//! circuit address on the discovery topic, discovers the others, dials them
//! through the relay, and chats on a gossipsub topic. Discovery, the peer
//! book, chat and the hand-off from relayed to direct are `chat_network`'s,
//! shared with chat-peer; the WebRTC upgrade policy is
//! `libp2p_webrtc_p2p::upgrade`'s. This crate is the swarm, its transports,
//! the relay session and the page.
//!
//! - [`events`]: the commands the page sends and the events it renders;
//! - [`relay_addr`]: reading the relay address a user pasted;
//! - [`backoff`]: reconnect delays;
//! - [`relay_liveness`]: noticing a relay connection that went silent;
//! - [`relay_answer`]: reading the relay's `/api/relay` answer;
//! - [`federation`]: the federation's relays (`/api/relay`), trusted for
//!   circuits and moved to when the page's relay dies;
//! - [`announce`]: which of our addresses the discovery record carries;
//! - `node` (wasm only): the libp2p node and its event loop;
//! - `ui` (wasm only): the page, written against web-sys;
//! - `perf_service` (wasm only): the perf protocol for the benchmarks;
//! - `page_config` (wasm only): the page's `?ice=` parameter and the
//!   relay's `/api/relay`, read for the UI and the node;
//! - `identity` (wasm only): one identity per tab, kept across reloads;
//! - `websocket` (wasm only): the WebSocket connection, flushed without
//!   waiting for the browser's send buffer to drain;
//! - `console_log` (wasm only, debug builds): `tracing` events to the
//!   browser's console (a release page logs nothing there);
//! - `boxed_io` (wasm only): Noise run on boxed streams, one copy of its
//!   code for the page's three kinds of stream;
//! - `timing` (wasm only): User Timing marks at each phase of the node's
//!   way to a direct link.
//!
//! The first seven compile natively as well, so their tests run with the
//! workspace's.

pub mod announce;
pub mod backoff;
pub mod events;
pub mod federation;
pub mod relay_addr;
pub mod relay_answer;
pub mod relay_liveness;

#[cfg(target_arch = "wasm32")]
mod boxed_io;
#[cfg(all(target_arch = "wasm32", debug_assertions))]
mod console_log;
#[cfg(target_arch = "wasm32")]
mod identity;
#[cfg(target_arch = "wasm32")]
mod node;
#[cfg(target_arch = "wasm32")]
mod page_config;
#[cfg(target_arch = "wasm32")]
mod perf_service;
#[cfg(target_arch = "wasm32")]
mod timing;
#[cfg(target_arch = "wasm32")]
mod ui;
#[cfg(target_arch = "wasm32")]
mod websocket;

use std::time::Duration;

/// How often a connected peer re-announces its record.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(20);

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() -> Result<(), wasm_bindgen::JsValue> {
    // With std's immediate-abort panics (scripts/build-page's page), a
    // panic traps before any hook could run, and the page's inline script
    // reports the trap: the hook would be dead weight (~0.8 KB).
    #[cfg(not(panic = "immediate-abort"))]
    console_error_panic_hook::set_once();
    #[cfg(debug_assertions)]
    console_log::init();
    let keypair = identity::load_or_create();
    let (commands, command_rx) = futures::channel::mpsc::channel(32);
    let (event_tx, events) = futures::channel::mpsc::channel(node::EVENT_QUEUE);
    let node = node::Node::new(keypair, event_tx)
        .map_err(|error| wasm_bindgen::JsValue::from_str(&error.to_string()))?;
    wasm_bindgen_futures::spawn_local(node.run(command_rx));
    let ui = ui::Ui::mount(commands)?;
    wasm_bindgen_futures::spawn_local(ui.run(events));
    Ok(())
}
