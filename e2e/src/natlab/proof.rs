//! What shows a browser cell's link for what it is, beyond the label the
//! page gives it (chat alone proves nothing: it reaches the other page
//! through the relay's gossipsub on each page's own relay connection,
//! whatever the link between the pages).
//!
//! - Direct: the relay's process is killed, then a message typed at once
//!   each way must show on the other page within [`FIRST_MESSAGE_BOUND`],
//!   and a perf transfer (`/perf/1.0.0`, bytes both ways, which the page
//!   serves on direct connections only) must cross each way. With the relay
//!   gone, only the direct link through the NATs can carry them.
//! - Relayed: data crosses the circuit (the page shows a ping's round trip
//!   on the peer whose only connection is relayed, and the relay counts an
//!   open circuit), and the direct attempts were made and failed (the
//!   pages' event logs say so).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::{Browser, POLL, RelayProcess, TIMEOUT, wait_pages};

/// How soon a message typed right after the relay died must show on the
/// other page: no delay a user would notice. Without the wake after a
/// publish it waited for the next ping on the direct connection (up to 5 s);
/// each look at the page here takes tens of milliseconds.
pub const FIRST_MESSAGE_BOUND: Duration = Duration::from_millis(1500);
/// How long a message typed then may take before it counts as lost.
const LOST_AFTER: Duration = Duration::from_secs(20);
/// Bytes each way of the perf transfer that stands for a ping.
const PERF_BYTES: u32 = 10_000;

/// What the relay-dead part of a direct cell saw.
#[derive(Debug, Clone)]
pub struct RelayDead {
    /// How long the message typed on A (then B) right after the kill took
    /// to show on the other page; `None`: it never showed (lost).
    pub first_message: [Option<Duration>; 2],
    /// The perf transfers A→B and B→A: milliseconds, or the error.
    pub perf: [Result<f64, String>; 2],
}

impl RelayDead {
    /// What is wrong, one line each; empty when all held.
    pub fn failures(&self) -> Vec<String> {
        let mut wrong = Vec::new();
        for (from, took) in ["A", "B"].iter().zip(self.first_message) {
            match took {
                None => wrong.push(format!(
                    "the message typed on {from} right after the relay died never showed \
                     (waited {LOST_AFTER:?})"
                )),
                Some(took) if took > FIRST_MESSAGE_BOUND => wrong.push(format!(
                    "the message typed on {from} right after the relay died took {:.1} s to \
                     show, more than {:.1} s",
                    took.as_secs_f64(),
                    FIRST_MESSAGE_BOUND.as_secs_f64()
                )),
                Some(_) => {}
            }
        }
        for (way, perf) in ["A→B", "B→A"].iter().zip(&self.perf) {
            if let Err(error) = perf {
                wrong.push(format!(
                    "perf {way} over the direct link with the relay dead: {error}"
                ));
            }
        }
        wrong
    }

    /// The table's "chat with the relay dead" column (the counts of the
    /// later messages are the row's sent and delivered).
    pub fn summary(&self) -> String {
        let first = self
            .first_message
            .iter()
            .map(|took| match took {
                Some(took) => format!("{:.1} s", took.as_secs_f64()),
                None => "lost".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" / ");
        let perf = if self.perf.iter().all(Result::is_ok) {
            "perf both ways"
        } else {
            "perf FAILED"
        };
        format!("yes: first message {first}; {perf}")
    }
}

/// Kills the relay (SIGKILL, in its namespace), types a message on each
/// page at once and times its arrival, waits until both pages see the
/// relay gone, then runs a perf transfer each way.
pub async fn kill_relay_then_chat_and_perf(
    relay: RelayProcess,
    a: &Browser,
    b: &Browser,
    id_a: &str,
    id_b: &str,
) -> anyhow::Result<RelayDead> {
    relay.kill().await?;
    let mut seen = RelayDead {
        first_message: [None, None],
        perf: [Err("not run".to_owned()), Err("not run".to_owned())],
    };

    // At once, as a user would: the moment the issue saw delayed.
    let mut waiting = Vec::new();
    for (index, (from, from_id, to)) in [(a, id_a, b), (b, id_b, a)].into_iter().enumerate() {
        let text = format!("typed as the relay died, from {}", from.name);
        from.fill("#chat-input", &text).await?;
        from.press_enter("#chat-input").await?;
        waiting.push((index, to, from_id, text, Instant::now()));
    }
    let deadline = Instant::now() + LOST_AFTER;
    while !waiting.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (index, to, from_id, text, typed) in waiting {
            if to.snapshot().await?.has_message(from_id, &text) {
                seen.first_message[index] = Some(typed.elapsed());
            } else {
                still.push((index, to, from_id, text, typed));
            }
        }
        waiting = still;
        tokio::time::sleep(POLL / 2).await;
    }

