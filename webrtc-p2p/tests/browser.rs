//! In a real browser (headless Chromium or Firefox, through
//! wasm-bindgen-test): a peer connection ends its local candidates once,
//! and two peer connections in one page, signaled through this crate's
//! codec and order checks, connect, and carry framed libp2p streams over
//! data channels in both directions.

#![cfg(target_arch = "wasm32")]

use std::pin::Pin;

use futures::{AsyncReadExt as _, AsyncWriteExt as _, future::poll_fn};
use libp2p_core::{PeerId, muxing::StreamMuxer};
use libp2p_swarm::ConnectionId;
use libp2p_webrtc_p2p::{
    Connection, LinkState, PeerConnection, exchange,
    prepared::{MAX_PREPARED, PreparedOffers},
    signaling::{self, Role, Session, SignalingMessage, Step},
};
use wasm_bindgen::JsCast as _;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::RtcSdpType;

wasm_bindgen_test_configure!(run_in_browser);

/// Carries `message` to `to` the way the signaling stream would: encoded,
/// decoded, and checked against the order of the exchange.
async fn deliver(message: SignalingMessage, session: &mut Session, to: &PeerConnection) {
    let decoded = SignalingMessage::decode(&message.encode()).expect("decodes");
    match session.on_message(decoded).expect("in order") {
        Step::RemoteDescription(sdp) => {
            let kind = match session.role() {
                Role::Listener => RtcSdpType::Offer,
                Role::Dialer => RtcSdpType::Answer,
            };
            to.set_remote_description(kind, &sdp)
                .await
                .expect("remote description");
        }
        Step::AddCandidate(candidate) => to
            .add_ice_candidate(Some(&candidate))
            .await
            .expect("candidate"),
        Step::EndOfCandidates => to.add_ice_candidate(None).await.expect("end of candidates"),
        Step::RepeatedEnd => {}
    }
}

/// Offer, answer and trickled candidates until both sides are connected.
async fn connect_pair() -> (PeerConnection, PeerConnection) {
    let (a, b) = (
        PeerConnection::new(&[]).expect("A"),
        PeerConnection::new(&[]).expect("B"),
    );
    let (mut a_session, mut b_session) = (Session::new(Role::Dialer), Session::new(Role::Listener));
    // As the spec asks: a channel before the offer, so it carries data-channel parameters.
    let init = a.create_data_channel("init");

    let offer = a.offer().await.expect("offer");
    deliver(SignalingMessage::Offer(offer), &mut b_session, &b).await;
    let answer = b.answer().await.expect("answer");
    deliver(SignalingMessage::Answer(answer), &mut a_session, &a).await;

    let (mut a_done, mut b_done) = (false, false);
    while a.state() != LinkState::Connected || b.state() != LinkState::Connected {
        assert!(
            a.state() != LinkState::Failed && b.state() != LinkState::Failed,
            "ICE failed between two local peers"
        );
        let next = poll_fn(|cx| {
            if !a_done && let std::task::Poll::Ready(candidate) = a.poll_local_candidate(cx) {
                return std::task::Poll::Ready(Some((true, candidate)));
            }
            if !b_done && let std::task::Poll::Ready(candidate) = b.poll_local_candidate(cx) {
                return std::task::Poll::Ready(Some((false, candidate)));
            }
            if a.state() != LinkState::Connecting && b.state() != LinkState::Connecting {
                return std::task::Poll::Ready(None);
            }
            let _ = a.poll_state_change(cx, LinkState::Connecting);
            let _ = b.poll_state_change(cx, LinkState::Connecting);
            std::task::Poll::Pending
        })
        .await;
        match next {
            Some((true, candidate)) => {
                a_done = candidate.is_none();
                deliver(SignalingMessage::Candidate(candidate), &mut b_session, &b).await;
            }
            Some((false, candidate)) => {
                b_done = candidate.is_none();
                deliver(SignalingMessage::Candidate(candidate), &mut a_session, &a).await;
            }
            None => {}
        }
    }
    init.close();
    (a, b)
}

#[wasm_bindgen_test]
async fn local_candidates_end_once_whichever_way_the_browser_signals_it() {
    let peer = PeerConnection::new(&[]).expect("a peer connection");
    let _channel = peer.create_data_channel("init");
    peer.offer().await.expect("offer");
    let mut ends = 0;
    let mut candidates = 0;
    // Until the end of gathering, then half a second longer: Firefox
    // signals the end a second time right after the first.
    loop {
        let next = futures::future::select(
            Box::pin(poll_fn(|cx| peer.poll_local_candidate(cx))),
            Box::pin(gloo_timers::future::sleep(
                std::time::Duration::from_millis(if peer.gathering_done() { 500 } else { 10_000 }),
            )),
        )
        .await;
        match next {
            futures::future::Either::Left((Some(_), _)) => candidates += 1,
            futures::future::Either::Left((None, _)) => ends += 1,
            futures::future::Either::Right(_) => break,
        }
    }
    assert!(peer.gathering_done(), "gathering did not end within 10 s");
    assert!(candidates > 0, "no local candidate was gathered");
    assert_eq!(ends, 1, "the end of candidates came {ends} times");
}

