//! Listening, the loop, and where each swarm event goes.

use std::time::Duration;

use chat_protocol::report::{self, describe_error};
use futures::StreamExt as _;
use libp2p::{
    Multiaddr, PeerId, autonat, core::transport::ListenerId, dcutr, identify, multiaddr::Protocol,
    relay, swarm::SwarmEvent,
};
use tokio::sync::{mpsc, oneshot};

use super::{
    Node,
    addrs::{is_circuit, path_of, with_peer_id},
    config::{Config, StartError},
    relay::RELAY_BACKOFF_MIN,
    swarm::BehaviourEvent,
};
use crate::events::{Command, Event, Path, Reachability};

const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

impl Node {
    /// Binds TCP and QUIC on the configured port and waits for both.
    pub(super) async fn listen(&mut self, config: &Config) -> Result<(), StartError> {
        let ip = Multiaddr::from(config.listen_ip);
        let tcp = ip.clone().with(Protocol::Tcp(config.listen_port));
        let tcp_id = self.listen_on(tcp)?;
        // With port 0, QUIC takes the port TCP got, when it is free.
        let tcp_port = self.await_listener(tcp_id).await?;
        let port = if config.listen_port == 0 {
            tcp_port
        } else {
            config.listen_port
        };
        let quic = ip.with(Protocol::Udp(port)).with(Protocol::QuicV1);
        let quic_id = match self.listen_on(quic.clone()) {
            Ok(id) => id,
            Err(_) if config.listen_port == 0 => {
                let any = quic.replace(1, |_| Some(Protocol::Udp(0))).unwrap_or(quic);
                self.listen_on(any)?
            }
            Err(error) => return Err(error),
        };
        self.await_listener(quic_id).await?;
        Ok(())
    }

    pub(super) fn listen_on(&mut self, addr: Multiaddr) -> Result<ListenerId, StartError> {
        self.swarm
            .listen_on(addr.clone())
            .map_err(|error| StartError::Listen {
                addr,
                reason: error.to_string(),
            })
    }

