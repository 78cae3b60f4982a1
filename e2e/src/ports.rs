//! Ports: the relay's, read back from what it printed after binding port
//! 0, and its arguments for them. Nothing here picks a "free" port and
//! releases it: every program the tests start binds port 0 and reports
//! what it got (the relay prints its addresses, chromedriver its port).

use std::path::Path;

use anyhow::Context as _;

/// A relay's ports on 127.0.0.1. A browser test's relay binds port 0
/// for each and prints what it got ([`RelayPorts::from_printed`]); a
/// restart asks for the same numbers again, so that the pages' pasted
/// address still points at it.
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
    /// Port 0 everywhere: the relay binds whatever the system gives it, so
    /// no port is picked, released and raced for.
    pub const ANY: Self = Self {
        tcp: 0,
        websocket: 0,
        webrtc: 0,
        quic: 0,
        stun: 0,
        http: 0,
    };

    /// The ports a relay on 127.0.0.1 printed: its multiaddrs (TCP,
    /// WebSocket, WebRTC-direct, QUIC), its STUN URLs and its page URLs.
    pub fn from_printed(
        multiaddrs: &[String],
        stun_urls: &[String],
        page_urls: &[String],
    ) -> anyhow::Result<Self> {
        const HOST: &str = "/ip4/127.0.0.1/";
        let port_in = |what: &str, matches: &dyn Fn(&str) -> bool, after: &str| {
            multiaddrs
                .iter()
                .filter(|addr| addr.starts_with(HOST) && matches(addr))
                .find_map(|addr| number_after(addr, after))
                .with_context(|| {
                    format!("the relay printed no {what} address on 127.0.0.1: {multiaddrs:?}")
                })
        };
        let url_port = |what: &str, urls: &[String], prefix: &str| {
            urls.iter()
                .find_map(|url| {
                    let rest = url.strip_prefix(prefix)?;
                    let port = rest.rsplit_once(':')?.1.trim_end_matches('/');
                    port.parse().ok()
                })
                .with_context(|| format!("the relay printed no {what} on 127.0.0.1: {urls:?}"))
        };
        Ok(Self {
            tcp: port_in(
                "TCP",
                &|addr| !addr.contains("/ws") && addr.contains("/tcp/"),
                "/tcp/",
            )?,
            websocket: port_in("WebSocket", &|addr| addr.contains("/ws/"), "/tcp/")?,
            webrtc: port_in(
                "WebRTC-direct",
                &|addr| addr.contains("/webrtc-direct/"),
                "/udp/",
            )?,
            quic: port_in("QUIC", &|addr| addr.contains("/quic-v1/"), "/udp/")?,
            stun: url_port("STUN URL", stun_urls, "stun:127.0.0.1")?,
            http: url_port("page URL", page_urls, "http://127.0.0.1")?,
        })
    }

    /// `http://127.0.0.1:<http>/`
    pub fn page_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http)
    }
}

/// The number after `after` in `addr` (`/tcp/4001/...` → 4001).
fn number_after(addr: &str, after: &str) -> Option<u16> {
    let rest = &addr[addr.find(after)? + after.len()..];
    rest.split('/').next()?.parse().ok()
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

    const PRINTED: [&str; 4] = [
        "/ip4/127.0.0.1/tcp/41002/ws/p2p/12D3KooWExample",
        "/ip4/127.0.0.1/udp/41003/webrtc-direct/certhash/uEiExample/p2p/12D3KooWExample",
        "/ip4/127.0.0.1/tcp/41001/p2p/12D3KooWExample",
        "/ip4/127.0.0.1/udp/41004/quic-v1/p2p/12D3KooWExample",
    ];

    fn printed() -> anyhow::Result<RelayPorts> {
        RelayPorts::from_printed(
            &PRINTED.map(str::to_owned),
            &["stun:127.0.0.1:43478".to_owned()],
            &["http://127.0.0.1:48000/".to_owned()],
        )
    }

    #[test]
    fn relay_ports_are_read_from_what_the_relay_printed() {
        assert_eq!(
            printed().expect("ports"),
            RelayPorts {
                tcp: 41001,
                websocket: 41002,
                webrtc: 41003,
                quic: 41004,
                stun: 43478,
                http: 48000,
            }
        );
        let error = RelayPorts::from_printed(
            &PRINTED[..3]
                .iter()
                .map(|a| (*a).to_owned())
                .collect::<Vec<_>>(),
            &[],
            &[],
        )
        .expect_err("no QUIC address");
        assert!(error.to_string().contains("QUIC"), "{error:#}");
    }

    #[test]
    fn relay_ports_parse_as_relay_flags() {
        let ports = printed().expect("ports");
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
        assert_eq!(ports.page_url(), "http://127.0.0.1:48000/");
    }
}
