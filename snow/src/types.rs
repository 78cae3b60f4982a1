//! The functions a Noise session is built from, supplied by a
//! [`CryptoResolver`](crate::resolvers::CryptoResolver).

use crate::{Error, HASH_LEN};

/// A source of random bytes (ephemeral keys).
pub trait Random: Send + Sync {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error>;
}

/// A Diffie-Hellman key pair and function (Curve25519 here).
pub trait Dh: Send + Sync {
    fn name(&self) -> &'static str;
    fn pub_len(&self) -> usize;
    fn priv_len(&self) -> usize;
    /// Sets the private key (and so the public key).
    fn set(&mut self, privkey: &[u8]);
    /// Makes a fresh key pair.
    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), Error>;
    fn pubkey(&self) -> &[u8];
    fn privkey(&self) -> &[u8];
    /// The shared secret with `pubkey`, into `out` (`pub_len` bytes).
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), Error>;
}

/// A hash function with a 32-byte output (SHA-256 here).
pub trait Hash: Send + Sync {
    fn name(&self) -> &'static str;
    /// The block length, for HMAC (64 for SHA-256).
    fn block_len(&self) -> usize;
    /// The hash of the concatenation of `parts`.
    fn digest(&self, parts: &[&[u8]]) -> [u8; HASH_LEN];
}

/// An AEAD cipher with a 32-byte key and a 64-bit nonce
/// (ChaCha20-Poly1305 here).
pub trait Cipher: Send + Sync {
    fn name(&self) -> &'static str;
    fn set(&mut self, key: &[u8; 32]);
    /// Encrypts `plaintext` into `out` (which holds at least its length
    /// and a tag), returning the bytes written.
    fn encrypt(&self, nonce: u64, ad: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize;
    /// Decrypts and authenticates `ciphertext` into `out` (which holds at
    /// least its length without the tag), returning the bytes written.
    fn decrypt(
        &self,
        nonce: u64,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error>;
}
