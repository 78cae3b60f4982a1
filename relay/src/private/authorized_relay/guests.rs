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
//! Then [`circuit::handshake`] asks the destination over the stop protocol,
//! on a stream [`super::stop_handler::StopOpener`] opens on one of its
//! connections, and [`circuit::accept_and_bridge`] answers the source and
//! copies the bytes in a task of its own, within the duration and byte
//! limits `libp2p-relay` gives its circuits.
//!
//! A destination holds its reservation on one connection and refuses a
//! circuit on any other (`NO_RESERVATION`), and no public event of
//! `libp2p-relay` says which one it is: its connections are asked in turn,
//! oldest first, at most `--max-connections-per-peer` of them.

use std::{
    collections::{HashMap, VecDeque},
    io,
    task::{Context, Poll},
    time::Instant,
};

use futures::{
    AsyncRead, AsyncWrite, FutureExt as _, StreamExt as _, future::BoxFuture,
    stream::FuturesUnordered,
};
use libp2p::{Multiaddr, PeerId, Stream, relay, swarm::ConnectionId};

use super::{
    circuit::{self, CircuitLimit},
    handler::REQUEST_TIMEOUT,
    protocol::{self, HopMessage, Status},
    stop_handler::StopStream,
};

/// Limits on guests' circuits; the relay's circuit limits.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    pub circuit: CircuitLimit,
}

/// What the behaviour must do for the guests' circuits.
#[derive(Debug)]
pub enum GuestAction {
    /// Tell the swarm.
    Event(relay::Event),
    /// Ask `connection`'s [`super::stop_handler::StopOpener`] for a stop
    /// stream known by `id`.
    OpenStop {
        peer: PeerId,
        connection: ConnectionId,
        id: u64,
    },
}

/// A circuit not yet accepted by its destination.
struct Opening<S> {
    src: PeerId,
    dst: PeerId,
    hop: S,
    /// The destination's connection asked now.
    asking: ConnectionId,
    /// Those left to ask if it refuses, the next one last.
    untried: Vec<ConnectionId>,
    /// Why the last connection asked refused.
    last_refusal: String,
    /// Which of the destination's connections is asked: a handshake that
    /// ends after the circuit moved on to the next one is ignored.
    attempt: u32,
}

type Handshake<S> = BoxFuture<'static, (u64, u32, Result<S, String>)>;
/// A circuit's task, ending with its source, destination and how it ended.
type Running = BoxFuture<'static, (PeerId, PeerId, io::Result<()>)>;

/// Guests' circuits; `S` is the stream type, libp2p's but for tests.
pub struct GuestCircuits<S = Stream> {
    limits: GuestLimits,
    rate_limiters: Vec<Box<dyn relay::RateLimiter>>,
    /// Reservations held, per peer: one per connection that holds one.
    /// Bounded by `libp2p-relay`'s reservation limit.
    reservations: HashMap<PeerId, usize>,
    /// Circuits opening or open, per source; bounded by `max_circuits`.
    per_source: HashMap<PeerId, usize>,
    next_id: u64,
    /// Circuits waiting for a stop stream or its handshake, by id.
    opening: HashMap<u64, Opening<S>>,
    handshakes: FuturesUnordered<Handshake<S>>,
    running: FuturesUnordered<Running>,
    /// Refusals being written; at most `max_circuits`, beyond which a
    /// refused stream is reset unanswered.
    refusing: FuturesUnordered<BoxFuture<'static, ()>>,
    /// For the swarm; each request, stream or closed connection adds at
    /// most two per circuit concerned before the next poll drains them.
    actions: VecDeque<GuestAction>,
}

impl<S> std::fmt::Debug for GuestCircuits<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestCircuits")
            .field("limits", &self.limits)
            .field("opening", &self.opening.len())
            .field("running", &self.running.len())
            .finish()
    }
}

