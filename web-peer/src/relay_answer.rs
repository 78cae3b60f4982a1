//! Reading the relay's `/api/relay` answer, field by field.
//!
//! The page parses the answer with the browser's own `Response.json()` and
//! reads the few fields it needs from the result ([`JsonValue`], over a
//! `JsValue` in `page_config`), without serde: serde's generated visitors
//! and serde-wasm-bindgen weighed ~10 KB of wasm for these three fields
//! (BENCHMARKS.md "Page weight"). A malformed answer is refused with the
//! path of the field at fault and what it was instead ([`MalformedAnswer`]).
//! Members the page does not know are ignored, as a newer relay may send
//! more. Compiles natively, so its tests run with the workspace's (over
//! `serde_json::Value`).

use crate::federation::ListedRelay;

/// What `/api/relay` says of the relay that served the page.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RelayAnswer {
    /// Its multiaddrs, as text (`multiaddrs[].multiaddr`).
    pub addrs: Vec<String>,
    /// Its STUN service's URLs (`stun_urls`, absent: none).
    pub stun_urls: Vec<String>,
    /// The federation's relays it is connected to (`federation`, absent
    /// from a relay that predates federation: none).
    pub federation: Vec<ListedRelay>,
}

/// One value of a parsed JSON document, as far as this reader looks at it.
pub trait JsonValue: Sized {
    /// The member `key` of an object; `None` when it has none, or when
    /// this is not an object.
    fn member(&self, key: &str) -> Option<Self>;
    /// The string this is, if it is one.
    fn text(&self) -> Option<String>;
    /// The elements of the array this is, if it is one.
    fn items(&self) -> Option<Vec<Self>>;
    /// Whether this is an object (not an array, not null).
    fn is_json_object(&self) -> bool;
    /// What this is, for an error: "a number", "null", ...
    fn describe(&self) -> &'static str;
}

/// An answer that is not what `/api/relay` sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("/api/relay's {path} should be {expected}, but is {found}")]
pub struct MalformedAnswer {
    /// Where: `answer`, `multiaddrs[2].multiaddr`, ...
    pub path: String,
    /// What it should be: "an object", "an array", "a string".
    pub expected: &'static str,
    /// What it is: "missing", "a number", ...
    pub found: &'static str,
}

