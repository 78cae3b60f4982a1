//! The relay binary: parse options, set up logging, start, print the
//! addresses to paste, run until SIGINT or SIGTERM.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Parser as _;
use relay::{Options, Relay, addresses::transport_of};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line that says what failed and what to do.
            eprintln!("relay: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    if let Some(seed) = options.secret_key_seed {
        tracing::warn!(
            seed,
            "identity derived from --secret-key-seed: it is NOT secret, use it for development only"
        );
    }
    let relay = Relay::start(options).await?;
    if let Err(error) = print_addresses(&relay) {
        // A closed standard output must not take the relay down.
        tracing::warn!(%error, "cannot print the addresses to standard output");
    }
    // Type=notify in deploy/relay.service: systemd counts the relay as
    // started only now that every listener is bound. A no-op outside systemd.
    notify_systemd(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("relaying as {}", relay.peer_id)),
    ]);

    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
    notify_systemd(&[NotifyState::Stopping]);
    relay.shutdown().await;
    tracing::info!("relay stopped");
    Ok(())
}

/// Tells systemd (through `$NOTIFY_SOCKET`, when it is set) how the relay
/// is doing; a failure is logged, never fatal.
fn notify_systemd(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}

/// Prints the addresses alone on their lines, grouped by who uses them, so
/// a triple-click copies one whole.
fn print_addresses(relay: &Relay) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "Relay {} is up.", relay.peer_id)?;
    for (transport, heading) in [
        ("websocket-secure", "For browsers (secure WebSocket):"),
        ("websocket", "For browsers (WebSocket):"),
        ("webrtc-direct", "For browsers (WebRTC-direct):"),
        ("tcp", "For native peers (TCP):"),
        ("quic", "For native peers (QUIC):"),
    ] {
        writeln!(out, "{heading}")?;
        for addr in relay
            .multiaddrs
            .iter()
            .filter(|addr| transport_of(addr) == transport)
        {
            writeln!(out, "{addr}")?;
        }
    }
    writeln!(out, "STUN: {}", relay.stun_urls.join(" "))?;
    if let Some(https) = relay.https_addrs.first() {
        // With a domain, the page is on the name (plain HTTP redirects).
        let port = match https.port() {
            443 => String::new(),
            port => format!(":{port}"),
        };
        for domain in &relay.domains {
            writeln!(out, "Page: https://{domain}{port}/")?;
        }
        return out.flush();
    }
    let http_port = relay.http_addr.port();
    for host in page_hosts(relay) {
        writeln!(out, "Page: http://{host}:{http_port}/")?;
    }
    out.flush()
}

/// Hosts to show the page URL on: the same ones the STUN URLs name.
fn page_hosts(relay: &Relay) -> Vec<&str> {
    relay
        .stun_urls
        .iter()
        .filter_map(|url| {
            url.strip_prefix("stun:")?
                .rsplit_once(':')
                .map(|(host, _)| host)
        })
        .collect()
}
