//! In a real browser (Chromium or Firefox, through wasm-bindgen-test): a
//! WebRTC-direct dial that no ICE path can complete fails within the dial
//! timeout, saying that the server could not be reached, not that Noise
//! failed on a channel that never opened.

#![cfg(target_arch = "wasm32")]

use libp2p_core::{
    Endpoint, Multiaddr, Transport as _,
    multiaddr::Protocol,
    transport::{DialOpts, PortUse},
};
use libp2p_identity::Keypair;
use libp2p_webrtc_p2p::{Error, direct};
use libp2p_webrtc_utils::Fingerprint;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn a_webrtc_direct_dial_with_no_ice_path_says_the_server_is_unreachable() {
    // Nothing listens on the discard port of loopback: Chromium's checks
    // go unanswered until the dial gives up, and Firefox, which never
    // connects WebRTC to loopback, fails ICE at once.
    let addr: Multiaddr = "/ip4/127.0.0.1/udp/9/webrtc-direct"
        .parse::<Multiaddr>()
        .expect("a multiaddr")
        .with(Protocol::Certhash(Fingerprint::raw([7; 32]).to_multihash()));
    let mut transport = direct::Transport::new(Keypair::generate_ed25519());
    let dial = transport
        .dial(
            addr,
            DialOpts {
                role: Endpoint::Dialer,
                port_use: PortUse::New,
            },
        )
        .expect("a WebRTC-direct address");
    let started = js_sys::Date::now();
    let error = dial.await.expect_err("nothing answers");
    let elapsed = (js_sys::Date::now() - started) / 1000.0;
    console_log!("the dial failed after {elapsed:.1} s: {error}");
    assert!(
        matches!(error, Error::ServerUnreachable { .. } | Error::Timeout(_)),
        "expected an unreachable server or a timeout, got {error:?} ({error})"
    );
    assert!(
        elapsed < direct::DIAL_TIMEOUT.as_secs_f64() + 2.0,
        "the dial took {elapsed:.1} s, past its timeout"
    );
}
