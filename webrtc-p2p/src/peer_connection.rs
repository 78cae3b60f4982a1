//! An `RTCPeerConnection` with what libp2p needs of it: ICE servers,
//! offer and answer, trickled candidates, its connection state, and the
//! data channels the remote opens.

use std::{
    cell::RefCell,
    collections::VecDeque,
    rc::Rc,
    task::{Context, Poll, Waker},
};

use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast as _, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    RtcConfiguration, RtcDataChannel, RtcDataChannelEvent, RtcDataChannelInit, RtcIceCandidateInit,
    RtcIceServer, RtcPeerConnection, RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcSdpType,
    RtcSessionDescriptionInit,
};

use crate::{
    Error,
    data_channel::{ConnectionWaker, PollDataChannel},
    signaling::IceCandidate,
};

/// The label of the channel the dialer creates so that its offer carries
/// data-channel parameters; it is not a libp2p stream.
pub(crate) const INIT_CHANNEL_LABEL: &str = "init";

/// Data channels the remote opened that no one has taken yet. Past this,
/// new ones are closed: a peer cannot make us hold unbounded streams.
pub const MAX_PENDING_INBOUND_CHANNELS: usize = 32;
/// Local candidates not yet sent to the remote; the browser gathers a few
/// per interface and server.
const MAX_PENDING_CANDIDATES: usize = 64;

/// Where the connection stands, as far as libp2p cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// `failed` or `closed`: it will not carry data (again).
    Failed,
}

#[derive(Default)]
struct Shared {
    candidates: VecDeque<Option<IceCandidate>>,
    gathering_done: bool,
    candidate_waker: Option<Waker>,
    /// Wrapped as they arrive, so that their `onmessage` is set in the
    /// same task as `ondatachannel`: a message the remote sends right after
    /// opening the channel would otherwise be dispatched to no handler and
    /// lost, stalling the protocol on that stream.
    inbound: VecDeque<PollDataChannel>,
    /// Woken when a queued channel receives data, so the connection's task
    /// takes the channel (see [`ConnectionWaker`]).
    connection_waker: ConnectionWaker,
    inbound_waker: Option<Waker>,
    state_waker: Option<Waker>,
    /// The SCTP transport whose `statechange` wakes `state_waker` too,
    /// once it exists (see [`PeerConnection::sctp_closed`]).
    sctp: Option<JsValue>,
}

struct Callbacks {
    connection: RtcPeerConnection,
    _on_ice_candidate: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    _on_data_channel: Closure<dyn FnMut(RtcDataChannelEvent)>,
    _on_state_change: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Callbacks {
    fn drop(&mut self) {
        if let Ok(sctp) = Reflect::get(&self.connection, &JsValue::from_str("sctp"))
            && sctp.is_object()
        {
            let _ = Reflect::set(&sctp, &JsValue::from_str("onstatechange"), &JsValue::NULL);
        }
        self.connection.set_onicecandidate(None);
        self.connection.set_ondatachannel(None);
        self.connection.set_onconnectionstatechange(None);
        // Browsers allow a few hundred peer connections per page over its
        // lifetime: never leave one open behind us.
        self.connection.close();
    }
}

#[derive(Clone)]
pub struct PeerConnection {
    inner: RtcPeerConnection,
    shared: Rc<RefCell<Shared>>,
    _callbacks: Rc<Callbacks>,
}

impl PeerConnection {
    /// A peer connection using `ice_servers` (`stun:` / `turn:` URLs).
    pub fn new(ice_servers: &[String]) -> Result<Self, Error> {
        let config = RtcConfiguration::new();
        let servers = Array::new();
        for url in ice_servers {
            let server = RtcIceServer::new();
            server.set_urls(&JsValue::from_str(url));
            servers.push(&server);
        }
        config.set_ice_servers(&servers);
        let inner = RtcPeerConnection::new_with_configuration(&config)
            .map_err(Error::js("create RTCPeerConnection"))?;
        let shared = Rc::new(RefCell::new(Shared::default()));

        let on_ice_candidate = Closure::<dyn FnMut(RtcPeerConnectionIceEvent)>::new({
            let shared = shared.clone();
            move |event: RtcPeerConnectionIceEvent| {
                let mut shared = shared.borrow_mut();
                match event.candidate() {
                    Some(candidate) if !candidate.candidate().is_empty() => {
                        if shared.candidates.len() < MAX_PENDING_CANDIDATES {
                            shared.candidates.push_back(Some(IceCandidate {
                                candidate: candidate.candidate(),
                                sdp_mid: candidate.sdp_mid(),
                                sdp_m_line_index: candidate.sdp_m_line_index(),
                                // Not in web-sys's bindings: read it as a property.
                                username_fragment: Reflect::get(
                                    &candidate,
                                    &JsValue::from_str("usernameFragment"),
                                )
                                .ok()
                                .and_then(|value| value.as_string()),
                            }));
                        }
                    }
                    // Firefox ends gathering twice: an empty candidate (the
                    // end of the m-line's generation), then `null` (the end
                    // of gathering); Chromium sends `null` alone. The remote
                    // hears the end once.
                    _ if shared.gathering_done => return,
                    _ => {
                        shared.gathering_done = true;
                        shared.candidates.push_back(None);
                    }
                }
                if let Some(waker) = shared.candidate_waker.take() {
                    waker.wake();
                }
            }
        });
        let on_data_channel = Closure::<dyn FnMut(RtcDataChannelEvent)>::new({
            let shared = shared.clone();
            move |event: RtcDataChannelEvent| {
                let channel = event.channel();
                // The offerer's first channel exists only to start SCTP
                // (see `exchange`); it carries no stream.
                if channel.label() == INIT_CHANNEL_LABEL {
                    return;
                }
                let mut shared = shared.borrow_mut();
                if shared.inbound.len() >= MAX_PENDING_INBOUND_CHANNELS {
                    tracing::warn!("too many unaccepted data channels; closing a new one");
                    channel.close();
                    return;
                }
                let channel = PollDataChannel::new(channel, shared.connection_waker.clone());
                shared.inbound.push_back(channel);
                if let Some(waker) = shared.inbound_waker.take() {
                    waker.wake();
                }
            }
        });
        let on_state_change = Closure::<dyn FnMut(web_sys::Event)>::new({
            let shared = shared.clone();
            move |_| {
                if let Some(waker) = shared.borrow_mut().state_waker.take() {
                    waker.wake();
                }
            }
        });
        inner.set_onicecandidate(Some(on_ice_candidate.as_ref().unchecked_ref()));
        inner.set_ondatachannel(Some(on_data_channel.as_ref().unchecked_ref()));
        inner.set_onconnectionstatechange(Some(on_state_change.as_ref().unchecked_ref()));

        Ok(Self {
            inner: inner.clone(),
            shared,
            _callbacks: Rc::new(Callbacks {
                connection: inner,
                _on_ice_candidate: on_ice_candidate,
                _on_data_channel: on_data_channel,
                _on_state_change: on_state_change,
            }),
        })
    }

