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
        metrics
    }
}
