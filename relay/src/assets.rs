//! The built page (`dist/`) as the relay serves it: precompressed, cached
//! for a year when its name carries its content hash, revalidated when not.
//!
//! `scripts/build-page` writes a brotli (`.br`) and a gzip (`.gz`) twin of
//! every file once, at build time; here the twin the request's
//! `Accept-Encoding` prefers is sent with its `Content-Encoding`, and every
//! response says `Vary: Accept-Encoding`, so a cache never hands gzip to a
//! client that did not ask for it. Nothing is compressed per request.
//!
//! trunk names the wasm, the JS, the CSS and the icon after a hash of their
//! content (`web-peer-<16 hex digits>_bg.wasm`): a new build is a new name,
//! so those are `immutable` for a year. The HTML that names them (and any
//! file without a hash) is `no-cache`: revalidated on every visit, so a
//! second visit downloads nothing but the HTML, and a new build is seen at
//! once.

use std::path::Path;

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, header},
    middleware::{self, Next},
    response::Response,
};
use tower_http::services::{ServeDir, ServeFile};

/// For a file named after its content: a year, the longest HTTP/1.1
/// caches are asked to keep anything, and never revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For the HTML and any file whose name does not change with its content.
pub const REVALIDATE: &str = "no-cache";

/// The page in `page_dir`: its files, and `index.html` for any other path.
pub fn page(page_dir: &Path) -> Router {
    let index = ServeFile::new(page_dir.join("index.html"))
        .precompressed_br()
        .precompressed_gzip();
    let files = ServeDir::new(page_dir)
        .precompressed_br()
        .precompressed_gzip()
        .fallback(index);
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(cache_headers))
}

/// Adds `Cache-Control` and `Vary` to what the page's files answered.
async fn cache_headers(request: Request, next: Next) -> Response {
    let hashed = is_content_hashed(request.uri().path());
    let mut response = next.run(request).await;
    // The fallback answers any unknown path with the HTML, also one that
    // looks hashed: only a hashed file that is not HTML is immutable.
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    let cache = if hashed && !is_html && response.status().is_success() {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// Whether the last segment of `path` is a name trunk gave after the
/// file's content: `<name>-<16 hex digits>.<ext>`, or `_bg.wasm` after the
/// digits for the wasm.
pub fn is_content_hashed(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let Some((_, after_dash)) = file.rsplit_once('-') else {
        return false;
    };
    let (digits, rest) = after_dash.split_at(after_dash.len().min(HASH_DIGITS));
    digits.len() == HASH_DIGITS
        && digits.bytes().all(|byte| byte.is_ascii_hexdigit())
        && (rest.starts_with('.') || rest.starts_with("_bg."))
}

/// trunk's file hash: 64 bits, written in hex.
const HASH_DIGITS: usize = 16;

#[cfg(test)]
mod tests {
    use super::is_content_hashed;

    #[test]
    fn trunks_hashed_names_are_recognised() {
        for path in [
            "/web-peer-2b38c74ebd80ac08_bg.wasm",
            "/web-peer-2b38c74ebd80ac08.js",
            "/style-56fd422cc8312f4a.css",
            "/favicon-3cc1a14ee9ba8244.svg",
            "/nested/dir/app-0123456789abcdef.js",
        ] {
            assert!(is_content_hashed(path), "{path} is trunk-hashed");
        }
    }

    #[test]
    fn names_without_a_content_hash_are_not() {
        for path in [
            "/",
            "/index.html",
            "/style.css",
            "/web-peer_bg.wasm",
            // Too short, too long, not hex, nothing after the digits.
            "/app-0123456789abcde.js",
            "/app-0123456789abcdef0.js",
            "/app-0123456789abcdeg.js",
            "/app-0123456789abcdef",
            "/app-0123456789abcdef_x.wasm",
            "/api/relay",
        ] {
            assert!(!is_content_hashed(path), "{path} is not trunk-hashed");
        }
    }
}
