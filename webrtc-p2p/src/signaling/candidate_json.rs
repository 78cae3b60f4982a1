//! The JSON of an ICE candidate, as the signaling protocol carries it:
//! `RTCIceCandidate.toJSON()` of the browser (js-libp2p sends
//! `JSON.stringify(candidate)`), an object of four members:
//!
//! ```json
//! {"candidate":"candidate:1 1 udp 2113937151 192.0.2.7 54321 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}
//! ```
//!
//! A writer and a reader for exactly that object, in place of `serde_json`
//! (about 16 KB of the page's wasm for these four fields). The writer puts
//! the members in that order and leaves out the absent ones; the reader
//! takes them in any order, takes `null` for an absent optional member,
//! skips members it does not know (any JSON value, nested at most
//! [`MAX_DEPTH`] deep), and refuses everything else with a reason: not
//! JSON, a member of the wrong type, a repeated member, no `candidate`,
//! anything after the object.

use std::fmt::Write as _;

use super::message::IceCandidate;

/// Deepest nesting of arrays and objects accepted in a member the reader
/// skips. A candidate has none; the bound keeps a hostile message from
/// costing more than its (already bounded) length.
pub const MAX_DEPTH: usize = 16;

/// Why a candidate's JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {at}")]
pub struct JsonError {
    reason: &'static str,
    at: usize,
}

/// The candidate's JSON; `None` is `null` (the end of candidates).
pub fn write(candidate: Option<&IceCandidate>) -> String {
    let Some(candidate) = candidate else {
        return "null".to_owned();
    };
    let mut json = String::with_capacity(candidate.candidate.len() + 80);
    json.push_str("{\"candidate\":");
    write_string(&mut json, &candidate.candidate);
    if let Some(mid) = &candidate.sdp_mid {
        json.push_str(",\"sdpMid\":");
        write_string(&mut json, mid);
    }
    if let Some(index) = candidate.sdp_m_line_index {
        let _ = write!(json, ",\"sdpMLineIndex\":{index}");
    }
    if let Some(ufrag) = &candidate.username_fragment {
        json.push_str(",\"usernameFragment\":");
        write_string(&mut json, ufrag);
    }
    json.push('}');
    json
}

