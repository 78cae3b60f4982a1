//! What the str0m WebRTC-direct listener counts (`relay_webrtc_direct_*`).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Sessions past the first STUN request whose handshake has not ended.
    pub opening: Gauge,
    /// Sessions whose Noise handshake succeeded and that are still up.
    pub established: Gauge,
    /// Datagrams the listener did not hand to any session, by reason.
    pub dropped: Family<DropLabels, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let relay = registry.sub_registry_with_prefix("relay_webrtc_direct");
        relay.register(
            "sessions_opening",
            "WebRTC-direct sessions still in their handshake",
            metrics.opening.clone(),
        );
        relay.register(
            "sessions_established",
            "WebRTC-direct sessions established",
            metrics.established.clone(),
        );
        relay.register(
            "datagrams_dropped",
            "WebRTC-direct datagrams dropped before any session, by reason",
            metrics.dropped.clone(),
        );
        metrics
    }

    pub fn drop(&self, reason: &'static str) {
        self.dropped.get_or_create(&DropLabels { reason }).inc();
    }
}
