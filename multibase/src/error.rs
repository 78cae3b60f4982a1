use core::fmt;

/// `multibase`'s result type.
pub type Result<T> = core::result::Result<T, Error>;

/// Why a multibase string could not be decoded.
#[derive(PartialEq, Eq, Clone, Debug)]
pub enum Error {
    /// The first character is no base's code.
    UnknownBase(char),
    /// The data is not valid in its base (a character outside the
    /// alphabet, a length no encoding has, bad padding, non-zero trailing
    /// bits, a base45 group out of range), or the string is empty.
    InvalidBaseString,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::UnknownBase(code) => write!(f, "Unknown base code: {code}"),
            Error::InvalidBaseString => f.write_str("Invalid base string"),
        }
    }
}

impl std::error::Error for Error {}