    /// Creates the offer (its SDP) and sets it as the local description.
    pub async fn offer(&self) -> Result<String, Error> {
        self.offer_edited(str::to_owned).await
    }

    /// Creates the offer, sets `edit` of its SDP as the local description
    /// and returns that.
    pub(crate) async fn offer_edited(
        &self,
        edit: impl FnOnce(&str) -> String,
    ) -> Result<String, Error> {
        let offer = JsFuture::from(self.inner.create_offer())
            .await
            .map_err(Error::js("create an offer"))?;
        let sdp = edit(&sdp_of(&offer)?);
        self.set_local_description(RtcSdpType::Offer, &sdp).await?;
        Ok(sdp)
    }

    /// The SDP of the local description, once one is set.
    pub(crate) fn local_sdp(&self) -> Option<String> {
        self.inner
            .local_description()
            .map(|description| description.sdp())
    }

    /// Creates the answer (its SDP) and sets it as the local description.
    pub async fn answer(&self) -> Result<String, Error> {
        let answer = JsFuture::from(self.inner.create_answer())
            .await
            .map_err(Error::js("create an answer"))?;
        let sdp = sdp_of(&answer)?;
        self.set_local_description(RtcSdpType::Answer, &sdp).await?;
        Ok(sdp)
    }

    async fn set_local_description(&self, kind: RtcSdpType, sdp: &str) -> Result<(), Error> {
        let description = RtcSessionDescriptionInit::new(kind);
        description.set_sdp(sdp);
        JsFuture::from(self.inner.set_local_description(&description))
            .await
            .map_err(Error::js("set the local description"))?;
        Ok(())
    }

    pub async fn set_remote_description(&self, kind: RtcSdpType, sdp: &str) -> Result<(), Error> {
        let description = RtcSessionDescriptionInit::new(kind);
        description.set_sdp(sdp);
        JsFuture::from(self.inner.set_remote_description(&description))
            .await
            .map_err(Error::js("set the remote description"))?;
        Ok(())
    }

    /// Adds a remote candidate; `None` marks the end of the remote's candidates.
    pub async fn add_ice_candidate(&self, candidate: Option<&IceCandidate>) -> Result<(), Error> {
        let init = candidate.map(|candidate| {
            let init = RtcIceCandidateInit::new(&candidate.candidate);
            init.set_sdp_mid(candidate.sdp_mid.as_deref());
            init.set_sdp_m_line_index(candidate.sdp_m_line_index);
            if let Some(fragment) = &candidate.username_fragment {
                let _ = Reflect::set(
                    &init,
                    &JsValue::from_str("usernameFragment"),
                    &JsValue::from_str(fragment),
                );
            }
            init
        });
        JsFuture::from(
            self.inner
                .add_ice_candidate_with_opt_rtc_ice_candidate_init(init.as_ref()),
        )
        .await
        .map_err(Error::js("add an ICE candidate"))?;
        Ok(())
    }

