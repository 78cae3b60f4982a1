//! The API of snow 0.10 that `libp2p-noise` 0.47 uses, written afresh for
//! this project from the Noise Protocol Framework (revision 34): the `XX`
//! handshake over Curve25519 (the caller's [`types::Dh`]), ChaCha20-Poly1305
//! and SHA-256, which is the one protocol libp2p speaks
//! (`Noise_XX_25519_ChaChaPoly_SHA256`).
//!
//! Why: `libp2p-noise` turns on snow's default resolver on wasm32, which
//! names every hash and cipher of the spec (SHA-512, BLAKE2s, BLAKE2b,
//! AES-GCM) by a choice parsed at run time, so the browser page carried all
//! of them and snow's pattern tables. Here [`resolvers::DefaultResolver`]
//! (pure Rust: `chacha20poly1305`, and the `sha2` the page links anyway for
//! ed25519) and [`resolvers::RingResolver`] (natively, `ring`, as snow's)
//! resolve ChaCha20-Poly1305 and SHA-256 only, and [`params::NoiseParams`]
//! parses the XX pattern only; anything else is an error when the
//! [`Builder`] builds. The workspace's `Cargo.toml` puts this crate in
//! snow's place with `[patch.crates-io]`, for the native relay and peers
//! too.

mod cipherstate;
mod error;
mod handshake;
pub mod params;
pub mod resolvers;
mod symmetric;
pub mod types;

pub use error::Error;
pub use handshake::{Builder, HandshakeState, TransportState};

/// Largest Noise message, in bytes (the spec's limit).
pub const MAX_MESSAGE_LEN: usize = 65535;
/// Bytes a ChaCha20-Poly1305 tag adds to each encrypted payload.
pub const TAG_LEN: usize = 16;
/// Bytes of a SHA-256 hash and of the keys derived from it.
pub const HASH_LEN: usize = 32;
/// Bytes of a Curve25519 public key.
pub const DH_LEN: usize = 32;
