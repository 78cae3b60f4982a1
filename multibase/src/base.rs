//! The bases of the multibase table, their codes, and which coder each
//! one uses.

use crate::error::{Error, Result};
use crate::{bits, emoji, radix};

/// How a base's decoder treats letter case: the case-insensitive bases
/// fold ASCII letters before looking them up in their alphabet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    Exact,
    FoldLower,
    FoldUpper,
}

/// The coder behind a base, with its alphabet.
enum Coder {
    Identity,
    /// RFC 4648-style bit packing, `bits` bits a symbol, most significant
    /// first, with or without `=` padding.
    Bits {
        alphabet: &'static [u8],
        bits: u32,
        padded: bool,
        case: Case,
    },
    /// The input as one big-endian number in the alphabet's radix, each
    /// leading zero byte written as the alphabet's first symbol (base-x).
    Radix {
        alphabet: &'static [u8],
        case: Case,
    },
    Base45,
    Emoji,
}

const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const BASE32_UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE32_HEX: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
const BASE32_HEX_UPPER: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

macro_rules! bases {
    ( $( $(#[$doc:meta])* $code:literal => $base:ident = $coder:expr, )* ) => {
        /// A base of the multibase table.
        #[derive(PartialEq, Eq, Clone, Copy, Debug)]
        pub enum Base {
            $( $(#[$doc])* $base, )*
        }

        impl Base {
            /// The base whose code is `code`.
            pub fn from_code(code: char) -> Result<Self> {
                match code {
                    $( $code => Ok(Self::$base), )*
                    _ => Err(Error::UnknownBase(code)),
                }
            }

            /// The base's code: the character that starts a multibase
            /// string in this base.
            pub fn code(&self) -> char {
                match self {
                    $( Self::$base => $code, )*
                }
            }

            fn coder(&self) -> Coder {
                match self {
                    $( Self::$base => $coder, )*
                }
            }
        }
    };
}

const fn packed(alphabet: &'static [u8], bits: u32, padded: bool, case: Case) -> Coder {
    Coder::Bits {
        alphabet,
        bits,
        padded,
        case,
    }
}

bases! {
    /// The bytes themselves (8-bit binary).
    '\x00' => Identity = Coder::Identity,
    /// Binary (01).
    '0' => Base2 = packed(b"01", 1, false, Case::Exact),
    /// Octal (01234567).
    '7' => Base8 = packed(b"01234567", 3, false, Case::Exact),
    /// Decimal (0123456789).
    '9' => Base10 = Coder::Radix { alphabet: b"0123456789", case: Case::Exact },
    /// Hexadecimal, lower case (decodes either case).
    'f' => Base16Lower = packed(b"0123456789abcdef", 4, false, Case::FoldLower),
    /// Hexadecimal, upper case (decodes either case).
    'F' => Base16Upper = packed(b"0123456789ABCDEF", 4, false, Case::FoldUpper),
    /// RFC 4648 base32 without padding, lower case (decodes either case).
    'b' => Base32Lower = packed(BASE32, 5, false, Case::FoldLower),
    /// RFC 4648 base32 without padding, upper case (decodes either case).
    'B' => Base32Upper = packed(BASE32_UPPER, 5, false, Case::FoldUpper),
    /// RFC 4648 base32 with padding, lower case (decodes either case).
    'c' => Base32PadLower = packed(BASE32, 5, true, Case::FoldLower),
    /// RFC 4648 base32 with padding, upper case (decodes either case).
    'C' => Base32PadUpper = packed(BASE32_UPPER, 5, true, Case::FoldUpper),
    /// RFC 4648 base32hex without padding, lower case (decodes either case).
    'v' => Base32HexLower = packed(BASE32_HEX, 5, false, Case::FoldLower),
    /// RFC 4648 base32hex without padding, upper case (decodes either case).
    'V' => Base32HexUpper = packed(BASE32_HEX_UPPER, 5, false, Case::FoldUpper),
    /// RFC 4648 base32hex with padding, lower case (decodes either case).
    't' => Base32HexPadLower = packed(BASE32_HEX, 5, true, Case::FoldLower),
    /// RFC 4648 base32hex with padding, upper case (decodes either case).
    'T' => Base32HexPadUpper = packed(BASE32_HEX_UPPER, 5, true, Case::FoldUpper),
    /// z-base-32 (Tahoe-LAFS), case-sensitive.
    'h' => Base32Z = packed(b"ybndrfg8ejkmcpqxot1uwisza345h769", 5, false, Case::Exact),
    /// Base36, lower case (decodes either case).
    'k' => Base36Lower = Coder::Radix {
        alphabet: b"0123456789abcdefghijklmnopqrstuvwxyz",
        case: Case::FoldLower,
    },
    /// Base36, upper case (decodes either case).
    'K' => Base36Upper = Coder::Radix {
        alphabet: b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        case: Case::FoldUpper,
    },
    /// RFC 9285 base45 (decodes either case).
    'R' => Base45 = Coder::Base45,
    /// Base58, Flickr's alphabet.
    'Z' => Base58Flickr = Coder::Radix {
        alphabet: b"123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ",
        case: Case::Exact,
    },
    /// Base58, Bitcoin's alphabet.
    'z' => Base58Btc = Coder::Radix {
        alphabet: b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
        case: Case::Exact,
    },
    /// RFC 4648 base64 without padding.
    'm' => Base64 = packed(BASE64, 6, false, Case::Exact),
    /// RFC 4648 base64 with padding.
    'M' => Base64Pad = packed(BASE64, 6, true, Case::Exact),
    /// RFC 4648 base64url without padding.
    'u' => Base64Url = packed(BASE64_URL, 6, false, Case::Exact),
    /// RFC 4648 base64url with padding.
    'U' => Base64UrlPad = packed(BASE64_URL, 6, true, Case::Exact),
    /// base256emoji: one emoji a byte.
    '🚀' => Base256Emoji = Coder::Emoji,
}

impl Base {
    /// Encodes `input` in this base, without the base's code.
    ///
    /// `Identity` takes the bytes as text; bytes that are not UTF-8 are
    /// replaced by U+FFFD (the original panics on them).
    pub fn encode<I: AsRef<[u8]>>(&self, input: I) -> String {
        let input = input.as_ref();
        match self.coder() {
            Coder::Identity => String::from_utf8_lossy(input).into_owned(),
            Coder::Bits {
                alphabet,
                bits,
                padded,
                ..
            } => bits::encode(alphabet, bits, padded, input),
            Coder::Radix { alphabet, .. } => radix::encode(alphabet, input),
            Coder::Base45 => crate::radix::base45_encode(input),
            Coder::Emoji => emoji::encode(input),
        }
    }

    /// Decodes `input`, written in this base without the base's code.
    pub fn decode<I: AsRef<str>>(&self, input: I) -> Result<Vec<u8>> {
        let input = input.as_ref();
        let decoded = match self.coder() {
            Coder::Identity => Some(input.as_bytes().to_vec()),
            Coder::Bits {
                alphabet,
                bits,
                padded,
                case,
            } => bits::decode(alphabet, bits, padded, case, input.as_bytes()),
            Coder::Radix { alphabet, case } => radix::decode(alphabet, case, input.as_bytes()),
            Coder::Base45 => radix::base45_decode(input.as_bytes()),
            Coder::Emoji => emoji::decode(input),
        };
        decoded.ok_or(Error::InvalidBaseString)
    }
}

/// The value of symbol `symbol` in `alphabet`, after folding its case as
/// `case` says.
pub(crate) fn symbol_value(alphabet: &[u8], case: Case, symbol: u8) -> Option<u32> {
    let symbol = match case {
        Case::Exact => symbol,
        Case::FoldLower => symbol.to_ascii_lowercase(),
        Case::FoldUpper => symbol.to_ascii_uppercase(),
    };
    alphabet
        .iter()
        .position(|&s| s == symbol)
        .map(|value| value as u32)
}
