//! One guest circuit on the wire: the stop handshake with the destination,
//! the answer to the source, then the bytes both ways within the limit.
//! Refusals are written by the caller, which may still try another of the
//! destination's connections.
//!
//! The same steps `libp2p-relay` takes for the circuits it serves
//! (libp2p/specs `relay/circuit-v2.md`, "Connection initiation").

use std::{
    io,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::PeerId;

use super::protocol::{self, HopMessage, Limit, ReadError, Status, StopMessage};

/// How long the destination may take to accept a circuit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What a circuit may carry before the relay ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitLimit {
    pub duration: Duration,
    /// Both directions together.
    pub bytes: u64,
}

impl CircuitLimit {
    fn to_wire(self) -> Limit {
        Limit {
            duration: Some(u32::try_from(self.duration.as_secs()).unwrap_or(u32::MAX)),
            data: Some(self.bytes),
        }
    }
}

/// Asks a destination, on `stop`, to accept a circuit from `src`; `Err`
/// says why it did not.
pub async fn handshake(
    src: PeerId,
    stop: &mut (impl AsyncRead + AsyncWrite + Unpin),
    limit: CircuitLimit,
) -> Result<(), String> {
    let asked = async {
        protocol::write_message(stop, &StopMessage::connect(src, limit.to_wire()))
            .await
            .map_err(|error| format!("writing the stop request: {error}"))?;
        match protocol::read_stop_answer(stop).await {
            Ok(Ok(Status::Ok)) => Ok(()),
            Ok(Ok(status)) => Err(format!("the destination refused with {status:?}")),
            Ok(Err(number)) => Err(format!("the destination refused with status {number}")),
            Err(ReadError::Io(error)) => Err(format!("reading the destination's answer: {error}")),
            Err(error) => {
                let answer = StopMessage::answer(Status::MalformedMessage);
                let _ = protocol::write_message(stop, &answer).await;
                Err(format!("the destination's answer: {error}"))
            }
        }
    };
    match tokio::time::timeout(STOP_TIMEOUT, asked).await {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "no answer from the destination within {STOP_TIMEOUT:?}"
        )),
    }
}

/// Tells the source its circuit is open, then carries it: see [`bridge`].
pub async fn accept_and_bridge<H, S>(mut hop: H, stop: S, limit: CircuitLimit) -> io::Result<()>
where
    H: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let answer = HopMessage::accepted(limit.to_wire());
    match tokio::time::timeout(STOP_TIMEOUT, protocol::write_message(&mut hop, &answer)).await {
        Ok(written) => written?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the source did not take the answer",
            ));
        }
    }
    bridge(hop, stop, limit).await
}

/// Copies bytes both ways until both sides have closed, for at most
/// `limit.duration` and `limit.bytes` in all, as `libp2p-relay` counts its
/// own circuits. Past either limit the circuit fails, and dropping its
/// streams resets them.
pub async fn bridge<A, B>(a: A, b: B, limit: CircuitLimit) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let budget = AtomicU64::new(limit.bytes);
    let (a_read, a_write) = a.split();
    let (b_read, b_write) = b.split();
    let both_ways = futures::future::try_join(
        pump(a_read, b_write, &budget),
        pump(b_read, a_write, &budget),
    );
    match tokio::time::timeout(limit.duration, both_ways).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("circuit reached its {:?} limit", limit.duration),
        )),
    }
}

/// Bytes read from one side before they are written to the other.
const PUMP_BUFFER_BYTES: usize = 16 * 1024;

