//! Where a session's functions come from. [`DefaultResolver`] is pure Rust;
//! [`RingResolver`] (feature `ring-resolver`) uses `ring`. Both resolve
//! ChaCha20-Poly1305 and SHA-256 and nothing else: libp2p resolves its own
//! random numbers and Curve25519.

use crate::params::{CipherChoice, DHChoice, HashChoice};
use crate::types::{Cipher, Dh, Hash, Random};

/// Supplies the functions a protocol name chooses; `None` when it has none.
pub trait CryptoResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>>;
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>>;
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>>;
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>>;
}

/// ChaCha20-Poly1305 (`chacha20poly1305`) and SHA-256 (`sha2`).
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultResolver;

impl CryptoResolver for DefaultResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        None
    }

    fn resolve_dh(&self, _: &DHChoice) -> Option<Box<dyn Dh>> {
        None
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::SHA256 => Some(Box::new(rust_crypto::Sha256)),
            _ => None,
        }
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(rust_crypto::ChaChaPoly::default())),
            CipherChoice::AESGCM => None,
        }
    }
}

/// The 96-bit ChaChaPoly nonce of the spec: 32 zero bits, then the
/// counter, little-endian.
fn chachapoly_nonce(nonce: u64) -> [u8; 12] {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&nonce.to_le_bytes());
    bytes
}

mod rust_crypto {
    use chacha20poly1305::aead::AeadInPlace as _;
    use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit as _, Nonce, Tag};
    use sha2::Digest as _;
    use zeroize::Zeroize as _;

    use crate::types::{Cipher, Hash};
    use crate::{Error, HASH_LEN, TAG_LEN};

    pub(super) struct Sha256;

    impl Hash for Sha256 {
        fn name(&self) -> &'static str {
            "SHA256"
        }

        fn block_len(&self) -> usize {
            64
        }

        fn digest(&self, parts: &[&[u8]]) -> [u8; HASH_LEN] {
            let mut hasher = sha2::Sha256::new();
            for part in parts {
                hasher.update(part);
            }
            hasher.finalize().into()
        }
    }

    #[derive(Default)]
    pub(super) struct ChaChaPoly {
        key: [u8; 32],
    }

    impl Drop for ChaChaPoly {
        fn drop(&mut self) {
            self.key.zeroize();
        }
    }

    impl Cipher for ChaChaPoly {
        fn name(&self) -> &'static str {
            "ChaChaPoly"
        }

        fn set(&mut self, key: &[u8; 32]) {
            self.key = *key;
        }

        fn encrypt(&self, nonce: u64, ad: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
            let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
            let nonce = super::chachapoly_nonce(nonce);
            let (body, rest) = out.split_at_mut(plaintext.len());
            body.copy_from_slice(plaintext);
            // Only a message over 2^38 bytes fails; Noise messages are 64 KiB.
            let tag = cipher
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), ad, body)
                .expect("a Noise message is far below ChaCha20-Poly1305's length limit");
            rest[..TAG_LEN].copy_from_slice(&tag);
            plaintext.len() + TAG_LEN
        }

        fn decrypt(
            &self,
            nonce: u64,
            ad: &[u8],
            ciphertext: &[u8],
            out: &mut [u8],
        ) -> Result<usize, Error> {
            let len = ciphertext
                .len()
                .checked_sub(TAG_LEN)
                .ok_or(Error::Decrypt)?;
            let (body, tag) = ciphertext.split_at(len);
            let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
            let nonce = super::chachapoly_nonce(nonce);
            let out = &mut out[..len];
            out.copy_from_slice(body);
            cipher
                .decrypt_in_place_detached(Nonce::from_slice(&nonce), ad, out, Tag::from_slice(tag))
                .map_err(|_| Error::Decrypt)?;
            Ok(len)
        }
    }
}

/// ChaCha20-Poly1305 and SHA-256 from `ring` (natively, as snow's).
#[cfg(feature = "ring-resolver")]
#[derive(Debug, Default, Clone, Copy)]
pub struct RingResolver;

#[cfg(feature = "ring-resolver")]
impl CryptoResolver for RingResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        None
    }

    fn resolve_dh(&self, _: &DHChoice) -> Option<Box<dyn Dh>> {
        None
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::SHA256 => Some(Box::new(ring_crypto::Sha256)),
            _ => None,
        }
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(ring_crypto::ChaChaPoly::default())),
            CipherChoice::AESGCM => None,
        }
    }
}

#[cfg(feature = "ring-resolver")]
mod ring_crypto {
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

    use crate::types::{Cipher, Hash};
    use crate::{Error, HASH_LEN, TAG_LEN};

    pub(super) struct Sha256;

    impl Hash for Sha256 {
        fn name(&self) -> &'static str {
            "SHA256"
        }

        fn block_len(&self) -> usize {
            64
        }

        fn digest(&self, parts: &[&[u8]]) -> [u8; HASH_LEN] {
            let mut context = ring::digest::Context::new(&ring::digest::SHA256);
            for part in parts {
                context.update(part);
            }
            let mut out = [0u8; HASH_LEN];
            out.copy_from_slice(context.finish().as_ref());
            out
        }
    }

    pub(super) struct ChaChaPoly {
        key: LessSafeKey,
    }

    impl Default for ChaChaPoly {
        fn default() -> Self {
            let key = UnboundKey::new(&CHACHA20_POLY1305, &[0; 32])
                .expect("a 32-byte key is a ChaCha20 key");
            ChaChaPoly {
                key: LessSafeKey::new(key),
            }
        }
    }

    impl Cipher for ChaChaPoly {
        fn name(&self) -> &'static str {
            "ChaChaPoly"
        }

        fn set(&mut self, key: &[u8; 32]) {
            let key =
                UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key is a ChaCha20 key");
            self.key = LessSafeKey::new(key);
        }

        fn encrypt(&self, nonce: u64, ad: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
            let nonce = Nonce::assume_unique_for_key(super::chachapoly_nonce(nonce));
            let (body, rest) = out.split_at_mut(plaintext.len());
            body.copy_from_slice(plaintext);
            let tag = self
                .key
                .seal_in_place_separate_tag(nonce, Aad::from(ad), body)
                .expect("a Noise message is far below ChaCha20-Poly1305's length limit");
            rest[..TAG_LEN].copy_from_slice(tag.as_ref());
            plaintext.len() + TAG_LEN
        }

        fn decrypt(
            &self,
            nonce: u64,
            ad: &[u8],
            ciphertext: &[u8],
            out: &mut [u8],
        ) -> Result<usize, Error> {
            let len = ciphertext
                .len()
                .checked_sub(TAG_LEN)
                .ok_or(Error::Decrypt)?;
            let nonce = Nonce::assume_unique_for_key(super::chachapoly_nonce(nonce));
            // ring opens in place: in `out` when it has room for the tag
            // too (libp2p-noise's buffers do), else in a copy.
            if out.len() >= ciphertext.len() {
                let buffer = &mut out[..ciphertext.len()];
                buffer.copy_from_slice(ciphertext);
                self.key
                    .open_in_place(nonce, Aad::from(ad), buffer)
                    .map_err(|_| Error::Decrypt)?;
                return Ok(len);
            }
            let mut buffer = ciphertext.to_vec();
            let plaintext = self
                .key
                .open_in_place(nonce, Aad::from(ad), &mut buffer)
                .map_err(|_| Error::Decrypt)?;
            out[..len].copy_from_slice(plaintext);
            Ok(len)
        }
    }
}
