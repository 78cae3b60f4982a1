//! The federation's Prometheus metrics, in their own block beside the
//! relay's (`relay_federation_*`).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabels {
    /// `listed` (in the federation file, this relay left out), `known`
    /// (with an address, or connected), `connected`.
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    /// `from_relays`: received from a member relay; `to_relays`: accepted
    /// messages handed to gossipsub for each connected member relay other
    /// than the one it came from and its author.
    pub direction: &'static str,
    pub topic: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `here`, `found` (on another relay), `not_found`, `busy`,
    /// `timed_out`, `no_address` (see `locate::Outcome`).
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct FederationMetrics {
    pub members: Family<MemberLabels, Gauge>,
    pub messages: Family<MessageLabels, Counter>,
    pub lookups: Family<LookupLabels, Counter>,
    pub records: Gauge,
    pub moved_in: Counter,
}

impl FederationMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let registry = registry.sub_registry_with_prefix("relay_federation");
        registry.register(
            "members",
            "Relays of the federation, by state (listed, known, connected)",
            metrics.members.clone(),
        );
        registry.register(
            "messages",
            "Gossip messages from and to other relays of the federation, by direction and topic",
            metrics.messages.clone(),
        );
        registry.register(
            "lookups",
            "Lookups of peers' relays (locate protocol) answered, by outcome",
            metrics.lookups.clone(),
        );
        registry.register(
            "moved_in",
            "Reservations of peers the federation last saw reserved on another relay: pages that moved here when their relay went away",
            metrics.moved_in.clone(),
        );
        registry.register(
            "records",
            "Reservation records held in the federation's DHT store (tombstones included)",
            metrics.records.clone(),
        );
        metrics
    }

    pub fn set_records(&self, records: usize) {
        self.records.set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    pub fn count_lookups(&self, outcome: &'static str, by: u64) {
        if by > 0 {
            self.lookups
                .get_or_create(&LookupLabels { outcome })
                .inc_by(by);
        }
    }

    pub fn set_members(&self, listed: usize, known: usize, connected: usize) {
        for (state, value) in [
            ("listed", listed),
            ("known", known),
            ("connected", connected),
        ] {
            self.members
                .get_or_create(&MemberLabels { state })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    pub fn count(&self, direction: &'static str, topic: &'static str, by: u64) {
        if by > 0 {
            self.messages
                .get_or_create(&MessageLabels { direction, topic })
                .inc_by(by);
        }
    }
}
