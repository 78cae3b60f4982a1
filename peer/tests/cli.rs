//! The `chat-peer` binary against the real relay on loopback: `ping`
//! prints the path and round trip as JSON lines, `chat` carries typed lines
//! to another peer, and the key file is created once with mode 0600.

mod common;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use common::TestRelay;

const CHAT_PEER: &str = env!("CARGO_BIN_EXE_chat-peer");

/// A `chat-peer` process whose JSON lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(relay: &libp2p::Multiaddr, key_file: &Path, args: &[&str]) -> Running {
    let mut child = Command::new(CHAT_PEER)
        .env_clear()
        .env("RUST_LOG", "warn")
        .arg(format!("--relay={relay}"))
        .arg(format!("--key-file={}", key_file.display()))
        .args(["--listen-ip=127.0.0.1", "--force-private", "--json"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("chat-peer starts");
    let stdout: ChildStdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line)
                .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
            if tx.send(value).is_err() {
                break;
            }
        }
    });
    Running { child, lines }
}

impl Running {
    /// The first line whose `event` is `event` and that `accept`s.
    fn line(&self, event: &str, accept: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + common::TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line["event"] == event && accept(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "no {event} line within {:?}; saw {seen:#?}",
                    common::TIMEOUT
                ),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_prints_path_and_rtt_and_chat_lines_reach_the_other_peer() {
    let relay = TestRelay::start(&[]).await;
    let relay_addr = relay.addr("tcp");
    let dir = tempfile::tempdir().expect("temp dir");
    let (key_a, key_b) = (dir.path().join("a.key"), dir.path().join("b").join("b.key"));

    let mut b = spawn(&relay_addr, &key_b, &["--no-hole-punching", "chat"]);
    let b_id = b.line("identity", |_| true)["peer"]
        .as_str()
        .expect("peer id")
        .to_owned();
    b.line("reserved", |_| true);
    let mode = std::fs::metadata(&key_b)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "key file mode");

    let a = spawn(
        &relay_addr,
        &key_a,
        &["--no-hole-punching", "ping", &b_id, "-c", "2"],
    );
    let a_id = a.line("identity", |_| true)["peer"]
        .as_str()
        .expect("id")
        .to_owned();
    for _ in 0..2 {
        let ping = a.line("ping", |line| line["peer"] == b_id.as_str());
        assert_eq!(ping["path"], "relayed", "{ping}");
        assert!(ping["rtt_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{ping}");
    }
    drop(a);

    // The same identity next time.
    let a = spawn(&relay_addr, &key_a, &["chat"]);
    assert_eq!(a.line("identity", |_| true)["peer"], a_id.as_str());
    a.line("reserved", |_| true);
    b.line("discovered", |line| line["peer"] == a_id.as_str());
    let mut stdin = b.child.stdin.take().expect("stdin");
    // b's first line may beat the relay's mesh to a: repeat until it lands.
    let received = tokio::time::timeout(common::TIMEOUT, async {
        loop {
            writeln!(stdin, "hello from the terminal").expect("type");
            stdin.flush().expect("flush");
            if let Ok(line) = a.lines.recv_timeout(Duration::from_millis(500))
                && line["event"] == "chat"
            {
                return line;
            }
        }
    })
    .await
    .expect("a receives b's chat line");
    assert_eq!(received["text"], "hello from the terminal");
    assert_eq!(received["peer"], b_id.as_str());
    assert_eq!(received["own"], false);
}
