//! How much gossip the relay forwards for one peer and one address: token
//! buckets per topic, keyed by the peer that handed the relay a message
//! (not its author, whom anybody can make up) and by that peer's IP address
//! (IPv6: its /64, the block one subscriber usually gets).
//!
//! A peer over its own budget does not spend its address's: a flooder
//! behind a shared address (CGNAT, an office) exhausts its own bucket, and
//! the others behind that address keep theirs. The address's bucket binds
//! when many peers from one address each stay under their own.

use std::{collections::HashMap, hash::Hash, net::IpAddr, time::Instant};

use libp2p::PeerId;

use crate::addresses::IpPrefix;

/// Most buckets kept per key kind before the full (idle) ones are dropped.
/// Keys come from connected peers, whom the connection limits bound; this
/// only keeps the maps from holding the idle buckets of peers long gone.
const MAX_IDLE_BUCKETS: usize = 4096;

/// A rate of `per_minute` messages, with a burst of as many: the same
/// convention as the relay's other per-minute limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
}

impl Rate {
    fn capacity(self) -> f64 {
        f64::from(self.per_minute.max(1))
    }

    fn per_second(self) -> f64 {
        self.capacity() / 60.0
    }
}

/// A token bucket: full at `capacity`, refilled continuously.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() * rate.per_second()).min(rate.capacity());
        self.updated = now;
    }
}

/// Buckets by key, all at one rate.
#[derive(Debug)]
struct Buckets<K> {
    rate: Rate,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Copy> Buckets<K> {
    fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: HashMap::new(),
        }
    }

    /// Whether `key` has a token now (refilling its bucket first).
    fn has_token(&mut self, key: K, now: Instant) -> bool {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= MAX_IDLE_BUCKETS {
            self.drop_full(now);
        }
        let rate = self.rate;
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: rate.capacity(),
            updated: now,
        });
        bucket.refill(rate, now);
        bucket.tokens >= 1.0
    }

    fn take(&mut self, key: K) {
        if let Some(bucket) = self.buckets.get_mut(&key) {
            bucket.tokens -= 1.0;
        }
    }

    /// Drops the buckets that are full again: a new one would be the same.
    fn drop_full(&mut self, now: Instant) {
        let rate = self.rate;
        self.buckets.retain(|_, bucket| {
            bucket.refill(rate, now);
            bucket.tokens < rate.capacity()
        });
    }

    fn remove(&mut self, key: &K) {
        self.buckets.remove(key);
    }
}

/// The per-peer and per-address rates of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicRates {
    pub per_peer: Rate,
    pub per_ip: Rate,
}

/// Which budget a message was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    Peer,
    Ip,
    /// A federation relay's budget.
    Relay,
}

impl OverBudget {
    pub fn label(self) -> &'static str {
        match self {
            OverBudget::Peer => "peer",
            OverBudget::Ip => "ip",
            OverBudget::Relay => "relay",
        }
    }
}

/// The budget of one topic.
#[derive(Debug)]
pub struct TopicBudget {
    per_peer: Buckets<PeerId>,
    per_ip: Buckets<IpPrefix>,
    /// The federation's relays, each of which forwards the messages of all
    /// its pages: a bucket of their own size, and no address budget (two
    /// relays may share a host).
    per_relay: Buckets<PeerId>,
}

impl TopicBudget {
    pub fn new(rates: TopicRates) -> Self {
        Self::with_relay_rate(rates, rates.per_peer)
    }

    pub fn with_relay_rate(rates: TopicRates, per_relay: Rate) -> Self {
        Self {
            per_peer: Buckets::new(rates.per_peer),
            per_ip: Buckets::new(rates.per_ip),
            per_relay: Buckets::new(per_relay),
        }
    }

    /// Spends one message handed over by the federation relay `relay`.
    pub fn spend_relay(&mut self, relay: PeerId, now: Instant) -> Result<(), OverBudget> {
        if !self.per_relay.has_token(relay, now) {
            return Err(OverBudget::Relay);
        }
        self.per_relay.take(relay);
        Ok(())
    }

    /// Spends one message of `peer` (at `ip`, if known), or says which
    /// budget it is over; a refused message spends nothing.
    pub fn spend(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), OverBudget> {
        if !self.per_peer.has_token(peer, now) {
            return Err(OverBudget::Peer);
        }
        let ip = ip.map(IpPrefix::of);
        if let Some(ip) = ip
            && !self.per_ip.has_token(ip, now)
        {
            return Err(OverBudget::Ip);
        }
        self.per_peer.take(peer);
        if let Some(ip) = ip {
            self.per_ip.take(ip);
        }
        Ok(())
    }

    /// Forgets a disconnected peer's bucket. Its address's stays, so
    /// reconnecting does not refill it.
    pub fn forget(&mut self, peer: &PeerId) {
        self.per_peer.remove(peer);
        self.per_relay.remove(peer);
    }
}

/// The budgets of the network's topics.
#[derive(Debug)]
pub struct GossipBudget {
    chat: TopicBudget,
    discovery: TopicBudget,
}

