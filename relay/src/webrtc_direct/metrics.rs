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
    /// Source addresses that joined a live session by its ufrag (a
    /// client whose address changed).
    pub rebinds: Counter,
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
        relay.register(
            "rebinds",
            "WebRTC-direct clients that reached their session from a new address",
            metrics.rebinds.clone(),
        );
        metrics
    }

    pub fn drop(&self, reason: &'static str) {
        self.dropped.get_or_create(&DropLabels { reason }).inc();
    }
}
