//! Ed25519 signatures (RFC 8032, section 5.1) behind the part of
//! ed25519-dalek 3's API that libp2p-identity uses: [`SigningKey`],
//! [`VerifyingKey`], [`Signature`] and the [`Signer`] / [`Verifier`]
//! traits.
//!
//! Written afresh from the RFC for this project, on curve25519-dalek's
//! field, scalar and point arithmetic. The reason it exists is the page's
//! size: ed25519-dalek's default `fast` feature links curve25519-dalek's
//! precomputed basepoint tables (38 KB of data the compressor can do little
//! with) into the wasm. Here the tables are a native-only dependency
//! feature (Cargo.toml): on wasm32, `[s]B` is a variable-base
//! multiplication, a few times slower, which a page signing a handful of
//! records per session does not notice.
//!
//! Verification is ed25519-dalek's default (not `legacy_compatibility`):
//! `s` must be a canonical scalar (below the group order), `R` is compared
//! as the encoding of `[s]B - [k]A`, so a non-canonical `R` never verifies,
//! and small-order keys are accepted by [`Verifier::verify`] but refused by
//! [`VerifyingKey::verify_strict`], as there.
//!
//! Left out (nothing here uses them): Ed25519ph and Ed25519ctx (contexts
//! and prehashing), batch verification, PKCS#8 and serde, key generation
//! from an RNG (libp2p-identity draws the 32 secret bytes itself), the
//! `hazmat` module.

#![no_std]

mod signing;
mod verifying;

pub use ed25519::signature::{self, Signer, Verifier};
pub use ed25519::{self, Signature};
pub use signing::SigningKey;
pub use verifying::VerifyingKey;

/// The error of every fallible operation, opaque as in ed25519-dalek
/// without its `std` feature.
pub type SignatureError = ed25519::signature::Error;

/// An Ed25519 secret key: the 32-byte seed of RFC 8032.
pub type SecretKey = [u8; SECRET_KEY_LENGTH];

/// Length of a secret key (the seed), in bytes.
pub const SECRET_KEY_LENGTH: usize = 32;
/// Length of a compressed public key, in bytes.
pub const PUBLIC_KEY_LENGTH: usize = 32;
/// Length of a signature (`R` then `s`), in bytes.
pub const SIGNATURE_LENGTH: usize = 64;
/// Length of a keypair: the secret key, then its public key.
pub const KEYPAIR_LENGTH: usize = SECRET_KEY_LENGTH + PUBLIC_KEY_LENGTH;

/// `SHA-512(parts...)` reduced modulo the group order, the way RFC 8032
/// turns its 64-byte digests into scalars (`r` and `k`).
fn hash_to_scalar(parts: &[&[u8]]) -> curve25519_dalek::Scalar {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha512::new();
    for part in parts {
        hasher.update(part);
    }
    let mut digest = [0u8; 64];
    digest.copy_from_slice(&hasher.finalize());
    let scalar = curve25519_dalek::Scalar::from_bytes_mod_order_wide(&digest);
    // For the nonce `r`, the digest is of the secret prefix.
    zeroize::Zeroize::zeroize(&mut digest);
    scalar
}
