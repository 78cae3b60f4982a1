//! Logging refusals without letting a flood of them flood the journal.
//!
//! Every refusal (a connection over a limit, a reservation denied, a gossip
//! message over its budget, a STUN request over its prefix's share) is
//! something a remote party can make the relay produce as often as it
//! likes. One log line each would hand an attacker the disk and the
//! operator's attention, so [`Refusals`] logs the first refusal of each
//! kind in an interval in full, counts the others, and logs that count once
//! the interval is over. `/metrics` counts every refusal
//! (`relay_refusals_total{kind}`), so nothing is lost to the rate limit.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// How often each kind of refusal is logged in full, at most.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    kind: &'static str,
}

/// What happened to one refusal, for the caller's tests and for
/// [`Refusals::flush_at`]'s summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// The first of its kind in this interval: logged in full.
    InFull,
    /// Counted, and summed up in one line when the interval ends.
    Counted,
}

/// One interval of one kind: when it began and how many refusals were
/// counted without a line of their own.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    suppressed: u64,
}

/// A line that sums up the refusals of one kind that were not logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub kind: &'static str,
    pub suppressed: u64,
    pub interval: Duration,
}

/// Rate-limited refusal logging and counting, shared by every part of the
/// relay (cheap to clone). Kinds are `&'static str` names chosen in the
/// code, so the map holds one entry per kind the relay knows: a remote
/// party cannot grow it.
#[derive(Debug, Clone)]
pub struct Refusals {
    interval: Duration,
    windows: Arc<Mutex<HashMap<&'static str, Window>>>,
    counts: Family<RefusalLabels, Counter>,
}

impl Default for Refusals {
    fn default() -> Self {
        Self::new(DEFAULT_LOG_INTERVAL)
    }
}

impl Refusals {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            windows: Arc::default(),
            counts: Family::default(),
        }
    }

    /// Registers `relay_refusals_total{kind}` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.sub_registry_with_prefix("relay").register(
            "refusals",
            "Requests the relay refused because of a limit or a policy, by kind",
            self.counts.clone(),
        );
    }

    /// Records one refusal of `kind` (e.g. `"websocket-handshake-per-ip"`).
    /// `detail` is formatted and logged only when this refusal is logged in
    /// full, so a flood costs a counter increment, not a format.
    pub fn refused(&self, kind: &'static str, detail: impl FnOnce() -> String) -> Logged {
        self.refused_at(Instant::now(), kind, detail)
    }

    /// [`Refusals::refused`] at a given time (tests).
    pub fn refused_at(
        &self,
        now: Instant,
        kind: &'static str,
        detail: impl FnOnce() -> String,
    ) -> Logged {
        self.counts.get_or_create(&RefusalLabels { kind }).inc();
        let (logged, summary) = {
            let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
            match windows.get_mut(kind) {
                Some(window) if now.duration_since(window.started) < self.interval => {
                    window.suppressed += 1;
                    (Logged::Counted, None)
                }
                Some(window) => {
                    let summary = self.summary(kind, window);
                    *window = Window {
                        started: now,
                        suppressed: 0,
                    };
                    (Logged::InFull, summary)
                }
                None => {
                    windows.insert(
                        kind,
                        Window {
                            started: now,
                            suppressed: 0,
                        },
                    );
                    (Logged::InFull, None)
                }
            }
        };
        if let Some(summary) = summary {
            log_summary(&summary);
        }
        if logged == Logged::InFull {
            tracing::info!(kind, "refused: {}", detail());
        }
        logged
    }

    /// Logs the count of every kind whose interval is over and that counted
    /// refusals without logging them, and forgets those intervals. Call it
    /// periodically (see [`Refusals::flush_every`]) so that the last burst
    /// of a flood is reported even when no refusal follows it.
    pub fn flush_at(&self, now: Instant) -> Vec<Summary> {
        let summaries: Vec<Summary> = {
            let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
            let mut summaries = Vec::new();
            windows.retain(|kind, window| {
                if now.duration_since(window.started) < self.interval {
                    return true;
                }
                summaries.extend(self.summary(kind, window));
                false
            });
            summaries
        };
        for summary in &summaries {
            log_summary(summary);
        }
        summaries
    }

    /// Flushes every `interval` until the returned task is aborted.
    pub fn flush_every(&self) -> tokio::task::JoinHandle<()> {
        let refusals = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(refusals.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                refusals.flush_at(Instant::now());
            }
        })
    }

    /// The total count of refusals of `kind` so far.
    pub fn count(&self, kind: &'static str) -> u64 {
        self.counts.get_or_create(&RefusalLabels { kind }).get()
    }

    fn summary(&self, kind: &'static str, window: &Window) -> Option<Summary> {
        (window.suppressed > 0).then_some(Summary {
            kind,
            suppressed: window.suppressed,
            interval: self.interval,
        })
    }
}

fn log_summary(summary: &Summary) {
    tracing::info!(
        kind = summary.kind,
        suppressed = summary.suppressed,
        "refused {} more of this kind in {} s without a line each",
        summary.suppressed,
        summary.interval.as_secs()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_refusal_of_a_kind_is_logged_and_the_rest_of_the_interval_counted() {
        let refusals = Refusals::new(10 * SECOND);
        let start = Instant::now();
        assert_eq!(refusals.refused_at(start, "a", String::new), Logged::InFull);
        for n in 1..100 {
            assert_eq!(
                refusals.refused_at(start + n * SECOND / 20, "a", || panic!("formatted")),
                Logged::Counted
            );
        }
        // Another kind has its own interval.
        assert_eq!(
            refusals.refused_at(start + SECOND, "b", String::new),
            Logged::InFull
        );
        assert_eq!(refusals.count("a"), 100);
        assert_eq!(refusals.count("b"), 1);
    }

    #[test]
    fn a_new_interval_logs_again_and_the_flush_sums_up_what_was_counted() {
        let refusals = Refusals::new(10 * SECOND);
        let start = Instant::now();
        refusals.refused_at(start, "a", String::new);
        refusals.refused_at(start + SECOND, "a", String::new);
        refusals.refused_at(start + 2 * SECOND, "a", String::new);
        assert_eq!(refusals.flush_at(start + 9 * SECOND), vec![]);
        assert_eq!(
            refusals.flush_at(start + 10 * SECOND),
            vec![Summary {
                kind: "a",
                suppressed: 2,
                interval: 10 * SECOND
            }]
        );
        // The interval was forgotten: the next refusal is logged in full.
        assert_eq!(
            refusals.refused_at(start + 11 * SECOND, "a", String::new),
            Logged::InFull
        );
        assert_eq!(refusals.count("a"), 4);
    }

    #[test]
    fn a_quiet_interval_sums_up_nothing() {
        let refusals = Refusals::new(10 * SECOND);
        let start = Instant::now();
        refusals.refused_at(start, "a", String::new);
        assert_eq!(refusals.flush_at(start + 20 * SECOND), vec![]);
    }
}
