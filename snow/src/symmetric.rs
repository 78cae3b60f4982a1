//! The spec's SymmetricState (section 5.2): the chaining key, the
//! handshake hash, and the handshake's CipherState; with HMAC and HKDF
//! (section 4.3) over the session's hash.

use zeroize::Zeroize as _;

use crate::cipherstate::CipherState;
use crate::types::{Cipher, Hash};
use crate::{Error, HASH_LEN, TAG_LEN};

pub(crate) struct SymmetricState {
    hash: Box<dyn Hash>,
    cipher: CipherState,
    chaining_key: [u8; HASH_LEN],
    handshake_hash: [u8; HASH_LEN],
}

impl Drop for SymmetricState {
    fn drop(&mut self) {
        self.chaining_key.zeroize();
    }
}

impl SymmetricState {
    /// InitializeSymmetric: the protocol name, zero-padded or hashed to
    /// HASHLEN, is both the first handshake hash and chaining key.
    pub(crate) fn new(protocol_name: &str, hash: Box<dyn Hash>, cipher: Box<dyn Cipher>) -> Self {
        let name = protocol_name.as_bytes();
        let mut handshake_hash = [0u8; HASH_LEN];
        if name.len() <= HASH_LEN {
            handshake_hash[..name.len()].copy_from_slice(name);
        } else {
            handshake_hash = hash.digest(&[name]);
        }
        SymmetricState {
            hash,
            cipher: CipherState::new(cipher),
            chaining_key: handshake_hash,
            handshake_hash,
        }
    }

    pub(crate) fn handshake_hash(&self) -> &[u8] {
        &self.handshake_hash
    }

    pub(crate) fn has_key(&self) -> bool {
        self.cipher.has_key()
    }

    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        self.handshake_hash = self.hash.digest(&[&self.handshake_hash, data]);
    }

    /// MixKey: a new chaining key and cipher key from the DH output.
    pub(crate) fn mix_key(&mut self, input_key_material: &[u8]) {
        let [chaining_key, mut key] = hkdf(&*self.hash, &self.chaining_key, input_key_material);
        self.chaining_key = chaining_key;
        self.cipher.set_key(&key);
        key.zeroize();
    }

    pub(crate) fn encrypt_and_hash(
        &mut self,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let len = self
            .cipher
            .encrypt_with_ad(&self.handshake_hash, plaintext, out)?;
        self.mix_hash(&out[..len]);
        Ok(len)
    }

    pub(crate) fn decrypt_and_hash(
        &mut self,
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let len = self
            .cipher
            .decrypt_with_ad(&self.handshake_hash, ciphertext, out)?;
        self.mix_hash(ciphertext);
        Ok(len)
    }

    /// Bytes `encrypt_and_hash` adds to a plaintext now.
    pub(crate) fn overhead(&self) -> usize {
        if self.has_key() { TAG_LEN } else { 0 }
    }

    /// Split: the two transport keys, initiator-to-responder first.
    pub(crate) fn split(&self) -> [[u8; HASH_LEN]; 2] {
        hkdf(&*self.hash, &self.chaining_key, &[])
    }
}

/// HMAC (RFC 2104) over `hash`, of the concatenation of `parts`.
fn hmac(hash: &dyn Hash, key: &[u8; HASH_LEN], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let block = hash.block_len();
    let mut inner_pad = vec![0x36u8; block];
    let mut outer_pad = vec![0x5cu8; block];
    for (i, byte) in key.iter().enumerate() {
        inner_pad[i] ^= byte;
        outer_pad[i] ^= byte;
    }
    let mut inner_parts = Vec::with_capacity(parts.len() + 1);
    inner_parts.push(&inner_pad[..]);
    inner_parts.extend_from_slice(parts);
    let mut inner = hash.digest(&inner_parts);
    let out = hash.digest(&[&outer_pad, &inner]);
    inner.zeroize();
    inner_pad.zeroize();
    outer_pad.zeroize();
    out
}

/// HKDF as Noise defines it, with two outputs.
fn hkdf(
    hash: &dyn Hash,
    chaining_key: &[u8; HASH_LEN],
    input_key_material: &[u8],
) -> [[u8; HASH_LEN]; 2] {
    let mut temp_key = hmac(hash, chaining_key, &[input_key_material]);
    let first = hmac(hash, &temp_key, &[&[1]]);
    let second = hmac(hash, &temp_key, &[&first, &[2]]);
    temp_key.zeroize();
    [first, second]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::HashChoice;
    use crate::resolvers::{CryptoResolver as _, DefaultResolver};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let sha256 = DefaultResolver
            .resolve_hash(&HashChoice::SHA256)
            .expect("SHA-256");
        // RFC 4231 test case 2 has a 4-byte key: zero-padded to 32 bytes it
        // is the same HMAC key (keys shorter than a block are zero-padded).
        let mut key = [0u8; HASH_LEN];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex(&hmac(
                &*sha256,
                &key,
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hkdf_outputs_chain_as_the_spec_says() {
        let sha256 = DefaultResolver
            .resolve_hash(&HashChoice::SHA256)
            .expect("SHA-256");
        let chaining_key = [7u8; HASH_LEN];
        let [first, second] = hkdf(&*sha256, &chaining_key, b"ikm");
        let temp_key = hmac(&*sha256, &chaining_key, &[b"ikm"]);
        assert_eq!(first, hmac(&*sha256, &temp_key, &[&[1]]));
        assert_eq!(second, hmac(&*sha256, &temp_key, &[&first, &[2]]));
        assert_ne!(first, second);
    }
}
