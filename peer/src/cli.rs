//! The command line: every flag can also come from a `CHAT_PEER_*`
//! environment variable.

use std::{net::IpAddr, path::PathBuf};

use clap::{Parser, Subcommand};
use libp2p::Multiaddr;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "chat-peer",
    version,
    about = "A native peer of the browser chat: reach peers through a relay, hole-punch, chat"
)]
pub struct Options {
    /// The relay's address, as the relay prints it (TCP or QUIC, ending in
    /// /p2p/<peer id>).
    #[arg(long, env = "CHAT_PEER_RELAY")]
    pub relay: Multiaddr,

    /// The identity key file, created (mode 0600) on first run.
    /// Default: ~/.config/chat-peer/identity.key
    #[arg(long, env = "CHAT_PEER_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// Short names for peer ids: lines of '<name>  <peer id>  # comment'.
    #[arg(long, env = "CHAT_PEER_NAMES")]
    pub names: Option<PathBuf>,

    /// Never announce a direct address, whatever AutoNAT says: for CGNAT,
    /// or a public IPv6 address a router blocks.
    #[arg(long, env = "CHAT_PEER_FORCE_PRIVATE")]
    pub force_private: bool,

    /// Keep relayed connections relayed (no DCUtR hole punching).
    #[arg(long, env = "CHAT_PEER_NO_HOLE_PUNCHING")]
    pub no_hole_punching: bool,

    /// Port of the TCP and QUIC listeners hole punching uses (0: any).
    #[arg(long, env = "CHAT_PEER_LISTEN_PORT", default_value_t = 0)]
    pub listen_port: u16,

    /// IP address the listeners bind.
    #[arg(long, env = "CHAT_PEER_LISTEN_IP", default_value = "0.0.0.0")]
    pub listen_ip: IpAddr,

    /// One JSON object per line instead of text, for scripts and tests.
    #[arg(long, env = "CHAT_PEER_JSON")]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Chat interactively: lines typed are sent; /peers lists peers,
    /// /ping <peer> measures a round trip, /quit leaves.
    Chat,
    /// Ping a peer (a name, a peer id or the end of one) and print the path
    /// (relayed or direct) and the round-trip time of each ping.
    Ping {
        peer: String,
        /// How many pings.
        #[arg(long, short = 'c', default_value_t = 5)]
        count: u32,
        /// Seconds between pings.
        #[arg(long, default_value_t = 1)]
        interval: u64,
    },
    /// List the peers discovered within a few seconds, then exit.
    Peers {
        /// How long to listen for announcements, seconds.
        #[arg(long, default_value_t = 5)]
        wait: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_and_flags_parse() {
        let options = Options::try_parse_from([
            "chat-peer",
            "--relay",
            "/ip4/127.0.0.1/udp/4004/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
            "--force-private",
            "ping",
            "nas",
            "-c",
            "2",
        ])
        .expect("parses");
        assert!(options.force_private);
        assert!(
            matches!(options.command, Command::Ping { ref peer, count: 2, .. } if peer == "nas")
        );
    }

    #[test]
    fn a_relay_that_is_not_a_multiaddr_is_an_error_naming_the_flag() {
        let error = Options::try_parse_from(["chat-peer", "--relay", "localhost:4001", "chat"])
            .expect_err("not a multiaddr");
        assert!(error.to_string().contains("--relay"), "{error}");
    }
}
