//! The browsers' secure WebSocket listener (`/tls/ws`), terminating TLS
//! with a certificate that can change while it runs.
//!
//! libp2p-websocket can terminate TLS itself, but with one certificate
//! fixed when the transport is built: a renewed certificate would need a
//! restart. Here TLS is done one layer lower, by [`TlsTcp`] (TCP whose
//! accepted streams go through a rustls acceptor whose certificate resolver
//! is swapped on renewal), and libp2p-websocket runs plain `/ws` over it.
//! [`SecureWebSocket`] translates the addresses between the two views: the
//! swarm listens on and reports `/tcp/PORT/tls/ws`, the websocket layer
//! sees `/tcp/PORT/ws`. The transport only listens; the relay never dials
//! a browser.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures::{FutureExt as _, future::BoxFuture};
use futures_rustls::TlsAcceptor;
use libp2p::{
    Multiaddr,
    core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent},
    multiaddr::Protocol,
    tcp, websocket,
};

/// Why an incoming TLS connection failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsTcpError {
    #[error("TCP: {0}")]
    Tcp(#[source] std::io::Error),
    #[error("TLS handshake: {0}")]
    Handshake(#[source] std::io::Error),
}

/// TCP listener whose every accepted stream is a TLS server stream.
pub struct TlsTcp {
    tcp: tcp::tokio::Transport,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTcp").finish_non_exhaustive()
    }
}

impl TlsTcp {
    pub fn new(config: tcp::Config, acceptor: TlsAcceptor) -> Self {
        Self {
            tcp: tcp::tokio::Transport::new(config),
            acceptor,
        }
    }
}

impl Transport for TlsTcp {
    type Output = futures_rustls::server::TlsStream<tcp::tokio::TcpStream>;
    type Error = TlsTcpError;
    type ListenerUpgrade = BoxFuture<'static, Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.tcp
            .listen_on(id, addr)
            .map_err(|error| error.map(TlsTcpError::Tcp))
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.tcp.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let acceptor = self.acceptor.clone();
        Pin::new(&mut self.tcp).poll(cx).map(|event| {
            event
                .map_upgrade(|upgrade| {
                    async move {
                        let stream = upgrade.await.map_err(TlsTcpError::Tcp)?;
                        acceptor
                            .accept(stream)
                            .await
                            .map_err(TlsTcpError::Handshake)
                    }
                    .boxed()
                })
                .map_err(TlsTcpError::Tcp)
        })
    }
}

/// libp2p-websocket over [`TlsTcp`], listening on `/tcp/PORT/tls/ws`
/// addresses only.
pub struct SecureWebSocket {
    inner: websocket::Config<TlsTcp>,
}

impl std::fmt::Debug for SecureWebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureWebSocket").finish_non_exhaustive()
    }
}

impl SecureWebSocket {
    pub fn new(inner: websocket::Config<TlsTcp>) -> Self {
        Self { inner }
    }
}

impl Transport for SecureWebSocket {
    type Output = <websocket::Config<TlsTcp> as Transport>::Output;
    type Error = <websocket::Config<TlsTcp> as Transport>::Error;
    type ListenerUpgrade = <websocket::Config<TlsTcp> as Transport>::ListenerUpgrade;
    type Dial = <websocket::Config<TlsTcp> as Transport>::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        let Some(plain) = without_tls(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        self.inner
            .listen_on(id, plain)
            .map_err(|error| match error {
                TransportError::MultiaddrNotSupported(_) => {
                    TransportError::MultiaddrNotSupported(addr)
                }
                other => other,
            })
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx).map(|event| match event {
            TransportEvent::NewAddress {
                listener_id,
                listen_addr,
            } => TransportEvent::NewAddress {
                listener_id,
                listen_addr: with_tls(&listen_addr),
            },
            TransportEvent::AddressExpired {
                listener_id,
                listen_addr,
            } => TransportEvent::AddressExpired {
                listener_id,
                listen_addr: with_tls(&listen_addr),
            },
            TransportEvent::Incoming {
                listener_id,
                upgrade,
                local_addr,
                send_back_addr,
            } => TransportEvent::Incoming {
                listener_id,
                upgrade,
                local_addr: with_tls(&local_addr),
                send_back_addr: with_tls(&send_back_addr),
            },
            other => other,
        })
    }
}

/// `/…/tcp/P/tls/ws` as `/…/tcp/P/ws`; `None` for any other address.
fn without_tls(addr: &Multiaddr) -> Option<Multiaddr> {
    let protocols: Vec<Protocol<'_>> = addr.iter().collect();
    let tls_at = protocols
        .windows(2)
        .position(|pair| matches!(pair, [Protocol::Tls, Protocol::Ws(_)]))?;
    Some(
        protocols
            .into_iter()
            .enumerate()
            .filter_map(|(index, protocol)| (index != tls_at).then_some(protocol))
            .collect(),
    )
}

/// `/…/ws` as `/…/tls/ws` (what the websocket layer reports, as the swarm
/// must see it).
fn with_tls(addr: &Multiaddr) -> Multiaddr {
    let mut out = Multiaddr::empty();
    for protocol in addr.iter() {
        if matches!(protocol, Protocol::Ws(_)) {
            out.push(Protocol::Tls);
        }
        out.push(protocol);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("valid multiaddr")
    }

    #[test]
    fn tls_is_taken_out_for_the_websocket_layer_and_put_back_for_the_swarm() {
        let secure = addr("/ip4/127.0.0.1/tcp/4443/tls/ws");
        let plain = without_tls(&secure).expect("a /tls/ws address");
        assert_eq!(plain, addr("/ip4/127.0.0.1/tcp/4443/ws"));
        assert_eq!(with_tls(&plain), secure);
        assert_eq!(
            with_tls(&addr(
                "/ip6/::1/tcp/1/ws/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
            )),
            addr("/ip6/::1/tcp/1/tls/ws/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN")
        );
    }

    #[test]
    fn only_tls_websocket_addresses_are_taken() {
        assert_eq!(without_tls(&addr("/ip4/127.0.0.1/tcp/4002/ws")), None);
        assert_eq!(without_tls(&addr("/ip4/127.0.0.1/tcp/4001")), None);
        assert_eq!(without_tls(&addr("/ip4/127.0.0.1/tcp/4001/tls")), None);
    }
}
