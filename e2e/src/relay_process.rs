//! The relay as its own process, as users run it: started from the built
//! binary, read back from what it prints, and killed (SIGKILL) when a test
//! wants it gone without a goodbye.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, BufReader},
    process::{Child, Command},
};

use crate::{
    RelayPorts, artifacts_dir, built_page_dir, clear_artifacts, relay_args, sanitize, tail_of_file,
};

/// How long a start may take before it is given up: the relay binds its
/// ports and prints its addresses within a second when nothing is wrong.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The relay binary built next to the test executables
/// (`target/<profile>/relay`, which `cargo nextest run --workspace` builds),
/// or `$E2E_RELAY_BIN`.
pub fn relay_binary() -> anyhow::Result<PathBuf> {
    built_binary("relay", "E2E_RELAY_BIN", "relay")
}

/// The native peer's binary (`target/<profile>/chat-peer`), or
/// `$E2E_CHAT_PEER_BIN`.
pub fn chat_peer_binary() -> anyhow::Result<PathBuf> {
    built_binary("chat-peer", "E2E_CHAT_PEER_BIN", "peer")
}

/// The workspace binary `name` of package `package`, next to the test
/// executables, unless `$env` names another.
fn built_binary(name: &str, env: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("${env} is {}, which is not a file", path.display());
        }
        return Ok(path);
    }
    // A test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().context("cannot locate the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("{} has no target/<profile> above it", exe.display()))?;
    let binary = profile_dir.join(name);
    if !binary.is_file() {
        bail!(
            "the {name} binary {} is missing: build it with `cargo build -p {package}` \
             (or set ${env})",
            binary.display()
        );
    }
    Ok(binary)
}

/// The relay binary serving the built page on loopback, with a fresh state
/// directory: what every browser test starts with. It binds port 0 for
/// every listener and the ports are read from what it printed, so no port
/// is picked, released, and taken by another process in between.
#[derive(Debug)]
pub struct PageRelay {
    pub process: RelayProcess,
    /// The ports it got.
    pub ports: RelayPorts,
    /// Its arguments, to start it again on the same ports and state (with
    /// [`RelayProcess::start`], which says so plainly if another process
    /// took one of them meanwhile).
    pub args: Vec<String>,
    pub state_dir: tempfile::TempDir,
}

impl PageRelay {
    /// Clears the artifacts named `log_name` and starts the relay with
    /// `extra` flags, logging to `<repo>/artifacts/<log_name>-relay.log`.
    pub async fn start(log_name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let page_dir = built_page_dir()?;
        clear_artifacts(log_name)?;
        let state_dir = tempfile::tempdir().context("temp dir for the relay's state")?;
        let any_ports = relay_args(&RelayPorts::ANY, state_dir.path(), &page_dir, extra);
        let process = RelayProcess::start(log_name, &any_ports)
            .await
            .context("the relay starts")?;
        let ports =
            RelayPorts::from_printed(&process.multiaddrs, &process.stun_urls, &process.page_urls)
                .context("the ports the relay printed")?;
        let args = relay_args(&ports, state_dir.path(), &page_dir, extra);
        Ok(Self {
            process,
            ports,
            args,
            state_dir,
        })
    }
}

/// A running relay process; killed on drop.
#[derive(Debug)]
pub struct RelayProcess {
    child: Child,
    /// The peer id it printed.
    pub peer_id: String,
    /// The multiaddrs it printed, each ending in `/p2p/<peer id>`.
    pub multiaddrs: Vec<String>,
    /// The STUN URLs it printed (`stun:<host>:<port>`).
    pub stun_urls: Vec<String>,
    /// The page URLs it printed (`http://<host>:<port>/`).
    pub page_urls: Vec<String>,
    /// Its standard error (the tracing log) and the rest of its output.
    pub log_path: PathBuf,
}

impl RelayProcess {
    /// Runs the relay binary with `args`, logging to
    /// `<repo>/artifacts/<log_name>-relay.log`.
    pub async fn start(log_name: &str, args: &[String]) -> anyhow::Result<Self> {
        let mut command = Command::new(relay_binary()?);
        command.args(args);
        Self::start_command(log_name, command).await
    }