    /// The next local candidate to send; `Ready(None)` once gathering is
    /// complete (sent to the remote as the end of candidates).
    pub fn poll_local_candidate(&self, cx: &mut Context<'_>) -> Poll<Option<IceCandidate>> {
        let mut shared = self.shared.borrow_mut();
        match shared.candidates.pop_front() {
            Some(candidate) => Poll::Ready(candidate),
            None => {
                shared.candidate_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Whether the local side has gathered all its candidates.
    pub fn gathering_done(&self) -> bool {
        self.shared.borrow().gathering_done
    }

    pub fn state(&self) -> LinkState {
        match self.inner.connection_state() {
            RtcPeerConnectionState::Connected => LinkState::Connected,
            RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed => LinkState::Failed,
            _ => LinkState::Connecting,
        }
    }

    /// Whether the SCTP association that carries the data channels has
    /// ended (`RTCSctpTransport.state` is `closed`): the remote closed its
    /// peer connection (its page reloaded or closed), and no channel will
    /// carry data again, while the connection's own state may stay
    /// `connected` until ICE's consent checks give up, 30 s and more
    /// later. Read through `sctp` (web-sys has no binding for it), whose
    /// state changes wake [`Self::poll_state_change`] from then on.
    pub(crate) fn sctp_closed(&self) -> bool {
        let mut shared = self.shared.borrow_mut();
        if shared.sctp.is_none() {
            let Ok(sctp) = Reflect::get(&self.inner, &JsValue::from_str("sctp")) else {
                return false;
            };
            if !sctp.is_object() {
                return false; // Not negotiated yet, or not in this browser.
            }
            let _ = Reflect::set(
                &sctp,
                &JsValue::from_str("onstatechange"),
                self._callbacks._on_state_change.as_ref(),
            );
            shared.sctp = Some(sctp);
        }
        shared
            .sctp
            .as_ref()
            .and_then(|sctp| Reflect::get(sctp, &JsValue::from_str("state")).ok())
            .and_then(|state| state.as_string())
            .is_some_and(|state| state == "closed")
    }

    /// Whether ICE lost its path for now (`disconnected`): a browser peer
    /// may come back, a WebRTC-direct server that stopped answering does
    /// not, and the browser would wait 30 s and more to call it `failed`.
    pub(crate) fn is_disconnected(&self) -> bool {
        self.inner.connection_state() == RtcPeerConnectionState::Disconnected
    }

    /// Ready once the state is no longer [`LinkState::Connecting`], or
    /// changes from `Connected`, whichever comes first after `from`.
    pub fn poll_state_change(&self, cx: &mut Context<'_>, from: LinkState) -> Poll<LinkState> {
        let state = self.state();
        if state != from {
            return Poll::Ready(state);
        }
        self.shared.borrow_mut().state_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// A new data channel, negotiated in-band as the spec requires.
    pub fn create_data_channel(&self, label: &str) -> RtcDataChannel {
        let init = RtcDataChannelInit::new();
        init.set_negotiated(false);
        self.inner
            .create_data_channel_with_data_channel_dict(label, &init)
    }

    /// The data channel WebRTC-direct runs its Noise handshake on:
    /// negotiated out of band, with id 0, as its specification says.
    pub(crate) fn create_handshake_channel(&self) -> RtcDataChannel {
        let init = RtcDataChannelInit::new();
        init.set_negotiated(true);
        init.set_id(0);
        self.inner
            .create_data_channel_with_data_channel_dict("", &init)
    }

    /// Ready once a data channel from the remote waits to be taken (left
    /// in the queue for [`Self::poll_inbound_channel`]).
    pub(crate) fn poll_inbound_waiting(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut shared = self.shared.borrow_mut();
        if shared.inbound.is_empty() {
            shared.inbound_waker = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// The waker that data on a channel nobody reads yet wakes: the
    /// connection's task registers it.
    pub(crate) fn connection_waker(&self) -> ConnectionWaker {
        self.shared.borrow().connection_waker.clone()
    }

    pub(crate) fn poll_inbound_channel(&self, cx: &mut Context<'_>) -> Poll<PollDataChannel> {
        let mut shared = self.shared.borrow_mut();
        match shared.inbound.pop_front() {
            Some(channel) => Poll::Ready(channel),
            None => {
                shared.inbound_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    pub fn close(&self) {
        self.inner.close();
    }
}

fn sdp_of(description: &JsValue) -> Result<String, Error> {
    Reflect::get(description, &JsValue::from_str("sdp"))
        .ok()
        .and_then(|sdp| sdp.as_string())
        .ok_or(Error::Js {
            doing: "read the SDP of a description",
            message: "no sdp".to_owned(),
        })
}

impl std::fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConnection").finish_non_exhaustive()
    }
}
