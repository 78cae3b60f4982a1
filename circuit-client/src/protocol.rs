//! The three exchanges of the client, as plain async functions over one
//! stream each: a reservation and a CONNECT on a HOP stream we opened, the
//! answer to a relay's CONNECT on a STOP stream it opened.

use std::time::Duration;

use futures::{AsyncRead, AsyncWrite, FutureExt as _, future};
use futures_timer::Delay;
use libp2p_core::Multiaddr;
use libp2p_identity::PeerId;
use libp2p_swarm::Stream;
use web_time::{SystemTime, UNIX_EPOCH};

use crate::proto::{self, ReadError, Status};

/// Why an exchange with the relay failed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The relay said no; its status names why.
    #[error("the relay answered {0}")]
    Refused(Status),
    #[error("cannot open a stream to the relay")]
    Open(#[source] libp2p_stream::OpenStreamError),
    #[error("the relay did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("the relay's answer could not be read")]
    Read(#[from] ReadError),
    #[error("the relay's answer has no status")]
    NoStatus,
    #[error("the relay accepted, but its answer has no reservation or expiry")]
    NoReservation,
    #[error("the reservation has already expired")]
    Expired,
}

impl From<std::io::Error> for ProtocolError {
    fn from(error: std::io::Error) -> Self {
        Self::Read(ReadError::Io(error))
    }
}

/// An accepted reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// When to renew it: three quarters of the way to its expiry, and
    /// never sooner than [`MIN_RENEWAL`].
    pub renew_in: Duration,
    /// The relay's public addresses (`/p2p/<relay>` included, no
    /// `/p2p-circuit`), as it sent them; those that do not parse are left
    /// out.
    pub addrs: Vec<Multiaddr>,
}

/// The soonest a reservation is renewed: a relay that grants a second
/// (or an expiry in the past, which is an error) cannot make the client
/// ask in a loop.
pub const MIN_RENEWAL: Duration = Duration::from_secs(1);

/// Runs `exchange` with a deadline.
pub(crate) async fn within<T>(
    timeout: Duration,
    exchange: impl Future<Output = Result<T, ProtocolError>>,
) -> Result<T, ProtocolError> {
    let exchange = std::pin::pin!(exchange);
    match future::select(exchange, Delay::new(timeout).fuse()).await {
        future::Either::Left((result, _)) => result,
        future::Either::Right(_) => Err(ProtocolError::Timeout(timeout)),
    }
}

/// Sends RESERVE and reads the relay's answer. The stream is done after.
pub async fn reserve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Reservation, ProtocolError> {
    proto::write_message(stream, &proto::hop_reserve()).await?;
    let answer = proto::decode_hop_status(&proto::read_message(stream).await?)?;
    match answer.status {
        Some(Status::OK) => {}
        Some(status) => return Err(ProtocolError::Refused(status)),
        None => return Err(ProtocolError::NoStatus),
    }
    let expire = answer
        .expire
        .filter(|_| answer.has_reservation)
        .ok_or(ProtocolError::NoReservation)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_secs(expire)
        .checked_sub(now)
        .filter(|left| !left.is_zero())
        .ok_or(ProtocolError::Expired)?;
    let addrs = answer
        .addrs
        .into_iter()
        .filter_map(|bytes| Multiaddr::try_from(bytes).ok())
        .collect();
    Ok(Reservation {
        renew_in: (left * 3 / 4).max(MIN_RENEWAL),
        addrs,
    })
}

/// Sends CONNECT for `destination` and reads the relay's answer; on OK the
/// stream is the relayed connection.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    destination: PeerId,
) -> Result<(), ProtocolError> {
    proto::write_message(stream, &proto::hop_connect(&destination.to_bytes())).await?;
    let answer = proto::decode_hop_status(&proto::read_message(stream).await?)?;
    match answer.status {
        Some(Status::OK) => Ok(()),
        Some(status) => Err(ProtocolError::Refused(status)),
        None => Err(ProtocolError::NoStatus),
    }
}

/// Reads the relay's CONNECT on a STOP stream: who is connecting.
pub async fn read_stop_connect(stream: &mut Stream) -> Result<PeerId, ProtocolError> {
    let connect = proto::decode_stop_connect(&proto::read_message(stream).await?)?;
    PeerId::from_bytes(&connect.peer_id)
        .map_err(|_| ProtocolError::Read(ReadError::Malformed("the CONNECT's peer id is invalid")))
}

/// Answers a STOP CONNECT with `status`; on OK the stream is the relayed
/// connection.
pub async fn answer_stop(stream: &mut Stream, status: Status) -> Result<(), ProtocolError> {
    proto::write_message(stream, &proto::stop_status(status)).await?;
    Ok(())
}
