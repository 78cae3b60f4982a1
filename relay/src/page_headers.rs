//! The headers a page that runs code should be served with: a
//! Content-Security-Policy that allows exactly what the chat page uses,
//! `X-Content-Type-Options`, frame protection, no referrer, and HSTS when
//! served over HTTPS.
//!
//! The policy allows scripts from the relay's own origin, the one inline
//! module script trunk writes into `index.html` (by its SHA-256, read from
//! the built page, so a rebuilt page gets its new hash without a restart),
//! compiling WebAssembly (`'wasm-unsafe-eval'`), and WebSocket connections
//! to any relay the user pastes (`wss:`, and `ws:` unless the page came
//! over HTTPS, where a browser refuses `ws:` anyway). WebRTC is outside
//! CSP. Nothing may frame the page.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, header},
    response::Response,
};
use base64::Engine as _;

/// One year, the usual HSTS lifetime; without `includeSubDomains`, as the
/// relay answers only for its own names.
const HSTS: &str = "max-age=31536000";

/// Adds the headers to every response of `router`. `https`: whether this
/// router is served over TLS (HSTS is sent only then, as the standard says).
pub fn layer(router: Router, page_dir: &Path, https: bool) -> Router {
    let policy = Arc::new(PagePolicy {
        index: page_dir.join("index.html"),
        https,
        cached: Mutex::new(None),
    });
    router.layer(axum::middleware::map_response_with_state(
        policy,
        add_headers,
    ))
}

/// What identifies one version of `index.html`: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

/// How often `index.html` is checked for a new version: not on every
/// response, which would be a blocking file system call on the async
/// runtime for each asset, API call and metrics scrape.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct PagePolicy {
    index: PathBuf,
    https: bool,
    /// The policy built from one version of `index.html`.
    cached: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    checked: Instant,
    value: HeaderValue,
}

impl PagePolicy {
    fn content_security_policy(&self) -> HeaderValue {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = cached.as_mut() {
            if cached.checked.elapsed() < RECHECK_INTERVAL {
                return cached.value.clone();
            }
            cached.checked = Instant::now();
            if cached.stamp == self.stamp() {
                return cached.value.clone();
            }
        }
        let stamp = self.stamp();
        let html = std::fs::read_to_string(&self.index).unwrap_or_default();
        let policy = content_security_policy(&html, self.https);
        let value = HeaderValue::from_str(&policy)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
        *cached = Some(Cached {
            stamp,
            checked: Instant::now(),
            value: value.clone(),
        });
        value
    }

    fn stamp(&self) -> Stamp {
        std::fs::metadata(&self.index)
            .ok()
            .and_then(|metadata| Some((metadata.modified().ok()?, metadata.len())))
    }
}

async fn add_headers(State(policy): State<Arc<PagePolicy>>, mut response: Response) -> Response {
    let csp = policy.content_security_policy();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if policy.https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

/// The policy for the page `html`.
pub fn content_security_policy(html: &str, https: bool) -> String {
    let mut script_src = vec!["'self'".to_owned(), "'wasm-unsafe-eval'".to_owned()];
    script_src.extend(inline_scripts(html).map(|script| {
        let digest = ring::digest::digest(&ring::digest::SHA256, script.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        )
    }));
    let connect_src = if https {
        "'self' wss:"
    } else {
        "'self' wss: ws:"
    };
    format!(
        "default-src 'none'; script-src {}; style-src 'self'; img-src 'self'; \
         connect-src {connect_src}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        script_src.join(" ")
    )
}

/// The text of every `<script>` element without a `src` attribute.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            let start = find_ignoring_case(rest, "<script")?;
            let after_name = &rest[start + "<script".len()..];
            let tag_end = after_name.find('>')?;
            let attributes = &after_name[..tag_end];
            let body_and_rest = &after_name[tag_end + 1..];
            let body_end = find_ignoring_case(body_and_rest, "</script")?;
            rest = &body_and_rest[body_end..];
            let is_element = attributes
                .chars()
                .next()
                .is_none_or(|c| c.is_ascii_whitespace());
            if is_element && find_ignoring_case(attributes, "src=").is_none() {
                return Some(&body_and_rest[..body_end]);
            }
        }
    })
}

fn find_ignoring_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<html><head>\n<script type=\"module\">\nimport init from '/a.js';\n</script>\
        <SCRIPT src=\"/b.js\"></SCRIPT><script>x()</script></head></html>";

    #[test]
    fn inline_scripts_are_found_and_external_ones_skipped() {
        let scripts: Vec<&str> = inline_scripts(PAGE).collect();
        assert_eq!(scripts, ["\nimport init from '/a.js';\n", "x()"]);
    }

    #[test]
    fn policy_allows_the_pages_own_scripts_wasm_and_websockets_only() {
        let policy = content_security_policy(PAGE, true);
        // echo -n 'x()' | openssl dgst -sha256 -binary | base64
        assert!(
            policy.contains("'sha256-D6IGS8VMvCoyaR/l0h9tERrBTATY01CoPS7l6xDv0kI='"),
            "{policy}"
        );
        assert!(
            policy.starts_with("default-src 'none'; script-src 'self' 'wasm-unsafe-eval' 'sha256-")
        );
        assert!(policy.contains("connect-src 'self' wss:;"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(content_security_policy(PAGE, false).contains("connect-src 'self' wss: ws:;"));
    }
}
