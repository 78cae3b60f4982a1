//! This machine's own non-loopback address, for relays that Firefox must
//! reach over WebRTC.
//!
//! Firefox gathers no loopback ICE candidates and so never completes ICE
//! with a server at 127.0.0.1 (checked with Firefox 153: with
//! `media.peerconnection.ice.loopback` set too, it gathered only the
//! interface's addresses): a WebRTC-direct dial to a relay on loopback
//! fails after about 5 s. A relay on a user's machine is reached at
//! its LAN or public address, never at 127.0.0.1, so the Firefox tests
//! give the relay this machine's LAN address as well.

use std::{net::Ipv4Addr, process::Command};

use anyhow::{Context as _, bail};

/// The first global IPv4 address of this machine's interfaces (`ip -4
/// addr show scope global`).
pub fn lan_ipv4() -> anyhow::Result<Ipv4Addr> {
    let output = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .context("run `ip -o -4 addr show scope global` (iproute2; scripts/setup installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    match first_address(&text) {
        Some(address) => Ok(address),
        None => bail!(
            "this machine has no global IPv4 address, and Firefox refuses WebRTC to \
             loopback: the Firefox tests need one (`ip addr` said: {text:?})"
        ),
    }
}

/// The address of the first `inet <address>/<prefix>` in `ip -o` output.
fn first_address(text: &str) -> Option<Ipv4Addr> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        words.find(|word| *word == "inet")?;
        words.next()?.split('/').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_global_address_is_read_from_ip_output() {
        let text = "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                    5: eth1    inet 10.0.0.7/8 scope global eth1\n";
        assert_eq!(first_address(text), Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(first_address(""), None);
    }
}