/// Reads the answer `answer` (`Response.json()`'s result).
pub fn read<V: JsonValue>(answer: &V) -> Result<RelayAnswer, MalformedAnswer> {
    object(answer, || "answer".to_owned())?;
    let addrs = addresses(answer, "")?;
    let stun_urls = match answer.member("stun_urls") {
        None => Vec::new(),
        Some(urls) => strings(&urls, || "stun_urls".to_owned())?,
    };
    let federation = match answer.member("federation") {
        None => Vec::new(),
        Some(list) => array(&list, || "federation".to_owned())?
            .iter()
            .enumerate()
            .map(|(index, relay)| {
                let path = format!("federation[{index}].");
                object(relay, || format!("federation[{index}]"))?;
                Ok(ListedRelay {
                    peer_id: string(relay, "peer_id", &path)?,
                    addrs: addresses(relay, &path)?,
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(RelayAnswer {
        addrs,
        stun_urls,
        federation,
    })
}

/// `{prefix}multiaddrs`: an array of `{ "multiaddr": "..." }`, required.
fn addresses<V: JsonValue>(parent: &V, prefix: &str) -> Result<Vec<String>, MalformedAnswer> {
    let list = required(parent, "multiaddrs", prefix)?;
    array(&list, || format!("{prefix}multiaddrs"))?
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let path = format!("{prefix}multiaddrs[{index}]");
            object(entry, || path.clone())?;
            string(entry, "multiaddr", &format!("{path}."))
        })
        .collect()
}

/// An array of strings.
fn strings<V: JsonValue>(
    value: &V,
    path: impl Fn() -> String,
) -> Result<Vec<String>, MalformedAnswer> {
    array(value, &path)?
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.text()
                .ok_or_else(|| malformed(format!("{}[{index}]", path()), "a string", item))
        })
        .collect()
}

/// The member `key` of `parent`, a string, required.
fn string<V: JsonValue>(parent: &V, key: &str, prefix: &str) -> Result<String, MalformedAnswer> {
    let value = required(parent, key, prefix)?;
    value
        .text()
        .ok_or_else(|| malformed(format!("{prefix}{key}"), "a string", &value))
}

fn required<V: JsonValue>(parent: &V, key: &str, prefix: &str) -> Result<V, MalformedAnswer> {
    parent.member(key).ok_or_else(|| MalformedAnswer {
        path: format!("{prefix}{key}"),
        expected: "present",
        found: "missing",
    })
}

fn array<V: JsonValue>(value: &V, path: impl Fn() -> String) -> Result<Vec<V>, MalformedAnswer> {
    value
        .items()
        .ok_or_else(|| malformed(path(), "an array", value))
}

fn object<V: JsonValue>(value: &V, path: impl Fn() -> String) -> Result<(), MalformedAnswer> {
    if value.is_json_object() {
        Ok(())
    } else {
        Err(malformed(path(), "an object", value))
    }
}

fn malformed<V: JsonValue>(path: String, expected: &'static str, found: &V) -> MalformedAnswer {
    MalformedAnswer {
        path,
        expected,
        found: found.describe(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    impl JsonValue for Value {
        fn member(&self, key: &str) -> Option<Self> {
            self.as_object()?.get(key).cloned()
        }

        fn text(&self) -> Option<String> {
            self.as_str().map(str::to_owned)
        }

        fn items(&self) -> Option<Vec<Self>> {
            self.as_array().cloned()
        }

        fn is_json_object(&self) -> bool {
            self.is_object()
        }

        fn describe(&self) -> &'static str {
            match self {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        }
    }

    fn error(answer: Value) -> String {
        read(&answer)
            .expect_err("a malformed answer is refused")
            .to_string()
    }

    #[test]
    fn reads_what_the_relay_sends() {
        // The shape of relay/src/http.rs's answer, with a member the page
        // does not know.
        let answer = json!({
            "peer_id": "12D3KooWRelay",
            "multiaddrs": [
                { "multiaddr": "/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3KooWRelay", "transport": "ws" },
                { "multiaddr": "/ip4/127.0.0.1/udp/4003/webrtc-direct" }
            ],
            "stun_urls": ["stun:127.0.0.1:3478"],
            "federation": [
                { "peer_id": "12D3KooWOther", "multiaddrs": [{ "multiaddr": "/dns4/b.example/tcp/443/wss" }] }
            ]
        });
        assert_eq!(
            read(&answer),
            Ok(RelayAnswer {
                addrs: vec![
                    "/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3KooWRelay".to_owned(),
                    "/ip4/127.0.0.1/udp/4003/webrtc-direct".to_owned()
                ],
                stun_urls: vec!["stun:127.0.0.1:3478".to_owned()],
                federation: vec![ListedRelay {
                    peer_id: "12D3KooWOther".to_owned(),
                    addrs: vec!["/dns4/b.example/tcp/443/wss".to_owned()],
                }],
            })
        );
    }

    #[test]
    fn stun_urls_and_federation_may_be_absent() {
        let answer = json!({ "multiaddrs": [] });
        assert_eq!(read(&answer), Ok(RelayAnswer::default()));
    }

    #[test]
    fn a_malformed_answer_is_refused_with_the_field_at_fault() {
        let cases = [
            (
                json!([]),
                "/api/relay's answer should be an object, but is an array",
            ),
            (
                json!(null),
                "/api/relay's answer should be an object, but is null",
            ),
            (
                json!({}),
                "/api/relay's multiaddrs should be present, but is missing",
            ),
            (
                json!({ "multiaddrs": "/ip4/1.2.3.4" }),
                "/api/relay's multiaddrs should be an array, but is a string",
            ),
            (
                json!({ "multiaddrs": [{ "multiaddr": "/ip4/1.2.3.4" }, "x"] }),
                "/api/relay's multiaddrs[1] should be an object, but is a string",
            ),
            (
                json!({ "multiaddrs": [{ "multiaddr": 7 }] }),
                "/api/relay's multiaddrs[0].multiaddr should be a string, but is a number",
            ),
            (
                json!({ "multiaddrs": [{}] }),
                "/api/relay's multiaddrs[0].multiaddr should be present, but is missing",
            ),
            (
                json!({ "multiaddrs": [], "stun_urls": null }),
                "/api/relay's stun_urls should be an array, but is null",
            ),
            (
                json!({ "multiaddrs": [], "stun_urls": ["stun:a", true] }),
                "/api/relay's stun_urls[1] should be a string, but is a boolean",
            ),
            (
                json!({ "multiaddrs": [], "federation": {} }),
                "/api/relay's federation should be an array, but is an object",
            ),
            (
                json!({ "multiaddrs": [], "federation": [{ "multiaddrs": [] }] }),
                "/api/relay's federation[0].peer_id should be present, but is missing",
            ),
            (
                json!({ "multiaddrs": [], "federation": [{ "peer_id": "p", "multiaddrs": [{ "multiaddr": [] }] }] }),
                "/api/relay's federation[0].multiaddrs[0].multiaddr should be a string, but is an array",
            ),
            (
                json!({ "multiaddrs": [], "federation": [1] }),
                "/api/relay's federation[0] should be an object, but is a number",
            ),
        ];
        for (answer, expected) in cases {
            assert_eq!(error(answer.clone()), expected, "for {answer}");
        }
    }
}
