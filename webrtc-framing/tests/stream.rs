//! The stream and its drop listener over an in-memory channel with the
//! semantics of an `RTCDataChannel` (reliable, ordered, message-based):
//! the close and reset sequences of the spec, end to end, and against a
//! raw peer that frames by hand (an old peer without FIN_ACK, a broken
//! one, a newer one).

#![cfg(not(target_arch = "wasm32"))]

use std::{future::Future, io, pin::Pin, time::Duration};

use futures::{AsyncReadExt as _, AsyncWriteExt as _, FutureExt as _};
use webrtc_framing::memory::{Channel, channel_pair};
use webrtc_framing::{Config, DropListener, Flag, FrameDecoder, MAX_FRAME_LEN, Stream, codec};

/// Fails the test if `future` takes longer than 5 s (a deadline, not a
/// measurement).
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A wait long enough that a close finishing in time proves FIN_ACK came.
fn patient() -> Config {
    Config {
        fin_ack_timeout: Some(Duration::from_secs(60)),
        linger: Duration::from_secs(60),
    }
}

/// Polls the drop listener in the background, as a connection does.
fn run(listener: DropListener<Channel>) -> tokio::task::JoinHandle<io::Result<()>> {
    tokio::spawn(listener)
}

fn frame(flag: Option<Flag>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(flag, payload, &mut out);
    out
}

/// The frames in the messages a raw peer received.
fn frames_in(messages: Vec<Vec<u8>>) -> Vec<webrtc_framing::Frame> {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    for message in messages {
        decoder.push(&message);
        while let Some(frame) = decoder.next_frame().expect("valid frames") {
            frames.push(frame);
        }
    }
    frames
}

fn flags_in(messages: Vec<Vec<u8>>) -> Vec<Flag> {
    frames_in(messages)
        .into_iter()
        .filter_map(|f| f.flag)
        .collect()
}

#[tokio::test]
async fn fin_is_acknowledged_while_the_peer_application_reads_nothing() {
    let (a, b) = channel_pair();
    let (mut a, _a_listener) = Stream::with_config(a, patient());
    let (_b, b_listener) = Stream::with_config(b, patient());
    // B's application never reads; only its connection polls the listener.
    let _b_listener = run(b_listener);

    a.write_all(b"request").await.expect("write");
    within("close, acknowledged by B's drop listener", a.close())
        .await
        .expect("FIN_ACK arrived");
}

#[tokio::test]
async fn a_stream_closed_and_dropped_still_acknowledges_the_peers_fin() {
    let (a, b) = channel_pair();
    let (mut a, a_listener) = Stream::with_config(a, patient());
    let (mut b, _b_listener) = Stream::with_config(b, patient());
    let a_listener = run(a_listener);

    // A answers and is done with the stream before B has finished: A
    // closes its write half, B acknowledges, A drops the stream.
    let ((), received) = within(
        "A's close",
        futures::future::join(
            async {
                a.write_all(b"response").await.expect("write");
                a.close().await.expect("FIN_ACK from B");
                drop(a);
            },
            async {
                let mut received = Vec::new();
                b.read_to_end(&mut received).await.expect("read to FIN");
                received
            },
        ),
    )
    .await;
    assert_eq!(received, b"response");

    // B closes later; A's lingering listener acknowledges, then ends.
    within(
        "B's close, acknowledged by A's lingering listener",
        b.close(),
    )
    .await
    .expect("FIN_ACK arrived");
    within("A's listener ends once B's FIN came", a_listener)
        .await
        .expect("not panicked")
        .expect("listener done");
}

