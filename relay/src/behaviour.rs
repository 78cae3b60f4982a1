//! The relay's composed behaviour: one field per protocol it speaks.

use libp2p::{
    autonat,
    connection_limits::{self, ConnectionLimits},
    identify,
    identity::Keypair,
    ping, relay,
    swarm::{NetworkBehaviour, behaviour::toggle::Toggle},
};

use crate::{
    config::Limits,
    dial_policy::GlobalDialsOnly,
    federation,
    gossip::{self, GossipConfigError, Gossipsub, ProjectTopics},
    limits::{ConnectionLimitsPerPrefix, ReservationsPerIp},
    private::{
        Access,
        authorized_relay::{
            AuthorizedRelay,
            circuit::CircuitLimit,
            guests::{GuestCircuits, GuestLimits},
        },
        members_only::MembersOnly,
    },
    refusals::Refusals,
    superseded::SupersededConnections,
};

/// Sent in identify, so peers and operators see what they talk to.
pub const AGENT_VERSION: &str = concat!("browser-chat-relay/", env!("CARGO_PKG_VERSION"));

#[allow(missing_debug_implementations)] // Most of its fields are not `Debug`.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// A peer that connects again while the relay holds its previous
    /// connection gets a clean start; first, so that a connection it
    /// refuses reaches no other behaviour.
    superseded: SupersededConnections,
    // The limits come next: they deny a connection before any other
    // behaviour has counted it.
    per_prefix_limits: ConnectionLimitsPerPrefix,
    connection_limits: connection_limits::Behaviour,
    /// The relay dials global unicast addresses only.
    global_dials_only: GlobalDialsOnly,
    /// Circuit relay v2; in private relay mode, unlisted peers are denied.
    pub relay: AuthorizedRelay,
    /// Discovery and chat; in private relay mode, for listed peers only.
    pub gossipsub: MembersOnly<Gossipsub>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    /// AutoNAT v2 server: native peers ask the relay to dial them back, to
    /// learn whether they are reachable directly. In private relay mode,
    /// for listed peers only.
    pub autonat: MembersOnly<autonat::v2::server::Behaviour>,
    /// With `--federation-peers`: the other relays, their DHT, the links
    /// to them.
    pub federation: Toggle<federation::Behaviour>,
}

/// What the behaviour counts and how strict it is, beside its limits.
#[derive(Debug, Clone)]
pub struct Policy {
    pub refusals: Refusals,
    /// Counts subscriptions to topics that are not the network's.
    pub refused_subscriptions: prometheus_client::metrics::counter::Counter,
    /// Whether AutoNAT may dial back loopback, private and other
    /// non-global addresses (tests on one machine).
    pub dial_back_non_global: bool,
}

impl Behaviour {
    pub fn new(
        keypair: &Keypair,
        limits: &Limits,
        per_prefix_limits: ConnectionLimitsPerPrefix,
        reservations_per_ip: &ReservationsPerIp,
        access: Option<&Access>,
        federation: Option<federation::Setup>,
        policy: &Policy,
    ) -> Result<Self, GossipConfigError> {
        let connection_limits = ConnectionLimits::default()
            .with_max_established(Some(limits.max_connections))
            .with_max_established_per_peer(Some(limits.max_connections_per_peer));
        // Handshakes are bounded per listener and per prefix by
        // `per_prefix_limits`, not here: one shared total is what one host
        // could fill for everyone.
        let config = relay_config(limits, reservations_per_ip, access, &policy.refusals);
        let guests = access
            .filter(|access| !access.circuits_too)
            .map(|_| guest_circuits(limits, &config));
        let members = access.map(|access| access.peers.clone());
        Ok(Self {
            superseded: SupersededConnections::new(policy.refusals.clone()),
            per_prefix_limits,
            connection_limits: connection_limits::Behaviour::new(connection_limits),
            global_dials_only: GlobalDialsOnly::new(
                policy.dial_back_non_global,
                policy.refusals.clone(),
            )
            .except_members(federation.as_ref().map(|setup| setup.members.clone())),
            relay: AuthorizedRelay::new(
                relay::Behaviour::new(keypair.public().to_peer_id(), config),
                access.cloned(),
                guests,
                policy.refusals.clone(),
            ),
            gossipsub: MembersOnly::new(
                gossip::behaviour(
                    keypair,
                    limits.max_connections as usize,
                    ProjectTopics::new(policy.refused_subscriptions.clone()),
                )?,
                members.clone(),
            )
            .also_serving(federation.as_ref().map(|setup| setup.members.clone())),
            identify: identify::Behaviour::new(
                identify::Config::new("/ipfs/id/1.0.0".to_owned(), keypair.public())
                    .with_agent_version(AGENT_VERSION.to_owned()),
            ),
            ping: ping::Behaviour::default(),
            autonat: MembersOnly::new(autonat::v2::server::Behaviour::default(), members.clone()),
            federation: Toggle::from(federation.map(|setup| {
                let bounds = federation::locate::Bounds::new(
                    limits.max_reservations,
                    setup.max_members,
                    limits.reservation_duration.0,
                );
                federation::Behaviour::new(
                    keypair.public().to_peer_id(),
                    setup,
                    bounds,
                    members,
                    policy.refusals.clone(),
                )
            })),
        })
    }
}

