//! STAND-IN until the lead's `refusals.rs` lands on main (replaced by it
//! on merge): counts refusals by kind as `relay_refusals_total{kind}`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct Refusals {
    counts: Family<KindLabel, Counter>,
}

impl Refusals {
    pub fn register(registry: &mut Registry) -> Self {
        let refusals = Self::default();
        registry.sub_registry_with_prefix("relay").register(
            "refusals",
            "Requests the relay refused, by kind",
            refusals.counts.clone(),
        );
        refusals
    }

    pub fn refused(&self, kind: &'static str, detail: impl FnOnce() -> String) {
        self.counts.get_or_create(&KindLabel { kind }).inc();
        tracing::debug!(kind, detail = %detail(), "refused");
    }
}
