//! A lean circuit relay v2 client, written from the libp2p spec
//! (`relay/circuit-v2.md`): what a leaf peer needs to be reached through
//! a relay and to reach others through one.
//!
//! - **Reservations**: [`Transport::listen_on`] with
//!   `<relay addr>/p2p/<relay>/p2p-circuit` sends RESERVE on a HOP stream;
//!   once the relay accepts, the listener reports this peer's circuit
//!   addresses (each address the relay advertises, then
//!   `/p2p-circuit/p2p/<us>`), and renews the reservation three quarters
//!   of the way to its expiry (within a day: [`protocol::MAX_RENEWAL`]).
//!   The accepted reservation's HOP stream is held, which keeps the
//!   connection to the relay open while the reservation lasts, as the spec
//!   asks of a client. A refusal closes the listener with an [`Error`]
//!   that keeps the relay's status (`RESOURCE_LIMIT_EXCEEDED`,
//!   `PERMISSION_DENIED`, ...); a renewal that fails otherwise (a timeout,
//!   a broken stream) is tried again every [`RENEWAL_RETRY`] while the
//!   reservation holds. The listener closes (without an error)
//!   when the last connection to the relay does, as the reservation goes
//!   with it; when one of several closes, the reservation is renewed at
//!   once, in case it was held on that one.
//! - **Inbound circuits**: the relay's STOP CONNECT is answered OK and the
//!   stream becomes an incoming connection of the listener on that relay
//!   (local address the listened address, send-back address
//!   `<listened address>/p2p/<source>`: the source's circuit through that
//!   relay, where rust-libp2p's client gives `/p2p/<source>` alone). STOP
//!   streams from any other peer are dropped unread.
//! - **Outbound circuits**: [`Transport::dial`] of
//!   `<relay addr>/p2p/<relay>/p2p-circuit/p2p/<destination>` sends HOP
//!   CONNECT; on OK the stream is the connection.
//!
//! It has no connection handler. Streams are opened and accepted through
//! a `libp2p_stream::Control` the caller already runs (the page: the one
//! libp2p-stream behaviour, webrtc-p2p's), and [`Behaviour`] has
//! `dummy::ConnectionHandler` so that it can run alongside another
//! behaviour without a handler in the connection's chain (the page:
//! `libp2p_webrtc_p2p::alongside::Alongside`). The behaviour watches the
//! relays' connections, dials a relay an operation goes through unless
//! connected or dialing (libp2p-stream dials too, but by peer id alone and
//! one peer at a time), confirms the reservation's
//! address as external (as rust-libp2p's client does), and reports
//! [`Event`]s.
//!
//! Not here: vouchers are read past and not checked (the spec calls them
//! advisory), limits are not reported, no active relay (`Peer.addrs`), no
//! DCUtR. Bounds: messages of at most [`proto::MAX_MESSAGE_BYTES`], every
//! exchange under a timeout ([`RESERVE_TIMEOUT`], [`CONNECT_TIMEOUT`],
//! [`STOP_TIMEOUT`]), at most [`MAX_PENDING_STOPS`] inbound circuits in
//! their handshake (more are dropped), [`MAX_LISTENERS`] listeners,
//! [`MAX_DIAL_HINTS`] relay addresses remembered for dials,
//! [`proto::MAX_RESERVATION_ADDRS`] addresses of a reservation.

mod behaviour;
pub mod proto;
pub mod protocol;
mod transport;

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex, MutexGuard},
    task::Waker,
    time::Duration,
};

use libp2p_core::Multiaddr;
use libp2p_identity::PeerId;
use libp2p_swarm::{
    StreamProtocol, ToSwarm,
    dial_opts::{DialOpts, PeerCondition},
};

pub use behaviour::Behaviour;
pub use protocol::ProtocolError;
pub use transport::Transport;

pub const HOP: StreamProtocol = StreamProtocol::new("/libp2p/circuit/relay/0.2.0/hop");
pub const STOP: StreamProtocol = StreamProtocol::new("/libp2p/circuit/relay/0.2.0/stop");