#[tokio::test]
async fn payload_larger_than_a_frame_arrives_whole_in_frames_of_at_most_16_kib() {
    let (a, b) = channel_pair();
    let sent = a.sent.clone();
    let (mut a, _a_listener) = Stream::with_config(a, patient());
    let (mut b, b_listener) = Stream::with_config(b, patient());
    let _b_listener = run(b_listener);
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();

    let ((), received) = within(
        "transfer",
        futures::future::join(
            async {
                a.write_all(&payload).await.expect("write");
                a.close().await.expect("close: FIN acknowledged");
            },
            async {
                let mut received = Vec::new();
                b.read_to_end(&mut received).await.expect("read until FIN");
                received
            },
        ),
    )
    .await;
    assert!(
        received == payload,
        "{} bytes of {}",
        received.len(),
        payload.len()
    );
    let sizes = sent.lock().expect("not poisoned").clone();
    assert!(sizes.len() > payload.len() / MAX_FRAME_LEN, "{sizes:?}");
    assert!(
        sizes.iter().all(|len| *len <= MAX_FRAME_LEN),
        "a message over {MAX_FRAME_LEN}: {sizes:?}"
    );
}

#[tokio::test]
async fn an_old_peer_that_never_sends_fin_ack_costs_only_the_timeout() {
    let (a, raw) = channel_pair();
    let timeout = Duration::from_millis(300);
    let (mut a, _listener) = Stream::with_config(
        a,
        Config {
            fin_ack_timeout: Some(timeout),
            ..Config::default()
        },
    );
    a.write_all(b"hello").await.expect("write");
    let mut close = a.close();
    assert!(
        (&mut close).now_or_never().is_none(),
        "close must wait for FIN_ACK at first"
    );
    let started = std::time::Instant::now();
    within("close after the FIN_ACK timeout", close)
        .await
        .expect("a missing FIN_ACK is no error");
    println!(
        "close without FIN_ACK took {:?} (timeout {timeout:?})",
        started.elapsed()
    );
    let frames = frames_in(raw.take_messages());
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].payload, b"hello");
    assert_eq!(frames[1].flag, Some(Flag::Fin));
}

#[tokio::test]
async fn without_the_wait_close_costs_nothing_and_a_late_fin_ack_is_ignored() {
    let (a, raw) = channel_pair();
    let (mut a, _listener) = Stream::with_config(a, Config::without_fin_ack_wait());
    a.close()
        .now_or_never()
        .expect("close returns at once")
        .expect("close");
    assert_eq!(flags_in(raw.take_messages()), [Flag::Fin]);
    raw.send_raw(&frame(Some(Flag::FinAck), b""));
    raw.send_raw(&frame(None, b"still reading"));
    raw.send_raw(&frame(Some(Flag::Fin), b""));
    let mut received = Vec::new();
    within("read", a.read_to_end(&mut received))
        .await
        .expect("a FIN_ACK is no read error");
    assert_eq!(received, b"still reading");
    assert_eq!(flags_in(raw.take_messages()), [Flag::FinAck]);
}

#[tokio::test]
async fn an_unexpected_fin_ack_and_an_unknown_flag_are_ignored() {
    let (a, raw) = channel_pair();
    let (mut a, _listener) = Stream::new(a);
    raw.send_raw(&frame(Some(Flag::FinAck), b""));
    raw.send_raw(&[2, 0x08, 9]); // flag 9: a later version's
    raw.send_raw(&frame(None, b"data"));
    let mut buffer = [0u8; 16];
    let n = within("read", a.read(&mut buffer)).await.expect("no error");
    assert_eq!(&buffer[..n], b"data");
    a.write_all(b"reply").await.expect("writing still works");
}

#[tokio::test]
async fn a_frame_split_across_messages_is_reassembled() {
    let (a, raw) = channel_pair();
    let (mut a, _listener) = Stream::new(a);
    let payload = vec![5u8; 10_000];
    let wire = frame(Some(Flag::Fin), &payload);
    for piece in wire.chunks(4_000) {
        raw.send_raw(piece);
    }
    let mut received = Vec::new();
    within("read", a.read_to_end(&mut received))
        .await
        .expect("read");
    assert!(received == payload, "{} bytes", received.len());
    assert_eq!(flags_in(raw.take_messages()), [Flag::FinAck]);
}

#[tokio::test]
async fn an_oversize_frame_fails_reads_and_resets_the_stream() {
    let (a, raw) = channel_pair();
    let (mut a, _listener) = Stream::new(a);
    // A length prefix of 20,000 bytes: over the 16 KiB limit.
    raw.send_raw(&[0xa0, 0x9c, 0x01, 0x12]);
    let error = within("read", a.read(&mut [0u8; 16]))
        .await
        .expect_err("an oversize frame is an error");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    assert!(error.to_string().contains("over the limit"), "{error}");
    assert_eq!(flags_in(raw.take_messages()), [Flag::ResetStream]);
}

