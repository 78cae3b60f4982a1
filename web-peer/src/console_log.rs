//! Log events to the browser's console, in a debug build of the page only.
//!
//! The page's event log is written by the node and the UI themselves
//! (`Event::Log`, `ui::append_log`), never through `tracing`: what a user
//! needs to know (a failed dial, a relay that is gone, an `/api/relay`
//! that did not answer, a stuck node) is there. The console is for a
//! developer, and a release page writes nothing to it: `tracing`'s and
//! `log`'s `release_max_level_off` features (web-peer/Cargo.toml) remove
//! every call site of every crate at compile time, with its static
//! metadata and field formatting, and this subscriber is not compiled in
//! (BENCHMARKS.md "Page weight"). A debug build (`trunk build` without
//! `--release`) logs info and above here: this subscriber stands in for
//! `tracing-subscriber`, whose span registry the page never needed. Spans
//! are ignored; an event's fields are written after its message,
//! `name=value`.

use std::fmt::{self, Write as _};

use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    level_filters::LevelFilter,
    span,
};

/// The most verbose level logged.
const MAX_LEVEL: LevelFilter = LevelFilter::INFO;

/// Makes [`ConsoleLog`] the subscriber of every thread (the page has one).
pub fn init() {
    // Fails only if a subscriber was set already, and then that one logs.
    let _ = tracing::subscriber::set_global_default(ConsoleLog);
}

/// A `tracing` subscriber that writes each event to `console.error`,
/// `console.warn`, `console.info` or `console.debug`, by its level.
#[derive(Debug)]
struct ConsoleLog;

impl Subscriber for ConsoleLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && *metadata.level() <= MAX_LEVEL
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(MAX_LEVEL)
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        // Never called: `enabled` turns every span down.
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut line = Line(format!("{}: ", metadata.target()));
        event.record(&mut line);
        let line = wasm_bindgen::JsValue::from_str(&line.0);
        match *metadata.level() {
            Level::ERROR => web_sys::console::error_1(&line),
            Level::WARN => web_sys::console::warn_1(&line),
            Level::INFO => web_sys::console::info_1(&line),
            _ => web_sys::console::debug_1(&line),
        }
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// An event written as one line: the message, then ` name=value` per field.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = if field.name() == "message" {
            write!(self.0, "{value:?}")
        } else {
            write!(self.0, " {}={value:?}", field.name())
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}