/// Guests' circuits get the limits of the circuits `libp2p-relay` serves,
/// and a per-IP rate limiter of its own kind, built the way
/// [`relay_config`] builds the relay's.
fn guest_circuits(limits: &Limits, relay_config: &relay::Config) -> GuestCircuits {
    let (circuits, interval) = per_minute(limits.circuit_rate_per_ip);
    let rate_limiters = relay::Config {
        circuit_src_rate_limiters: Vec::new(),
        ..relay::Config::default()
    }
    .circuit_src_per_ip(circuits, interval)
    .circuit_src_rate_limiters;
    GuestCircuits::new(
        GuestLimits {
            max_circuits: relay_config.max_circuits,
            max_circuits_per_peer: relay_config.max_circuits_per_peer,
            circuit: CircuitLimit {
                duration: relay_config.max_circuit_duration,
                bytes: relay_config.max_circuit_bytes,
            },
        },
        rate_limiters,
    )
}

/// libp2p-relay's limiters are token buckets holding `limit` tokens, one
/// added back every `interval`: "n per minute" is a bucket of n refilled
/// every minute / n.
fn per_minute(n: u32) -> (std::num::NonZeroU32, std::time::Duration) {
    let n = n.max(1);
    (
        std::num::NonZeroU32::new(n).expect("at least 1"),
        std::time::Duration::from_secs(60) / n,
    )
}

fn relay_config(
    limits: &Limits,
    reservations_per_ip: &ReservationsPerIp,
    access: Option<&Access>,
    refusals: &Refusals,
) -> relay::Config {
    let (reservations, reservation_interval) = per_minute(limits.reservation_rate_per_ip);
    let (circuits, circuit_interval) = per_minute(limits.circuit_rate_per_ip);
    let mut config = relay::Config {
        max_reservations: limits.max_reservations,
        max_reservations_per_peer: limits.max_reservations_per_peer,
        reservation_duration: limits.reservation_duration.0,
        reservation_rate_limiters: Vec::new(),
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.max_circuits_per_peer,
        max_circuit_duration: limits.max_circuit_duration.0,
        max_circuit_bytes: limits.max_circuit_bytes,
        circuit_src_rate_limiters: Vec::new(),
    }
    .reservation_rate_per_ip(reservations, reservation_interval)
    .circuit_src_per_ip(circuits, circuit_interval);
    // The relay asks its limiters in order and stops at the first "no":
    // authorization first, so a peer that may not reserve at all uses up
    // no rate limit. `AuthorizedRelay` denies unlisted peers before their
    // requests get here; these catch a peer removed from the file while
    // connected, until its connection is closed.
    if let Some(access) = access {
        config
            .reservation_rate_limiters
            .insert(0, access.peers.reservation_limiter(refusals.clone()));
        if access.circuits_too {
            config
                .circuit_src_rate_limiters
                .insert(0, access.peers.circuit_limiter(refusals.clone()));
        }
    }
    // Last: it counts a reservation only once every other check has passed.
    config
        .reservation_rate_limiters
        .push(reservations_per_ip.limiter());
    config
}
