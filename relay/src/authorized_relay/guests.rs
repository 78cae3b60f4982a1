//! The circuits of guests: peers not in the authorized peers file, which
//! may not reserve but may still reach a listed peer through the relay
//! (`--authorized-peers` without `--authorized-circuits-only`).
//!
//! `libp2p-relay` cannot serve them: a connection's hop streams go to one
//! handler, and its handler cannot be told to refuse a reservation with
//! `PERMISSION_DENIED`. So a guest's connection has [`super::handler::GuestHop`],
//! and its circuit requests come here. They get the checks and limits
//! `libp2p-relay` applies to its own circuits, in the same order:
//!
//! 1. at most `--max-circuits` guest circuits at once, and
//!    `--max-circuits-per-peer` per guest (`RESOURCE_LIMIT_EXCEEDED`);
//!    these are a budget of their own, beside `libp2p-relay`'s;
//! 2. the per-IP circuit rate, a limiter of `libp2p-relay`'s own kind
//!    (`RESOURCE_LIMIT_EXCEEDED`);
//! 3. the destination holds a reservation (`NO_RESERVATION`).
//!
//! Then [`circuit::open`] asks the destination over the stop protocol and
//! [`circuit::bridge`] copies the bytes in a task of its own, within the
//! same duration and byte limits `libp2p-relay` gives its circuits.

use std::{
    collections::{HashMap, VecDeque},
    io,
    task::{Context, Poll},
    time::Instant,
};

use futures::{FutureExt as _, StreamExt as _, future::BoxFuture, stream::FuturesUnordered};
use libp2p::{Multiaddr, PeerId, Stream, relay};

use super::{
    circuit::{self, CircuitLimit, Refused, STOP_TIMEOUT},
    handler::REQUEST_TIMEOUT,
    protocol::{self, HopMessage, STOP_PROTOCOL, Status},
};

/// Limits on guests' circuits; the relay's circuit limits.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    pub circuit: CircuitLimit,
}

type Opening = BoxFuture<'static, (PeerId, PeerId, Result<(Stream, Stream), Refused>)>;
/// A circuit's bridge task, ending with its source, destination and how
/// it ended.
type Running = BoxFuture<'static, (PeerId, PeerId, io::Result<()>)>;

pub struct GuestCircuits {
    control: libp2p_stream::Control,
    limits: GuestLimits,
    rate_limiters: Vec<Box<dyn relay::RateLimiter>>,
    /// Reservations held, per peer: one per connection that holds one.
    /// Bounded by `libp2p-relay`'s reservation limit.
    reservations: HashMap<PeerId, usize>,
    /// Circuits opening or open, per source; bounded by `max_circuits`.
    per_source: HashMap<PeerId, usize>,
    opening: FuturesUnordered<Opening>,
    running: FuturesUnordered<Running>,
    /// Refusals being written; at most `max_circuits`, beyond which a
    /// refused stream is reset unanswered.
    refusing: FuturesUnordered<BoxFuture<'static, ()>>,
    /// Events for the swarm; each request adds at most one before the
    /// next poll drains them.
    events: VecDeque<relay::Event>,
}

impl std::fmt::Debug for GuestCircuits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestCircuits")
            .field("limits", &self.limits)
            .field("circuits", &self.circuits())
            .finish()
    }
}

impl GuestCircuits {
    pub fn new(
        control: libp2p_stream::Control,
        limits: GuestLimits,
        rate_limiters: Vec<Box<dyn relay::RateLimiter>>,
    ) -> Self {
        Self {
            control,
            limits,
            rate_limiters,
            reservations: HashMap::new(),
            per_source: HashMap::new(),
            opening: FuturesUnordered::new(),
            running: FuturesUnordered::new(),
            refusing: FuturesUnordered::new(),
            events: VecDeque::new(),
        }
    }

    /// Guest circuits opening or open.
    pub fn circuits(&self) -> usize {
        self.opening.len() + self.running.len()
    }

