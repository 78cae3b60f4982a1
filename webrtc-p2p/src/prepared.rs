//! Offers made while the circuit they will go over is still being dialed.
//!
//! The peer with the smaller id dials both the circuit to a peer and,
//! once it is up, the `/webrtc` connection over it (`upgrade`). Making
//! the peer connection and its offer takes the page 10 to 40 ms (more
//! while it is busy with the circuit's own handshakes), and a dial made
//! it only once the signaling stream was about to open: the offer went
//! out up to 26 ms after the stream was ready (BENCHMARKS.md, "The
//! offer before the circuit"). So the behaviour starts the offer when
//! the circuit's dial starts, and the `/webrtc` dial takes it.
//!
//! An offer is dropped, which closes its peer connection, when the
//! circuit's dial fails, or when it is not taken within [`PREPARED_TTL`];
//! at most [`MAX_PREPARED`] wait at once.

use std::{future::Future, pin::Pin, task::Context, time::Duration};

use futures::{FutureExt as _, channel::oneshot};
use futures_timer::Delay;
use libp2p_core::PeerId;
use libp2p_swarm::ConnectionId;
use send_wrapper::SendWrapper;
use web_time::Instant;

use crate::{Error, exchange::LocalOffer, small_map::SmallMap};

/// How long a prepared offer waits for its dial. A circuit is up in tens
/// of milliseconds here and well under a few seconds across the world;
/// past that its dial failed, or the other peer dialed instead.
pub const PREPARED_TTL: Duration = Duration::from_secs(10);
/// Offers waiting at once; a new one drops the oldest. Each holds a peer
/// connection, of which a page gets a few hundred.
pub const MAX_PREPARED: usize = 4;

type Made = SendWrapper<oneshot::Receiver<Result<LocalOffer, Error>>>;

struct Entry {
    made_at: Instant,
    ice_servers: Vec<String>,
    /// The circuit dial it was made for.
    circuit: ConnectionId,
    offer: Made,
}

/// The offers being made or waiting, one per peer.
#[derive(Default)]
pub struct PreparedOffers {
    entries: SmallMap<PeerId, Entry>,
    /// Fires when the oldest entry expires.
    expiry: Option<Delay>,
}

/// Makes an offer in a task of its own, so that it goes on while nobody
/// polls for it. If nobody takes it, it is dropped with the receiver (or
/// on arrival), which closes its peer connection.
fn make(peer: PeerId, ice_servers: Vec<String>) -> Made {
    let (tx, rx) = oneshot::channel();
    wasm_bindgen_futures::spawn_local(async move {
        let _ = tx.send(LocalOffer::make(&ice_servers, peer).await);
    });
    SendWrapper::new(rx)
}

impl std::fmt::Debug for PreparedOffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedOffers")
            .field("waiting", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl PreparedOffers {
    /// Starts making an offer for a `/webrtc` dial to `peer` with
    /// `ice_servers`, as the swarm dials `circuit` to it, unless one is
    /// made or being made already with the same ICE servers.
    pub fn prepare(&mut self, peer: PeerId, ice_servers: Vec<String>, circuit: ConnectionId) {
        self.expire(Instant::now());
        if self
            .entries
            .get(&peer)
            .is_some_and(|entry| entry.ice_servers == ice_servers)
        {
            return;
        }
        self.entries.remove(&peer);
        if self.entries.len() >= MAX_PREPARED
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.made_at)
                .map(|(peer, _)| *peer)
        {
            self.entries.remove(&oldest);
        }
        let offer = make(peer, ice_servers.clone());
        self.entries.insert(
            peer,
            Entry {
                made_at: Instant::now(),
                ice_servers,
                circuit,
                offer,
            },
        );
        if self.expiry.is_none() {
            self.expiry = Some(Delay::new(PREPARED_TTL));
        }
    }

    /// The offer for a `/webrtc` dial to `peer`: the one prepared, if it
    /// is in time and for the same `ice_servers` (the page may have
    /// learned its relay's STUN server since), else one made now. It
    /// may still be in the making.
    pub fn take(
        &mut self,
        peer: PeerId,
        ice_servers: Vec<String>,
    ) -> impl Future<Output = Result<LocalOffer, Error>> + use<> {
        self.expire(Instant::now());
        let offer = match self.entries.remove(&peer) {
            Some(entry) if entry.ice_servers == ice_servers => entry.offer,
            _ => make(peer, ice_servers),
        };
        // The task making it never drops its sender unsent.
        offer.map(|made| made.unwrap_or(Err(Error::Closed)))
    }

    /// Drops the offer made for `circuit`, whose dial failed: no `/webrtc`
    /// dial will follow it.
    pub fn circuit_failed(&mut self, circuit: ConnectionId) {
        let peer = self
            .entries
            .iter()
            .find(|(_, entry)| entry.circuit == circuit)
            .map(|(peer, _)| *peer);
        if let Some(peer) = peer {
            self.entries.remove(&peer);
        }
    }

    /// Whether an offer for `peer` is prepared or being prepared.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.entries.contains_key(peer)
    }

    /// How many are waiting or being made.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops the offers past their time, on a timer; call from `poll`.
    pub fn poll_expiry(&mut self, cx: &mut Context<'_>) {
        while let Some(timer) = self.expiry.as_mut() {
            if Pin::new(timer).poll(cx).is_pending() {
                return;
            }
            let now = Instant::now();
            self.expire(now);
            self.expiry = self
                .entries
                .values()
                .map(|entry| entry.made_at + PREPARED_TTL)
                .min()
                .map(|at| Delay::new(at.saturating_duration_since(now)));
        }
    }

    fn expire(&mut self, now: Instant) {
        let stale: Vec<PeerId> = self
            .entries
            .iter()
            .filter(|(_, entry)| now.duration_since(entry.made_at) >= PREPARED_TTL)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in stale {
            self.entries.remove(&peer);
        }
    }
}