impl<S> GuestCircuits<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(limits: GuestLimits, rate_limiters: Vec<Box<dyn relay::RateLimiter>>) -> Self {
        Self {
            limits,
            rate_limiters,
            reservations: HashMap::new(),
            per_source: HashMap::new(),
            next_id: 0,
            opening: HashMap::new(),
            handshakes: FuturesUnordered::new(),
            running: FuturesUnordered::new(),
            refusing: FuturesUnordered::new(),
            actions: VecDeque::new(),
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

    /// A guest at `remote` asks for a circuit to `dst` on `hop`;
    /// `dst_connections` are the destination's connections that
    /// `libp2p-relay` serves.
    pub fn on_request(
        &mut self,
        src: PeerId,
        remote: &Multiaddr,
        dst: PeerId,
        hop: S,
        mut dst_connections: Vec<ConnectionId>,
    ) {
        let from_source = self.per_source.get(&src).copied().unwrap_or(0);
        let at_limit = self.circuits() >= self.limits.max_circuits
            || from_source >= self.limits.max_circuits_per_peer;
        // Asked only within the limits, so a refused request uses no token.
        let rate_limited = at_limit
            || !self
                .rate_limiters
                .iter_mut()
                .all(|limiter| limiter.try_next(src, remote, Instant::now()));
        if rate_limited {
            self.refuse(
                src,
                dst,
                hop,
                Status::ResourceLimitExceeded,
                "over the limits",
            );
            return;
        }
        // Oldest first (popped from the end): a peer reserves on its first
        // connection, and later ones (the relay's AutoNAT dial-backs) hold
        // no reservation.
        dst_connections.sort_unstable_by(|a, b| b.cmp(a));
        let asking = match dst_connections.pop() {
            Some(asking) if self.reservations.contains_key(&dst) => asking,
            _ => {
                self.refuse(src, dst, hop, Status::NoReservation, "no reservation");
                return;
            }
        };
        *self.per_source.entry(src).or_default() += 1;
        let id = self.next_id;
        self.next_id += 1;
        self.opening.insert(
            id,
            Opening {
                src,
                dst,
                hop,
                asking,
                untried: dst_connections,
                last_refusal: String::new(),
                attempt: 0,
            },
        );
        self.actions.push_back(GuestAction::OpenStop {
            peer: dst,
            connection: asking,
            id,
        });
    }

    /// A stop stream asked for with [`GuestAction::OpenStop`].
    pub fn on_stop_stream(&mut self, StopStream { id, stream }: StopStream<S>) {
        let Some(opening) = self.opening.get(&id) else {
            return; // Given up on already: dropping the stream resets it.
        };
        match stream {
            Ok(mut stop) => {
                let (src, attempt, limit) = (opening.src, opening.attempt, self.limits.circuit);
                self.handshakes.push(
                    async move {
                        let accepted = circuit::handshake(src, &mut stop, limit).await;
                        (id, attempt, accepted.map(|()| stop))
                    }
                    .boxed(),
                );
            }
            Err(error) => self.try_next(id, format!("cannot open a stop stream: {error}")),
        }
    }

    /// A connection closed: circuits waiting on it ask the next one.
    pub fn on_connection_closed(&mut self, connection: ConnectionId) {
        let waiting: Vec<u64> = self
            .opening
            .iter()
            .filter(|(_, opening)| opening.asking == connection)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.try_next(id, "the destination's connection closed".to_owned());
        }
    }

    /// The destination's connection asked for circuit `id` did not take
    /// it: asks the next, or fails the circuit when none is left.
    fn try_next(&mut self, id: u64, refusal: String) {
        let Some(opening) = self.opening.get_mut(&id) else {
            return;
        };
        tracing::debug!(src = %opening.src, dst = %opening.dst, connection = ?opening.asking, %refusal, "a destination's connection did not take a guest circuit");
        opening.last_refusal = refusal;
        if let Some(next) = opening.untried.pop() {
            opening.asking = next;
            opening.attempt += 1;
            let peer = opening.dst;
            self.actions.push_back(GuestAction::OpenStop {
                peer,
                connection: next,
                id,
            });
            return;
        }
        let Some(opening) = self.opening.remove(&id) else {
            return;
        };
        self.release(opening.src);
        // libp2p-relay's answer when the destination does not take a
        // circuit.
        self.refuse(
            opening.src,
            opening.dst,
            opening.hop,
            Status::ConnectionFailed,
            &opening.last_refusal,
        );
    }

