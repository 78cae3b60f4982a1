//! A native cell: the same lab, with a `chat-peer` on each laptop instead
//! of a browser. They reserve, discover each other through the relay,
//! DCUtR tries to punch a direct TCP or QUIC connection, and they chat and
//! ping. Its logs: `artifacts/natlab-native-<a>-<b>-*` (the relay's and each
//! peer's JSON lines and standard error).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    process::{Child, ChildStdin},
    sync::mpsc,
};

use super::{
    CellOutcome, CellSetup, DIRECT_TIMEOUT, Lab, MESSAGES_EACH_WAY, NatKind, Peers, RELAY_IP,
    cell::{DELIVERY_TIMEOUT, start_relay},
};
use crate::{TIMEOUT, artifacts_dir};

/// The relay's default TCP port, which the peers reach it on.
pub(super) const RELAY_TCP_PORT: u16 = 4001;
/// The relay's default QUIC port.
pub(super) const RELAY_QUIC_PORT: u16 = 4004;
/// Both peers listen here (TCP and QUIC): DCUtR punches from these ports.
const PEER_PORT: u16 = 4100;
/// Events a peer may have printed and the cell not read yet.
const EVENT_QUEUE: usize = 1024;

/// Runs one native cell (see the module's documentation).
pub async fn run_native_cell(
    index: usize,
    a: NatKind,
    b: NatKind,
    setup: &CellSetup,
) -> CellOutcome {
    let started = Instant::now();
    let mut outcome = CellOutcome::new(Peers::Native, a, b);
    if let Err(error) = run(index, setup, &mut outcome).await {
        outcome.error = Some(format!("{error:#}"));
    }
    outcome.took = started.elapsed();
    outcome
}

async fn run(index: usize, setup: &CellSetup, outcome: &mut CellOutcome) -> anyhow::Result<()> {
    let chat_peer = setup
        .chat_peer_binary
        .as_deref()
        .ok_or_else(|| anyhow!("no chat-peer binary given for a native cell"))?;
    let prefix = outcome.prefix();
    let lab = Lab::create(&format!("n{index}"), outcome.a, outcome.b).context("build the lab")?;
    let (relay, _relay_state) = start_relay(&lab, setup, &prefix).await?;
    let relay_addr = format!("/ip4/{RELAY_IP}/tcp/{RELAY_TCP_PORT}/p2p/{}", relay.peer_id);
    let keys = tempfile::tempdir().context("temp dir for the peers' keys")?;

    let started = Instant::now();
    let mut peer_a = NativePeer::start(
        &lab.a.host,
        chat_peer,
        &relay_addr,
        keys.path(),
        &prefix,
        "A",
    )?;
    let mut peer_b = NativePeer::start(
        &lab.b.host,
        chat_peer,
        &relay_addr,
        keys.path(),
        &prefix,
        "B",
    )?;
    let id_a = peer_a.own_id().await?;
    let id_b = peer_b.own_id().await?;
    for (peer, other) in [(&mut peer_a, &id_b), (&mut peer_b, &id_a)] {
        peer.wait(&format!("it discovers {other}"), TIMEOUT, |event| {
            event["event"] == "discovered" && event["peer"] == other.as_str()
        })
        .await?;
    }

    // Direct as soon as either side reports a direct connection to the
    // other; the ping below says which path is in use at the end.
    let deadline = Instant::now() + DIRECT_TIMEOUT;
    let is_direct_to = |other: &str| {
        let other = other.to_owned();
        move |event: &Value| {
            event["event"] == "connected"
                && event["path"] == "direct"
                && event["peer"] == other.as_str()
        }
    };
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let direct_a = peer_a
            .poll_for(
                remaining.min(Duration::from_millis(200)),
                is_direct_to(&id_b),
            )
            .await;
        let direct_b = peer_b.poll_for(Duration::ZERO, is_direct_to(&id_a)).await;
        if direct_a || direct_b {
            outcome.time_to_direct = Some(started.elapsed());
            break;
        }
        if remaining.is_zero() {
            break;
        }
    }

    // Both ways, interleaved; then every message must have arrived.
    let mut expected = Vec::new();
    for round in 1..=MESSAGES_EACH_WAY {
        for (name, from_id, to) in [("A", &id_a, "B"), ("B", &id_b, "A")] {
            let text = format!(
                "message {round} from native {name} ({} × {})",
                outcome.a, outcome.b
            );
            let sender = if name == "A" {
                &mut peer_a
            } else {
                &mut peer_b
            };
            sender.send_line(&text).await?;
            outcome.sent += 1;
            expected.push((to, from_id.clone(), text));
        }
    }
    let delivery_deadline = Instant::now() + DELIVERY_TIMEOUT;
    for (to, from_id, text) in &expected {
        let receiver = if *to == "A" { &mut peer_a } else { &mut peer_b };
        let remaining = delivery_deadline.saturating_duration_since(Instant::now());
        let arrived = receiver
            .poll_for(remaining, |event| {
                event["event"] == "chat"
                    && event["own"] == false
                    && event["peer"] == from_id.as_str()
                    && event["text"] == text.as_str()
            })
            .await;
        if arrived {
            outcome.delivered += 1;
        }
    }

    // The path in use now, from a ping A sends B.
    peer_a.send_line(&format!("/ping {id_b}")).await?;
    let ping = peer_a
        .wait(&format!("a ping to {id_b} is answered"), TIMEOUT, |event| {
            event["peer"] == id_b.as_str()
                && (event["event"] == "ping" || event["event"] == "ping_failed")
        })
        .await?;
    if ping["event"] != "ping" {
        bail!("A's ping to B failed: {ping}");
    }
    outcome.link = ping["path"].as_str().unwrap_or("(no path)").to_owned();
    if outcome.link != "direct" {
        outcome.time_to_direct = None;
    }
    peer_a.quit().await;
    peer_b.quit().await;
    Ok(())
}

