//! What the page is configured with from outside the node: the ICE
//! servers of its URL's `?ice=` parameter, and the relay that served it
//! (`/api/relay`: its addresses, STUN service and federation). The UI prefills its
//! input from these and hands the node its ICE servers.

use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::{
    federation::ListedRelay,
    relay_answer::{self, JsonValue, MalformedAnswer, RelayAnswer},
};

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

/// Why the page has no answer from `/api/relay`.
#[derive(Debug, thiserror::Error)]
pub enum RelayInfoError {
    #[error("cannot read /api/relay: {0}")]
    Unreachable(String),
    #[error("/api/relay answered HTTP {0}")]
    Status(u16),
    #[error(transparent)]
    Malformed(#[from] MalformedAnswer),
}

impl From<JsValue> for RelayInfoError {
    fn from(error: JsValue) -> Self {
        Self::Unreachable(describe_js_error(&error))
    }
}

/// A thrown JS value as a line: an `Error`'s message, a string as it is.
pub fn describe_js_error(error: &JsValue) -> String {
    match error.dyn_ref::<js_sys::Error>() {
        Some(error) => error.message().into(),
        None => error
            .as_string()
            .unwrap_or_else(|| "an unknown error".to_owned()),
    }
}

/// The page reads `Response.json()`'s result with `Reflect`, field by
/// field ([`relay_answer`]).
impl JsonValue for JsValue {
    fn member(&self, key: &str) -> Option<Self> {
        if !self.is_json_object() {
            return None;
        }
        let value = js_sys::Reflect::get(self, &JsValue::from_str(key)).ok()?;
        (!value.is_undefined()).then_some(value)
    }

    fn text(&self) -> Option<String> {
        self.as_string()
    }

    fn items(&self) -> Option<Vec<Self>> {
        js_sys::Array::is_array(self).then(|| js_sys::Array::from(self).iter().collect())
    }

    fn is_json_object(&self) -> bool {
        self.is_object() && !js_sys::Array::is_array(self)
    }

    fn describe(&self) -> &'static str {
        if self.is_null() {
            "null"
        } else if js_sys::Array::is_array(self) {
            "an array"
        } else if self.is_object() {
            "an object"
        } else if self.is_string() {
            "a string"
        } else if self.as_f64().is_some() {
            "a number"
        } else if self.as_bool().is_some() {
            "a boolean"
        } else {
            "not JSON"
        }
    }
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
pub async fn fetch_relay_info() -> Result<RelayInfo, RelayInfoError> {
    let window =
        web_sys::window().ok_or_else(|| RelayInfoError::Unreachable("no window".to_owned()))?;
    let response: web_sys::Response = match prefetched_relay_info(&window).await {
        Some(response) => response,
        None => JsFuture::from(window.fetch_with_str("/api/relay"))
            .await?
            .dyn_into()?,
    };
    if !response.ok() {
        return Err(RelayInfoError::Status(response.status()));
    }
    let json = JsFuture::from(response.json()?).await?;
    let RelayAnswer {
        addrs,
        stun_urls,
        federation,
    } = relay_answer::read(&json)?;
    Ok(RelayInfo {
        addrs,
        stun_urls,
        host: window.location().hostname()?,
        federation,
        secure_page: served_over_https(),
    })
}
