//! What the page is configured with from outside the node: the ICE
//! servers of its URL's `?ice=` parameter, and the relay that served it
//! (`/api/relay`: its addresses, STUN service and federation). The UI prefills its
//! input from these and hands the node its ICE servers.

use wasm_bindgen::{JsCast as _, JsValue};

use crate::federation::ListedRelay;
use wasm_bindgen_futures::JsFuture;

/// The `ice` parameter of the page's URL (comma-separated `stun:`/`turn:`
/// URLs), if given.
pub fn ice_servers_from_url() -> Option<Vec<String>> {
    let search = web_sys::window()?.location().search().ok()?;
    let value = web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get("ice")?;
    let urls: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|url| {
            url.starts_with("stun:") || url.starts_with("turn:") || url.starts_with("turns:")
        })
        .map(str::to_owned)
        .collect();
    Some(urls)
}

/// What `/api/relay` says of the relay that served the page.
#[derive(Debug)]
pub struct RelayInfo {
    /// Its multiaddrs, as text.
    pub addrs: Vec<String>,
    /// Its STUN service's URLs.
    pub stun_urls: Vec<String>,
    /// The host the page was loaded from.
    pub host: String,
    /// The federation's relays it is connected to.
    pub federation: Vec<ListedRelay>,
    /// Whether the page was served over `https:`.
    pub secure_page: bool,
}

#[derive(serde::Deserialize)]
struct RelayJson {
    multiaddrs: Vec<AddressEntry>,
    #[serde(default)]
    stun_urls: Vec<String>,
    /// Absent from a relay that predates federation.
    #[serde(default)]
    federation: Vec<MemberJson>,
}

#[derive(serde::Deserialize)]
struct MemberJson {
    peer_id: String,
    multiaddrs: Vec<AddressEntry>,
}

#[derive(serde::Deserialize)]
struct AddressEntry {
    multiaddr: String,
}

/// Whether the page was served over `https:`: the browser then lets it
/// open only secure WebSockets (and WebRTC-direct, which needs no
/// certificate).
pub fn served_over_https() -> bool {
    web_sys::window()
        .and_then(|window| window.location().protocol().ok())
        .is_some_and(|protocol| protocol == "https:")
}

/// The global through which `static/index.html`'s inline script hands
/// over its request for `/api/relay`.
const PREFETCHED: &str = "relayInfoRequest";

/// The answer to `/api/relay` that the page's inline script asked for
/// while the wasm was still downloading, so that the relay address is
/// filled in a round trip sooner. Taken once (a body is read once); `None`
/// when there is none, or it failed or was an error status (the relay
/// may have been busy for a moment), and the page asks itself.
async fn prefetched_relay_info(window: &web_sys::Window) -> Option<web_sys::Response> {
    let key = JsValue::from_str(PREFETCHED);
    let request = js_sys::Reflect::get(window, &key).ok()?;
    let _ = js_sys::Reflect::delete_property(window, &key);
    let request: js_sys::Promise = request.dyn_into().ok()?;
    let response: web_sys::Response = JsFuture::from(request).await.ok()?.dyn_into().ok()?;
    response.ok().then_some(response)
}

/// Fetches `/api/relay` from the page's own origin (the first time, the
/// answer the page's inline script already asked for).
pub async fn fetch_relay_info() -> Result<RelayInfo, JsValue> {
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let response: web_sys::Response = match prefetched_relay_info(&window).await {
        Some(response) => response,
        None => JsFuture::from(window.fetch_with_str("/api/relay"))
            .await?
            .dyn_into()?,
    };
    if !response.ok() {
        return Err(JsValue::from_str(&format!("HTTP {}", response.status())));
    }
    let json = JsFuture::from(response.json()?).await?;
    let info: RelayJson = serde_wasm_bindgen::from_value(json)?;
    Ok(RelayInfo {
        addrs: info
            .multiaddrs
            .into_iter()
            .map(|entry| entry.multiaddr)
            .collect(),
        stun_urls: info.stun_urls,
        host: window.location().hostname()?,
        federation: info
            .federation
            .into_iter()
            .map(|member| ListedRelay {
                peer_id: member.peer_id,
                addrs: member.multiaddrs.into_iter().map(|a| a.multiaddr).collect(),
            })
            .collect(),
        secure_page: served_over_https(),
    })
}
