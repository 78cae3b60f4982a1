//! The signing half: a secret seed, its expansion (RFC 8032 5.1.5) and
//! signing (5.1.6).

use core::fmt;

use curve25519_dalek::{EdwardsPoint, Scalar};
use ed25519::Signature;
use ed25519::signature::Signer;
use sha2::{Digest as _, Sha512};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroize as _;

use crate::{
    KEYPAIR_LENGTH, SECRET_KEY_LENGTH, SecretKey, SignatureError, VerifyingKey, hash_to_scalar,
};

/// An Ed25519 signing key: the 32-byte seed and the public key derived
/// from it. The seed is wiped when the key is dropped.
#[derive(Clone)]
pub struct SigningKey {
    seed: SecretKey,
    verifying_key: VerifyingKey,
}

/// The seed's expansion: the secret scalar `s` and the prefix that keys
/// the per-message nonce. Wiped when dropped.
struct Expanded {
    scalar: Scalar,
    prefix: [u8; 32],
}

impl Expanded {
    /// RFC 8032 5.1.5: hash the seed with SHA-512; the low half, pruned
    /// ("clamped": the three low bits cleared, bit 255 cleared, bit 254
    /// set), is the secret scalar, the high half the nonce prefix.
    fn from_seed(seed: &SecretKey) -> Expanded {
        let mut digest = [0u8; 64];
        digest.copy_from_slice(&Sha512::digest(seed));
        let mut low = [0u8; 32];
        low.copy_from_slice(&digest[..32]);
        low[0] &= 0b1111_1000;
        low[31] &= 0b0111_1111;
        low[31] |= 0b0100_0000;
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(&digest[32..]);
        let expanded = Expanded {
            scalar: Scalar::from_bytes_mod_order(low),
            prefix,
        };
        digest.zeroize();
        low.zeroize();
        expanded
    }
}

impl Drop for Expanded {
    fn drop(&mut self) {
        self.prefix.zeroize();
        self.scalar.zeroize();
    }
}

impl SigningKey {
    /// The signing key of a 32-byte seed (any 32 bytes are a seed).
    pub fn from_bytes(secret_key: &SecretKey) -> SigningKey {
        let expanded = Expanded::from_seed(secret_key);
        let public = EdwardsPoint::mul_base(&expanded.scalar);
        SigningKey {
            seed: *secret_key,
            verifying_key: VerifyingKey::from_point(public),
        }
    }

    /// The 32-byte seed.
    pub fn to_bytes(&self) -> SecretKey {
        self.seed
    }

    /// The 32-byte seed, borrowed.
    pub fn as_bytes(&self) -> &SecretKey {
        &self.seed
    }

    /// Reads a keypair: the seed, then its public key. Fails when the
    /// public key is not a point or not the one the seed gives.
    pub fn from_keypair_bytes(bytes: &[u8; KEYPAIR_LENGTH]) -> Result<SigningKey, SignatureError> {
        let mut seed = [0u8; SECRET_KEY_LENGTH];
        seed.copy_from_slice(&bytes[..SECRET_KEY_LENGTH]);
        let signing_key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        let verifying_key = VerifyingKey::try_from(&bytes[SECRET_KEY_LENGTH..])?;
        if signing_key.verifying_key != verifying_key {
            return Err(SignatureError::new());
        }
        Ok(signing_key)
    }

    /// The keypair's 64 bytes: the seed, then the public key.
    pub fn to_keypair_bytes(&self) -> [u8; KEYPAIR_LENGTH] {
        let mut bytes = [0u8; KEYPAIR_LENGTH];
        bytes[..SECRET_KEY_LENGTH].copy_from_slice(&self.seed);
        bytes[SECRET_KEY_LENGTH..].copy_from_slice(self.verifying_key.as_bytes());
        bytes
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.verifying_key
    }

    /// Checks a signature with this key's public key.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        ed25519::signature::Verifier::verify(&self.verifying_key, message, signature)
    }

    /// [`VerifyingKey::verify_strict`] with this key's public key.
    pub fn verify_strict(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        self.verifying_key.verify_strict(message, signature)
    }

    /// RFC 8032 5.1.6: `r = H(prefix || M)`, `R = [r]B`,
    /// `k = H(R || A || M)`, `S = r + k s` (mod the group order).
    fn sign_message(&self, message: &[u8]) -> Signature {
        let expanded = Expanded::from_seed(&self.seed);
        let mut r = hash_to_scalar(&[&expanded.prefix, message]);
        let big_r = EdwardsPoint::mul_base(&r).compress();
        let k = hash_to_scalar(&[big_r.as_bytes(), self.verifying_key.as_bytes(), message]);
        let s = k * expanded.scalar + r;
        r.zeroize();
        Signature::from_components(big_r.to_bytes(), s.to_bytes())
    }
}

impl Signer<Signature> for SigningKey {
    fn try_sign(&self, message: &[u8]) -> Result<Signature, SignatureError> {
        Ok(self.sign_message(message))
    }
}

impl From<&SecretKey> for SigningKey {
    fn from(secret_key: &SecretKey) -> SigningKey {
        SigningKey::from_bytes(secret_key)
    }
}

impl From<SecretKey> for SigningKey {
    fn from(secret_key: SecretKey) -> SigningKey {
        SigningKey::from_bytes(&secret_key)
    }
}

impl TryFrom<&[u8]> for SigningKey {
    type Error = SignatureError;

    /// A seed of exactly 32 bytes.
    fn try_from(bytes: &[u8]) -> Result<SigningKey, SignatureError> {
        let seed: &SecretKey = bytes.try_into().map_err(|_| SignatureError::new())?;
        Ok(SigningKey::from_bytes(seed))
    }
}

impl PartialEq for SigningKey {
    /// Compares the seeds in constant time.
    fn eq(&self, other: &SigningKey) -> bool {
        self.seed.ct_eq(&other.seed).into()
    }
}

impl Eq for SigningKey {}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

impl fmt::Debug for SigningKey {
    /// The public key only: the seed stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("verifying_key", &self.verifying_key)
            .finish_non_exhaustive()
    }
}
