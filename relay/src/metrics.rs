//! The relay's own Prometheus metrics, beside those `libp2p-metrics`
//! records for every behaviour and the bandwidth per transport.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GossipLabels {
    pub topic: &'static str,
    pub verdict: &'static str,
}

/// Which listener a connection came in on (`tcp`, `websocket`, `quic`,
/// `webrtc-direct`, `http`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: &'static str,
}

/// One configured limit, by its flag's name without the dashes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    /// Reservations held now.
    pub reservations: Gauge,
    /// Circuits open now.
    pub circuits: Gauge,
    /// Established connections now.
    pub connections: Gauge,
    /// Gossip messages validated, by topic and verdict (accepted, rejected,
    /// over_peer_budget, over_ip_budget).
    pub gossip_messages: Family<GossipLabels, Counter>,
    /// Subscriptions to topics other than the network's, refused.
    pub gossip_subscriptions_refused: Counter,
    /// STUN binding requests answered.
    pub stun_responses: Counter,
    /// Incoming connections in their handshake now, by listener.
    pub pending_connections: Family<ListenerLabels, Gauge>,
    /// HTTP connections open now.
    pub http_connections: Gauge,
    /// The limits in force (after fitting them to the file descriptors
    /// the process may open), so a dashboard can show use against bound.
    pub limits: Family<LimitLabels, Gauge>,
}

impl RelayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let registry = registry.sub_registry_with_prefix("relay");
        registry.register(
            "reservations",
            "Circuit relay reservations held now",
            metrics.reservations.clone(),
        );
        registry.register(
            "circuits",
            "Relayed circuits open now",
            metrics.circuits.clone(),
        );
        registry.register(
            "connections",
            "Established connections now",
            metrics.connections.clone(),
        );
        registry.register(
            "gossip_messages",
            "Gossipsub messages the relay received, by topic and verdict (accepted, rejected, over_peer_budget, over_ip_budget)",
            metrics.gossip_messages.clone(),
        );
        registry.register(
            "gossip_subscriptions_refused",
            "Subscriptions to topics other than the network's, refused",
            metrics.gossip_subscriptions_refused.clone(),
        );
        registry.register(
            "stun_responses",
            "STUN binding requests answered",
            metrics.stun_responses.clone(),
        );
        registry.register(
            "pending_connections",
            "Incoming connections in their handshake now, by listener",
            metrics.pending_connections.clone(),
        );
        registry.register(
            "http_connections",
            "HTTP connections open now",
            metrics.http_connections.clone(),
        );
        registry.register(
            "limit",
            "The limits in force, by name (see the README's limits table)",
            metrics.limits.clone(),
        );
        metrics
    }

    /// Shows one limit in `/metrics` as `relay_limit{limit="<name>"}`.
    pub fn set_limit(&self, limit: &'static str, value: u64) {
        self.limits
            .get_or_create(&LimitLabels { limit })
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }
}
