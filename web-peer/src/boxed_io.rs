//! A connection upgrade run on a boxed byte stream, whatever the stream.
//!
//! The page runs Noise on three kinds of stream: a circuit or WebSocket
//! it dialed, a circuit it accepted (both after multistream-select), and
//! a WebRTC-direct data channel (`libp2p_webrtc_p2p::direct`). Each
//! stream type is a copy of Noise's handshake and framing code in the
//! wasm. Boxed, all three are one type, libp2p's `SubstreamBox` (which
//! the page's substreams already are), and Noise is compiled once for
//! each role. The node boxes the circuit or WebSocket before the
//! connection's multistream-select too (the substreams' copy of that code
//! serves), and boxes the Noise channel before yamux's multistream-select
//! (the same copy again) and yamux. A virtual call per read or write is
//! nothing next to a network's latency.

use futures::{AsyncRead, AsyncWrite, TryFutureExt as _, future::MapOk};
use libp2p::{
    PeerId,
    core::{
        UpgradeInfo,
        muxing::SubstreamBox,
        upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade},
    },
};

/// `U`, run on the stream boxed as a [`SubstreamBox`].
#[derive(Debug, Clone)]
pub struct OnBoxedIo<U>(pub U);

impl<U: UpgradeInfo> UpgradeInfo for OnBoxedIo<U> {
    type Info = U::Info;
    type InfoIter = U::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.protocol_info()
    }
}

impl<T, U> InboundConnectionUpgrade<T> for OnBoxedIo<U>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
    U: InboundConnectionUpgrade<SubstreamBox>,
{
    type Output = U::Output;
    type Error = U::Error;
    type Future = U::Future;

    fn upgrade_inbound(self, io: T, info: Self::Info) -> Self::Future {
        self.0.upgrade_inbound(SubstreamBox::new(io), info)
    }
}

impl<T, U> OutboundConnectionUpgrade<T> for OnBoxedIo<U>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
    U: OutboundConnectionUpgrade<SubstreamBox>,
{
    type Output = U::Output;
    type Error = U::Error;
    type Future = U::Future;

    fn upgrade_outbound(self, io: T, info: Self::Info) -> Self::Future {
        self.0.upgrade_outbound(SubstreamBox::new(io), info)
    }
}

/// `U` (an authentication, such as Noise), its channel handed on boxed as a
/// [`SubstreamBox`]: the next layer's multistream-select then runs on the
/// same stream type as every other negotiation of the page.
#[derive(Debug, Clone)]
pub struct BoxedOutput<U>(pub U);

type Boxing<C> = fn((PeerId, C)) -> (PeerId, SubstreamBox);

fn box_channel<C: AsyncRead + AsyncWrite + Send + 'static>(
    (peer, channel): (PeerId, C),
) -> (PeerId, SubstreamBox) {
    (peer, SubstreamBox::new(channel))
}

impl<U: UpgradeInfo> UpgradeInfo for BoxedOutput<U> {
    type Info = U::Info;
    type InfoIter = U::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.protocol_info()
    }
}

impl<T, U, C> InboundConnectionUpgrade<T> for BoxedOutput<U>
where
    U: InboundConnectionUpgrade<T, Output = (PeerId, C)>,
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    type Output = (PeerId, SubstreamBox);
    type Error = U::Error;
    type Future = MapOk<U::Future, Boxing<C>>;

    fn upgrade_inbound(self, io: T, info: Self::Info) -> Self::Future {
        self.0
            .upgrade_inbound(io, info)
            .map_ok(box_channel::<C> as Boxing<C>)
    }
}

impl<T, U, C> OutboundConnectionUpgrade<T> for BoxedOutput<U>
where
    U: OutboundConnectionUpgrade<T, Output = (PeerId, C)>,
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    type Output = (PeerId, SubstreamBox);
    type Error = U::Error;
    type Future = MapOk<U::Future, Boxing<C>>;

    fn upgrade_outbound(self, io: T, info: Self::Info) -> Self::Future {
        self.0
            .upgrade_outbound(io, info)
            .map_ok(box_channel::<C> as Boxing<C>)
    }
}