/// What one federation relay may hand over per topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRates {
    pub chat: Rate,
    pub discovery: Rate,
}

impl GossipBudget {
    pub fn new(chat: TopicRates, discovery: TopicRates, relays: RelayRates) -> Self {
        Self {
            chat: TopicBudget::with_relay_rate(chat, relays.chat),
            discovery: TopicBudget::with_relay_rate(discovery, relays.discovery),
        }
    }

    /// Spends one message on `topic` handed over by the federation relay
    /// `relay`.
    pub fn spend_relay(
        &mut self,
        topic: &str,
        relay: PeerId,
        now: Instant,
    ) -> Result<(), OverBudget> {
        match topic {
            "chat" => self.chat.spend_relay(relay, now),
            "discovery" => self.discovery.spend_relay(relay, now),
            _ => Ok(()),
        }
    }

    /// Spends one message on the topic labelled `topic` (see
    /// [`super::topic_label`]); other topics have no budget here (the
    /// relay rejects their messages).
    pub fn spend(
        &mut self,
        topic: &str,
        peer: PeerId,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), OverBudget> {
        match topic {
            "chat" => self.chat.spend(peer, ip, now),
            "discovery" => self.discovery.spend(peer, ip, now),
            _ => Ok(()),
        }
    }

    pub fn forget(&mut self, peer: &PeerId) {
        self.chat.forget(peer);
        self.discovery.forget(peer);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rates(per_peer: u32, per_ip: u32) -> TopicRates {
        TopicRates {
            per_peer: Rate {
                per_minute: per_peer,
            },
            per_ip: Rate { per_minute: per_ip },
        }
    }

    #[test]
    fn a_peer_gets_its_burst_then_its_rate() {
        let mut budget = TopicBudget::new(rates(60, 1000));
        let (peer, ip) = (PeerId::random(), Some("192.0.2.1".parse().expect("ip")));
        let start = Instant::now();
        for n in 0..60 {
            assert_eq!(budget.spend(peer, ip, start), Ok(()), "message {n}");
        }
        assert_eq!(budget.spend(peer, ip, start), Err(OverBudget::Peer));
        // 60 a minute: one more a second.
        let later = start + Duration::from_millis(1000);
        assert_eq!(budget.spend(peer, ip, later), Ok(()));
        assert_eq!(budget.spend(peer, ip, later), Err(OverBudget::Peer));
    }

    #[test]
    fn a_flooder_does_not_spend_its_neighbours_share_of_the_address() {
        let mut budget = TopicBudget::new(rates(10, 15));
        let ip = Some("192.0.2.1".parse().expect("ip"));
        let (flooder, neighbour) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        let forwarded = (0..1000)
            .filter(|_| budget.spend(flooder, ip, now).is_ok())
            .count();
        assert_eq!(forwarded, 10);
        for n in 0..5 {
            assert_eq!(budget.spend(neighbour, ip, now), Ok(()), "message {n}");
        }
        assert_eq!(budget.spend(neighbour, ip, now), Err(OverBudget::Ip));
    }

    #[test]
    fn ipv6_addresses_share_a_budget_per_64() {
        let mut budget = TopicBudget::new(rates(10, 10));
        let now = Instant::now();
        for n in 0..10u16 {
            let ip = format!("2001:db8:1:2::{n:x}").parse().expect("ip");
            assert_eq!(budget.spend(PeerId::random(), Some(ip), now), Ok(()));
        }
        let same_64 = "2001:db8:1:2:ffff::1".parse().expect("ip");
        let other_64 = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(
            budget.spend(PeerId::random(), Some(same_64), now),
            Err(OverBudget::Ip)
        );
        assert_eq!(budget.spend(PeerId::random(), Some(other_64), now), Ok(()));
    }

    #[test]
    fn a_relay_has_its_own_budget_and_no_address_budget() {
        let mut budget = TopicBudget::with_relay_rate(rates(2, 2), Rate { per_minute: 100 });
        let (relay, page) = (PeerId::random(), PeerId::random());
        let ip = Some("192.0.2.1".parse().expect("ip"));
        let now = Instant::now();
        let forwarded = (0..1000)
            .filter(|_| budget.spend_relay(relay, now).is_ok())
            .count();
        assert_eq!(forwarded, 100, "the relay's bucket");
        assert_eq!(budget.spend_relay(relay, now), Err(OverBudget::Relay));
        // A page on the relay's host keeps its own budgets.
        assert_eq!(budget.spend(page, ip, now), Ok(()));
    }

    #[test]
    fn idle_buckets_are_dropped_when_the_map_is_full() {
        let mut buckets = Buckets::new(Rate { per_minute: 60 });
        let now = Instant::now();
        for _ in 0..MAX_IDLE_BUCKETS {
            assert!(buckets.has_token(PeerId::random(), now));
        }
        let later = now + Duration::from_secs(1);
        assert!(buckets.has_token(PeerId::random(), later));
        assert_eq!(buckets.buckets.len(), 1, "full buckets dropped");
    }
}