    /// Runs `command` (the relay binary, or a wrapper that runs it, such as
    /// `ip netns exec`) and waits until it has printed its addresses. A
    /// start that fails because a port is still held (a restart right after
    /// a kill) is retried for a few seconds; if the port stays taken (by
    /// another process, since the relay asked for it last), the error says
    /// so: the restart cannot happen where the pages point.
    pub async fn start_command(log_name: &str, mut command: Command) -> anyhow::Result<Self> {
        let log_path = artifacts_dir()?.join(sanitize(&format!("{log_name}-relay.log")));
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            match Self::start_once(&mut command, &log_path).await {
                Ok(relay) => return Ok(relay),
                Err(error) if tokio::time::Instant::now() < deadline => {
                    let log = tail_of_file(&log_path, 5);
                    if !log.contains("in use") {
                        return Err(error);
                    }
                    eprintln!("relay start failed, retrying: {error:#}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => {
                    let log = tail_of_file(&log_path, 5);
                    if log.contains("in use") {
                        return Err(error.context(format!(
                            "a port the relay asks for stayed in use for {START_TIMEOUT:?}: \
                             another process holds it, so the relay cannot start again where \
                             the pages point"
                        )));
                    }
                    return Err(error);
                }
            }
        }
    }

    async fn start_once(command: &mut Command, log_path: &Path) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the relay ({command:?})"))?;
        let stdout = child.stdout.take().context("the relay's stdout")?;
        let printed = tokio::time::timeout(START_TIMEOUT, read_banner(stdout, log_path.to_owned()))
            .await
            .map_err(|_| anyhow!("the relay printed no addresses within {START_TIMEOUT:?}"))
            .and_then(|read| read);
        match printed {
            Ok(banner) => Ok(Self {
                child,
                peer_id: banner.peer_id,
                multiaddrs: banner.multiaddrs,
                stun_urls: banner.stun_urls,
                page_urls: banner.page_urls,
                log_path: log_path.to_owned(),
            }),
            Err(error) => {
                let _ = child.kill().await;
                Err(error.context(format!(
                    "the relay did not start; its log {}:\n{}",
                    log_path.display(),
                    tail_of_file(log_path, 20)
                )))
            }
        }
    }

    /// The printed multiaddr for `transport` (`"ws"`, `"tcp"`,
    /// `"webrtc-direct"`) on `host`.
    pub fn multiaddr(&self, transport: &str, host: &str) -> Option<&str> {
        self.multiaddrs
            .iter()
            .map(String::as_str)
            .filter(|addr| addr.contains(&format!("/{host}/")))
            .find(|addr| match transport {
                "tcp" => !addr.contains("/ws") && addr.contains("/tcp/"),
                other => addr.contains(&format!("/{other}/")),
            })
    }

    /// Kills the process outright (SIGKILL: no shutdown, no goodbye to its
    /// peers) and waits for it to be gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("kill the relay")
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// What the relay prints at start.
struct Banner {
    peer_id: String,
    multiaddrs: Vec<String>,
    stun_urls: Vec<String>,
    page_urls: Vec<String>,
}

/// Reads what the relay prints at start (`Relay <id> is up.`, its
/// multiaddrs, `STUN: …`, then one `Page: …` per host, printed together),
/// then copies the rest of its standard output into the log in the
/// background, so that the pipe never fills.
async fn read_banner(
    stdout: impl AsyncRead + Unpin + Send + 'static,
    log_path: PathBuf,
) -> anyhow::Result<Banner> {
    let mut lines = BufReader::new(stdout).lines();
    let mut peer_id = None;
    let mut multiaddrs = Vec::new();
    let mut stun_urls = None;
    let mut page_urls = Vec::new();
    let mut rest = String::new();
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix("Relay ") {
            peer_id = rest.strip_suffix(" is up.").map(str::to_owned);
        } else if line.starts_with('/') {
            multiaddrs.push(line);
        } else if let Some(urls) = line.strip_prefix("STUN:") {
            stun_urls = Some(
                urls.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            );
        } else if let Some(url) = line.strip_prefix("Page: ") {
            page_urls.push(url.trim().to_owned());
            // As many page URLs as STUN URLs (one per host): the banner
            // ends with the last.
            if stun_urls
                .as_ref()
                .is_some_and(|stun| page_urls.len() >= stun.len())
            {
                let peer_id = peer_id.ok_or_else(|| anyhow!("no `Relay <id> is up.` line"))?;
                tokio::spawn(async move {
                    while let Ok(Some(line)) = lines.next_line().await {
                        rest.push_str(&line);
                        rest.push('\n');
                    }
                    let _ = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&log_path)
                        .and_then(|mut log| std::io::Write::write_all(&mut log, rest.as_bytes()));
                });
                return Ok(Banner {
                    peer_id,
                    multiaddrs,
                    stun_urls: stun_urls.unwrap_or_default(),
                    page_urls,
                });
            }
        } else if !line.starts_with("For ") {
            rest.push_str(&line);
            rest.push('\n');
        }
    }
    bail!("the relay exited before printing its addresses")
}