/// A JSON string: quotes, backslashes and control characters escaped,
/// everything else as it is (JSON text is UTF-8).
fn write_string(json: &mut String, text: &str) {
    json.push('"');
    for c in text.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            '\n' => json.push_str("\\n"),
            '\r' => json.push_str("\\r"),
            '\t' => json.push_str("\\t"),
            '\u{8}' => json.push_str("\\b"),
            '\u{c}' => json.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

/// Reads a candidate object (not `null`: the caller handles the end of
/// candidates first).
pub fn read(json: &str) -> Result<IceCandidate, JsonError> {
    let mut reader = Reader {
        text: json.as_bytes(),
        at: 0,
    };
    let candidate = reader.candidate()?;
    reader.skip_whitespace();
    if reader.at != reader.text.len() {
        return Err(reader.error("text after the object"));
    }
    Ok(candidate)
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn error(&self, reason: &'static str) -> JsonError {
        JsonError {
            reason,
            at: self.at,
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.text.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), JsonError> {
        if self.peek() != Some(byte) {
            return Err(self.error(reason));
        }
        self.at += 1;
        Ok(())
    }

    fn candidate(&mut self) -> Result<IceCandidate, JsonError> {
        self.expect(b'{', "expected an object")?;
        let mut candidate = None;
        let (mut sdp_mid, mut sdp_m_line_index, mut username_fragment) = (None, None, None);
        let mut first = true;
        while self.peek() != Some(b'}') {
            if !first {
                self.expect(b',', "expected ',' or '}'")?;
            }
            first = false;
            let key_at = self.at;
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a member name"));
            }
            let key = self.string()?;
            self.expect(b':', "expected ':'")?;
            let repeated = JsonError {
                reason: "repeated member",
                at: key_at,
            };
            match key.as_str() {
                "candidate" => set_once(&mut candidate, self.string_value()?, repeated)?,
                "sdpMid" => set_once(&mut sdp_mid, self.nullable(Self::string_value)?, repeated)?,
                "sdpMLineIndex" => {
                    set_once(&mut sdp_m_line_index, self.nullable(Self::index)?, repeated)?
                }
                "usernameFragment" => set_once(
                    &mut username_fragment,
                    self.nullable(Self::string_value)?,
                    repeated,
                )?,
                _ => self.skip_value(0)?,
            }
        }
        self.at += 1;
        Ok(IceCandidate {
            candidate: candidate.ok_or(self.error("no \"candidate\" member"))?,
            sdp_mid: sdp_mid.flatten(),
            sdp_m_line_index: sdp_m_line_index.flatten(),
            username_fragment: username_fragment.flatten(),
        })
    }

    /// `null`, or what `read` reads.
    fn nullable<T>(
        &mut self,
        read: fn(&mut Self) -> Result<T, JsonError>,
    ) -> Result<Option<T>, JsonError> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Ok(None);
        }
        read(self).map(Some)
    }

    fn string_value(&mut self) -> Result<String, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        self.string()
    }

    /// An m-line index: a JSON integer from 0 to 65535.
    fn index(&mut self) -> Result<u16, JsonError> {
        self.skip_whitespace();
        let start = self.at;
        let digits = self.text[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let leading_zero = digits > 1 && self.text[start] == b'0';
        let fraction = matches!(self.text.get(start + digits), Some(b'.' | b'e' | b'E'));
        if digits == 0 || leading_zero || fraction {
            return Err(self.error("expected an integer from 0 to 65535"));
        }
        let number = std::str::from_utf8(&self.text[start..start + digits])
            .ok()
            .and_then(|d| d.parse().ok());
        let number = number.ok_or(self.error("expected an integer from 0 to 65535"))?;
        self.at += digits;
        Ok(number)
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        if !self.text[self.at..].starts_with(word) {
            return Err(self.error("expected a JSON value"));
        }
        self.at += word.len();
        Ok(())
    }

    /// A string, the opening quote next. Escapes are decoded; a `\u`
    /// surrogate must come in a pair, as JSON text is Unicode.
    fn string(&mut self) -> Result<String, JsonError> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&byte) = self.text.get(self.at) else {
                return Err(self.error("unterminated string"));
            };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => self.escape(&mut out)?,
                0..0x20 => return Err(self.error("control character in a string")),
                byte => out.push(byte),
            }
        }
        // The bytes came from a &str, cut only at ASCII quotes and escapes,
        // and escapes add whole characters: still UTF-8.
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8 in a string"))
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let Some(&kind) = self.text.get(self.at) else {
            return Err(self.error("unterminated string"));
        };
        self.at += 1;
        let byte = match kind {
            b'"' | b'\\' | b'/' => kind,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let c = self.unicode_escape()?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(self.error("unknown escape")),
        };
        out.push(byte);
        Ok(())
    }

    /// The character of a `\u` escape (the `\u` read), with the second
    /// half of a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let high = self.hex4()?;
        let code = match high {
            0xd800..0xdc00 => {
                if !self.text[self.at..].starts_with(b"\\u") {
                    return Err(self.error("lone surrogate in a \\u escape"));
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xdc00..0xe000).contains(&low) {
                    return Err(self.error("lone surrogate in a \\u escape"));
                }
                0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
            }
            0xdc00..0xe000 => return Err(self.error("lone surrogate in a \\u escape")),
            code => code,
        };
        char::from_u32(code).ok_or(self.error("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .ok_or(self.error("short \\u escape"))?;
        let mut value = 0;
        for &digit in digits {
            let nibble = char::from(digit)
                .to_digit(16)
                .ok_or(self.error("bad hex digit in a \\u escape"))?;
            value = value << 4 | nibble;
        }
        self.at += 4;
        Ok(value)
    }

    /// Skips one JSON value of a member the candidate does not have.
    fn skip_value(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(open @ (b'[' | b'{')) => {
                let close = if open == b'[' { b']' } else { b'}' };
                self.at += 1;
                let mut first = true;
                while self.peek() != Some(close) {
                    if !first {
                        self.expect(b',', "expected ',' or the end of an array or object")?;
                    }
                    first = false;
                    if open == b'{' {
                        if self.peek() != Some(b'"') {
                            return Err(self.error("expected a member name"));
                        }
                        self.string()?;
                        self.expect(b':', "expected ':'")?;
                    }
                    self.skip_value(depth + 1)?;
                }
                self.at += 1;
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            _ => Err(self.error("expected a JSON value")),
        }
    }

    /// A JSON number: `-`? int (`.` digits)? ([eE] [+-]? digits)?
    fn skip_number(&mut self) -> Result<(), JsonError> {
        let digits = |reader: &mut Self| {
            let count = reader.text[reader.at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            reader.at += count;
            count
        };
        if self.text[self.at] == b'-' {
            self.at += 1;
        }
        let start = self.at;
        let int = digits(self);
        if int == 0 || (int > 1 && self.text[start] == b'0') {
            return Err(self.error("invalid number"));
        }
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.text.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.text.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(())
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, repeated: JsonError) -> Result<(), JsonError> {
    if slot.is_some() {
        return Err(repeated);
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> IceCandidate {
        IceCandidate {
            candidate: "candidate:1 1 udp 2113937151 192.0.2.7 54321 typ host generation 0".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: Some("abcd".into()),
        }
    }

    #[test]
    fn writes_what_browsers_write() {
        // `JSON.stringify(candidate.toJSON())` in a browser, member for member.
        assert_eq!(
            write(Some(&full())),
            r#"{"candidate":"candidate:1 1 udp 2113937151 192.0.2.7 54321 typ host generation 0","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#
        );
        let bare = IceCandidate {
            candidate: "c".into(),
            sdp_mid: None,
            sdp_m_line_index: Some(65535),
            username_fragment: None,
        };
        assert_eq!(
            write(Some(&bare)),
            r#"{"candidate":"c","sdpMLineIndex":65535}"#
        );
        assert_eq!(write(None), "null");
    }

    #[test]
    fn writes_escapes_as_json_stringify_does() {
        let odd = IceCandidate {
            candidate: "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}j\u{7f}k/é🚀".into(),
            sdp_mid: None,
            sdp_m_line_index: None,
            username_fragment: None,
        };
        let json = write(Some(&odd));
        assert_eq!(
            json,
            "{\"candidate\":\"a\\\"b\\\\c\\nd\\re\\tf\\bg\\fh\\u0001i\\u001fj\u{7f}k/é🚀\"}"
        );
        assert_eq!(read(&json), Ok(odd));
    }

    #[test]
    fn reads_what_js_libp2p_sends() {
        // js-libp2p: JSON.stringify(RTCIceCandidate), with null members and spacing.
        let json = r#" { "candidate" : "candidate:1 1 udp 1 192.0.2.7 1 typ host", "sdpMid":"0",
            "sdpMLineIndex":0, "usernameFragment":null } "#;
        let candidate = read(json).expect("reads");
        assert_eq!(
            candidate.candidate,
            "candidate:1 1 udp 1 192.0.2.7 1 typ host"
        );
        assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
        assert_eq!(candidate.sdp_m_line_index, Some(0));
        assert_eq!(candidate.username_fragment, None);
        // Any order; unknown members (any value) skipped.
        let json = r#"{"usernameFragment":"u","extra":{"a":[1,-2.5e+3,true,false,null,"x\"}"]},"sdpMLineIndex":3,"candidate":"c","sdpMid":null}"#;
        let candidate = read(json).expect("reads");
        assert_eq!(
            candidate,
            IceCandidate {
                candidate: "c".into(),
                sdp_mid: None,
                sdp_m_line_index: Some(3),
                username_fragment: Some("u".into())
            }
        );
    }

    #[test]
    fn reads_unicode_escapes() {
        let candidate = read(r#"{"candidate":"\u0041\u00e9\ud83d\ude80\/\b\f"}"#).expect("reads");
        assert_eq!(candidate.candidate, "Aé🚀/\u{8}\u{c}");
    }

    #[test]
    fn round_trips_what_it_writes() {
        for candidate in [
            full(),
            IceCandidate {
                candidate: "x".into(),
                sdp_mid: Some("".into()),
                sdp_m_line_index: None,
                username_fragment: Some("\"".into()),
            },
        ] {
            assert_eq!(read(&write(Some(&candidate))), Ok(candidate));
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        for (json, reason) in [
            ("", "expected an object"),
            ("[]", "expected an object"),
            ("{", "expected a member name"),
            (r#"{"candidate":"c""#, "expected ',' or '}'"),
            (r#"{"candidate":"c",}"#, "expected a member name"),
            (r#"{"candidate":"c"} x"#, "text after the object"),
            (r#"{"candidate":"c"}{}"#, "text after the object"),
            (r#"{"sdpMid":"0"}"#, "no \"candidate\" member"),
            (r#"{"candidate":null}"#, "expected a string"),
            (r#"{"candidate":1}"#, "expected a string"),
            (r#"{"candidate":"c","candidate":"d"}"#, "repeated member"),
            (
                r#"{"candidate":"c","sdpMLineIndex":-1}"#,
                "expected an integer from 0 to 65535",
            ),
            (
                r#"{"candidate":"c","sdpMLineIndex":65536}"#,
                "expected an integer from 0 to 65535",
            ),
            (
                r#"{"candidate":"c","sdpMLineIndex":1.0}"#,
                "expected an integer from 0 to 65535",
            ),
            (
                r#"{"candidate":"c","sdpMLineIndex":01}"#,
                "expected an integer from 0 to 65535",
            ),
            (
                r#"{"candidate":"c","sdpMLineIndex":"0"}"#,
                "expected an integer from 0 to 65535",
            ),
            (r#"{"candidate":"c","sdpMid":nul}"#, "expected a JSON value"),
            (r#"{"candidate":"a\qb"}"#, "unknown escape"),
            (
                r#"{"candidate":"\ud83d"}"#,
                "lone surrogate in a \\u escape",
            ),
            (
                r#"{"candidate":"\ude80"}"#,
                "lone surrogate in a \\u escape",
            ),
            (r#"{"candidate":"\u12"}"#, "bad hex digit in a \\u escape"),
            (r#"{"candidate":"\u12"#, "short \\u escape"),
            ("{\"candidate\":\"a\nb\"}", "control character in a string"),
            (r#"{"candidate":"abc"#, "unterminated string"),
            (r#"{"candidate":"c","x":01}"#, "invalid number"),
            (r#"{"candidate":"c","x":1.}"#, "invalid number"),
            (r#"{"candidate":"c","x":-}"#, "invalid number"),
            (
                r#"{"candidate":"c","x":[1 2]}"#,
                "expected ',' or the end of an array or object",
            ),
            (r#"{"candidate":"c","x":{1:2}}"#, "expected a member name"),
            (r#"{"candidate":"c","x":}"#, "expected a JSON value"),
        ] {
            let error = read(json).expect_err(json);
            assert_eq!(error.reason, reason, "{json:?}: {error}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        let deep = format!(
            r#"{{"candidate":"c","x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(read(&deep).map_err(|e| e.reason), Err("nested too deep"));
        let fine = format!(
            r#"{{"candidate":"c","x":{}{}}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert!(read(&fine).is_ok(), "{MAX_DEPTH} levels are accepted");
    }
}
