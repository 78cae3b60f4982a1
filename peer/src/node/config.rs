//! What a peer starts with ([`Config`]) and why it may not start
//! ([`StartError`]): used by the swarm's builder and the public handle
//! alike, so it lives apart from both.

use std::{net::IpAddr, time::Duration};

use libp2p::{Multiaddr, identity::Keypair};

/// How a [`super::Peer`] starts.
#[derive(Debug, Clone)]
pub struct Config {
    pub keypair: Keypair,
    /// The relay, ending in `/p2p/<its peer id>`; TCP or QUIC.
    pub relay: Multiaddr,
    /// IP the TCP and QUIC listeners bind (DCUtR punches from their ports).
    pub listen_ip: IpAddr,
    /// Port of both listeners, TCP and UDP; 0 picks a free one.
    pub listen_port: u16,
    /// Never announce or advertise a direct address, whatever AutoNAT says.
    pub force_private: bool,
    /// Let DCUtR upgrade relayed connections to direct ones.
    pub hole_punching: bool,
    pub ping_interval: Duration,
}

impl Config {
    pub fn new(keypair: Keypair, relay: Multiaddr) -> Self {
        Self {
            keypair,
            relay,
            listen_ip: IpAddr::from([0, 0, 0, 0]),
            listen_port: 0,
            force_private: false,
            hole_punching: true,
            // Often enough that a dead connection is noticed within
            // seconds (`link_silence`); a ping is a few dozen bytes.
            ping_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the relay address {0} does not end in /p2p/<peer id>; paste the whole address the relay prints"
    )]
    RelayWithoutPeerId(Multiaddr),
    #[error("the relay address {0} is a circuit address; give the relay's own address")]
    RelayIsCircuit(Multiaddr),
    #[error(
        "the relay address {0} is for browsers (WebSocket or WebRTC); use the relay's TCP or QUIC address"
    )]
    RelayTransport(Multiaddr),
    #[error("cannot build the libp2p node")]
    Swarm(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot listen on {addr}: {reason}; pick another --listen-port")]
    Listen { addr: Multiaddr, reason: String },
}

impl Config {
    /// The relay's peer id, from the `/p2p/` its address ends in.
    pub fn relay_id(&self) -> Result<libp2p::PeerId, StartError> {
        match self.relay.iter().last() {
            Some(libp2p::multiaddr::Protocol::P2p(id)) => Ok(id),
            _ => Err(StartError::RelayWithoutPeerId(self.relay.clone())),
        }
    }
}
