//! A UDP probe of a lab router, without browsers: which public port the
//! laptop's packets leave with for different destinations (mapping), and
//! which senders get a packet back in to it (filtering). It tells a
//! misbehaving lab from a misbehaving browser.

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket},
    time::Duration,
};

use anyhow::{Context as _, bail};

use super::{Lab, Netns, RELAY_IP, Site};

/// The laptop's port for the probe.
const LAPTOP_PORT: u16 = 40000;
/// A second address of the relay's namespace: a stranger on the internet.
const STRANGER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
/// How long a packet that should arrive may take (they take microseconds).
const ARRIVES_WITHIN: Duration = Duration::from_secs(2);
/// How long to listen before concluding that a packet was dropped.
const DROPPED_AFTER: Duration = Duration::from_millis(400);

/// What the probe saw of one router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatBehaviour {
    /// The laptop's address and port as the first server saw them.
    pub public: SocketAddrV4,
    /// The same public port for a second port of that server and for
    /// another address.
    pub endpoint_independent_mapping: bool,
    /// A reply from the server the laptop sent to gets in.
    pub reply_gets_in: bool,
    /// A packet to the public port from another port of that server gets
    /// in (no port-dependent filtering).
    pub other_port_gets_in: bool,
    /// A packet from an address the laptop never sent to gets in (no
    /// address-dependent filtering).
    pub stranger_gets_in: bool,
    /// When a peer's packet reaches the router before the laptop sends to
    /// that peer (as in hole punching), the laptop's packets to the peer
    /// still leave from the public port STUN saw. A filter placed after
    /// conntrack breaks this (NATLAB-NOTES, "the conntrack clash").
    pub early_peer_keeps_mapping: bool,
}

impl fmt::Display for NatBehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "public {}, endpoint-independent mapping {}, reply gets in {}, other port gets in {}, \
             stranger gets in {}, early peer keeps the mapping {}",
            self.public,
            self.endpoint_independent_mapping,
            self.reply_gets_in,
            self.other_port_gets_in,
            self.stranger_gets_in,
            self.early_peer_keeps_mapping
        )
    }
}

/// Probes `site`'s router from its laptop against servers in the relay's
/// namespace (the relay itself need not run).
pub fn probe(lab: &Lab, site: &Site) -> anyhow::Result<NatBehaviour> {
    if !lab
        .relay
        .ip(&["-4", "addr", "show", "dev", "eth0"])?
        .contains(&STRANGER_IP.to_string())
    {
        lab.relay
            .ip(&["addr", "add", &format!("{STRANGER_IP}/24"), "dev", "eth0"])?;
    }
    let laptop = bind(&site.host, Ipv4Addr::UNSPECIFIED, LAPTOP_PORT)?;
    let server = bind(&lab.relay, RELAY_IP, 3479)?;
    let server_other_port = bind(&lab.relay, RELAY_IP, 3480)?;
    let stranger = bind(&lab.relay, STRANGER_IP, 3481)?;

    let public = seen_from(&laptop, &server, "to server")?;
    let public_other_port = seen_from(&laptop, &server_other_port, "to server's other port")?;
    let public_other_address = seen_from(&laptop, &stranger, "to another address")?;
    let endpoint_independent_mapping =
        public == public_other_port && public == public_other_address;

    // Fresh sockets, so that the router has seen no packet to them.
    let unseen_port = bind(&lab.relay, RELAY_IP, 3482)?;
    let unseen_address = bind(&lab.relay, STRANGER_IP, 3483)?;
    let other_port_gets_in = gets_in(&unseen_port, public, &laptop, "from another port")?;
    let stranger_gets_in = gets_in(&unseen_address, public, &laptop, "from a stranger")?;
    let reply_gets_in = gets_in(&server, public, &laptop, "reply")?;

    let early_peer = bind(&lab.relay, STRANGER_IP, 3484)?;
    // Let in or dropped, depending on the kind: either way the router has
    // seen it before the laptop's first packet to this peer.
    gets_in(&early_peer, public, &laptop, "early packet from a peer")?;
    let public_for_early_peer = seen_from(&laptop, &early_peer, "to the early peer")?;
    Ok(NatBehaviour {
        public,
        endpoint_independent_mapping,
        reply_gets_in,
        other_port_gets_in,
        stranger_gets_in,
        early_peer_keeps_mapping: public_for_early_peer == public,
    })
}

/// A UDP socket bound to `ip:port` inside `netns`.
fn bind(netns: &Netns, ip: Ipv4Addr, port: u16) -> anyhow::Result<UdpSocket> {
    netns
        .run_inside(|| UdpSocket::bind((ip, port)))?
        .with_context(|| format!("bind {ip}:{port} in {}", netns.name()))
}

/// Sends `label` from `from` to `to`; where `to` saw it come from.
fn seen_from(from: &UdpSocket, to: &UdpSocket, label: &str) -> anyhow::Result<SocketAddrV4> {
    from.send_to(label.as_bytes(), to.local_addr()?)?;
    match receive(to, label, ARRIVES_WITHIN)? {
        Some(SocketAddr::V4(source)) => Ok(source),
        Some(other) => bail!("{label}: came from {other}"),
        None => bail!(
            "{label}: nothing arrived within {ARRIVES_WITHIN:?}: the router does not forward outbound UDP"
        ),
    }
}

/// Sends `label` from `from` to `public`; whether `laptop` receives it.
fn gets_in(
    from: &UdpSocket,
    public: SocketAddrV4,
    laptop: &UdpSocket,
    label: &str,
) -> anyhow::Result<bool> {
    from.send_to(label.as_bytes(), public)?;
    Ok(receive(laptop, label, DROPPED_AFTER)?.is_some())
}

/// Waits up to `within` for the datagram `label` on `socket`; its source,
/// or None. Other datagrams are skipped.
fn receive(
    socket: &UdpSocket,
    label: &str,
    within: Duration,
) -> anyhow::Result<Option<SocketAddr>> {
    let deadline = std::time::Instant::now() + within;
    let mut buffer = [0_u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(&mut buffer) {
            Ok((length, source)) if &buffer[..length] == label.as_bytes() => {
                return Ok(Some(source));
            }
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(error).context(format!("receive {label}")),
        }
    }
}
