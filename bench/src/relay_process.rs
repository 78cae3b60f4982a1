//! The relay binary as a child process on loopback, every port picked by
//! the OS, and its resource use read from `/proc/<pid>/`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpStream,
    process::{Child, Command},
};

/// How long the relay may take to print its addresses.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The relay binary next to this one (`target/release/relay` when
/// `scripts/bench` built both), or `explicit`.
pub fn relay_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let binary = match explicit {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()
            .context("cannot locate this executable")?
            .with_file_name("relay"),
    };
    if !binary.is_file() {
        bail!(
            "the relay binary {} is missing: build it with `cargo build --release -p relay` \
             (or pass --relay-bin)",
            binary.display()
        );
    }
    Ok(binary)
}

/// A running relay; killed on drop.
#[derive(Debug)]
pub struct RelayProcess {
    child: Child,
    pid: u32,
    /// Its TCP address for native peers, ending in `/p2p/<peer id>`.
    pub tcp_addr: Multiaddr,
    pub peer_id: PeerId,
    /// Its HTTP address (`/metrics`, `/api/relay`), when it printed one.
    pub http_addr: Option<SocketAddr>,
    /// Holds its identity and certificate for the life of the run.
    _state_dir: tempfile::TempDir,
}

impl RelayProcess {
    /// Starts `binary` on 127.0.0.1 with `limits` (relay flags) and one
    /// tokio worker thread, so that its CPU time is that of one core, and
    /// waits until it has printed its addresses. Its log (standard error)
    /// goes to `log`, filtered by `RELAY_LOG` (default `warn`).
    pub async fn start(binary: &Path, limits: &[String], log: &Path) -> anyhow::Result<Self> {
        let state_dir = tempfile::tempdir().context("cannot create the relay's state dir")?;
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .args([
                "--listen-ip=127.0.0.1",
                "--port=0",
                "--quic-port=0",
                "--websocket-port=0",
                "--webrtc-port=0",
                "--stun-port=0",
                "--http-port=0",
            ])
            .arg(format!("--state-dir={}", state_dir.path().display()))
            .arg(format!("--page-dir={}", state_dir.path().display()))
            .args(limits)
            .env("TOKIO_WORKER_THREADS", "1")
            .env(
                "RUST_LOG",
                // The federation's member dials at debug (a few lines a
                // relay): what to read when relays do not federate.
                std::env::var("RELAY_LOG")
                    .unwrap_or_else(|_| "warn,relay::federation::members=debug".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the relay exited at once")?;
        let stdout = child.stdout.take().context("the relay's stdout")?;
        let (tcp_addr, http_addr) = tokio::time::timeout(START_TIMEOUT, read_banner(stdout))
            .await
            .map_err(|_| {
                anyhow!(
                    "the relay printed no TCP address within {START_TIMEOUT:?}; see {}",
                    log.display()
                )
            })??;
        let peer_id = match tcp_addr.iter().last() {
            Some(Protocol::P2p(peer_id)) => peer_id,
            _ => bail!("the relay's address {tcp_addr} does not end in /p2p"),
        };
        Ok(Self {
            child,
            pid,
            tcp_addr,
            peer_id,
            http_addr,
            _state_dir: state_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// CPU time (user + system) the relay has used so far, all threads.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time(self.pid)
    }

    /// The relay's resident memory now, in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_bytes(self.pid)
    }

    /// The relay's `/metrics` (Prometheus text).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let addr = self
            .http_addr
            .context("the relay printed no HTTP address")?;
        tokio::time::timeout(HTTP_TIMEOUT, http_get(addr, "/metrics"))
            .await
            .map_err(|_| anyhow!("GET http://{addr}/metrics: no answer within {HTTP_TIMEOUT:?}"))?
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// How long one HTTP request to the relay may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the banner: the TCP address (the line after "For native peers
/// (TCP):") and, after it, the page's HTTP address ("Page:
/// http://host:port/", the last line), then keeps draining standard output
/// in the background so the relay never blocks on a full pipe.
async fn read_banner(
    stdout: tokio::process::ChildStdout,
) -> anyhow::Result<(Multiaddr, Option<SocketAddr>)> {
    let mut lines = BufReader::new(stdout).lines();
    let mut in_tcp_section = false;
    let mut tcp_addr = None;
    while let Some(line) = lines.next_line().await.context("read the relay's output")? {
        if line.starts_with("For native peers (TCP)") {
            in_tcp_section = true;
        } else if in_tcp_section && tcp_addr.is_none() {
            let addr: Multiaddr = line
                .trim()
                .parse()
                .with_context(|| format!("the relay printed {line:?}, not a multiaddr"))?;
            tcp_addr = Some(addr);
        } else if let Some(page) = line.strip_prefix("Page: ") {
            let tcp_addr = tcp_addr.context("the relay printed its page before its TCP address")?;
            // An https page (a relay with a domain) has no plain address.
            let http_addr = page
                .strip_prefix("http://")
                .and_then(|rest| rest.trim_end_matches('/').parse().ok());
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((tcp_addr, http_addr));
        }
    }
    match tcp_addr {
        Some(_) => bail!("the relay exited before printing its page address"),
        None => bail!("the relay exited before printing its TCP address"),
    }
}

/// The body of `GET path` from `addr` (HTTP/1.0, so the answer is neither
/// chunked nor kept alive); an error unless the status is 200.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8(answer).context("the answer is not UTF-8")?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("the answer has no header end")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET http://{addr}{path}: {status}");
    }
    Ok(body.to_owned())
}

/// The value of the Prometheus sample `name` whose labels include every
/// `label="value"` of `labels` (the sum, when several match); `None` when
/// none does.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.split_once('}') {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        let matches = labels.iter().all(|(key, value)| {
            label_text
                .split(',')
                .any(|pair| pair.trim() == format!("{key}=\"{value}\""))
        });
        if matches && let Ok(value) = value.trim().parse::<f64>() {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`getconf CLK_TCK`;
/// 100 on every Linux we know of).
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// User plus system CPU time of process `pid`, threads that have exited
/// included.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let ticks = parse_cpu_ticks(&stat).with_context(|| format!("parse {path}"))?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second() as f64,
    ))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces, so count from its closing ')'.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14, index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of process `pid` (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit on open files of this process (`/proc/self/limits`).
pub fn open_files_limit() -> anyhow::Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").context("read /proc/self/limits")?;
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .context("no 'Max open files' in /proc/self/limits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces() {
        let stat = "42 (tokio worker 1) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0 1 1 1";
        assert_eq!(parse_cpu_ticks(stat), Some(280));
    }

    #[test]
    fn resident_memory_is_read_in_bytes() {
        let status = "Name:\trelay\nVmPeak:\t  9000 kB\nVmRSS:\t  2048 kB\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
    }

    #[test]
    fn metric_samples_are_found_by_name_and_labels() {
        let text = "# HELP relay_federation_messages_total x\n\
            relay_federation_messages_total{direction=\"from_relays\",topic=\"discovery\"} 42\n\
            relay_federation_messages_total{direction=\"to_relays\",topic=\"discovery\"} 7\n\
            relay_federation_messages_total{direction=\"from_relays\",topic=\"chat\"} 3\n\
            relay_federation_records 5\n\
            relay_federation_records_other 9\n";
        let name = "relay_federation_messages_total";
        assert_eq!(
            metric(
                text,
                name,
                &[("direction", "from_relays"), ("topic", "discovery")]
            ),
            Some(42.0)
        );
        assert_eq!(
            metric(text, name, &[("direction", "from_relays")]),
            Some(45.0)
        );
        assert_eq!(metric(text, name, &[("topic", "other")]), None);
        assert_eq!(metric(text, "relay_federation_records", &[]), Some(5.0));
        assert_eq!(metric(text, "relay_missing", &[]), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).expect("rss") > 0);
        cpu_time(pid).expect("cpu time");
        assert!(open_files_limit().expect("limit") > 0);
    }
}
