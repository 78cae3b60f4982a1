//! The composed behaviour and the swarm: TCP and QUIC on one port, the
//! relay client, DCUtR, AutoNAT v2, identify, ping, the chat network
//! behaviour both peers share (`chat_network`), and the raw streams its
//! lookups open.

use std::time::Duration;

use libp2p::{
    Swarm, autonat,
    core::upgrade::Version,
    dcutr, identify, noise, ping, relay,
    swarm::{NetworkBehaviour, behaviour::toggle::Toggle},
    tcp, yamux,
};

use super::{
    addrs::is_usable,
    config::{Config, StartError},
};

const AGENT_VERSION: &str = concat!("chat-peer/", env!("CARGO_PKG_VERSION"));
/// Established connections to one peer. Two peers can dial each other
/// through the relay at once (one on discovery, the other because its user
/// pinged first): two relayed connections, and DCUtR punches a hole on
/// each. In each hole punch both sides dial (over QUIC
/// the dial "as listener" reuses the listening port and is an ordinary
/// dial), so up to six connections stand for the grace
/// ([`super::RELAYED_GRACE`]). The limit must not bite there: each side
/// denies the connections that come last to it, which are the ones the
/// other side kept, and every direct connection was closed (the QUIC
/// DCUtR test that stayed relayed).
const MAX_CONNECTIONS_PER_PEER: u32 = 8;
const MAX_CONNECTIONS: u32 = 512;

#[allow(missing_debug_implementations)] // Most of its fields are not `Debug`.
#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) limits: libp2p::connection_limits::Behaviour,
    pub(super) relay_client: relay::client::Behaviour,
    pub(super) dcutr: Toggle<dcutr::Behaviour>,
    pub(super) autonat: autonat::v2::client::Behaviour,
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
    /// Discovery, the peer book, chat and the relayed-to-direct hand-off.
    pub(super) network: chat_network::Behaviour,
    /// The streams the network's lookups open.
    pub(super) stream: libp2p_stream::Behaviour,
}

/// The chat network's configuration for a native peer: it dials no
/// `/webrtc` or WebSocket address (it has no transport for them).
fn network_config() -> chat_network::Config {
    chat_network::Config::default()
        .with_announce_interval(crate::ANNOUNCE_INTERVAL)
        .with_dialable(is_usable)
}

pub(super) fn build_swarm(config: &Config) -> Result<Swarm<Behaviour>, StartError> {
    let setup = |error: Box<dyn std::error::Error + Send + Sync>| StartError::Swarm(error);
    let hole_punching = config.hole_punching;
    let ping_interval = config.ping_interval;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            // Dials reuse the listening port (libp2p's default `PortUse`),
            // so the relay observes the port DCUtR punches from.
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(e.into()))?
        .with_quic()
        .with_dns()
        .map_err(|e| setup(e.into()))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(e.into()))?
        .with_behaviour(|key, relay_client| {
            let stream = libp2p_stream::Behaviour::new();
            let mut network =
                chat_network::Behaviour::new(key, network_config(), stream.new_control());
            network.trust_relay(config.relay_id()?, config.relay.clone());
            let local_peer_id = key.public().to_peer_id();
            Ok(Behaviour {
                limits: libp2p::connection_limits::Behaviour::new(
                    libp2p::connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(MAX_CONNECTIONS))
                        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
                ),
                relay_client,
                dcutr: Toggle::from(hole_punching.then(|| dcutr::Behaviour::new(local_peer_id))),
                autonat: autonat::v2::client::Behaviour::default(),
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs/id/1.0.0".to_owned(), key.public())
                        .with_agent_version(AGENT_VERSION.to_owned()),
                ),
                // A ping unanswered for the silence bound is as good as
                // failed: the connection is closed then anyway.
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(ping_interval)
                        .with_timeout(super::pings::link_silence(ping_interval)),
                ),
                network,
                stream,
            })
        })
        .map_err(|e| setup(e.into()))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(60))
                // The first message with the protocol's proposal: a round
                // trip less per stream (see web-peer's node).
                .with_substream_upgrade_protocol_override(Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}