/// Copies `from` to `to`, taking what it carries from `budget`, and closes
/// `to` at the end of `from`.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    budget: &AtomicU64,
) -> io::Result<()> {
    let mut buffer = vec![0; PUMP_BUFFER_BYTES];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return to.close().await;
        }
        let wanted = read as u64;
        let granted = budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(wanted))
            })
            .unwrap_or(0)
            .min(wanted);
        // `granted` is at most `read`, a `usize`.
        to.write_all(&buffer[..granted as usize]).await?;
        if granted < wanted {
            to.flush().await?;
            return Err(io::Error::other("circuit reached its byte limit"));
        }
        to.flush().await?;
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::private::authorized_relay::test_pipe::{Pipe, pipe};

    const GENEROUS: CircuitLimit = CircuitLimit {
        duration: Duration::from_secs(60),
        bytes: 1 << 20,
    };

    async fn read_to_end(stream: &mut Pipe) -> Vec<u8> {
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.expect("read");
        bytes
    }

    #[tokio::test]
    async fn bridge_copies_both_ways_and_ends_when_both_sides_close() {
        let (mut src, src_relay) = pipe();
        let (dst_relay, mut dst) = pipe();
        let bridge = tokio::spawn(bridge(src_relay, dst_relay, GENEROUS));

        src.write_all(b"hello").await.expect("write");
        src.close().await.expect("close");
        assert_eq!(read_to_end(&mut dst).await, b"hello");
        dst.write_all(b"world").await.expect("write");
        dst.close().await.expect("close");
        assert_eq!(read_to_end(&mut src).await, b"world");
        bridge
            .await
            .expect("join")
            .expect("both sides closed cleanly");
    }

    #[tokio::test]
    async fn bridge_fails_the_circuit_at_its_byte_limit_counting_both_ways() {
        let (mut src, src_relay) = pipe();
        let (dst_relay, mut dst) = pipe();
        let limit = CircuitLimit {
            bytes: 8,
            ..GENEROUS
        };
        let bridge = tokio::spawn(bridge(src_relay, dst_relay, limit));

        dst.write_all(b"abc").await.expect("write");
        let mut answer = [0; 3];
        src.read_exact(&mut answer).await.expect("within the limit");
        src.write_all(b"0123456789").await.expect("write");
        assert_eq!(
            read_to_end(&mut dst).await,
            b"01234",
            "cut where 3 + 5 bytes reach the limit"
        );
        let error = bridge.await.expect("join").expect_err("over the limit");
        assert!(error.to_string().contains("byte limit"), "{error}");
    }

    #[tokio::test]
    async fn bridge_ends_at_its_time_limit() {
        let (_src, src_relay) = pipe();
        let (dst_relay, _dst) = pipe();
        let limit = CircuitLimit {
            duration: Duration::from_millis(50),
            ..GENEROUS
        };
        let error = bridge(src_relay, dst_relay, limit)
            .await
            .expect_err("idle circuit outlives its limit");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    /// Plays a destination: reads the stop request, answers `status`.
    async fn destination(mut stop: Pipe, status: Status) -> StopMessage {
        let request: StopMessage = protocol::read_message(&mut stop).await.expect("request");
        protocol::write_message(&mut stop, &StopMessage::answer(status))
            .await
            .expect("answer");
        request
    }

    #[tokio::test]
    async fn the_destination_is_told_the_source_and_limit_and_its_answer_is_read() {
        let src = PeerId::random();
        for (status, accepted) in [(Status::Ok, true), (Status::NoReservation, false)] {
            let (mut stop_relay, stop_dst) = pipe();
            let destination = tokio::spawn(destination(stop_dst, status));
            let outcome = handshake(src, &mut stop_relay, GENEROUS).await;
            assert_eq!(outcome.is_ok(), accepted, "{status:?}: {outcome:?}");

            let request = destination.await.expect("join");
            assert_eq!(request.r#type, protocol::StopType::Connect as i32);
            let peer = request.peer.expect("source peer");
            assert_eq!(PeerId::from_bytes(&peer.id).ok(), Some(src));
            assert!(peer.addrs.is_empty(), "the source's addresses stay private");
            assert_eq!(request.limit, Some(GENEROUS.to_wire()));
        }
    }

    #[tokio::test]
    async fn an_accepted_source_is_told_the_limit_then_carried() {
        let (hop_relay, mut hop_src) = pipe();
        let (stop_relay, mut stop_dst) = pipe();
        let circuit = tokio::spawn(accept_and_bridge(hop_relay, stop_relay, GENEROUS));

        let answer: HopMessage = protocol::read_message(&mut hop_src).await.expect("answer");
        assert_eq!(answer.status, Some(Status::Ok as i32));
        assert_eq!(answer.limit, Some(GENEROUS.to_wire()));
        hop_src.write_all(b"ping").await.expect("write");
        hop_src.close().await.expect("close");
        assert_eq!(read_to_end(&mut stop_dst).await, b"ping");
        stop_dst.close().await.expect("close");
        circuit.await.expect("join").expect("carried to the end");
    }
}
