//! How long to wait before dialing a member relay again: doubling from
//! [`FIRST_RETRY`] to [`MAX_RETRY`], back to the start once a connection
//! stands.

use std::time::Duration;

/// The first wait after a member's connection went away or a dial failed.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two dials of one member: a relay that is down
/// for long costs one failed dial a minute.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_RETRY }
    }
}

impl Backoff {
    /// The wait before the next dial; the one after it is twice as long.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_RETRY);
        wait
    }

    /// A connection stood: the next loss is retried quickly again.
    pub fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_after_a_connection() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| backoff.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), FIRST_RETRY);
    }
}
