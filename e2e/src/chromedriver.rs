//! A chromedriver child process, and the plain HTTP it takes to talk to
//! it outside fantoccini.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};

use crate::{Check, artifacts_dir, sanitize, tail_of_file, wait_until};

// chromedriver

/// A chromedriver process on a loopback port of its own choosing, killed
/// (with the browsers it started) on drop.
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver (`$CHROMEDRIVER`, else /usr/bin/chromedriver, else
    /// `chromedriver` on the PATH) logging to
    /// `<repo>/artifacts/<log_name>-chromedriver.log`, and waits until it
    /// answers `/status` as ready.
    ///
    /// chromedriver binds port 0 and says which port it got: a port picked
    /// free here and released would be a race with every other process
    /// binding ports meanwhile (other tests, relays, browsers).
    pub async fn start(log_name: &str) -> anyhow::Result<Self> {
        Self::start_wrapped(log_name, &[], 0).await
    }

    /// Like [`ChromeDriver::start`], but runs chromedriver through
    /// `wrapper` (a command that runs the rest of its command line
    /// elsewhere, such as `ip netns exec <ns>`; empty: none), listening on
    /// `port` there (0: a port it picks and reports). This process talks to
    /// it at 127.0.0.1:`port`: when the
    /// wrapper moves it out of reach, the caller keeps a bridge there (the
    /// NAT lab's [`crate::natlab::DriverInNamespace`]).
    pub async fn start_wrapped(
        log_name: &str,
        wrapper: &[String],
        port: u16,
    ) -> anyhow::Result<Self> {
        let binary = find_binary("CHROMEDRIVER", &["/usr/bin/chromedriver"], "chromedriver")
            .context("chromedriver is not installed (Debian: chromium-driver; scripts/setup installs it)")?;
        let log_path = artifacts_dir()?.join(sanitize(&format!("{log_name}-chromedriver.log")));
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        let mut child = command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path.display()))
            .stdin(Stdio::null())
            .stdout(if port == 0 {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let port = match child.stdout.take() {
            Some(stdout) => {
                match tokio::task::spawn_blocking(move || reported_port(stdout)).await {
                    Ok(Ok(port)) => port,
                    Ok(Err(error)) => {
                        let _ = child.kill();
                        return Err(
                            error.context(format!("chromedriver's log: {}", log_path.display()))
                        );
                    }
                    Err(error) => {
                        let _ = child.kill();
                        bail!("reading chromedriver's output failed: {error}");
                    }
                }
            }
            None => port,
        };
        let mut driver = Self {
            child,
            port,
            log_path,
        };
        let what = format!("chromedriver answers on port {port}");
        let status = wait_until(&what, Duration::from_secs(20), || {
            let exited = driver.child.try_wait();
            let log_path = driver.log_path.clone();
            async move {
                if let Ok(Some(status)) = exited {
                    bail!(
                        "chromedriver exited ({status}); its log {}:\n{}",
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

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // A graceful shutdown quits the browsers it still runs; kill it
        // after, in case it did not answer.
        let _ = http_request_blocking(self.port, "GET", "/shutdown", None, Duration::from_secs(5));
        for _ in 0..30 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
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
