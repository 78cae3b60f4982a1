//! The WebDriver layer itself, in each browser: a session opens headless
//! with a fresh profile, and what a page reports as broken (an exception
//! thrown while it loads, an unhandled rejection, `console.error`) is
//! recorded from the document's first script on, so that the tests that
//! close their browsers with `Browser::close` fail on it, in Firefox as in
//! Chromium.
//!
//! Needs Chromium and chromedriver, Firefox and geckodriver.

use e2e::{Browser, BrowserKind, Check, TIMEOUT, wait_until};

const PREFIX: &str = "browsers";

/// Fails three ways before any other script could install a listener:
/// the first script of the document throws, a promise is rejected with
/// nobody to catch it, and an error is logged.
const BROKEN_PAGE: &str = r#"<!doctype html>
<title>broken</title>
<script>
  console.error("e2e-marker: logged error");
  Promise.reject(new Error("e2e-marker: rejected"));
  throw new Error("e2e-marker: thrown while loading");
</script>
<p id="fresh"></p>
<script>
  // A fresh profile: nothing stored by an earlier session.
  document.getElementById("fresh").textContent = String(localStorage.length);
</script>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_browser_records_what_a_page_reports_as_broken_from_its_first_script() {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("broken.html");
    std::fs::write(&page, BROKEN_PAGE).expect("write the page");
    let url = url::Url::from_file_path(&page)
        .expect("a file URL")
        .to_string();

    // Twice each: the second session must not see what the first stored.
    for (kind, session) in BrowserKind::ALL
        .into_iter()
        .flat_map(|kind| [(kind, 1), (kind, 2)])
    {
        let name = format!("{}-{session}", kind.name());
        let browser = Browser::launch(kind, PREFIX, &name)
            .await
            .unwrap_or_else(|error| panic!("{kind}: {error:#}"));
        browser
            .goto(&url)
            .await
            .unwrap_or_else(|error| panic!("{kind}: {error:#}"));
        // A storage write so the next session can show it starts fresh.
        browser
            .client
            .execute("localStorage.setItem('e2e', '1');", vec![])
            .await
            .unwrap_or_else(|error| panic!("{kind}: {error:#}"));
        let errors = wait_until(
            &format!("{kind} records the page's three errors"),
            TIMEOUT,
            || async {
                let errors = browser.page_errors().await?;
                let seen = |marker: &str| errors.iter().any(|line| line.contains(marker));
                Ok(
                    if seen("e2e-marker: logged error")
                        && seen("e2e-marker: rejected")
                        && seen("e2e-marker: thrown while loading")
                    {
                        Check::Done(errors)
                    } else {
                        Check::NotYet(format!("its errors: {errors:#?}"))
                    },
                )
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
        assert_eq!(
            errors.len(),
            3,
            "{kind}: expected exactly the three errors, got {errors:#?}"
        );
        let fresh = browser
            .client
            .execute(
                "return document.getElementById('fresh').textContent;",
                vec![],
            )
            .await
            .unwrap_or_else(|error| panic!("{kind}: {error:#}"));
        assert_eq!(
            fresh, "0",
            "{kind}: the profile was not fresh (localStorage held {fresh} items)"
        );
        let closed = browser.close().await;
        let message = format!(
            "{:#}",
            closed.expect_err("close fails on the page's errors")
        );
        assert!(
            message.contains("e2e-marker: thrown while loading"),
            "{kind}: close() failed without naming the error: {message}"
        );
    }
}
