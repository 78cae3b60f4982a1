//! A certificate's SHA-256 fingerprint, as the `/certhash` of a multiaddr
//! and as the `a=fingerprint` of SDP.

use std::fmt;

use libp2p_core::multiaddr::multihash;
use sha2::{Digest as _, Sha256};

/// The only hash function the spec requires, and the only one supported.
pub const SHA256: &str = "sha-256";

/// The multicodec of SHA-256.
const SHA256_MULTIHASH_CODE: u64 = 0x12;

type Multihash = multihash::Multihash<64>;

/// The SHA-256 digest of a DTLS certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// A stand-in where no fingerprint is checked (a WebRTC-direct server
    /// learns the client's only after DTLS).
    pub const FF: Fingerprint = Fingerprint([0xff; 32]);

    pub const fn raw(digest: [u8; 32]) -> Self {
        Fingerprint(digest)
    }

    /// The fingerprint of a DER-encoded certificate.
    pub fn from_certificate(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    /// A `/certhash` value, if it is a SHA-256 multihash.
    pub fn try_from_multihash(hash: Multihash) -> Option<Self> {
        if hash.code() != SHA256_MULTIHASH_CODE {
            return None;
        }
        Some(Fingerprint(hash.digest().try_into().ok()?))
    }

    pub fn to_multihash(self) -> Multihash {
        Multihash::wrap(SHA256_MULTIHASH_CODE, &self.0).expect("32 bytes fit a 64-byte multihash")
    }

    /// Upper-case hex bytes separated by colons (RFC 4572, section 5).
    pub fn to_sdp_format(self) -> String {
        let hex: Vec<String> = self.0.iter().map(|byte| format!("{byte:02X}")).collect();
        hex.join(":")
    }

    /// The hash function's name in SDP (RFC 8122, section 5).
    pub fn algorithm(&self) -> String {
        SHA256.to_owned()
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: String = self.0.iter().map(|byte| format!("{byte:02x}")).collect();
        write!(f, "Fingerprint({hex})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_format_is_colon_separated_upper_case_hex() {
        let mut digest = [0u8; 32];
        digest[0] = 0xab;
        digest[31] = 0x0f;
        let sdp = Fingerprint::raw(digest).to_sdp_format();
        assert!(sdp.starts_with("AB:00:"), "{sdp}");
        assert!(sdp.ends_with(":00:0F"), "{sdp}");
        assert_eq!(sdp.len(), 32 * 3 - 1);
    }

    #[test]
    fn multihash_round_trip_and_other_hashes_refused() {
        let fingerprint = Fingerprint::from_certificate(b"a certificate");
        let hash = fingerprint.to_multihash();
        assert_eq!(hash.code(), 0x12);
        assert_eq!(Fingerprint::try_from_multihash(hash), Some(fingerprint));
        let sha1 = Multihash::wrap(0x11, &[1; 20]).expect("fits");
        assert_eq!(Fingerprint::try_from_multihash(sha1), None);
        let short = Multihash::wrap(0x12, &[1; 20]).expect("fits");
        assert_eq!(Fingerprint::try_from_multihash(short), None);
    }
}
