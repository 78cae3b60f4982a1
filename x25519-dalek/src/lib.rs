//! X25519 (RFC 7748, section 5) behind the part of x25519-dalek 3's API
//! that libp2p-noise uses: the [`x25519`] function and the basepoint's
//! encoding, [`X25519_BASEPOINT_BYTES`].
//!
//! Written afresh for this project on curve25519-dalek's Montgomery
//! ladder. It exists so that nothing turns on curve25519-dalek's
//! `precomputed-tables` feature in the page (x25519-dalek's default
//! does): `x25519` multiplies by the ladder, base point or not, and never
//! used the tables.
//!
//! Left out (libp2p-noise keeps its own key types): `PublicKey`,
//! `StaticSecret`, `EphemeralSecret`, `ReusableSecret`, `SharedSecret`.

#![no_std]

use curve25519_dalek::montgomery::MontgomeryPoint;

/// The u-coordinate of X25519's base point, 9, little-endian.
pub const X25519_BASEPOINT_BYTES: [u8; 32] = {
    let mut bytes = [0u8; 32];
    bytes[0] = 9;
    bytes
};

/// RFC 7748's X25519: the scalar `k` clamped (the three low bits and bit
/// 255 cleared, bit 254 set), times the point whose u-coordinate is `u`
/// (bit 255 of `u` ignored), as a little-endian u-coordinate.
///
/// The result is all zeros when `u` has small order; like x25519-dalek's,
/// this function does not refuse that (libp2p-noise's caller decides).
pub fn x25519(k: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    MontgomeryPoint(u).mul_clamped(k).to_bytes()
}
