//! A WebDriver server child process (chromedriver for Chromium,
//! geckodriver for Firefox), and the plain HTTP it takes to talk to it
//! outside fantoccini.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};

use crate::{BrowserKind, Check, artifacts_dir, sanitize, tail, tail_of_file, wait_until};

/// The name the Chromium-only tests know the driver by.
pub type ChromeDriver = Driver;

/// A WebDriver server on a loopback port of its own choosing, killed (with
/// the browsers it started) on drop.
///
/// chromedriver runs any number of sessions; geckodriver runs one at a
/// time, so each Firefox needs a driver of its own
/// ([`crate::Browser::launch`] starts one with its browser).
#[derive(Debug)]
pub struct Driver {
    kind: BrowserKind,
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl Driver {
    /// Starts chromedriver (`$CHROMEDRIVER`, else /usr/bin/chromedriver, else
    /// `chromedriver` on the PATH) logging to
    /// `<repo>/artifacts/<log_name>-chromedriver.log`, and waits until it
    /// answers `/status` as ready.
    ///
    /// chromedriver binds port 0 and says which port it got: a port picked
    /// free here and released would be a race with every other process
    /// binding ports meanwhile (other tests, relays, browsers).
    pub async fn start(log_name: &str) -> anyhow::Result<Self> {
        Self::start_for(BrowserKind::Chromium, log_name).await
    }

    /// Starts the driver of `kind`'s browser, as [`Driver::start`] does
    /// chromedriver's (geckodriver: `$GECKODRIVER`, else
    /// `~/.cargo/bin/geckodriver`, else the PATH; its log, with Firefox's
    /// own output and the page's console, in
    /// `<repo>/artifacts/<log_name>-geckodriver.log`).
    pub async fn start_for(kind: BrowserKind, log_name: &str) -> anyhow::Result<Self> {
        Self::start_wrapped_for(kind, log_name, &[], 0, 0).await
    }

    /// Like [`Driver::start`], but runs chromedriver through `wrapper` (see
    /// [`Driver::start_wrapped_for`]).
    pub async fn start_wrapped(
        log_name: &str,
        wrapper: &[String],
        port: u16,
    ) -> anyhow::Result<Self> {
        Self::start_wrapped_for(BrowserKind::Chromium, log_name, wrapper, port, 0).await
    }

    /// Like [`Driver::start_for`], but runs the driver through `wrapper` (a
    /// command that runs the rest of its command line elsewhere, such as
    /// `ip netns exec <ns>`; empty: none), listening on `port` there (0: a
    /// port it picks and reports). This process talks to it at
    /// 127.0.0.1:`port`: when the wrapper moves it out of reach, the caller
    /// keeps a bridge there (the NAT lab's
    /// [`crate::natlab::DriverInNamespace`]). `bidi_port` is where Firefox
    /// listens for WebDriver BiDi (0: a port it picks; the session's
    /// `webSocketUrl` says which); chromedriver ignores it.
    pub async fn start_wrapped_for(
        kind: BrowserKind,
        log_name: &str,
        wrapper: &[String],
        port: u16,
        bidi_port: u16,
    ) -> anyhow::Result<Self> {
        let binary = kind.driver_binary()?;
        let driver_name = kind.driver_name();
        let log_path = artifacts_dir()?.join(sanitize(&format!("{log_name}-{driver_name}.log")));
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command.stdin(Stdio::null());
        match kind {
            BrowserKind::Chromium => {
                command
                    .arg(format!("--port={port}"))
                    .arg(format!("--log-path={}", log_path.display()))
                    .stdout(if port == 0 {
                        Stdio::piped()
                    } else {
                        Stdio::null()
                    })
                    .stderr(Stdio::null());
            }
            BrowserKind::Firefox => {
                // geckodriver logs to its standard output, and Firefox's
                // output (the page's console among it, see
                // `crate::firefox`) goes there too: all into the log file.
                let log = std::fs::File::create(&log_path)
                    .with_context(|| format!("create {}", log_path.display()))?;
                command
                    .arg(format!("--port={port}"))
                    // Not the default 9222: Firefoxes side by side would
                    // fight over it.
                    .arg(format!("--websocket-port={bidi_port}"))
                    .arg("--log=info")
                    .stdout(log.try_clone().context("log file handle")?)
                    .stderr(log)
                    // Its own process group, so that drop ends Firefox and
                    // its content processes with it (see `Drop`).
                    .process_group(0);
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let reported = match (kind, child.stdout.take()) {
            (BrowserKind::Chromium, Some(stdout)) => {
                tokio::task::spawn_blocking(move || reported_port(stdout))
                    .await
                    .map_err(|error| anyhow!("reading chromedriver's output failed: {error}"))
                    .and_then(|port| port)
            }
            (BrowserKind::Firefox, _) if port == 0 => geckodriver_port(&mut child, &log_path).await,
            _ => Ok(port),
        };
        let port = match reported {
            Ok(port) => port,
            Err(error) => {
                let _ = child.kill();
                return Err(error.context(format!("{driver_name}'s log: {}", log_path.display())));
            }
        };
        let mut driver = Self {
            kind,
            child,
            port,
            log_path,
        };
        let what = format!("{driver_name} answers on port {port}");
        let status = wait_until(&what, Duration::from_secs(20), || {
            let exited = driver.child.try_wait();
            let log_path = driver.log_path.clone();
            async move {
                if let Ok(Some(status)) = exited {
                    bail!(
                        "{driver_name} exited ({status}); its log {}:\n{}",
                        log_path.display(),
                        tail_of_file(&log_path, 40)
                    );
                }
                Ok(match http_request(port, "GET", "/status", None).await {
                    Ok(body) if body.contains("\"ready\":true") => Check::Done(body),
                    Ok(body) => Check::NotYet(format!("/status answered {body}")),
                    Err(error) => Check::NotYet(format!("/status: {error}")),
                })
            }
        })
        .await;
        match status {
            Ok(_) => Ok(driver),
            Err(error) => {
                let _ = driver.child.kill();
                Err(error)
            }
        }
    }

    /// The browser this driver drives.
    pub fn kind(&self) -> BrowserKind {
        self.kind
    }

    /// The WebDriver endpoint, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

/// Reads chromedriver's standard output until it says which port it
/// listens on ("ChromeDriver was started successfully on port 46173."),
/// then lets the rest of its output go to a thread that discards it, so
/// that chromedriver never blocks on a full pipe.
fn reported_port(stdout: std::process::ChildStdout) -> anyhow::Result<u16> {
    let mut lines = BufReader::new(stdout);
    let mut seen = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines
            .read_line(&mut line)
            .context("read chromedriver's output")?
            == 0
        {
            bail!(
                "chromedriver ended its output without saying its port:\n{}",
                seen.join("")
            );
        }
        if let Some(port) = line
            .trim_end()
            .strip_suffix('.')
            .and_then(|line| line.rsplit_once("started successfully on port "))
            .and_then(|(_, port)| port.parse::<u16>().ok())
        {
            std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
            return Ok(port);
        }
        seen.push(line.clone());
    }
}

/// Reads geckodriver's log until it says where it listens
/// ("geckodriver\tINFO\tListening on 127.0.0.1:38261").
async fn geckodriver_port(child: &mut Child, log_path: &Path) -> anyhow::Result<u16> {
    let what = "geckodriver says which port it listens on";
    wait_until(what, Duration::from_secs(20), || {
        let exited = child.try_wait();
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        async move {
            if let Ok(Some(status)) = exited {
                bail!("geckodriver exited ({status}):\n{}", tail(&log, 40));
            }
            Ok(match listening_port(&log) {
                Some(port) => Check::Done(port),
                None => Check::NotYet(format!("its log so far:\n{}", tail(&log, 10))),
            })
        }
    })
    .await
}

/// The port of the first "Listening on <ip>:<port>" line of geckodriver's log.
fn listening_port(log: &str) -> Option<u16> {
    log.lines().find_map(|line| {
        let (_, address) = line.split_once("Listening on ")?;
        address.trim().rsplit_once(':')?.1.parse().ok()
    })
}

impl Drop for Driver {
    fn drop(&mut self) {
        match self.kind {
            BrowserKind::Chromium => {
                // A graceful shutdown quits the browsers it still runs; kill
                // it after, in case it did not answer.
                let _ = http_request_blocking(
                    self.port,
                    "GET",
                    "/shutdown",
                    None,
                    Duration::from_secs(5),
                );
            }
            BrowserKind::Firefox => {
                // geckodriver has no shutdown command, and Firefox outlives
                // a killed geckodriver: end the whole process group it
                // leads (Firefox and its content processes), politely
                // first. By its id: it is ours.
                let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            }
        }
        for _ in 0..30 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.kind == BrowserKind::Firefox {
            let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn find_binary(env: &str, defaults: &[&str], name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("${env} is {}, which is not a file", path.display());
    }
    if let Some(path) = defaults
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
    {
        return Ok(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
        .ok_or_else(|| anyhow!("{name} not found (looked at ${env}, {defaults:?} and the PATH)"))
}

/// A one-shot HTTP/1.1 request to 127.0.0.1:`port`; returns the body
/// (without decoding chunks: good enough for chromedriver's small JSON).
async fn http_request(
    port: u16,
    method: &'static str,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        http_request_blocking(port, method, &path, body.as_deref(), Duration::from_secs(5))
    })
    .await
    .context("HTTP request task")?
}

pub(crate) fn http_request_blocking(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    // chromedriver keeps the connection open whatever we ask: read the
    // head, then as many bytes as Content-Length says (or until it closes).
    let mut response = Vec::new();
    let mut chunk = [0_u8; 4096];
    let (head, body) = loop {
        let read = stream.read(&mut chunk)?;
        response.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            if read == 0 || length.is_some_and(|length| body.len() >= length) {
                break (head.to_owned(), body.to_owned());
            }
        } else if read == 0 {
            bail!("malformed HTTP response: {text:?}");
        }
    };
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.contains(" 200 ") {
        bail!("{method} {path}: {status_line}: {body}");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geckodriver_port_is_read_from_its_log() {
        let log = "1700000000000\tgeckodriver\tINFO\tListening on 127.0.0.1:38261\n";
        assert_eq!(listening_port(log), Some(38261));
        assert_eq!(
            listening_port("1700000000000\tgeckodriver\tINFO\tstarting\n"),
            None
        );
    }
}