    /// Follows the reservations `libp2p-relay` grants: only a peer holding
    /// one can be a circuit's destination.
    pub fn on_relay_event(&mut self, event: &relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted {
                src_peer_id,
                renewed: false,
            } => *self.reservations.entry(*src_peer_id).or_default() += 1,
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                if let Some(count) = self.reservations.get_mut(src_peer_id) {
                    *count -= 1;
                    if *count == 0 {
                        self.reservations.remove(src_peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    /// A guest at `remote` asks for a circuit to `dst` on `hop`.
    pub fn on_request(&mut self, src: PeerId, remote: &Multiaddr, dst: PeerId, hop: Stream) {
        let from_source = self.per_source.get(&src).copied().unwrap_or(0);
        let at_limit = self.circuits() >= self.limits.max_circuits
            || from_source >= self.limits.max_circuits_per_peer;
        // Asked only within the limits, so a refused request uses no token.
        let rate_limited = at_limit
            || !self
                .rate_limiters
                .iter_mut()
                .all(|limiter| limiter.try_next(src, remote, Instant::now()));
        let refusal = if rate_limited {
            Some(Status::ResourceLimitExceeded)
        } else if !self.reservations.contains_key(&dst) {
            Some(Status::NoReservation)
        } else {
            None
        };
        if let Some(status) = refusal {
            self.refuse(src, dst, hop, status);
            return;
        }
        *self.per_source.entry(src).or_default() += 1;
        let mut control = self.control.clone();
        let limit = self.limits.circuit;
        self.opening.push(
            async move {
                let mut hop = hop;
                let stop = match tokio::time::timeout(
                    STOP_TIMEOUT,
                    control.open_stream(dst, STOP_PROTOCOL),
                )
                .await
                {
                    Ok(Ok(stop)) => Ok(stop),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err(format!("not opened within {STOP_TIMEOUT:?}")),
                };
                let opened = circuit::open(src, &mut hop, stop, limit).await;
                (src, dst, opened.map(|stop| (hop, stop)))
            }
            .boxed(),
        );
    }

    fn refuse(&mut self, src: PeerId, dst: PeerId, mut hop: Stream, status: Status) {
        tracing::info!(%src, %dst, ?status, "guest circuit refused");
        self.events.push_back(relay::Event::CircuitReqDenied {
            src_peer_id: src,
            dst_peer_id: dst,
            status: status_code(status),
        });
        if self.refusing.len() >= self.limits.max_circuits {
            return; // Dropping `hop` resets it.
        }
        self.refusing.push(
            async move {
                let answer = async {
                    let _ = protocol::write_message(&mut hop, &HopMessage::answer(status)).await;
                    let _ = futures::AsyncWriteExt::close(&mut hop).await;
                };
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer).await;
            }
            .boxed(),
        );
    }

    fn release(&mut self, src: PeerId) {
        if let Some(count) = self.per_source.get_mut(&src) {
            *count -= 1;
            if *count == 0 {
                self.per_source.remove(&src);
            }
        }
    }

    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<relay::Event> {
        while let Poll::Ready(Some(())) = self.refusing.poll_next_unpin(cx) {}
        while let Poll::Ready(Some((src, dst, opened))) = self.opening.poll_next_unpin(cx) {
            match opened {
                Ok((hop, stop)) => {
                    tracing::debug!(%src, %dst, "guest circuit opened");
                    let limit = self.limits.circuit;
                    // A task of its own: the bytes need not wait for the
                    // swarm's task.
                    let task = tokio::spawn(circuit::bridge(hop, stop, limit));
                    self.running.push(
                        task.map(move |ended| {
                            (
                                src,
                                dst,
                                ended.unwrap_or_else(|error| Err(io::Error::other(error))),
                            )
                        })
                        .boxed(),
                    );
                    self.events.push_back(relay::Event::CircuitReqAccepted {
                        src_peer_id: src,
                        dst_peer_id: dst,
                    });
                }
                Err(refused) => {
                    tracing::info!(%src, %dst, %refused, "guest circuit failed");
                    self.release(src);
                    if refused.status != Status::Ok {
                        self.events.push_back(relay::Event::CircuitReqDenied {
                            src_peer_id: src,
                            dst_peer_id: dst,
                            status: status_code(refused.status),
                        });
                    }
                }
            }
        }
        while let Poll::Ready(Some((src, dst, result))) = self.running.poll_next_unpin(cx) {
            self.release(src);
            self.events.push_back(relay::Event::CircuitClosed {
                src_peer_id: src,
                dst_peer_id: dst,
                error: result.err(),
            });
        }
        match self.events.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}

fn status_code(status: Status) -> relay::StatusCode {
    match status {
        Status::Ok => relay::StatusCode::OK,
        Status::ReservationRefused => relay::StatusCode::ReservationRefused,
        Status::ResourceLimitExceeded => relay::StatusCode::ResourceLimitExceeded,
        Status::PermissionDenied => relay::StatusCode::PermissionDenied,
        Status::ConnectionFailed => relay::StatusCode::ConnectionFailed,
        Status::NoReservation => relay::StatusCode::NoReservation,
        Status::MalformedMessage => relay::StatusCode::MalformedMessage,
        Status::UnexpectedMessage => relay::StatusCode::UnexpectedMessage,
    }
}