    /// Runs the swarm until `id` reports an address; returns its port.
    pub(super) async fn await_listener(&mut self, id: ListenerId) -> Result<u16, StartError> {
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| StartError::Listen {
                    addr: Multiaddr::empty(),
                    reason: format!("no address reported within {LISTEN_TIMEOUT:?}"),
                })?;
            match &event {
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } if *listener_id == id => {
                    let port = address.iter().find_map(|p| match p {
                        Protocol::Tcp(port) | Protocol::Udp(port) => Some(port),
                        _ => None,
                    });
                    let port = port.unwrap_or_default();
                    self.on_swarm_event(event);
                    return Ok(port);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    addresses,
                    reason,
                } if *listener_id == id => {
                    return Err(StartError::Listen {
                        addr: addresses.first().cloned().unwrap_or_else(Multiaddr::empty),
                        reason: format!("{reason:?}"),
                    });
                }
                _ => {}
            }
            self.on_swarm_event(event);
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: oneshot::Receiver<()>,
    ) {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = &mut self.relay_retry.sleep, if self.relay_retry.armed => {
                    self.relay_retry.armed = false;
                    self.dial_relay();
                }
                _ = housekeeping.tick() => {
                    // The reservation, if it was lost (a no-op while it holds).
                    if self.swarm.is_connected(&self.relay_id) {
                        self.reserve();
                    }
                    self.expire_pings();
                    self.close_silent_connections();
                    self.close_silent_relay_connections();
                    self.retry_due_punches();
                }
            }
        }
        tracing::debug!("peer shutting down");
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                if is_circuit(&address) {
                    let circuit_addr = with_peer_id(&address, *self.swarm.local_peer_id());
                    self.emit(Event::Reserved { circuit_addr });
                } else {
                    self.emit(Event::Listening { addr: address });
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } if Some(listener_id) == self.circuit_listener => {
                self.circuit_listener = None;
                if let Err(error) = reason {
                    let mut reason = describe_error(&error);
                    if let Some(hint) = report::reservation_refusal_hint(&reason) {
                        reason = format!("{reason} ({hint})");
                    }
                    self.emit(Event::ReservationRefused { reason });
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if peer_id == self.relay_id {
                    self.relay_liveness
                        .heard(connection_id, std::time::Instant::now());
                    self.relay_backoff = RELAY_BACKOFF_MIN;
                    self.relay_retry.armed = false;
                    self.emit(Event::RelayConnected { relay: peer_id });
                    self.reserve();
                    let waiting: Vec<PeerId> = self.pings.keys().copied().collect();
                    for peer in waiting {
                        if !self.swarm.is_connected(&peer) {
                            self.reach(peer);
                        }
                    }
                    return;
                }
                // Another relay of the federation, dialed for a circuit
                // through it: not a peer.
                if self.swarm.behaviour().network.is_relay(&peer_id) {
                    return;
                }
                let path = path_of(&endpoint);
                match path {
                    Path::Direct => self.punch_settled(&peer_id),
                    Path::Relayed => self.punch_started(&peer_id),
                }
                self.emit(Event::Connected {
                    peer: peer_id,
                    path,
                    remote_addr: endpoint.get_remote_address().clone(),
                });
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                cause,
                ..
            } => {
                if peer_id == self.relay_id {
                    self.relay_liveness.closed(connection_id);
                    if num_established == 0 {
                        let reason = cause.map_or_else(|| "closed".to_owned(), |c| c.to_string());
                        self.relay_unreachable(reason);
                    }
                    return;
                }
                if self.swarm.behaviour().network.is_relay(&peer_id) {
                    return;
                }
                let path = path_of(&endpoint);
                self.emit(Event::Disconnected {
                    peer: peer_id,
                    path,
                });
                if num_established == 0 {
                    self.punchers.remove(&peer_id);
                }
                if num_established == 0 && path == Path::Relayed {
                    let reason = cause.map_or_else(|| "closed".to_owned(), |c| c.to_string());
                    self.redial_after_relayed(peer_id, reason);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                let reason = describe_error(&error);
                tracing::debug!(%peer, %reason, "outgoing connection failed");
                if peer == self.relay_id {
                    if !self.swarm.is_connected(&peer) {
                        self.relay_unreachable(reason);
                    }
                } else if !self.swarm.is_connected(&peer) {
                    // A failed hole punch while the relayed connection
                    // stands is DCUtR's to report.
                    if self.pings.remove(&peer).is_some() {
                        self.emit(Event::PingFailed {
                            peer,
                            reason: reason.clone(),
                        });
                    }
                    self.emit(Event::Unreachable { peer, reason });
                }
            }
            // The relay client confirms circuit addresses (`Reserved` says
            // so); the others come from AutoNAT.
            SwarmEvent::ExternalAddrConfirmed { address } if !is_circuit(&address) => {
                if self.force_private {
                    self.swarm.remove_external_address(&address);
                    self.emit(Event::Reachability(Reachability::ForcedPrivate {
                        ignored: Some(address),
                    }));
                } else {
                    self.emit(Event::Reachability(Reachability::Reachable {
                        addr: address,
                    }));
                    self.swarm.behaviour_mut().network.announce_soon();
                }
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                let reason = describe_error(&error);
                tracing::debug!(from = %send_back_addr, %reason, "incoming connection failed");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    pub(super) fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Network(event) => self.on_network_event(event),
            BehaviourEvent::Ping(event) => self.on_ping(event),
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => {
                let result = result.map(|_| ()).map_err(|error| describe_error(&error));
                if result.is_err() {
                    self.on_punch_failed(remote_peer_id);
                }
                self.emit(Event::HolePunch {
                    peer: remote_peer_id,
                    result,
                });
            }
            BehaviourEvent::Autonat(autonat::v2::client::Event {
                tested_addr,
                result: Err(error),
                ..
            }) => self.emit(Event::Reachability(Reachability::Unreachable {
                addr: tested_addr,
                reason: error.to_string(),
            })),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                tracing::debug!(peer = %peer_id, agent = %info.agent_version, "identified");
                if info.protocols.contains(&dcutr::PROTOCOL_NAME) {
                    self.punchers.insert(peer_id);
                } else {
                    self.punchers.remove(&peer_id);
                }
                let network = &mut self.swarm.behaviour_mut().network;
                network.on_agent(&peer_id, &info.agent_version);
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => tracing::debug!(relay = %relay_peer_id, renewal, "reservation accepted"),
            _ => {}
        }
    }
}