    fn refuse(&mut self, src: PeerId, dst: PeerId, mut hop: S, status: Status, reason: &str) {
        // Counted (and logged at a rate) as the relay event below.
        tracing::debug!(%src, %dst, ?status, %reason, "guest circuit refused");
        self.actions
            .push_back(GuestAction::Event(relay::Event::CircuitReqDenied {
                src_peer_id: src,
                dst_peer_id: dst,
                status: status_code(status),
            }));
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

    fn on_handshake(&mut self, id: u64, attempt: u32, accepted: Result<S, String>) {
        let current = self
            .opening
            .get(&id)
            .is_some_and(|opening| opening.attempt == attempt);
        if !current {
            return; // Dropping the stream resets it.
        }
        let stop = match accepted {
            Ok(stop) => stop,
            Err(refusal) => return self.try_next(id, refusal),
        };
        let Some(Opening { src, dst, hop, .. }) = self.opening.remove(&id) else {
            return;
        };
        tracing::debug!(%src, %dst, "guest circuit opened");
        // A task of its own: the bytes need not wait for the swarm's task.
        let task = tokio::spawn(circuit::accept_and_bridge(hop, stop, self.limits.circuit));
        self.running.push(
            task.map(move |ended| {
                let ended = ended.unwrap_or_else(|error| Err(io::Error::other(error)));
                (src, dst, ended)
            })
            .boxed(),
        );
        self.actions
            .push_back(GuestAction::Event(relay::Event::CircuitReqAccepted {
                src_peer_id: src,
                dst_peer_id: dst,
            }));
    }

    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<GuestAction> {
        while let Poll::Ready(Some(())) = self.refusing.poll_next_unpin(cx) {}
        while let Poll::Ready(Some((id, attempt, accepted))) = self.handshakes.poll_next_unpin(cx) {
            self.on_handshake(id, attempt, accepted);
        }
        while let Poll::Ready(Some((src, dst, result))) = self.running.poll_next_unpin(cx) {
            self.release(src);
            self.actions
                .push_back(GuestAction::Event(relay::Event::CircuitClosed {
                    src_peer_id: src,
                    dst_peer_id: dst,
                    error: result.err(),
                }));
        }
        match self.actions.pop_front() {
            Some(action) => Poll::Ready(action),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::future::poll_fn;

    use super::*;
    use crate::private::authorized_relay::protocol::StopMessage;
    use crate::private::authorized_relay::test_pipe::{Pipe, pipe};

    fn guests(max_circuits_per_peer: usize) -> GuestCircuits<Pipe> {
        GuestCircuits::new(
            GuestLimits {
                max_circuits: 8,
                max_circuits_per_peer,
                circuit: CircuitLimit {
                    duration: Duration::from_secs(60),
                    bytes: 1 << 20,
                },
            },
            Vec::new(),
        )
    }

    fn reserved(guests: &mut GuestCircuits<Pipe>, peer: PeerId) {
        guests.on_relay_event(&relay::Event::ReservationReqAccepted {
            src_peer_id: peer,
            renewed: false,
        });
    }

    async fn next_action(guests: &mut GuestCircuits<Pipe>) -> GuestAction {
        tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| guests.poll(cx)))
            .await
            .expect("an action within 5 s")
    }

    async fn expect_open_stop(guests: &mut GuestCircuits<Pipe>) -> (ConnectionId, u64) {
        match next_action(guests).await {
            GuestAction::OpenStop { connection, id, .. } => (connection, id),
            other => panic!("expected a stop stream request, got {other:?}"),
        }
    }

    async fn expect_event(guests: &mut GuestCircuits<Pipe>) -> relay::Event {
        match next_action(guests).await {
            GuestAction::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Plays a destination's connection: answers the stop request `status`.
    fn destination(status: Status) -> Pipe {
        let (relay_side, mut dst_side) = pipe();
        tokio::spawn(async move {
            let _: StopMessage = protocol::read_message(&mut dst_side)
                .await
                .expect("stop request");
            protocol::write_message(&mut dst_side, &StopMessage::answer(status))
                .await
                .expect("answer");
            // Keep the circuit open until the relay ends it.
            let mut rest = Vec::new();
            let _ = futures::AsyncReadExt::read_to_end(&mut dst_side, &mut rest).await;
        });
        relay_side
    }

    async fn answer_to_source(hop: &mut Pipe) -> Option<i32> {
        let answer: HopMessage = protocol::read_message(hop).await.expect("answer");
        answer.status
    }

    #[tokio::test]
    async fn each_connection_of_the_destination_is_asked_oldest_first_until_one_takes_the_circuit()
    {
        let mut guests = guests(4);
        let (src, dst) = (PeerId::random(), PeerId::random());
        reserved(&mut guests, dst);
        let (older, newer) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        let (hop, mut source) = pipe();
        guests.on_request(src, &Multiaddr::empty(), dst, hop, vec![newer, older]);

        let (asked, id) = expect_open_stop(&mut guests).await;
        assert_eq!(asked, older, "the oldest connection first");
        guests.on_stop_stream(StopStream {
            id,
            stream: Ok(destination(Status::NoReservation)),
        });
        let (asked, id) = expect_open_stop(&mut guests).await;
        assert_eq!(asked, newer, "then the next one");
        guests.on_stop_stream(StopStream {
            id,
            stream: Ok(destination(Status::Ok)),
        });
        assert!(matches!(
            expect_event(&mut guests).await,
            relay::Event::CircuitReqAccepted { src_peer_id, dst_peer_id }
                if src_peer_id == src && dst_peer_id == dst
        ));
        assert_eq!(answer_to_source(&mut source).await, Some(Status::Ok as i32));
    }

    #[tokio::test]
    async fn a_circuit_no_connection_takes_fails_with_connection_failed() {
        let mut guests = guests(4);
        let (src, dst) = (PeerId::random(), PeerId::random());
        reserved(&mut guests, dst);
        let (only, closing) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        let (hop, mut source) = pipe();
        guests.on_request(src, &Multiaddr::empty(), dst, hop, vec![only, closing]);

        let (_, id) = expect_open_stop(&mut guests).await;
        guests.on_stop_stream(StopStream {
            id,
            stream: Err("protocol not supported".to_owned()),
        });
        let (asked, _) = expect_open_stop(&mut guests).await;
        guests.on_connection_closed(asked);
        assert!(matches!(
            expect_event(&mut guests).await,
            relay::Event::CircuitReqDenied {
                status: relay::StatusCode::ConnectionFailed,
                ..
            }
        ));
        assert_eq!(
            answer_to_source(&mut source).await,
            Some(Status::ConnectionFailed as i32)
        );
        assert_eq!(guests.circuits(), 0, "nothing left behind");
    }

    #[tokio::test]
    async fn a_destination_without_a_reservation_is_refused_at_once() {
        let mut guests = guests(4);
        let (hop, mut source) = pipe();
        let connected = vec![ConnectionId::new_unchecked(1)];
        guests.on_request(
            PeerId::random(),
            &Multiaddr::empty(),
            PeerId::random(),
            hop,
            connected,
        );
        assert!(matches!(
            expect_event(&mut guests).await,
            relay::Event::CircuitReqDenied {
                status: relay::StatusCode::NoReservation,
                ..
            }
        ));
        assert_eq!(
            answer_to_source(&mut source).await,
            Some(Status::NoReservation as i32)
        );
    }

    #[tokio::test]
    async fn a_guest_past_its_circuit_limit_is_refused_until_one_closes() {
        let mut guests = guests(1);
        let (src, dst) = (PeerId::random(), PeerId::random());
        reserved(&mut guests, dst);
        let connection = ConnectionId::new_unchecked(1);
        let (hop, _first_source) = pipe();
        guests.on_request(src, &Multiaddr::empty(), dst, hop, vec![connection]);
        let (_, first) = expect_open_stop(&mut guests).await;

        let (hop, mut second_source) = pipe();
        guests.on_request(src, &Multiaddr::empty(), dst, hop, vec![connection]);
        assert!(matches!(
            expect_event(&mut guests).await,
            relay::Event::CircuitReqDenied {
                status: relay::StatusCode::ResourceLimitExceeded,
                ..
            }
        ));
        assert_eq!(
            answer_to_source(&mut second_source).await,
            Some(Status::ResourceLimitExceeded as i32)
        );

        guests.on_stop_stream(StopStream {
            id: first,
            stream: Err("gone".to_owned()),
        });
        expect_event(&mut guests).await; // The first one fails...
        let (hop, _third_source) = pipe();
        guests.on_request(src, &Multiaddr::empty(), dst, hop, vec![connection]);
        expect_open_stop(&mut guests).await; // ...and frees its place.
    }
}