#[wasm_bindgen_test]
async fn framed_streams_cross_a_real_peer_connection_both_ways() {
    let (a, b) = connect_pair().await;
    exchange_data(Connection::new(a), Connection::new(b)).await;
}

/// The names of the User Timing marks in the page, in the order made.
fn marks() -> Vec<String> {
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .expect("the page has `performance`");
    let entries = js_sys::Reflect::get(&performance, &"getEntriesByType".into())
        .expect("getEntriesByType")
        .unchecked_into::<js_sys::Function>()
        .call1(&performance, &"mark".into())
        .expect("marks");
    js_sys::Array::from(&entries)
        .iter()
        .map(|entry| {
            js_sys::Reflect::get(&entry, &"name".into())
                .ok()
                .and_then(|name| name.as_string())
                .unwrap_or_default()
        })
        .collect()
}

/// Whether the User Timing mark `name` appears within 10 s.
async fn mark_within_10_s(name: &str) -> bool {
    for _ in 0..500 {
        if marks().iter().any(|mark| mark == name) {
            return true;
        }
        gloo_timers::future::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

#[wasm_bindgen_test]
async fn dialer_and_listener_signal_over_a_stream_and_connect() {
    // The stream stands in for `/webrtc-signaling/0.0.1` on a relayed connection.
    let (dialer_end, listener_end) = webrtc_framing::memory::channel_pair();
    // Each side names the other in its marks.
    let (dialer, listener) = (PeerId::random(), PeerId::random());
    let (dialed, answered) = futures::join!(
        exchange::dial(async { Ok(dialer_end) }, &[], listener),
        exchange::answer(listener_end, &[], dialer)
    );
    exchange_data(
        dialed.expect("the dialer connects"),
        answered.expect("the listener connects"),
    )
    .await;
    // Every phase was marked on both sides, in the order it happens (the
    // dialer's offer is made while its stream opens: before or after).
    let marks = marks();
    for remote in [listener, dialer] {
        let phases: Vec<&str> = marks
            .iter()
            .filter_map(|name| name.strip_suffix(&format!(" {remote}")))
            .filter_map(|name| name.strip_prefix("libp2p-webrtc:"))
            .filter(|phase| *phase != "local-offer")
            .collect();
        assert_eq!(
            phases,
            ["signaling", "offer", "answer", "connected"],
            "the marks naming {remote}"
        );
    }
    assert!(
        marks.contains(&format!("libp2p-webrtc:local-offer {listener}")),
        "the dialer marked its offer made: {marks:?}"
    );
}

#[wasm_bindgen_test]
async fn the_dialer_makes_its_offer_while_the_signaling_stream_opens() {
    let (dialer_end, listener_end) = webrtc_framing::memory::channel_pair();
    let (dialer, listener) = (PeerId::random(), PeerId::random());
    let made = format!("libp2p-webrtc:local-offer {listener}");
    // The stream opens only once the offer is made: a dialer that made it
    // only after the stream was open would wait here for ever.
    let open = async {
        assert!(
            mark_within_10_s(&made).await,
            "the dialer made no offer while its signaling stream was opening (10 s)"
        );
        Ok(dialer_end)
    };
    let (dialed, answered) = futures::join!(
        exchange::dial(open, &[], listener),
        exchange::answer(listener_end, &[], dialer)
    );
    exchange_data(
        dialed.expect("the dialer connects"),
        answered.expect("the listener connects"),
    )
    .await;
}

#[wasm_bindgen_test]
async fn an_offer_prepared_before_the_dial_is_the_one_it_sends() {
    let (dialer_end, listener_end) = webrtc_framing::memory::channel_pair();
    let (dialer, listener) = (PeerId::random(), PeerId::random());
    let mut prepared = PreparedOffers::default();
    prepared.prepare(listener, Vec::new(), ConnectionId::new_unchecked(1));
    let made = format!("libp2p-webrtc:local-offer {listener}");
    assert!(
        mark_within_10_s(&made).await,
        "made before the dial asked for it"
    );
    let offer = prepared.take(listener, Vec::new());
    assert!(!prepared.contains(&listener), "taken once");
    let (dialed, answered) = futures::join!(
        exchange::dial_with(async { Ok(dialer_end) }, offer, listener),
        exchange::answer(listener_end, &[], dialer)
    );
    exchange_data(
        dialed.expect("the dialer connects"),
        answered.expect("the listener connects"),
    )
    .await;
}

#[wasm_bindgen_test]
async fn prepared_offers_are_bounded_and_kept_for_their_ice_servers_only() {
    let mut prepared = PreparedOffers::default();
    let peers: Vec<PeerId> = (0..MAX_PREPARED + 2).map(|_| PeerId::random()).collect();
    for (n, peer) in peers.iter().enumerate() {
        prepared.prepare(*peer, Vec::new(), ConnectionId::new_unchecked(n));
        prepared.prepare(*peer, Vec::new(), ConnectionId::new_unchecked(n));
    }
    assert_eq!(
        prepared.len(),
        MAX_PREPARED,
        "one per peer, the newest kept"
    );
    assert!(!prepared.contains(&peers[0]), "the oldest was dropped");
    // The circuit dial an offer was made for failed: the offer goes.
    prepared.circuit_failed(ConnectionId::new_unchecked(2));
    assert!(!prepared.contains(&peers[2]), "dropped with its circuit");
    prepared.prepare(peers[2], Vec::new(), ConnectionId::new_unchecked(2));
    // The page learned a STUN server since: the offer made without it is
    // dropped, and one made with it instead.
    let last = peers[peers.len() - 1];
    let stun = vec!["stun:198.51.100.1:3478".to_string()];
    let offer = prepared.take(last, stun).await.expect("made anew");
    assert!(!prepared.contains(&last), "dropped, not kept");
    assert_eq!(prepared.len(), MAX_PREPARED - 1);
    assert!(
        offer.sdp().contains("m=application"),
        "the offer carries the data channels' section: {}",
        offer.sdp()
    );
}

#[wasm_bindgen_test]
async fn a_listener_refuses_a_stream_that_does_not_start_with_an_offer() {
    let (mut dialer_end, listener_end) = webrtc_framing::memory::channel_pair();
    let wrong = SignalingMessage::Answer("v=0".into());
    signaling::write_message(&mut dialer_end, &wrong)
        .await
        .expect("write");
    let error = exchange::answer(listener_end, &[], PeerId::random())
        .await
        .expect_err("out of order");
    assert!(error.to_string().contains("SDP offer"), "{error}");
}

#[wasm_bindgen_test]
async fn what_the_remote_sends_before_a_stream_is_taken_waits_for_it() {
    let (a, b) = connect_pair().await;
    let (mut a, mut b) = (Connection::new(a), Connection::new(b));
    let mut outbound = poll_fn(|cx| Pin::new(&mut a).poll_outbound(cx))
        .await
        .expect("outbound stream");
    let sending = async {
        outbound.write_all(b"sent at once").await.expect("write");
        outbound.close().await.expect("FIN acknowledged");
    };
    // B takes the stream only after A's message has arrived (as a busy
    // connection task would): the message must wait in the channel, not
    // be dispatched to no handler.
    let receiving = async {
        gloo_timers::future::sleep(std::time::Duration::from_millis(500)).await;
        let mut inbound = poll_fn(|cx| Pin::new(&mut b).poll_inbound(cx))
            .await
            .expect("inbound stream");
        let mut received = Vec::new();
        inbound
            .read_to_end(&mut received)
            .await
            .expect("read until FIN");
        received
    };
    let exchanged = futures::future::join(sending, receiving);
    let deadline = gloo_timers::future::sleep(std::time::Duration::from_secs(10));
    match futures::future::select(Box::pin(exchanged), Box::pin(deadline)).await {
        futures::future::Either::Left((((), received), _)) => assert_eq!(received, b"sent at once"),
        futures::future::Either::Right(_) => {
            panic!("the message sent before B took the stream never arrived (10 s)")
        }
    }
}

async fn exchange_data(mut a: Connection, mut b: Connection) {
    let payload: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();

    // A opens a stream, sends more than two frames' worth and half-closes.
    let mut outbound = poll_fn(|cx| Pin::new(&mut a).poll_outbound(cx))
        .await
        .expect("outbound stream");
    let sending = async {
        outbound.write_all(&payload).await.expect("write");
        outbound.close().await.expect("FIN acknowledged");
        outbound
    };
    let receiving = async {
        let mut inbound = poll_fn(|cx| Pin::new(&mut b).poll_inbound(cx))
            .await
            .expect("inbound stream");
        let mut received = Vec::new();
        inbound
            .read_to_end(&mut received)
            .await
            .expect("read until FIN");
        (inbound, received)
    };
    let (mut outbound, (mut inbound, received)) = futures::join!(sending, receiving);
    assert_eq!(received.len(), payload.len());
    assert!(received == payload, "the payload arrived altered");

    // B answers on its open half; A reads it to the end.
    inbound.write_all(b"reply from B").await.expect("B writes");
    inbound.close().await.expect("B closes");
    let mut reply = Vec::new();
    outbound.read_to_end(&mut reply).await.expect("A reads");
    assert_eq!(reply, b"reply from B");
}
