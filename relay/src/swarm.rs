//! The relay's swarm: [`Behaviour`] over every transport the relay offers.
//!
//! TCP and QUIC for native peers; WebSocket and WebRTC-direct for
//! browsers; with a domain, WebSocket over TLS too, its TLS terminated
//! below libp2p-websocket so that the certificate can be renewed in place
//! (see [`crate::tls`]).

use std::time::Duration;

use libp2p::{
    Swarm, Transport as _,
    core::{muxing::StreamMuxerBox, transport::OptionalTransport, upgrade::Version},
    identity::Keypair,
    noise, tcp, websocket, yamux,
};
use prometheus_client::registry::Registry;

use crate::{
    behaviour::Behaviour,
    config::ListenerLimits,
    tls::{
        Tls, TlsError,
        transport::{SecureWebSocket, TlsTcp},
    },
};

/// The WebRTC-direct listener (`--webrtc-direct-listener`).
#[derive(Debug)]
pub enum WebRtcDirect {
    Libp2p(Box<libp2p_webrtc::tokio::Certificate>),
    Str0m(Box<crate::webrtc_direct::Transport>),
}

/// How long a connection without open streams is kept.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("cannot set up the noise handshake")]
    Noise(#[from] noise::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot set up the {transport} transport")]
    Transport {
        transport: &'static str,
        #[source]
        source: BoxError,
    },
}

/// Builds the swarm around `behaviour`, counting each transport's bytes in
/// `registry`.
pub fn build(
    keypair: Keypair,
    webrtc_direct: WebRtcDirect,
    tls: Option<&Tls>,
    limits: &ListenerLimits,
    behaviour: Behaviour,
    registry: &mut Registry,
) -> Result<Swarm<Behaviour>, SwarmError> {
    let transport_error = |transport: &'static str| {
        move |error: &dyn std::fmt::Display| SwarmError::Transport {
            transport,
            source: error.to_string().into(),
        }
    };
    let max_websocket_frame = limits.max_websocket_frame;

    let websocket_noise = noise::Config::new(&keypair)?;
    let secure_websocket = match tls {
        Some(tls) => {
            let acceptor = futures_rustls::TlsAcceptor::from(tls.websocket_config()?);
            let mut websocket =
                websocket::Config::new(TlsTcp::new(tcp::Config::default().nodelay(true), acceptor));
            websocket.set_max_data_size(max_websocket_frame);
            OptionalTransport::some(
                SecureWebSocket::new(websocket)
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise::Config::new(&keypair)?)
                    .multiplex(yamux::Config::default()),
            )
        }
        None => OptionalTransport::none(),
    };
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport_error("TCP")(&e))?
        .with_quic()
        .with_other_transport(|_| {
            let mut websocket = websocket::Config::new(tcp::tokio::Transport::new(
                tcp::Config::default().nodelay(true),
            ));
            // libp2p's default is 256 MiB a frame, buffered whole.
            websocket.set_max_data_size(max_websocket_frame);
            websocket
                .upgrade(Version::V1Lazy)
                .authenticate(websocket_noise)
                .multiplex(yamux::Config::default())
        })
        .map_err(|e| transport_error("WebSocket")(&e))?
        .with_other_transport(|_| secure_websocket)
        .map_err(|e| transport_error("secure WebSocket")(&e))?
        .with_other_transport(|key| {
            let (theirs, ours) = match webrtc_direct {
                WebRtcDirect::Libp2p(certificate) => (
                    OptionalTransport::some(libp2p_webrtc::tokio::Transport::new(
                        key.clone(),
                        *certificate,
                    )),
                    OptionalTransport::none(),
                ),
                WebRtcDirect::Str0m(transport) => (
                    OptionalTransport::none(),
                    OptionalTransport::some(*transport),
                ),
            };
            theirs
                .map(|(peer_id, connection), _| (peer_id, StreamMuxerBox::new(connection)))
                .or_transport(
                    ours.map(|(peer_id, connection), _| (peer_id, StreamMuxerBox::new(connection))),
                )
                .map(|either, _| either.into_inner())
        })
        .map_err(|e| transport_error("WebRTC-direct")(&e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|_| behaviour)
        .map_err(|e| transport_error("behaviour")(&e))?
        .with_swarm_config(|config| {
            config
                .with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
                // A stream's first message goes with its protocol's
                // proposal: the STOP stream of each circuit (on the path of
                // every browser's first link), gossipsub's, identify's.
                .with_substream_upgrade_protocol_override(Version::V1Lazy)
        })
        // The handshake deadline of every transport: until it is met, a
        // connection holds one of its listener's pending slots.
        .with_connection_timeout(limits.handshake_timeout.0)
        .build();
    Ok(swarm)
}
