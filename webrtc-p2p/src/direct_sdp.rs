//! The two things a WebRTC-direct dialer reads or changes in SDP text: the
//! ICE credentials of its offer, and the fingerprint of its own
//! certificate. Pure text, tested natively.
//!
//! WebRTC-direct has no signaling channel: the server learns who is
//! calling from the ICE username of the first STUN request, so the dialer
//! replaces the browser's random ICE credentials with a `ufrag` of its own
//! (as password too), which it also writes into the answer it makes up
//! for the server. Both sides put their certificate fingerprints into the
//! Noise prologue, so the dialer needs its own from its local description.

use libp2p_webrtc_utils::Fingerprint;

/// `offer` with its `a=ice-ufrag:` and `a=ice-pwd:` values both replaced by
/// `ufrag`. Every other line is kept as it was; lines end in CRLF.
pub fn with_ice_credentials(offer: &str, ufrag: &str) -> String {
    let mut munged = String::with_capacity(offer.len());
    for line in offer.split("\r\n").filter(|line| !line.is_empty()) {
        if line.starts_with("a=ice-ufrag:") {
            munged.push_str("a=ice-ufrag:");
            munged.push_str(ufrag);
        } else if line.starts_with("a=ice-pwd:") {
            munged.push_str("a=ice-pwd:");
            munged.push_str(ufrag);
        } else {
            munged.push_str(line);
        }
        munged.push_str("\r\n");
    }
    munged
}

/// Why no fingerprint could be read from a description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("the description has no a=fingerprint line")]
    Missing,
    #[error("the certificate fingerprint uses {0}, not sha-256")]
    Algorithm(String),
    #[error("the sha-256 fingerprint \"{0}\" is not 32 colon-separated hex bytes")]
    Malformed(String),
}

/// The SHA-256 certificate fingerprint of `sdp`'s first `a=fingerprint:`
/// line (`a=fingerprint:sha-256 AB:CD:...`).
pub fn fingerprint(sdp: &str) -> Result<Fingerprint, FingerprintError> {
    let value = sdp
        .split("\r\n")
        .flat_map(|line| line.split('\n'))
        .find_map(|line| line.strip_prefix("a=fingerprint:"))
        .ok_or(FingerprintError::Missing)?;
    let (algorithm, hex) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| FingerprintError::Malformed(value.to_owned()))?;
    if !algorithm.eq_ignore_ascii_case("sha-256") {
        return Err(FingerprintError::Algorithm(algorithm.to_owned()));
    }
    let malformed = || FingerprintError::Malformed(hex.to_owned());
    let bytes: Vec<u8> = hex
        .trim()
        .split(':')
        .map(|byte| {
            (byte.len() == 2)
                .then(|| u8::from_str_radix(byte, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()
        .ok_or_else(malformed)?;
    let digest: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
    Ok(Fingerprint::raw(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ice-ufrag:Ab12\r\na=ice-pwd:browserchosenpassword0000\r\na=fingerprint:sha-256 A8:17:77:1E:02:7E:D1:2B:53:92:70:A6:8E:F9:02:CC:21:72:3A:92:5D:F4:97:5F:27:C4:5E:75:D4:F4:31:89\r\na=sctp-port:5000\r\n";

    #[test]
    fn the_offer_carries_our_ufrag_as_ufrag_and_password_and_nothing_else_changes() {
        let munged = with_ice_credentials(OFFER, "libp2p+webrtc+v1/xyz");
        assert!(
            munged.contains("\r\na=ice-ufrag:libp2p+webrtc+v1/xyz\r\n"),
            "{munged}"
        );
        assert!(
            munged.contains("\r\na=ice-pwd:libp2p+webrtc+v1/xyz\r\n"),
            "{munged}"
        );
        assert!(
            !munged.contains("Ab12") && !munged.contains("browserchosen"),
            "{munged}"
        );
        let others = |sdp: &str| -> Vec<String> {
            sdp.split("\r\n")
                .filter(|line| !line.starts_with("a=ice-"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(others(&munged), others(OFFER));
    }

    #[test]
    fn the_fingerprint_is_read_from_the_description() {
        let fingerprint = fingerprint(OFFER).expect("a fingerprint");
        assert_eq!(
            fingerprint.to_sdp_format(),
            "A8:17:77:1E:02:7E:D1:2B:53:92:70:A6:8E:F9:02:CC:21:72:3A:92:5D:F4:97:5F:27:C4:5E:75:D4:F4:31:89"
        );
    }

    #[test]
    fn a_missing_foreign_or_malformed_fingerprint_is_an_error() {
        assert_eq!(fingerprint("v=0\r\n"), Err(FingerprintError::Missing));
        assert_eq!(
            fingerprint("a=fingerprint:sha-1 AB:CD\r\n"),
            Err(FingerprintError::Algorithm("sha-1".to_owned()))
        );
        assert!(matches!(
            fingerprint("a=fingerprint:sha-256 AB:CD\r\n"),
            Err(FingerprintError::Malformed(_))
        ));
        assert!(matches!(
            fingerprint("a=fingerprint:sha-256 ZZ:CD\r\n"),
            Err(FingerprintError::Malformed(_))
        ));
    }
}
