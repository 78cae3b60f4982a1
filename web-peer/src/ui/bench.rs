//! `window.chatBench`, the benchmarks' handle on the page
//! (`bench/browser-pair.mjs`). It exists only when the page's URL has a
//! `bench` parameter (`/?bench`):
//!
//! - `chatBench.perf(peerId, uploadBytes, downloadBytes)`: runs one perf
//!   transfer (`/perf/1.0.0`) with a peer this page reaches directly (over
//!   WebRTC, its relayed connection closed); a Promise of the time it took,
//!   in milliseconds, measured in the page.
//!
//! Only such a page serves `/perf/1.0.0` to others: any other page does
//! not speak the protocol at all, so a peer cannot make it send bytes.

use futures::channel::{mpsc, oneshot};
use libp2p::PeerId;
use wasm_bindgen::{JsCast as _, JsValue, closure::Closure};

use crate::events::Command;

/// Installs `window.chatBench` if the page was opened with `?bench`.
pub fn install(commands: mpsc::Sender<Command>) -> Result<(), JsValue> {
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let search = window.location().search()?;
    if !web_sys::UrlSearchParams::new_with_str(&search)?.has("bench") {
        return Ok(());
    }
    commands
        .clone()
        .try_send(Command::ServePerf)
        .map_err(|_| JsValue::from_str("the node does not take commands"))?;
    let perf = Closure::<dyn FnMut(String, f64, f64) -> js_sys::Promise>::new(
        move |peer: String, upload: f64, download: f64| {
            let commands = commands.clone();
            wasm_bindgen_futures::future_to_promise(async move {
                let took = perf(commands, &peer, upload, download)
                    .await
                    .map_err(|error| JsValue::from(js_sys::Error::new(&error)))?;
                Ok(JsValue::from_f64(took.as_secs_f64() * 1000.0))
            })
        },
    );
    let handle = js_sys::Object::new();
    js_sys::Reflect::set(
        &handle,
        &JsValue::from_str("perf"),
        perf.as_ref().unchecked_ref(),
    )?;
    // The handle lives as long as the page.
    perf.forget();
    js_sys::Reflect::set(&window, &JsValue::from_str("chatBench"), &handle)?;
    Ok(())
}

async fn perf(
    mut commands: mpsc::Sender<Command>,
    peer: &str,
    upload: f64,
    download: f64,
) -> Result<std::time::Duration, String> {
    let peer: PeerId = peer
        .parse()
        .map_err(|error| format!("\"{peer}\" is not a peer id: {error}"))?;
    let (upload, download) = (byte_count(upload)?, byte_count(download)?);
    let (reply, answer) = oneshot::channel();
    commands
        .try_send(Command::Perf {
            peer,
            upload,
            download,
            reply,
        })
        .map_err(|_| "the node is not taking commands".to_owned())?;
    answer
        .await
        .map_err(|_| "the node dropped the transfer".to_owned())?
}

/// A JavaScript number as a byte count: a whole number, 0 to 2^53.
fn byte_count(value: f64) -> Result<u64, String> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 2f64.powi(53) {
        Ok(value as u64)
    } else {
        // JavaScript prints the number: Rust's float formatting would be
        // 4.5 KB of the page's wasm for this one message.
        let shown = js_sys::Number::from(value)
            .to_string(10)
            .map(String::from)
            .unwrap_or_default();
        Err(format!("{shown} is not a byte count"))
    }
}