    wait_pages(
        a,
        b,
        "the page has lost the killed relay",
        TIMEOUT,
        |page| {
            page.is_connected()
                .then(|| "#status still says connected".to_owned())
        },
    )
    .await?;

    seen.perf = [perf(a, id_b).await, perf(b, id_a).await];
    Ok(seen)
}

/// One perf transfer from `from` to `to`: [`PERF_BYTES`] each way.
async fn perf(from: &Browser, to: &str) -> Result<f64, String> {
    from.run_async(
        "const [peer, bytes] = args;\n\
         if (!window.chatBench) throw new Error('no window.chatBench: open the page with ?bench');\n\
         return await window.chatBench.perf(peer, bytes, bytes);",
        vec![json!(to), json!(PERF_BYTES)],
    )
    .await
    .map_err(|error| format!("{error:#}"))
    .and_then(|took| {
        took.as_f64()
            .ok_or_else(|| format!("perf answered {took}, not a time"))
    })
}

/// What a relayed cell shows of its circuit and of the failed direct
/// attempts.
#[derive(Debug, Clone, Default)]
pub struct RelayedLink {
    /// Each page's `.peer-state` text for the other (with the ping's round
    /// trip).
    pub states: [String; 2],
    /// `relay_circuits` on the relay's `/metrics`.
    pub circuits: f64,
    /// Event-log lines of direct attempts that failed, on A and on B.
    pub failed_attempts: [Vec<String>; 2],
}

impl RelayedLink {
    pub fn summary(&self) -> String {
        format!(
            "pinged over it (A: {}, B: {}); {} failed direct attempts",
            self.states[0],
            self.states[1],
            self.failed_attempts.iter().map(Vec::len).sum::<usize>()
        )
    }
}

/// Waits until each page shows a round trip for the other while relayed
/// (the only connection between them is the relayed one, so the ping
/// crossed the circuit), reads the relay's open circuits through the page,
/// and collects the failed direct attempts from the event logs. Fails
/// saying what is missing.
pub async fn relayed_link(
    a: &Browser,
    b: &Browser,
    id_a: &str,
    id_b: &str,
) -> anyhow::Result<RelayedLink> {
    let mut seen = RelayedLink::default();
    let deadline = Instant::now() + TIMEOUT;
    for (index, (page, other)) in [(a, id_b), (b, id_a)].into_iter().enumerate() {
        loop {
            let state = peer_state(page, other).await?;
            if state.starts_with("relayed") && state.ends_with(" ms") {
                seen.states[index] = state;
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "page {} shows {other} as {state:?}: no ping's round trip over the relayed \
                     connection within {TIMEOUT:?}",
                    page.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
    let metrics = a
        .run_async("return await (await fetch('/metrics')).text();", vec![])
        .await
        .context("read the relay's /metrics from page A")?;
    seen.circuits = metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("relay_circuits "))
        .and_then(|value| value.trim().parse().ok())
        .context("no relay_circuits gauge in the relay's /metrics")?;
    if seen.circuits < 1.0 {
        bail!(
            "the relay has {} circuits open while both pages show the other as relayed",
            seen.circuits
        );
    }
    for (index, page) in [a, b].into_iter().enumerate() {
        seen.failed_attempts[index] = page
            .snapshot()
            .await?
            .events
            .into_iter()
            .filter(|line| {
                line.contains("no direct connection with")
                    || line.contains("could not connect to us directly")
            })
            .collect();
    }
    if seen.failed_attempts.iter().all(Vec::is_empty) {
        bail!("neither page's event log shows a direct attempt that failed");
    }
    Ok(seen)
}

/// The text of `page`'s `.peer-state` for `peer`.
pub(super) async fn peer_state(page: &Browser, peer: &str) -> anyhow::Result<String> {
    let text = page
        .run_async(
            "const [peer] = args;\n\
             const state = document.querySelector(`#peers li[data-peer-id=\"${peer}\"] .peer-state`);\n\
             return state ? state.textContent : '(not listed)';",
            vec![json!(peer)],
        )
        .await?;
    Ok(text.as_str().unwrap_or_default().trim().to_owned())
}
