use core::fmt;

/// Why a Noise operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The protocol name is not `Noise_XX_25519_<cipher>_<hash>` with a
    /// cipher and hash of the spec.
    Pattern,
    /// The builder lacks something the handshake needs (the local static
    /// key), or the resolver offers no implementation of a chosen function.
    Init,
    /// A call out of turn: writing when it is the peer's turn, a transport
    /// state before the handshake ended, a nonce exhausted.
    State,
    /// A message or buffer of the wrong size.
    Input,
    /// A Diffie-Hellman failure.
    Dh,
    /// A ciphertext that does not authenticate.
    Decrypt,
    /// The random number generator failed.
    Rng,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Pattern => "unsupported Noise protocol name",
            Error::Init => "Noise session cannot be built: missing key or unsupported function",
            Error::State => "Noise call out of turn",
            Error::Input => "Noise message or buffer of the wrong size",
            Error::Dh => "Diffie-Hellman failed",
            Error::Decrypt => "Noise message does not authenticate",
            Error::Rng => "random number generator failed",
        })
    }
}

impl std::error::Error for Error {}
