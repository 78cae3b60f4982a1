//! Noise protocol names: `Noise_XX_25519_ChaChaPoly_SHA256`.

use core::str::FromStr;

use crate::Error;

/// The Diffie-Hellman function of a protocol name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DHChoice {
    Curve25519,
    Curve448,
}

/// The cipher of a protocol name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherChoice {
    ChaChaPoly,
    AESGCM,
}

/// The hash of a protocol name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashChoice {
    SHA256,
    SHA512,
    Blake2s,
    Blake2b,
}

/// A parsed protocol name. Only the `XX` pattern is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseParams {
    pub name: String,
    pub dh: DHChoice,
    pub cipher: CipherChoice,
    pub hash: HashChoice,
}

impl FromStr for NoiseParams {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        let mut parts = name.split('_');
        let (Some("Noise"), Some("XX"), Some(dh), Some(cipher), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Error::Pattern);
        };
        Ok(NoiseParams {
            name: name.to_owned(),
            dh: match dh {
                "25519" => DHChoice::Curve25519,
                "448" => DHChoice::Curve448,
                _ => return Err(Error::Pattern),
            },
            cipher: match cipher {
                "ChaChaPoly" => CipherChoice::ChaChaPoly,
                "AESGCM" => CipherChoice::AESGCM,
                _ => return Err(Error::Pattern),
            },
            hash: match hash {
                "SHA256" => HashChoice::SHA256,
                "SHA512" => HashChoice::SHA512,
                "BLAKE2s" => HashChoice::Blake2s,
                "BLAKE2b" => HashChoice::Blake2b,
                _ => return Err(Error::Pattern),
            },
        })
    }
}
