//! Sockets the relay binds itself (HTTP, STUN), one per listen IP.
//!
//! An IPv6 socket is bound IPv6-only, as libp2p binds its own: with both
//! `0.0.0.0` and `::` listened on, a dual-stack `::` socket would take the
//! IPv4 port too and the second bind would fail with "address in use".

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Connections the kernel queues before the HTTP server accepts them.
const HTTP_BACKLOG: i32 = 1024;

fn socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A non-blocking UDP socket bound to `addr`.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket(addr, Type::DGRAM, Protocol::UDP)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A non-blocking TCP listener bound to `addr`.
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = socket(addr, Type::STREAM, Protocol::TCP)?;
    // As tokio's own `TcpListener::bind`: a restarted relay may rebind
    // while its old connections linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(HTTP_BACKLOG)?;
    tokio::net::TcpListener::from_std(socket.into())
}
