//! chat-peer: parse options, set up logging, load the identity and names,
//! start the peer, run the chosen command (chat, ping, peers).

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use chat_peer::{
    Config, Event, Peer, PeerHandle,
    cli::{Command, Options},
    identity::{self, Origin},
    names::Names,
    output::Printer,
};
use clap::Parser as _;
use libp2p::PeerId;
use tokio::io::AsyncBufReadExt as _;
use tracing_subscriber::EnvFilter;

/// How long `ping` waits for a peer typed by the end of its id to be
/// discovered.
const DISCOVERY_WAIT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(options).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("chat-peer: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let key_file = match options.key_file {
        Some(path) => path,
        None => identity::default_key_file()
            .context("no --key-file given and no HOME to keep one under")?,
    };
    let (keypair, origin) = identity::load_or_create(&key_file)?;
    if origin == Origin::Created {
        eprintln!(
            "chat-peer: created a new identity in {}",
            key_file.display()
        );
    }
    let names = match &options.names {
        Some(path) => Names::load(path)?,
        None => Names::default(),
    };
    let printer = Printer {
        json: options.json,
        names,
    };
    let mut config = Config::new(keypair, options.relay);
    config.listen_ip = options.listen_ip;
    config.listen_port = options.listen_port;
    config.force_private = options.force_private;
    config.hole_punching = !options.no_hole_punching;
    if let Command::Ping { interval, .. } = &options.command {
        config.ping_interval = Duration::from_secs((*interval).max(1));
    }
    let peer = Peer::start(config).await?;
    say(&identity_line(&printer, peer.peer_id));
    let code = match options.command {
        Command::Chat => chat(peer, &printer).await?,
        Command::Ping {
            peer: target,
            count,
            interval,
        } => {
            ping(
                peer,
                &printer,
                &target,
                count,
                Duration::from_secs(interval),
            )
            .await?
        }
        Command::Peers { wait } => peers(peer, &printer, Duration::from_secs(wait)).await?,
    };
    Ok(code)
}

fn identity_line(printer: &Printer, peer_id: PeerId) -> String {
    if printer.json {
        serde_json::json!({"event": "identity", "peer": peer_id.to_string()}).to_string()
    } else {
        format!("* you are {peer_id}")
    }
}

fn say(line: &str) {
    println!("{line}");
}

fn print_event(printer: &Printer, event: &Event) {
    if let Some(line) = printer.event(event) {
        say(&line);
    }
}

/// Interactive chat: lines from standard input are sent; `/peers`,
/// `/ping <peer>`, `/quit`.
async fn chat(mut peer: PeerHandle, printer: &Printer) -> anyhow::Result<ExitCode> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    if !printer.json {
        say("* type to chat; /peers, /ping <peer>, /quit");
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            line = lines.next_line() => {
                let Some(line) = line.context("cannot read standard input")? else { break };
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                if !on_input(&peer, printer, line).await? {
                    break;
                }
            }
            event = peer.next_event() => match event {
                Some(event) => print_event(printer, &event),
                None => break,
            },
        }
    }
    peer.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Handles one typed line; returns false to quit.
async fn on_input(peer: &PeerHandle, printer: &Printer, line: &str) -> anyhow::Result<bool> {
    let stopped = || anyhow::anyhow!("the peer stopped");
    match line.split_once(' ').unwrap_or((line, "")) {
        ("/quit", _) => return Ok(false),
        ("/peers", _) => {
            for row in printer.peers(&peer.peers().await.map_err(|_| stopped())?) {
                say(&row);
            }
        }
        ("/ping", target) => {
            let known = peer.peers().await.map_err(|_| stopped())?;
            match printer
                .names
                .resolve(target, known.iter().map(|info| info.peer))
            {
                Ok(id) => peer.ping(id).await.map_err(|_| stopped())?,
                Err(error) => say(&format!("* {error}")),
            }
        }
        (command, _) if command.starts_with('/') => {
            say(&format!(
                "* unknown command {command}; try /peers, /ping <peer>, /quit"
            ));
        }
        _ => peer.send_chat(line).await.map_err(|_| stopped())?,
    }
    Ok(true)
}

/// Resolves `target`, waiting for discovery if it is the end of an id.
async fn resolve(peer: &mut PeerHandle, printer: &Printer, target: &str) -> anyhow::Result<PeerId> {
    let deadline = tokio::time::Instant::now() + DISCOVERY_WAIT;
    loop {
        let known = peer
            .peers()
            .await
            .map_err(|_| anyhow::anyhow!("the peer stopped"))?;
        let error = match printer
            .names
            .resolve(target, known.iter().map(|info| info.peer))
        {
            Ok(id) => return Ok(id),
            Err(error) => error,
        };
        match tokio::time::timeout_at(deadline, peer.next_event()).await {
            Ok(Some(event)) => print_event(printer, &event),
            Ok(None) => anyhow::bail!("the peer stopped"),
            Err(_) => anyhow::bail!("{error} (waited {DISCOVERY_WAIT:?} for it to be discovered)"),
        }
    }
}

/// Pings `target` `count` times, printing the path and round trip of each.
async fn ping(
    mut peer: PeerHandle,
    printer: &Printer,
    target: &str,
    count: u32,
    interval: Duration,
) -> anyhow::Result<ExitCode> {
    let target = resolve(&mut peer, printer, target).await?;
    let mut answered = 0;
    for round in 0..count {
        if round > 0 {
            tokio::time::sleep(interval).await;
        }
        peer.ping(target)
            .await
            .map_err(|_| anyhow::anyhow!("the peer stopped"))?;
        loop {
            let Some(event) = peer.next_event().await else {
                anyhow::bail!("the peer stopped");
            };
            print_event(printer, &event);
            match event {
                Event::Ping { peer, .. } if peer == target => {
                    answered += 1;
                    break;
                }
                Event::PingFailed { peer, .. } if peer == target => break,
                _ => {}
            }
        }
    }
    peer.shutdown().await;
    Ok(if answered > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Listens for announcements for `wait`, then lists the peers known.
async fn peers(
    mut peer: PeerHandle,
    printer: &Printer,
    wait: Duration,
) -> anyhow::Result<ExitCode> {
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, peer.next_event()).await {
        print_event(printer, &event);
    }
    let known = peer
        .peers()
        .await
        .map_err(|_| anyhow::anyhow!("the peer stopped"))?;
    for row in printer.peers(&known) {
        say(&row);
    }
    peer.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
