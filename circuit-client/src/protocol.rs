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
    /// How long it is held from now: until the expiry the relay named.
    pub expires_in: Duration,
    /// When to renew it: [`renewal_delay`] of `expires_in`.
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
/// The latest a reservation is renewed, however far its expiry: a
/// browser's timer takes its delay as 32-bit milliseconds (24.8 days at
/// most; beyond, it fires at once or wraps), and a relay names the expiry.
pub const MAX_RENEWAL: Duration = Duration::from_secs(24 * 60 * 60);

/// When to renew a reservation that expires in `left`: three quarters of
/// the way there, within [`MIN_RENEWAL`] and [`MAX_RENEWAL`].
pub fn renewal_delay(left: Duration) -> Duration {
    (left - left / 4).clamp(MIN_RENEWAL, MAX_RENEWAL)
}

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
        expires_in: left,
        renew_in: renewal_delay(left),
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

#[cfg(test)]
mod tests {
    use std::{
        io,
        pin::Pin,
        task::{Context, Poll},
    };

    use futures::{AsyncRead, AsyncWrite, executor::block_on, io::Cursor};

    use super::*;

    /// A stream that reads `answer` and takes whatever is written.
    struct Answering {
        answer: Cursor<Vec<u8>>,
    }

    impl AsyncRead for Answering {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.answer).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Answering {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A relay's HOP STATUS OK holding a reservation that expires at
    /// `expire` (Unix seconds), length-prefixed.
    fn accepted_until(expire: u64) -> Vec<u8> {
        let mut expire_field = vec![0x08];
        let mut value = expire;
        while value >= 0x80 {
            expire_field.push(value as u8 | 0x80);
            value >>= 7;
        }
        expire_field.push(value as u8);
        // type STATUS, reservation { expire }, status OK.
        let mut message = vec![0x08, 0x02, 0x1a, expire_field.len() as u8];
        message.extend(expire_field);
        message.extend([0x28, 100]);
        let mut framed = vec![message.len() as u8];
        framed.extend(message);
        framed
    }

    fn reserve_answered(answer: Vec<u8>) -> Result<Reservation, ProtocolError> {
        let mut stream = Answering {
            answer: Cursor::new(answer),
        };
        block_on(reserve(&mut stream))
    }

    #[test]
    fn a_relays_far_or_past_expiry_neither_panics_nor_loops() {
        let far = reserve_answered(accepted_until(u64::MAX)).expect("accepted");
        assert_eq!(far.renew_in, MAX_RENEWAL);
        assert!(matches!(
            reserve_answered(accepted_until(1)),
            Err(ProtocolError::Expired)
        ));
        let in_an_hour = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            + 3600;
        let hour = reserve_answered(accepted_until(in_an_hour)).expect("accepted");
        assert!(
            hour.renew_in > Duration::from_secs(2690) && hour.renew_in <= Duration::from_secs(2700)
        );
    }

    #[test]
    fn a_reservation_is_renewed_three_quarters_of_the_way_within_bounds() {
        let hour = Duration::from_secs(3600);
        assert_eq!(renewal_delay(hour), Duration::from_secs(2700));
        assert_eq!(renewal_delay(Duration::from_millis(500)), MIN_RENEWAL);
        assert_eq!(renewal_delay(Duration::ZERO), MIN_RENEWAL);
        // A relay's expiry of u64::MAX seconds: no overflow, and a delay a
        // browser's timer can hold.
        assert_eq!(renewal_delay(Duration::from_secs(u64::MAX)), MAX_RENEWAL);
        assert_eq!(renewal_delay(Duration::MAX), MAX_RENEWAL);
        assert!(MAX_RENEWAL.as_millis() < i32::MAX as u128);
    }
}