/// A `chat-peer chat --json` in a laptop's namespace.
pub(super) struct NativePeer {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    /// Every event read so far, for waits that look back.
    seen: Vec<Value>,
}

impl NativePeer {
    pub(super) fn start(
        host: &super::Netns,
        binary: &Path,
        relay_addr: &str,
        key_dir: &Path,
        prefix: &str,
        name: &'static str,
    ) -> anyhow::Result<Self> {
        let log = |what: &str| -> anyhow::Result<std::fs::File> {
            let path: PathBuf = artifacts_dir()?.join(format!("{prefix}-{name}-{what}.log"));
            // Appended to: a peer started again (`recovery.rs`) adds to its
            // first life's logs.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("open {}", path.display()))
        };
        let mut child = host
            .command(binary)
            .arg(format!("--relay={relay_addr}"))
            .arg(format!(
                "--key-file={}",
                key_dir.join(format!("{name}.key")).display()
            ))
            .arg(format!("--listen-port={PEER_PORT}"))
            .arg("--json")
            .arg("chat")
            // `NATLAB_PEER_LOG` (a tracing filter) for more detail.
            .env(
                "RUST_LOG",
                std::env::var("NATLAB_PEER_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log("stderr")?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start chat-peer {name} ({})", binary.display()))?;
        let stdin = child.stdin.take().context("chat-peer's stdin")?;
        let stdout = child.stdout.take().context("chat-peer's stdout")?;
        let (sender, events) = mpsc::channel(EVENT_QUEUE);
        let mut events_log = log("events")?;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = std::io::Write::write_all(&mut events_log, format!("{line}\n").as_bytes());
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && sender.send(event).await.is_err()
                {
                    break;
                }
            }
        });
        Ok(Self {
            name,
            child,
            stdin,
            events,
            seen: Vec::new(),
        })
    }

    /// Its peer id, from the circuit address of its reservation.
    pub(super) async fn own_id(&mut self) -> anyhow::Result<String> {
        let reserved = self
            .wait("its reservation", TIMEOUT, |event| {
                event["event"] == "reserved"
            })
            .await?;
        let addr = reserved["addr"].as_str().unwrap_or_default();
        addr.rsplit_once("/p2p/")
            .map(|(_, id)| id.to_owned())
            .ok_or_else(|| anyhow!("peer {}: reserved address {addr:?} has no /p2p/", self.name))
    }

    /// Whether an event matching `matches` was printed, waiting up to
    /// `timeout` for it.
    pub(super) async fn poll_for(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> bool {
        self.poll_since(0, timeout, matches).await.is_some()
    }

    /// The events read from `mark` on.
    pub(super) fn seen_since(&self, mark: usize) -> &[Value] {
        &self.seen[mark.min(self.seen.len())..]
    }

    /// How many events were read so far: a mark for [`Self::wait_since`].
    pub(super) fn mark(&self) -> usize {
        self.seen.len()
    }

    /// The index of the first event from `mark` on that matches, waiting
    /// up to `timeout` for one.
    async fn poll_since(
        &mut self,
        mark: usize,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Option<usize> {
        if let Some(found) = self.seen.iter().skip(mark).position(&matches) {
            return Some(mark + found);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    let found = matches(&event);
                    self.seen.push(event);
                    if found {
                        return Some(self.seen.len() - 1);
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The first event matching `matches`, or an error saying what was
    /// awaited and what the peer printed last.
    pub(super) async fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait_since(0, what, timeout, matches).await
    }

    /// The first event from `mark` on matching `matches` (see [`Self::wait`]).
    pub(super) async fn wait_since(
        &mut self,
        mark: usize,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let index = self.wait_index_since(mark, what, timeout, matches).await?;
        Ok(self.seen[index].clone())
    }

    /// Like [`Self::wait_since`], the event's index: `index + 1` is a mark
    /// for what must come after it.
    pub(super) async fn wait_index_since(
        &mut self,
        mark: usize,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<usize> {
        if let Some(index) = self.poll_since(mark, timeout, &matches).await {
            return Ok(index);
        }
        let exited = match self.child.try_wait() {
            Ok(Some(status)) => format!(" (it exited: {status})"),
            _ => String::new(),
        };
        let last: Vec<String> = self
            .seen
            .iter()
            .rev()
            .take(10)
            .rev()
            .map(Value::to_string)
            .collect();
        bail!(
            "native peer {}: timed out after {:?} waiting until {what}{exited}; its last events:\n{}",
            self.name,
            timeout,
            last.join("\n")
        )
    }

    pub(super) async fn send_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .with_context(|| format!("write to native peer {}", self.name))
    }

    /// Kills the process (SIGKILL: no goodbye to anyone) and waits for it.
    pub(super) async fn kill(&mut self) -> anyhow::Result<()> {
        self.child
            .kill()
            .await
            .with_context(|| format!("kill native peer {}", self.name))
    }

    pub(super) async fn quit(&mut self) {
        let _ = self.send_line("/quit").await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
