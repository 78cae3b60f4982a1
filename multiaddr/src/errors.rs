use std::{error, fmt, io, net, num, str, string};

use unsigned_varint::decode;

/// Result of the crate's fallible operations.
pub type Result<T> = ::std::result::Result<T, Error>;

/// Why a multiaddr (or one of its protocols) could not be read. The
/// variants, and which inputs give which, are multiaddr 0.19's.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The bytes end before a protocol's value does.
    DataLessThanLen,
    /// A textual multiaddr that does not start with `/`, or an onion address
    /// that is not `<base32 host>:<non-zero port>`.
    InvalidMultiaddr,
    /// A protocol name without the value it needs, or a garlic address of
    /// the wrong length.
    InvalidProtocolString,
    /// A protocol code or length that is not a valid unsigned varint.
    InvalidUvar(decode::Error),
    /// A protocol's value did not parse (address, number, peer id, hash...).
    ParsingError(Box<dyn error::Error + Send + Sync>),
    /// A protocol code this crate does not know.
    UnknownProtocolId(u32),
    /// A protocol name this crate does not know.
    UnknownProtocolString(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::DataLessThanLen => f.write_str("we have less data than indicated by length"),
            Error::InvalidMultiaddr => f.write_str("invalid multiaddr"),
            Error::InvalidProtocolString => f.write_str("invalid protocol string"),
            Error::InvalidUvar(e) => write!(f, "failed to decode unsigned varint: {e}"),
            Error::ParsingError(e) => write!(f, "failed to parse: {e}"),
            Error::UnknownProtocolId(id) => write!(f, "unknown protocol id: {id}"),
            Error::UnknownProtocolString(name) => write!(f, "unknown protocol string: {name}"),
        }
    }
}

impl error::Error for Error {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            Error::ParsingError(e) => Some(&**e),
            _ => None,
        }
    }
}

impl Error {
    pub(crate) fn parsing(e: impl error::Error + Send + Sync + 'static) -> Self {
        Error::ParsingError(Box::new(e))
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::parsing(e)
    }
}

impl From<multihash::Error> for Error {
    fn from(e: multihash::Error) -> Error {
        Error::parsing(e)
    }
}

impl From<multibase::Error> for Error {
    fn from(e: multibase::Error) -> Error {
        Error::parsing(e)
    }
}

impl From<net::AddrParseError> for Error {
    fn from(e: net::AddrParseError) -> Error {
        Error::parsing(e)
    }
}

impl From<num::ParseIntError> for Error {
    fn from(e: num::ParseIntError) -> Error {
        Error::parsing(e)
    }
}

impl From<string::FromUtf8Error> for Error {
    fn from(e: string::FromUtf8Error) -> Error {
        Error::parsing(e)
    }
}

impl From<str::Utf8Error> for Error {
    fn from(e: str::Utf8Error) -> Error {
        Error::parsing(e)
    }
}

impl From<decode::Error> for Error {
    fn from(e: decode::Error) -> Error {
        Error::InvalidUvar(e)
    }
}
