//! The stream framing every `/webrtc` data channel carries (shared with
//! WebRTC-direct, implemented by `webrtc-framing`): half-close with FIN
//! answered by FIN_ACK, STOP_SENDING, reset, and payloads larger than one
//! frame. Every close here waits up to a minute for FIN_ACK, so a close
//! that ends within the tests' 5 s deadline proves the FIN_ACK came.
//!
//! The data channel is modelled in memory with the semantics of an
//! `RTCDataChannel`: reliable, ordered, message-based, shared by handles.
//! `tests/browser.rs` runs the same framing over real data channels.

#![cfg(not(target_arch = "wasm32"))]

use std::{io, pin::Pin, time::Duration};

use futures::{AsyncReadExt as _, AsyncWriteExt as _, FutureExt as _};
use webrtc_framing::memory::{Channel, channel_pair};
use webrtc_framing::{Config, DropListener, MAX_FRAME_LEN as MAX_MSG_LEN};

/// A stream whose close waits up to a minute for the peer's FIN_ACK.
fn stream(channel: Channel) -> (webrtc_framing::Stream<Channel>, DropListener<Channel>) {
    let patient = Config {
        fin_ack_timeout: Some(Duration::from_secs(60)),
        linger: Duration::from_secs(60),
    };
    webrtc_framing::Stream::with_config(channel, patient)
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test]
async fn payload_larger_than_a_frame_arrives_whole_in_frames_of_at_most_16_kib() {
    let (a, b) = channel_pair();
    let sent = a.sent.clone();
    let (mut a, _a_drop) = stream(a);
    let (mut b, _b_drop) = stream(b);
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();

    let writer = async {
        a.write_all(&payload).await.expect("write");
        a.close().await.expect("close: FIN acknowledged");
    };
    let reader = async {
        let mut received = Vec::new();
        b.read_to_end(&mut received).await.expect("read until FIN");
        received
    };
    let ((), received) = within("transfer", futures::future::join(writer, reader)).await;
    assert!(
        received == payload,
        "payload differs: {} bytes received of {}",
        received.len(),
        payload.len()
    );
    let frames = sent.lock().expect("not poisoned").clone();
    assert!(
        frames.len() > payload.len() / MAX_MSG_LEN,
        "{} frames",
        frames.len()
    );
    assert!(
        frames.iter().all(|len| *len <= MAX_MSG_LEN),
        "a frame over {MAX_MSG_LEN}: {frames:?}"
    );
}

#[tokio::test]
async fn fin_half_closes_one_direction_and_the_other_keeps_working() {
    let (a, b) = channel_pair();
    let (mut a, _a_drop) = stream(a);
    let (mut b, _b_drop) = stream(b);

    // A sends and half-closes; B sees the end of A's data...
    a.write_all(b"request").await.expect("write");
    let closing = a.close();
    let mut request = Vec::new();
    let ((), _) = within(
        "FIN",
        futures::future::join(
            async {
                b.read_to_end(&mut request).await.expect("read to FIN");
            },
            closing.map(|result| result.expect("FIN acknowledged")),
        ),
    )
    .await;
    assert_eq!(request, b"request");
    assert!(
        a.write_all(b"more").await.is_err(),
        "writing after close must fail"
    );

    // ...and can still answer on its half.
    b.write_all(b"response").await.expect("B's half is open");
    let mut response = Vec::new();
    let (closed, read) = within(
        "response",
        futures::future::join(b.close(), a.read_to_end(&mut response)),
    )
    .await;
    closed.expect("B's FIN acknowledged by A's read");
    read.expect("A reads B's half");
    assert_eq!(response, b"response");
}

#[tokio::test]
async fn dropping_an_unclosed_stream_resets_it_for_the_peer() {
    let (a, b) = channel_pair();
    let (mut a, a_drop) = stream(a);
    let (mut b, _b_drop) = stream(b);
    a.write_all(b"partial").await.expect("write");
    a.flush().await.expect("flush");
    drop(a);
    // The drop listener sends RESET_STREAM once it sees the stream gone.
    within("reset sent", a_drop).await.expect("reset sent");

    // What arrived before the reset is delivered; from then on the stream
    // is reset for reads and writes alike, unlike after a FIN.
    let mut buffer = [0u8; 16];
    let n = within("data before the reset", b.read(&mut buffer))
        .await
        .expect("the data before the reset");
    assert_eq!(&buffer[..n], b"partial");
    let error = b
        .read(&mut [0u8; 8])
        .await
        .expect_err("reads after a reset fail");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    let error = b
        .write_all(b"reply")
        .await
        .expect_err("writes after a reset fail");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
}

#[tokio::test]
async fn stop_sending_makes_the_peers_writes_fail() {
    let (a, b) = channel_pair();
    let (mut a, _a_drop) = stream(a);
    let (mut b, _b_drop) = stream(b);
    within(
        "STOP_SENDING",
        futures::future::poll_fn(|cx| Pin::new(&mut b).poll_close_read(cx)),
    )
    .await
    .expect("close read");
    // A learns of it on its next write.
    let error = a
        .write_all(b"ignored")
        .await
        .expect_err("the peer stopped reading");
    assert!(
        error.kind() == io::ErrorKind::BrokenPipe && error.to_string().contains("STOP_SENDING"),
        "{error}"
    );
}

#[tokio::test]
async fn fin_is_acknowledged_by_the_connection_when_nobody_reads_the_stream() {
    let (a, b) = channel_pair();
    let (mut a, _a_drop) = stream(a);
    let (_b, b_drop) = stream(b);
    // B's handler never reads again; B's connection polls the drop
    // listener, as `Connection::poll` does, and that answers the FIN.
    let _b_connection = tokio::spawn(b_drop);
    a.write_all(b"one-way").await.expect("write");
    within("close: FIN_ACK from B's connection", a.close())
        .await
        .expect("FIN acknowledged");
}
