//! Fixed free ports, and the relay's arguments for them.

use std::{
    net::{Ipv4Addr, TcpListener, UdpSocket},
    path::Path,
};

use anyhow::Context as _;

/// A free TCP port on 127.0.0.1 (free when this returns: bind it soon).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A free UDP port on 127.0.0.1 (free when this returns: bind it soon).
pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Fixed ports for a relay on 127.0.0.1, picked once so that a restarted
/// relay listens where the pages' pasted address points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPorts {
    /// `--port` (TCP, native peers).
    pub tcp: u16,
    /// `--websocket-port` (TCP, `/ws`).
    pub websocket: u16,
    /// `--webrtc-port` (UDP, WebRTC-direct).
    pub webrtc: u16,
    /// `--quic-port` (UDP, native peers).
    pub quic: u16,
    /// `--stun-port` (UDP).
    pub stun: u16,
    /// `--http-port` (TCP: the page, `/api/relay`).
    pub http: u16,
}

impl RelayPorts {
    /// Six distinct free ports. Every socket stays bound until all are
    /// picked, so no two are the same.
    pub fn pick() -> anyhow::Result<Self> {
        let tcp: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .collect::<Result<_, _>>()
            .context("bind a free TCP port")?;
        let udp: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
            .collect::<Result<_, _>>()
            .context("bind a free UDP port")?;
        let tcp_port = |i: usize| -> anyhow::Result<u16> { Ok(tcp[i].local_addr()?.port()) };
        let udp_port = |i: usize| -> anyhow::Result<u16> { Ok(udp[i].local_addr()?.port()) };
        Ok(Self {
            tcp: tcp_port(0)?,
            websocket: tcp_port(1)?,
            http: tcp_port(2)?,
            webrtc: udp_port(0)?,
            stun: udp_port(1)?,
            quic: udp_port(2)?,
        })
    }

    /// `http://127.0.0.1:<http>/`
    pub fn page_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http)
    }
}

/// The relay's command-line arguments for 127.0.0.1 on `ports`, with its
/// state in `state_dir` and the page from `page_dir`, plus `extra` flags.
pub fn relay_args(
    ports: &RelayPorts,
    state_dir: &Path,
    page_dir: &Path,
    extra: &[&str],
) -> Vec<String> {
    let mut args = vec![
        "--listen-ip=127.0.0.1".to_owned(),
        format!("--port={}", ports.tcp),
        format!("--websocket-port={}", ports.websocket),
        format!("--webrtc-port={}", ports.webrtc),
        format!("--stun-port={}", ports.stun),
        format!("--quic-port={}", ports.quic),
        format!("--http-port={}", ports.http),
        format!("--state-dir={}", state_dir.display()),
        format!("--page-dir={}", page_dir.display()),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn relay_ports_are_distinct_and_parse_as_relay_flags() {
        let ports = RelayPorts::pick().expect("free ports");
        let mut tcp = [ports.tcp, ports.websocket, ports.http];
        tcp.sort_unstable();
        assert!(tcp.windows(2).all(|pair| pair[0] != pair[1]), "{ports:?}");
        let mut udp = [ports.webrtc, ports.stun, ports.quic];
        udp.sort_unstable();
        assert!(udp.windows(2).all(|pair| pair[0] != pair[1]), "{ports:?}");
        let args = relay_args(&ports, Path::new("/tmp/state"), Path::new("/tmp/page"), &[]);
        let options =
            relay::Options::try_parse_from(std::iter::once("relay".to_owned()).chain(args))
                .expect("options parse");
        assert_eq!(
            (
                options.port,
                options.websocket_port,
                options.webrtc_port,
                options.stun_port,
                options.quic_port,
                options.http_port
            ),
            (
                ports.tcp,
                ports.websocket,
                ports.webrtc,
                ports.stun,
                ports.quic,
                ports.http
            )
        );
        assert_eq!(
            ports.page_url(),
            format!("http://127.0.0.1:{}/", ports.http)
        );
    }
}
