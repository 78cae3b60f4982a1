//! SDP text of WebRTC-direct (specs `webrtc/webrtc-direct.md`): the dialer
//! makes up the server's answer from its address and fingerprint, and
//! the server makes up the dialer's offer from its first STUN request;
//! both use one random `ufrag` as ICE username and password.

use std::net::SocketAddr;

use crate::Fingerprint;

/// The prefix the spec puts on every ufrag, to allow later versions.
const UFRAG_PREFIX: &str = "libp2p+webrtc+v1/";

/// Random characters after the prefix.
const UFRAG_RANDOM_LEN: usize = 64;

/// The answer of an ICE-lite server at `addr` with certificate
/// `server_fingerprint`, for a dialer whose offer uses `client_ufrag`.
pub fn answer(addr: SocketAddr, server_fingerprint: Fingerprint, client_ufrag: &str) -> String {
    render_description(SERVER_ANSWER, addr, server_fingerprint, client_ufrag)
}

/// The server's side of the session: ICE-lite, passive DTLS (the dialer
/// starts it), one SCTP association with the spec's 16 KiB messages, and
/// its one host candidate.
const SERVER_ANSWER: &str = "v=0\r
o=- 0 0 IN {ip_version} {target_ip}\r
s=-\r
t=0 0\r
a=ice-lite\r
m=application {target_port} UDP/DTLS/SCTP webrtc-datachannel\r
c=IN {ip_version} {target_ip}\r
a=mid:0\r
a=ice-options:ice2\r
a=ice-ufrag:{ufrag}\r
a=ice-pwd:{pwd}\r
a=fingerprint:{fingerprint_algorithm} {fingerprint_value}\r
a=setup:passive\r
a=sctp-port:5000\r
a=max-message-size:16384\r
a=candidate:1 1 UDP 2130706431 {target_ip} {target_port} typ host\r
a=end-of-candidates\r
";

/// Fills a description template: `{ip_version}` (`IP4` or `IP6`),
/// `{target_ip}`, `{target_port}`, `{fingerprint_algorithm}`,
/// `{fingerprint_value}`, and `{ufrag}` and `{pwd}` (both `ufrag`).
pub fn render_description(
    description: &str,
    addr: SocketAddr,
    fingerprint: Fingerprint,
    ufrag: &str,
) -> String {
    let ip_version = if addr.is_ipv4() { "IP4" } else { "IP6" };
    description
        .replace("{ip_version}", ip_version)
        .replace("{target_ip}", &addr.ip().to_string())
        .replace("{target_port}", &addr.port().to_string())
        .replace("{fingerprint_algorithm}", &fingerprint.algorithm())
        .replace("{fingerprint_value}", &fingerprint.to_sdp_format())
        .replace("{ufrag}", ufrag)
        .replace("{pwd}", ufrag)
}

/// A new ufrag: the spec's prefix and 64 random letters and digits.
///
/// # Panics
///
/// If the system (or, in a browser, `crypto.getRandomValues`) has no
/// randomness to give, which leaves nothing safe to do.
pub fn random_ufrag() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut ufrag = String::with_capacity(UFRAG_PREFIX.len() + UFRAG_RANDOM_LEN);
    ufrag.push_str(UFRAG_PREFIX);
    let mut bytes = [0u8; 2 * UFRAG_RANDOM_LEN];
    while ufrag.len() < UFRAG_PREFIX.len() + UFRAG_RANDOM_LEN {
        getrandom::fill(&mut bytes).expect("randomness for an ICE ufrag");
        // Only bytes below a multiple of the alphabet's size, so that every
        // character is equally likely.
        let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
        for byte in bytes.iter().filter(|byte| **byte < limit) {
            if ufrag.len() == UFRAG_PREFIX.len() + UFRAG_RANDOM_LEN {
                break;
            }
            ufrag.push(ALPHABET[usize::from(*byte) % ALPHABET.len()] as char);
        }
    }
    ufrag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_describes_the_server_with_the_dialers_ufrag() {
        let fingerprint = Fingerprint::raw([0xab; 32]);
        let answer = answer(
            "192.0.2.7:4003".parse().expect("addr"),
            fingerprint,
            "libp2p+webrtc+v1/x",
        );
        for line in [
            "o=- 0 0 IN IP4 192.0.2.7",
            "a=ice-lite",
            "m=application 4003 UDP/DTLS/SCTP webrtc-datachannel",
            "c=IN IP4 192.0.2.7",
            "a=ice-ufrag:libp2p+webrtc+v1/x",
            "a=ice-pwd:libp2p+webrtc+v1/x",
            &format!("a=fingerprint:sha-256 {}", fingerprint.to_sdp_format()),
            "a=setup:passive",
            "a=max-message-size:16384",
            "a=candidate:1 1 UDP 2130706431 192.0.2.7 4003 typ host",
        ] {
            assert!(
                answer.split("\r\n").any(|l| l == line),
                "no {line:?} in\n{answer}"
            );
        }
        assert!(!answer.contains('{'), "a placeholder left in\n{answer}");
    }

    #[test]
    fn ipv6_addresses_render_as_ip6() {
        let rendered = render_description(
            "c=IN {ip_version} {target_ip} {target_port}",
            "[2001:db8::1]:9".parse().expect("addr"),
            Fingerprint::FF,
            "u",
        );
        assert_eq!(rendered, "c=IN IP6 2001:db8::1 9");
    }

    #[test]
    fn ufrags_carry_the_prefix_and_differ() {
        let (a, b) = (random_ufrag(), random_ufrag());
        assert!(a.starts_with("libp2p+webrtc+v1/"), "{a}");
        assert_eq!(a.len(), "libp2p+webrtc+v1/".len() + 64);
        assert!(
            a["libp2p+webrtc+v1/".len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric()),
            "{a}"
        );
        assert_ne!(a, b);
    }
}