#[tokio::test]
async fn dropping_an_unclosed_stream_resets_it_for_the_peer() {
    let (a, b) = channel_pair();
    let (mut a, a_listener) = Stream::new(a);
    let (mut b, _b_listener) = Stream::new(b);
    a.write_all(b"partial").await.expect("write");
    drop(a);
    within("reset sent", a_listener).await.expect("reset sent");

    // What arrived before the reset is delivered; then reads and writes fail.
    let mut buffer = [0u8; 16];
    let n = within("data", b.read(&mut buffer)).await.expect("data");
    assert_eq!(&buffer[..n], b"partial");
    let error = b.read(&mut buffer).await.expect_err("reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    let error = b.write_all(b"reply").await.expect_err("reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
}

#[tokio::test]
async fn a_reset_while_waiting_for_fin_ack_fails_the_close() {
    let (a, raw) = channel_pair();
    let (mut a, _listener) = Stream::with_config(a, patient());
    let mut close = a.close();
    assert!((&mut close).now_or_never().is_none(), "waits for FIN_ACK");
    raw.send_raw(&frame(Some(Flag::ResetStream), b""));
    let error = within("close", close).await.expect_err("reset");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
}

#[tokio::test]
async fn stop_sending_fails_the_peers_writes_and_ends_its_close() {
    let (a, b) = channel_pair();
    let (mut a, _a_listener) = Stream::with_config(a, patient());
    let (mut b, _b_listener) = Stream::with_config(b, patient());
    within(
        "STOP_SENDING",
        futures::future::poll_fn(|cx| Pin::new(&mut b).poll_close_read(cx)),
    )
    .await
    .expect("close read");
    let error = within("write", a.write_all(b"ignored"))
        .await
        .expect_err("the peer stopped reading");
    assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "{error}");
    assert!(error.to_string().contains("STOP_SENDING"), "{error}");
    // A's write half is over; closing it needs no FIN_ACK.
    within("close", a.close()).await.expect("close");
    // B still reads nothing, and its own half still works.
    assert_eq!(b.read(&mut [0u8; 4]).await.expect("read"), 0);
    b.write_all(b"answer")
        .await
        .expect("B's write half is open");
}

#[tokio::test]
async fn simultaneous_close_completes_on_both_sides() {
    let (a, b) = channel_pair();
    let (mut a, _a_listener) = Stream::with_config(a, patient());
    let (mut b, _b_listener) = Stream::with_config(b, patient());
    let (a_closed, b_closed) =
        within("both closes", futures::future::join(a.close(), b.close())).await;
    a_closed.expect("A's FIN acknowledged");
    b_closed.expect("B's FIN acknowledged");
    assert_eq!(a.read(&mut [0u8; 4]).await.expect("end"), 0);
    assert_eq!(b.read(&mut [0u8; 4]).await.expect("end"), 0);
}

#[tokio::test]
async fn fin_is_acknowledged_when_the_application_read_last_and_stopped_reading() {
    // A channel keeps one read waker. Here the application's read is the
    // last to poll it, then the application never reads again (as libp2p's
    // relay server does after reading a request): the FIN that arrives
    // must still reach the drop listener, which sends FIN_ACK.
    let (a, b) = channel_pair();
    let (mut a, _a_listener) = Stream::with_config(a, patient());
    let (mut b, b_listener) = Stream::with_config(b, patient());
    let _b_listener = run(b_listener);
    tokio::task::yield_now().await; // the listener polls the channel first
    {
        let mut buffer = [0u8; 8];
        let read = b.read(&mut buffer);
        futures::pin_mut!(read);
        assert!(futures::poll!(read).is_pending(), "nothing to read yet");
    }
    a.write_all(b"request").await.expect("write");
    within("close, acknowledged though B's reader went away", a.close())
        .await
        .expect("FIN_ACK arrived");
}
