//! File descriptors, shared out between the libp2p listeners and the HTTP
//! server so that neither can starve the other.
//!
//! Every TCP or WebSocket connection holds one descriptor, established or
//! still in its handshake; QUIC and WebRTC-direct connections share their
//! listener's UDP socket. An HTTP connection holds one too. The process may
//! open `RLIMIT_NOFILE` of them (`LimitNOFILE` in deploy/relay.service).
//! At start the relay raises its soft limit to the hard one, then checks
//! that the limits it was given fit; if they do not, it shrinks each
//! share in proportion and says so, rather than failing later, under load,
//! with `EMFILE` on whichever listener accepts next.

/// Descriptors kept for everything else: the listening and UDP sockets,
/// the state files, epoll, the runtime's pipes, the journal.
pub const RESERVED: u64 = 64;

/// The descriptor-holding limits, as given or as fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdShares {
    /// Established libp2p connections (`--max-connections`).
    pub max_connections: u64,
    /// Handshakes per listener (`--max-pending-connections`); two
    /// listeners (TCP, WebSocket) hold a descriptor per handshake.
    pub max_pending_per_listener: u64,
    /// HTTP connections (`--max-http-connections`).
    pub max_http_connections: u64,
}

impl FdShares {
    /// Descriptors these shares need at most, with [`RESERVED`].
    pub fn needed(&self) -> u64 {
        self.max_connections
            + 2 * self.max_pending_per_listener
            + self.max_http_connections
            + RESERVED
    }

    /// These shares, shrunk in proportion so that they fit in `nofile`
    /// descriptors (each at least 1), or as they are if they fit.
    pub fn fit(self, nofile: u64) -> Self {
        let needed = self.needed();
        if needed <= nofile {
            return self;
        }
        let available = nofile.saturating_sub(RESERVED);
        let wanted = needed - RESERVED;
        let scale = |share: u64| (share * available / wanted).max(1);
        Self {
            max_connections: scale(self.max_connections),
            max_pending_per_listener: scale(self.max_pending_per_listener),
            max_http_connections: scale(self.max_http_connections),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (what `LimitNOFILE`
/// sets both to under systemd; a shell often has a soft 1024 under a much
/// higher hard limit) and returns the soft limit then in force.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "cannot raise the soft RLIMIT_NOFILE to the hard limit");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: FdShares = FdShares {
        max_connections: 2048,
        max_pending_per_listener: 128,
        max_http_connections: 512,
    };

    #[test]
    fn the_defaults_fit_the_units_limit_nofile() {
        // deploy/relay.service: LimitNOFILE=4096.
        assert!(DEFAULTS.needed() <= 4096, "{}", DEFAULTS.needed());
        assert_eq!(DEFAULTS.fit(4096), DEFAULTS);
    }

    #[test]
    fn shares_shrink_in_proportion_to_fit_a_small_limit() {
        let fitted = DEFAULTS.fit(1024);
        assert!(
            fitted.needed() <= 1024,
            "{fitted:?} needs {}",
            fitted.needed()
        );
        // Each keeps its part of the whole: HTTP is not squeezed out by libp2p.
        let ratio = fitted.max_connections as f64 / fitted.max_http_connections as f64;
        assert!((ratio - 4.0).abs() < 0.05, "{fitted:?}");
        assert!(fitted.max_http_connections >= 100, "{fitted:?}");
    }

    #[test]
    fn a_tiny_limit_still_leaves_one_of_each() {
        let fitted = DEFAULTS.fit(10);
        assert_eq!(
            (
                fitted.max_connections,
                fitted.max_pending_per_listener,
                fitted.max_http_connections
            ),
            (1, 1, 1)
        );
    }
}
