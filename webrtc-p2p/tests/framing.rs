//! The stream framing every `/webrtc` data channel carries (shared with
//! WebRTC-direct, implemented by `libp2p-webrtc-utils`): half-close with
//! FIN, STOP_SENDING, reset, and payloads larger than one frame. (No
//! FIN_ACK: `libp2p-webrtc-utils` 0.5 has none, see `src/stream.rs`.)
//!
//! The data channel is modelled in memory with the semantics of an
//! `RTCDataChannel`: reliable, ordered, message-based, shared by handles.
//! `tests/browser.rs` runs the same framing over real data channels.

#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::{io, pin::Pin, time::Duration};

use futures::{AsyncReadExt as _, AsyncWriteExt as _, FutureExt as _};
use libp2p_webrtc_utils::{MAX_MSG_LEN, Stream};
use support::channel_pair;

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test]
async fn payload_larger_than_a_frame_arrives_whole_in_frames_of_at_most_16_kib() {
    let (a, b) = channel_pair();
    let sent = a.sent.clone();
    let (mut a, _a_drop) = Stream::new(a);
    let (mut b, _b_drop) = Stream::new(b);
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();

    let writer = async {
        a.write_all(&payload).await.expect("write");
        a.close().await.expect("close: FIN sent");
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
    let (mut a, _a_drop) = Stream::new(a);
    let (mut b, _b_drop) = Stream::new(b);

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
    b.close().await.expect("close");
    let mut response = Vec::new();
    within("response", a.read_to_end(&mut response))
        .await
        .expect("A reads B's half");
    assert_eq!(response, b"response");
}

#[tokio::test]
async fn dropping_an_unclosed_stream_resets_it_for_the_peer() {
    let (a, b) = channel_pair();
    let (mut a, a_drop) = Stream::new(a);
    let (mut b, _b_drop) = Stream::new(b);
    a.write_all(b"partial").await.expect("write");
    a.flush().await.expect("flush");
    drop(a);
    // The drop listener sends RESET_STREAM once it sees the stream gone.
    within("reset sent", a_drop).await.expect("reset sent");

    // libp2p-webrtc-utils ends the data at the read that meets the reset
    // (what arrived before it is delivered); from then on the stream is
    // reset for reads and writes alike, unlike after a FIN.
    let mut buffer = Vec::new();
    within("reset seen", b.read_to_end(&mut buffer))
        .await
        .expect("the data before the reset");
    assert_eq!(buffer, b"partial");
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
    let (mut a, _a_drop) = Stream::new(a);
    let (mut b, _b_drop) = Stream::new(b);
    within(
        "STOP_SENDING",
        futures::future::poll_fn(|cx| Pin::new(&mut b).poll_close_read(cx)),
    )
    .await
    .expect("close read");
    // A learns of it on its next read of the channel.
    let mut buffer = [0u8; 8];
    let _ = tokio::time::timeout(Duration::from_millis(200), a.read(&mut buffer)).await;
    let error = a
        .write_all(b"ignored")
        .await
        .expect_err("the peer stopped reading");
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::WriteZero
        ),
        "{error}"
    );
}
