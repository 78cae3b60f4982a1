//! Two headless Chromium pages load the page over HTTPS from a relay with
//! `--domain localhost` and a certificate of the test's own (`openssl`),
//! find the relay's secure WebSocket address (`/tls/ws`) prefilled, connect
//! over `wss://`, find each other and chat, under the relay's
//! Content-Security-Policy, without an error on either console.
//!
//! Chromium is told to accept that one certificate by its public key
//! (`--ignore-certificate-errors-spki-list`), so no trust store is touched;
//! `localhost` resolves to loopback in Chromium without any resolver.
//!
//! Needs the built page, chromedriver, Chromium and openssl.

use std::{
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use e2e::{Browser, ChromeDriver, RelayProcess, TIMEOUT, built_page_dir, wait_page, wait_pages};

const PREFIX: &str = "browser_tls";

/// A self-signed certificate for `localhost` in `dir`, and the base64
/// SHA-256 of its public key (what Chromium's flag takes).
fn make_certificate(dir: &std::path::Path) -> String {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pipeline = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let hash = Command::new("sh")
        .args(["-c", &pipeline])
        .output()
        .expect("openssl runs");
    assert!(
        hash.status.success(),
        "{}",
        String::from_utf8_lossy(&hash.stderr)
    );
    String::from_utf8(hash.stdout)
        .expect("base64")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_served_over_https_chat_over_secure_websocket() {
    e2e::clear_artifacts(PREFIX).expect("artifacts");
    let dir = tempfile::tempdir().expect("temporary directory");
    let spki = make_certificate(dir.path());
    let page_dir = built_page_dir().expect("the built page (scripts/build-page)");
    let args: Vec<String> = [
        "--listen-ip=127.0.0.1",
        "--port=0",
        "--websocket-port=0",
        "--webrtc-port=0",
        "--stun-port=0",
        "--quic-port=0",
        "--http-port=0",
        "--https-port=0",
        "--wss-port=0",
        "--domain=localhost",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        format!("--tls-cert={}", dir.path().join("cert.pem").display()),
        format!("--tls-key={}", dir.path().join("key.pem").display()),
        format!("--state-dir={}", dir.path().join("state").display()),
        format!("--page-dir={}", page_dir.display()),
    ])
    .collect();
    let relay = RelayProcess::start(PREFIX, &args)
        .await
        .expect("the relay starts");
    let url = relay
        .page_urls
        .iter()
        .find(|url| url.starts_with("https://localhost:"))
        .unwrap_or_else(|| panic!("no https page URL printed: {:?}", relay.page_urls))
        .clone();
    let secure = relay
        .multiaddrs
        .iter()
        .find(|addr| addr.starts_with("/dns4/localhost/tcp/") && addr.contains("/tls/ws/p2p/"))
        .unwrap_or_else(|| panic!("no /tls/ws address printed: {:?}", relay.multiaddrs))
        .clone();

    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let flag = format!("--ignore-certificate-errors-spki-list={spki}");
    let a = Browser::open_with_args(&driver, "A", &[&flag])
        .await
        .expect("browser A opens");
    let b = Browser::open_with_args(&driver, "B", &[&flag])
        .await
        .expect("browser B opens");
    let outcome = async {
        a.goto(&url).await?;
        b.goto(&url).await?;
        // Served over https, the page prefills the secure address.
        wait_pages(
            &a,
            &b,
            "#relay-addr is prefilled with the /tls/ws address",
            TIMEOUT,
            |page| {
                (page.relay_addr.trim() != secure)
                    .then(|| format!("#relay-addr is {:?}, expected {secure:?}", page.relay_addr))
            },
        )
        .await?;
        a.click("#connect").await?;
        b.click("#connect").await?;
        let (page_a, page_b) = wait_pages(&a, &b, "#status is connected", TIMEOUT, |page| {
            (!page.is_connected() || page.self_peer_id.is_empty())
                .then(|| format!("#status is {:?}", page.status))
        })
        .await?;
        let (id_a, id_b) = (page_a.self_peer_id, page_b.self_peer_id);
        wait_page(&a, "#peers lists B", TIMEOUT, |page| {
            (!page.lists_peer(&id_b)).then(|| format!("#peers does not list {id_b}"))
        })
        .await?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        let text = format!("hello over wss #{nanos:09}");
        a.fill("#chat-input", &text).await?;
        a.press_enter("#chat-input").await?;
        wait_page(
            &b,
            "B's #chat-log shows A's message",
            Duration::from_secs(10),
            |page| (!page.has_message(&id_a, &text)).then(|| format!("no {text:?} from {id_a}")),
        )
        .await?;
        a.screenshot(PREFIX, "chatted").await?;
        a.check_no_page_errors().await?;
        b.check_no_page_errors().await
    }
    .await;
    if let Err(error) = outcome {
        let a_report = a.save_failure_report(PREFIX).await;
        let b_report = b.save_failure_report(PREFIX).await;
        panic!(
            "{error:#}\n\nartifacts:\n{a_report}\n{b_report}\nrelay log: {}",
            relay.log_path.display()
        );
    }
    a.close().await.expect("close A");
    b.close().await.expect("close B");
    relay.kill().await.expect("kill the relay");
}
