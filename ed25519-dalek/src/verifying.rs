//! The verifying half: a public key (RFC 8032 5.1.3's decoding) and
//! verification (5.1.7).

use core::fmt;
use core::hash::{Hash, Hasher};

use curve25519_dalek::Scalar;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use ed25519::Signature;
use ed25519::signature::Verifier;

use crate::{PUBLIC_KEY_LENGTH, SignatureError, hash_to_scalar};

/// An Ed25519 public key: its 32-byte encoding and the point it decodes
/// to (always both, so verifying decodes nothing). Equal and hashed by
/// the encoding.
#[derive(Clone, Copy)]
pub struct VerifyingKey {
    compressed: CompressedEdwardsY,
    point: EdwardsPoint,
}

impl VerifyingKey {
    pub(crate) fn from_point(point: EdwardsPoint) -> VerifyingKey {
        VerifyingKey {
            compressed: point.compress(),
            point,
        }
    }

    /// Decodes a public key; fails when the bytes are no curve point.
    /// Small-order points decode (see [`VerifyingKey::is_weak`]).
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LENGTH]) -> Result<VerifyingKey, SignatureError> {
        let compressed = CompressedEdwardsY(*bytes);
        let point = compressed.decompress().ok_or_else(SignatureError::new)?;
        Ok(VerifyingKey { compressed, point })
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LENGTH] {
        self.compressed.to_bytes()
    }

    /// The 32-byte encoding, borrowed.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LENGTH] {
        self.compressed.as_bytes()
    }

    /// Whether the key has small order (a multiple of it is the
    /// identity), which lets one signature verify for many messages.
    pub fn is_weak(&self) -> bool {
        self.point.is_small_order()
    }

    /// [`Verifier::verify`], and also refusing a small-order key or `R`,
    /// like ed25519-dalek's `verify_strict`.
    pub fn verify_strict(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        let r_point = CompressedEdwardsY(*signature.r_bytes())
            .decompress()
            .ok_or_else(SignatureError::new)?;
        if self.is_weak() || r_point.is_small_order() {
            return Err(SignatureError::new());
        }
        self.verify(message, signature)
    }

    /// RFC 8032 5.1.7, in its cofactorless form: with `k = H(R || A || M)`,
    /// the signature holds when `[s]B - [k]A` encodes to `R` (so a
    /// non-canonical `R` fails). `s` must be below the group order.
    fn check(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes()))
            .ok_or_else(SignatureError::new)?;
        let r = signature.r_bytes();
        let k = hash_to_scalar(&[r, self.as_bytes(), message]);
        let expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-self.point, &s);
        if expected.compress().as_bytes() == r {
            Ok(())
        } else {
            Err(SignatureError::new())
        }
    }
}

impl Verifier<Signature> for VerifyingKey {
    fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        self.check(message, signature)
    }
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &VerifyingKey) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for VerifyingKey {}

impl Hash for VerifyingKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl AsRef<[u8]> for VerifyingKey {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl TryFrom<&[u8]> for VerifyingKey {
    type Error = SignatureError;

    /// Exactly 32 bytes, decoded by [`VerifyingKey::from_bytes`].
    fn try_from(bytes: &[u8]) -> Result<VerifyingKey, SignatureError> {
        let bytes: &[u8; PUBLIC_KEY_LENGTH] =
            bytes.try_into().map_err(|_| SignatureError::new())?;
        VerifyingKey::from_bytes(bytes)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifyingKey(")?;
        for byte in self.as_bytes() {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}
