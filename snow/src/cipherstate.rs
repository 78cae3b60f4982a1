//! The spec's CipherState (section 5.1): a key, or none yet, and a nonce
//! counter.

use crate::types::Cipher;
use crate::{Error, TAG_LEN};

pub(crate) struct CipherState {
    cipher: Box<dyn Cipher>,
    has_key: bool,
    nonce: u64,
}

impl CipherState {
    pub(crate) fn new(cipher: Box<dyn Cipher>) -> Self {
        CipherState {
            cipher,
            has_key: false,
            nonce: 0,
        }
    }

    pub(crate) fn set_key(&mut self, key: &[u8; 32]) {
        self.cipher.set(key);
        self.has_key = true;
        self.nonce = 0;
    }

    pub(crate) fn has_key(&self) -> bool {
        self.has_key
    }

    /// The next nonce; the spec reserves 2^64-1, so the counter stops
    /// one short of it.
    fn take_nonce(&mut self) -> Result<u64, Error> {
        if self.nonce == u64::MAX {
            return Err(Error::State);
        }
        self.nonce += 1;
        Ok(self.nonce - 1)
    }

    /// EncryptWithAd: the plaintext itself while there is no key.
    pub(crate) fn encrypt_with_ad(
        &mut self,
        ad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let overhead = if self.has_key { TAG_LEN } else { 0 };
        if out.len() < plaintext.len() + overhead {
            return Err(Error::Input);
        }
        if !self.has_key {
            out[..plaintext.len()].copy_from_slice(plaintext);
            return Ok(plaintext.len());
        }
        let nonce = self.take_nonce()?;
        Ok(self.cipher.encrypt(nonce, ad, plaintext, out))
    }

    /// DecryptWithAd: the ciphertext itself while there is no key. A
    /// failed decryption leaves the nonce where it was.
    pub(crate) fn decrypt_with_ad(
        &mut self,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        if !self.has_key {
            if out.len() < ciphertext.len() {
                return Err(Error::Input);
            }
            out[..ciphertext.len()].copy_from_slice(ciphertext);
            return Ok(ciphertext.len());
        }
        if ciphertext.len() < TAG_LEN {
            return Err(Error::Decrypt);
        }
        if out.len() < ciphertext.len() - TAG_LEN {
            return Err(Error::Input);
        }
        if self.nonce == u64::MAX {
            return Err(Error::State);
        }
        let len = self.cipher.decrypt(self.nonce, ad, ciphertext, out)?;
        self.nonce += 1;
        Ok(len)
    }
}
