//! The page's files over real HTTP: the precompressed twin the client
//! accepts, with its `Content-Encoding` and `Vary`; hashed names cached for
//! a year, the HTML revalidated; a second visit that downloads only the
//! HTML (and not even that when it did not change).

mod common;

use std::path::Path;

use common::TestRelay;
use reqwest::{StatusCode, header};

const WASM: &str = "web-peer-0123456789abcdef_bg.wasm";
const JS: &str = "web-peer-0123456789abcdef.js";
/// A hashed file without precompressed twins.
const ICON: &str = "favicon-fedcba9876543210.svg";

/// A built page as scripts/build-page leaves it: each file with a brotli
/// and a gzip twin whose bytes say which one was sent (the relay never
/// looks inside them).
fn write_page(dir: &Path) {
    let html = "<!doctype html><title>chat page</title>";
    for (name, body) in [("index.html", html), (WASM, "wasm"), (JS, "js")] {
        std::fs::write(dir.join(name), body).expect("file");
        std::fs::write(dir.join(format!("{name}.br")), format!("br of {name}")).expect(".br");
        std::fs::write(dir.join(format!("{name}.gz")), format!("gz of {name}")).expect(".gz");
    }
    std::fs::write(dir.join(ICON), "<svg/>").expect("icon");
}

async fn started() -> (TestRelay, reqwest::Client) {
    let relay = TestRelay::start(&[]).await;
    write_page(&relay.dir.path().join("page"));
    (relay, reqwest::Client::new())
}

struct Fetched {
    status: StatusCode,
    encoding: Option<String>,
    cache_control: Option<String>,
    vary: Vec<String>,
    content_type: Option<String>,
    last_modified: Option<String>,
    body: String,
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    headers: &[(header::HeaderName, &str)],
) -> Fetched {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = request.send().await.expect("response");
    let text = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().expect("ascii header").to_owned())
    };
    Fetched {
        status: response.status(),
        encoding: text(header::CONTENT_ENCODING),
        cache_control: text(header::CACHE_CONTROL),
        vary: response
            .headers()
            .get_all(header::VARY)
            .iter()
            .map(|value| value.to_str().expect("ascii header").to_ascii_lowercase())
            .collect(),
        content_type: text(header::CONTENT_TYPE),
        last_modified: text(header::LAST_MODIFIED),
        body: response.text().await.expect("body"),
    }
}

#[tokio::test]
async fn the_twin_the_client_accepts_is_sent_with_its_content_encoding() {
    let (relay, client) = started().await;
    let wasm = relay.http_url(&format!("/{WASM}"));
    // (Accept-Encoding, the Content-Encoding expected, the body expected)
    let cases: [(Option<&str>, Option<&str>, String); 7] = [
        (None, None, "wasm".to_owned()),
        (Some("identity"), None, "wasm".to_owned()),
        (Some("gzip"), Some("gzip"), format!("gz of {WASM}")),
        (Some("br"), Some("br"), format!("br of {WASM}")),
        (
            Some("gzip, deflate, br"),
            Some("br"),
            format!("br of {WASM}"),
        ),
        (Some("br;q=0, gzip"), Some("gzip"), format!("gz of {WASM}")),
        (Some("br;q=0, gzip;q=0"), None, "wasm".to_owned()),
    ];
    for (accept, encoding, body) in cases {
        let headers: Vec<_> = accept
            .map(|accept| (header::ACCEPT_ENCODING, accept))
            .into_iter()
            .collect();
        let got = fetch(&client, &wasm, &headers).await;
        assert_eq!(got.status, StatusCode::OK, "Accept-Encoding {accept:?}");
        assert_eq!(
            got.encoding.as_deref(),
            encoding,
            "Accept-Encoding {accept:?}: Content-Encoding"
        );
        assert_eq!(got.body, body, "Accept-Encoding {accept:?}: body");
        assert_eq!(
            got.content_type.as_deref(),
            Some("application/wasm"),
            "Accept-Encoding {accept:?}: the type is the file's, not its twin's"
        );
        assert!(
            got.vary.iter().any(|vary| vary.contains("accept-encoding")),
            "Accept-Encoding {accept:?}: no Vary: Accept-Encoding in {:?}",
            got.vary
        );
    }

    // The HTML too, at / as at /index.html; a file without twins as it is.
    for path in ["/", "/index.html"] {
        let got = fetch(
            &client,
            &relay.http_url(path),
            &[(header::ACCEPT_ENCODING, "gzip, br")],
        )
        .await;
        assert_eq!(got.encoding.as_deref(), Some("br"), "{path}");
        assert_eq!(got.body, "br of index.html", "{path}");
    }
    let icon = fetch(
        &client,
        &relay.http_url(&format!("/{ICON}")),
        &[(header::ACCEPT_ENCODING, "gzip, br")],
    )
    .await;
    assert_eq!(icon.encoding, None, "a file without twins is sent as it is");
    assert_eq!(icon.body, "<svg/>");
}

#[tokio::test]
async fn hashed_files_are_immutable_and_the_html_is_revalidated() {
    let (relay, client) = started().await;
    for name in [WASM, JS, ICON] {
        let got = fetch(&client, &relay.http_url(&format!("/{name}")), &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{name}");
        assert_eq!(
            got.cache_control.as_deref(),
            Some(relay::assets::IMMUTABLE),
            "{name}: named after its content, so cached for good"
        );
    }
    // The HTML, wherever it answers: /, /index.html, and an unknown path,
    // also one that looks hashed (the fallback answers it with the HTML).
    for path in ["/", "/index.html", "/chat", "/gone-0123456789abcdef.js"] {
        let got = fetch(&client, &relay.http_url(path), &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        assert!(
            got.body.contains("<title>chat page</title>"),
            "{path}: {}",
            got.body
        );
        assert_eq!(
            got.cache_control.as_deref(),
            Some(relay::assets::REVALIDATE),
            "{path}: the HTML is revalidated on every visit"
        );
    }
    // The API is not the page: it keeps its own no-store.
    let api = fetch(&client, &relay.http_url("/api/relay"), &[]).await;
    assert_eq!(api.cache_control.as_deref(), Some("no-store"));
}

#[tokio::test]
async fn a_second_visit_revalidates_the_html_and_gets_no_body() {
    let (relay, client) = started().await;
    let first = fetch(
        &client,
        &relay.http_url("/"),
        &[(header::ACCEPT_ENCODING, "gzip")],
    )
    .await;
    let last_modified = first.last_modified.expect("the HTML has a Last-Modified");
    let second = fetch(
        &client,
        &relay.http_url("/"),
        &[
            (header::ACCEPT_ENCODING, "gzip"),
            (header::IF_MODIFIED_SINCE, &last_modified),
        ],
    )
    .await;
    assert_eq!(
        second.status,
        StatusCode::NOT_MODIFIED,
        "an unchanged HTML is a 304"
    );
    assert_eq!(second.body, "", "a 304 carries no body");
}
