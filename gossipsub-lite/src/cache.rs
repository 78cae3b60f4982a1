//! Bounded, expiring caches of message ids.

use std::collections::{HashMap, VecDeque};

use web_time::{Duration, Instant};

use crate::MessageId;

/// Ids seen lately, each kept `ttl`, at most `max` (the oldest go first).
#[derive(Debug)]
pub struct Seen {
    ids: HashMap<MessageId, Instant>,
    order: VecDeque<MessageId>,
    ttl: Duration,
    max: usize,
}

impl Seen {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ids: HashMap::new(),
            order: VecDeque::new(),
            ttl,
            max,
        }
    }

    /// Records `id`; returns whether it is new.
    pub fn insert(&mut self, id: MessageId, now: Instant) -> bool {
        self.expire(now);
        if self.ids.contains_key(&id) {
            return false;
        }
        if self.order.len() >= self.max
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.clone(), now);
        self.order.push_back(id);
        true
    }

    /// Whether `id` was recorded (and not yet expired by a later insert
    /// or [`Self::expire`]).
    pub fn contains(&self, id: &MessageId) -> bool {
        self.ids.contains_key(id)
    }

    pub fn expire(&mut self, now: Instant) {
        while let Some(oldest) = self.order.front() {
            match self.ids.get(oldest) {
                Some(at) if now.duration_since(*at) < self.ttl => break,
                _ => {
                    if let Some(oldest) = self.order.pop_front() {
                        self.ids.remove(&oldest);
                    }
                }
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let now = Instant::now();
        let mut seen = Seen::new(Duration::from_secs(10), 2);
        assert!(seen.insert(MessageId(vec![1]), now));
        assert!(!seen.insert(MessageId(vec![1]), now));
        assert!(seen.insert(MessageId(vec![2]), now));
        assert!(seen.insert(MessageId(vec![3]), now));
        assert_eq!(seen.len(), 2);
        assert!(!seen.contains(&MessageId(vec![1])), "the oldest went first");
        seen.expire(now + Duration::from_secs(11));
        assert_eq!(seen.len(), 0);
    }
}