/// A reservation's exchange, opening the stream included (which may dial
/// the relay).
pub const RESERVE_TIMEOUT: Duration = Duration::from_secs(20);
/// A CONNECT's exchange: the relay opens its STOP stream to the
/// destination and waits for its answer before it answers.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A renewal that failed on the way (a timeout, a broken stream; not a
/// refusal) is tried again this much later, while the reservation holds.
pub const RENEWAL_RETRY: Duration = Duration::from_secs(5);
/// Reading a relay's STOP CONNECT and answering it.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Inbound circuits in their STOP handshake at once; a relay's streams
/// beyond are dropped.
pub const MAX_PENDING_STOPS: usize = 8;
/// Relays listened through at once.
pub const MAX_LISTENERS: usize = 8;
/// Relay addresses remembered for libp2p-stream's dials (the oldest is
/// forgotten first).
pub const MAX_DIAL_HINTS: usize = 16;
/// Reports waiting for the swarm to poll the behaviour (more are dropped).
const MAX_REPORTS: usize = 64;

/// What the client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `relay` accepted a reservation: the first one of a listener
    /// (`renewal: false`) or a renewal.
    ReservationAccepted { relay: PeerId, renewal: bool },
}

/// Why the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reservation was refused or failed; a renewal's failure too.
    #[error("the reservation failed")]
    Reservation(#[source] ProtocolError),
    #[error("the circuit through the relay could not be opened")]
    Connect(#[source] ProtocolError),
    #[error("cannot accept circuits: {STOP} is already accepted through this stream control")]
    StopTaken,
    #[error("listening through {MAX_LISTENERS} relays already")]
    TooManyListeners,
}

/// A client's transport and behaviour, sharing their state. `local` is
/// this peer (its circuit addresses end in it); `control` opens and
/// accepts the HOP and STOP streams.
pub fn new(local: PeerId, control: libp2p_stream::Control) -> (Transport, Behaviour) {
    let shared = Arc::new(Mutex::new(Shared::default()));
    (
        Transport::new(local, control, shared.clone()),
        Behaviour::new(shared),
    )
}

/// What the transport and the behaviour tell each other.
#[derive(Default)]
struct Shared {
    /// Where to dial each relay an operation is under way through.
    dial_hints: VecDeque<(PeerId, Multiaddr)>,
    /// The relays listened through: their connections are watched.
    watched: Vec<PeerId>,
    /// Connections of watched relays that closed since the transport last
    /// looked, and whether each was the relay's last.
    closed: Vec<(PeerId, bool)>,
    /// For the behaviour to hand the swarm.
    reports: VecDeque<ToSwarm<Event, Infallible>>,
    behaviour_waker: Option<Waker>,
    transport_waker: Option<Waker>,
}

impl Shared {
    fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
        shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where `relay` is, for an operation through it about to open a
    /// stream. Dials it there unless connected or dialing: libp2p-stream
    /// dials an unconnected peer too, but one at a time (a second request
    /// before its behaviour's next poll is dropped, and its stream waits
    /// for the exchange's timeout).
    fn hint(&mut self, relay: PeerId, addr: Multiaddr) {
        if addr.is_empty() {
            return;
        }
        self.dial_hints.retain(|(peer, _)| *peer != relay);
        if self.dial_hints.len() >= MAX_DIAL_HINTS {
            self.dial_hints.pop_front();
        }
        self.dial_hints.push_back((relay, addr.clone()));
        // Refused at once by the swarm when connected or dialing, which
        // no behaviour reads as a failure.
        self.report(ToSwarm::Dial {
            opts: DialOpts::peer_id(relay)
                .addresses(vec![addr])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
        });
    }

    fn report(&mut self, report: ToSwarm<Event, Infallible>) {
        if self.reports.len() >= MAX_REPORTS {
            tracing::warn!("circuit client: the swarm is not taking reports; one dropped");
            return;
        }
        self.reports.push_back(report);
        if let Some(waker) = self.behaviour_waker.take() {
            waker.wake();
        }
    }
}
