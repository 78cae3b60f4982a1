//! The native peer (`chat-peer`) as its own process, as users run it: its
//! `--json` output read line by line, its standard input written to.

use std::{
    collections::VecDeque,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    process::{Child, ChildStdin, Command},
};

use crate::{Check, artifacts_dir, chat_peer_binary, sanitize, tail, wait_until};

/// Output lines kept for waits and failure reports; older ones are only in
/// the log file.
const KEPT_LINES: usize = 2000;
/// How long the peer may take to print its identity.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `chat-peer ... --json chat`; killed on drop.
#[derive(Debug)]
pub struct ChatPeerProcess {
    child: Child,
    stdin: ChildStdin,
    /// The peer id it printed first.
    pub peer_id: String,
    /// Its last [`KEPT_LINES`] output lines, parsed.
    lines: Arc<Mutex<VecDeque<Value>>>,
    /// Its standard error (the tracing log) and a copy of its output.
    pub log_path: PathBuf,
    /// Holds its key file.
    _key_dir: tempfile::TempDir,
}

impl ChatPeerProcess {
    /// Starts `chat-peer --relay <relay_addr> --json chat` with a new
    /// identity, listening on 127.0.0.1, logging to
    /// `<repo>/artifacts/<log_name>-chat-peer.log`; returns once it has
    /// printed its peer id.
    pub async fn start(log_name: &str, relay_addr: &str) -> anyhow::Result<Self> {
        let key_dir = tempfile::tempdir().context("temp dir for the key file")?;
        let log_path = artifacts_dir()?.join(sanitize(&format!("{log_name}-chat-peer.log")));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut child = Command::new(chat_peer_binary()?)
            .arg("--relay")
            .arg(relay_addr)
            .arg("--key-file")
            .arg(key_dir.path().join("identity.key"))
            .args(["--listen-ip", "127.0.0.1", "--json", "chat"])
            .env("RUST_LOG", "chat_peer=debug,info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start chat-peer")?;
        let stdin = child.stdin.take().context("chat-peer's stdin")?;
        let stdout = child.stdout.take().context("chat-peer's stdout")?;
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let kept = lines.clone();
        let copy_path = log_path.clone();
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                let _ = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&copy_path)
                    .and_then(|mut log| {
                        std::io::Write::write_all(&mut log, format!("stdout: {line}\n").as_bytes())
                    });
                // Not JSON (a line the peer printed for people): kept as text.
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                let mut kept = kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if kept.len() == KEPT_LINES {
                    kept.pop_front();
                }
                kept.push_back(value);
            }
        });
        let mut peer = Self {
            child,
            stdin,
            peer_id: String::new(),
            lines,
            log_path,
            _key_dir: key_dir,
        };
        let identity = peer
            .wait_for("chat-peer prints its identity", START_TIMEOUT, |line| {
                (line["event"] == "identity").then(|| line["peer"].as_str().map(str::to_owned))?
            })
            .await?;
        peer.peer_id = identity;
        Ok(peer)
    }

    /// Types `line` into its chat (a message, or a command such as `/peers`).
    pub async fn send_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .context("write to chat-peer's stdin")?;
        self.stdin.flush().await.context("flush chat-peer's stdin")
    }

    /// The output lines kept so far.
    pub fn output(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Waits until `pick` finds a value in one of its output lines; the
    /// failure shows its last lines and the tail of its log.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        pick: impl Fn(&Value) -> Option<T>,
    ) -> anyhow::Result<T> {
        let pick = &pick;
        let lines = &self.lines;
        let log_path = &self.log_path;
        let child = &mut self.child;
        let exited = Mutex::new(None);
        let exited = &exited;
        wait_until(&format!("chat-peer: {what}"), timeout, || {
            if let Ok(Some(status)) = child.try_wait() {
                *exited.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
            }
            async move {
                let kept = lines.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(found) = kept.iter().find_map(pick) {
                    return Ok(Check::Done(found));
                }
                let output: Vec<String> = kept.iter().map(Value::to_string).collect();
                let status = match *exited.lock().unwrap_or_else(|p| p.into_inner()) {
                    Some(status) => format!("chat-peer exited ({status})\n"),
                    None => String::new(),
                };
                Ok(Check::NotYet(format!(
                    "{status}its output ({} lines):\n{}\nits log {}:\n{}",
                    output.len(),
                    tail(&output.join("\n"), 25),
                    log_path.display(),
                    crate::tail_of_file(log_path, 15)
                )))
            }
        })
        .await
    }
}
