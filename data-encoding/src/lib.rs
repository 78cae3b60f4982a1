//! The API of data-encoding 2 that this workspace's dependencies use,
//! written afresh from RFC 4648: [`Encoding`] with `encode` and `decode`
//! (and their `_len`, `_mut` and `_append` forms), the standard encodings as
//! constants, and [`Specification`] for custom ones.
//!
//! One routine packs and unpacks bits for every width (1 to 6 bits a
//! symbol, either bit order), where the original specialises its coder per
//! width: in the browser page that was 40 KB of wasm reached from two
//! calls in multiaddr. The workspace's `Cargo.toml` puts this crate in the
//! original's place with `[patch.crates-io]`, for the relay too (hickory's
//! DNS records, tungstenite's handshake, x509-parser's PEM).
//!
//! Decoding: ignored characters (a specification's `ignore`) are skipped
//! wherever they are, translated ones mapped first, and then the input
//! must be exactly an encoding: symbols of the alphabet, a length some
//! input encodes to, padding only to end the last block (the original also
//! accepts padded blocks one after another), and zero trailing bits when
//! the encoding checks them. Line wrapping (`Specification::wrap`) is not
//! supported: no user here wraps, and [`Specification::encoding`] refuses it.

mod spec;

use std::borrow::Cow;
use std::fmt;

pub use spec::{BitOrder, Specification, SpecificationError, Translate, Wrap};

/// An encoding: an alphabet of 2^bits symbols, a bit order, optional
/// padding, and what decoding ignores or translates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    symbols: Cow<'static, [u8]>,
    bits: u8,
    least_significant_first: bool,
    check_trailing_bits: bool,
    padding: Option<u8>,
    ignore: Cow<'static, [u8]>,
    translate_from: Cow<'static, [u8]>,
    translate_to: Cow<'static, [u8]>,
}

/// What was wrong with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKind {
    /// A length no input encodes to.
    Length,
    /// A character outside the alphabet.
    Symbol,
    /// Non-zero bits after the last whole byte.
    Trailing,
    /// Padding that is wrong or where it cannot be.
    Padding,
}

impl fmt::Display for DecodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeKind::Length => "invalid length",
            DecodeKind::Symbol => "invalid symbol",
            DecodeKind::Trailing => "non-zero trailing bits",
            DecodeKind::Padding => "invalid padding",
        })
    }
}

/// A decoding error: its kind and the input position it was found at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    pub position: usize,
    pub kind: DecodeKind,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.kind, self.position)
    }
}

impl std::error::Error for DecodeError {}

/// A failed [`Encoding::decode_mut`]: how far it got, and why it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodePartial {
    pub read: usize,
    pub written: usize,
    pub error: DecodeError,
}

impl Encoding {
    /// Symbols in a block: the fewest that end on a byte boundary.
    fn block_symbols(&self) -> usize {
        8 / gcd(usize::from(self.bits), 8)
    }

    /// Bytes in a block.
    fn block_bytes(&self) -> usize {
        self.block_symbols() * usize::from(self.bits) / 8
    }

    /// The length of the encoding of `len` bytes.
    pub fn encode_len(&self, len: usize) -> usize {
        let symbols = (len * 8).div_ceil(usize::from(self.bits));
        match self.padding {
            Some(_) => symbols.next_multiple_of(self.block_symbols()),
            None => symbols,
        }
    }

    /// Encodes `input` into `output`, which must be `encode_len` long.
    ///
    /// # Panics
    ///
    /// When `output` is not `encode_len(input.len())` bytes long.
    pub fn encode_mut(&self, input: &[u8], output: &mut [u8]) {
        assert_eq!(
            output.len(),
            self.encode_len(input.len()),
            "encode_mut: wrong output length"
        );
        let bits = u32::from(self.bits);
        let mask = (1u32 << bits) - 1;
        let (mut acc, mut held, mut at) = (0u32, 0u32, 0);
        let mut emit = |value: u32, at: &mut usize| {
            output[*at] = self.symbols[(value & mask) as usize];
            *at += 1;
        };
        for &byte in input {
            if self.least_significant_first {
                acc |= u32::from(byte) << held;
                held += 8;
                while held >= bits {
                    emit(acc, &mut at);
                    acc >>= bits;
                    held -= bits;
                }
            } else {
                acc = (acc << 8) | u32::from(byte);
                held += 8;
                while held >= bits {
                    held -= bits;
                    emit(acc >> held, &mut at);
                }
                acc &= (1 << held) - 1;
            }
        }
        if held > 0 {
            let last = if self.least_significant_first {
                acc
            } else {
                acc << (bits - held)
            };
            emit(last, &mut at);
        }
        if let Some(pad) = self.padding {
            output[at..].fill(pad);
        }
    }

    /// Appends the encoding of `input` to `output`.
    pub fn encode_append(&self, input: &[u8], output: &mut String) {
        let mut bytes = vec![0; self.encode_len(input.len())];
        self.encode_mut(input, &mut bytes);
        // The alphabet and padding are ASCII (Specification::encoding checks).
        output.extend(bytes.iter().map(|&b| char::from(b)));
    }

    /// The encoding of `input`.
    pub fn encode(&self, input: &[u8]) -> String {
        let mut output = String::with_capacity(self.encode_len(input.len()));
        self.encode_append(input, &mut output);
        output
    }

    /// The largest length of the decoding of an input of `len` symbols
    /// (ignored characters would make it shorter); an error when no input
    /// encodes to that length.
    pub fn decode_len(&self, len: usize) -> Result<usize, DecodeError> {
        let bits = usize::from(self.bits);
        let valid = match self.padding {
            Some(_) => len.is_multiple_of(self.block_symbols()),
            None => (len * bits) % 8 < bits,
        };
        if !valid && self.ignore.is_empty() {
            return Err(DecodeError {
                position: len - len % self.block_symbols(),
                kind: DecodeKind::Length,
            });
        }
        Ok(len * bits / 8)
    }

    /// The symbol's value, after translation.
    fn value(&self, byte: u8) -> Option<u32> {
        let byte = match self.translate_from.iter().position(|&f| f == byte) {
            Some(i) => self.translate_to[i],
            None => byte,
        };
        self.symbols
            .iter()
            .position(|&s| s == byte)
            .map(|v| v as u32)
    }

    /// Decodes `input` into `output` (at least `decode_len` long); returns
    /// the bytes written.
    pub fn decode_mut(&self, input: &[u8], output: &mut [u8]) -> Result<usize, DecodePartial> {
        let partial = |read, written, position, kind| DecodePartial {
            read,
            written,
            error: DecodeError { position, kind },
        };
        // Positions in `input` of the characters that count.
        let kept: Vec<usize> = (0..input.len())
            .filter(|&i| !self.ignore.contains(&input[i]))
            .collect();
        let mut symbols = kept.len();
        let block = self.block_symbols();
        if let Some(pad) = self.padding {
            if !symbols.is_multiple_of(block) {
                return Err(partial(
                    0,
                    0,
                    kept.get(symbols - symbols % block)
                        .copied()
                        .unwrap_or(input.len()),
                    DecodeKind::Length,
                ));
            }
            let padded = kept.iter().rev().take_while(|&&i| input[i] == pad).count();
            if padded >= block || (padded > 0 && !self.valid_symbol_count(block - padded)) {
                return Err(partial(0, 0, kept[symbols - padded], DecodeKind::Padding));
            }
            symbols -= padded;
        }
        if !self.valid_symbol_count(symbols) {
            let position = kept
                .get(symbols - symbols % block)
                .copied()
                .unwrap_or(input.len());
            return Err(partial(0, 0, position, DecodeKind::Length));
        }
        let bits = u32::from(self.bits);
        let (mut acc, mut held, mut written) = (0u32, 0u32, 0);
        for &i in &kept[..symbols] {
            let Some(value) = self.value(input[i]) else {
                let kind = if Some(input[i]) == self.padding {
                    DecodeKind::Padding
                } else {
                    DecodeKind::Symbol
                };
                return Err(partial(
                    i - i % block,
                    written - written % self.block_bytes(),
                    i,
                    kind,
                ));
            };
            if self.least_significant_first {
                acc |= value << held;
                held += bits;
                if held >= 8 {
                    output[written] = acc as u8;
                    written += 1;
                    acc >>= 8;
                    held -= 8;
                }
            } else {
                acc = (acc << bits) | value;
                held += bits;
                if held >= 8 {
                    held -= 8;
                    output[written] = (acc >> held) as u8;
                    written += 1;
                    acc &= (1 << held) - 1;
                }
            }
        }
        if self.check_trailing_bits && acc != 0 {
            let last = kept[symbols - 1];
            return Err(partial(0, 0, last, DecodeKind::Trailing));
        }
        Ok(written)
    }

    /// Whether some input encodes to `symbols` symbols (without padding).
    fn valid_symbol_count(&self, symbols: usize) -> bool {
        let bits = usize::from(self.bits);
        (symbols * bits) % 8 < bits
    }

    /// The decoding of `input`.
    pub fn decode(&self, input: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut output = vec![0; self.decode_len(input.len())?];
        let len = self
            .decode_mut(input, &mut output)
            .map_err(|partial| partial.error)?;
        output.truncate(len);
        Ok(output)
    }

    /// Bits a symbol stands for.
    pub fn bit_width(&self) -> usize {
        usize::from(self.bits)
    }

    /// The specification this encoding was made from.
    pub fn specification(&self) -> Specification {
        let text = |bytes: &[u8]| bytes.iter().map(|&b| char::from(b)).collect::<String>();
        let mut spec = Specification::new();
        spec.symbols = text(&self.symbols);
        spec.bit_order = if self.least_significant_first {
            BitOrder::LeastSignificantFirst
        } else {
            BitOrder::MostSignificantFirst
        };
        spec.check_trailing_bits = self.check_trailing_bits;
        spec.padding = self.padding.map(char::from);
        spec.ignore = text(&self.ignore);
        spec.translate.from = text(&self.translate_from);
        spec.translate.to = text(&self.translate_to);
        spec
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A constant encoding: most significant bits first, trailing bits checked.
const fn standard(
    symbols: &'static [u8],
    bits: u8,
    padding: Option<u8>,
    from: &'static [u8],
    to: &'static [u8],
) -> Encoding {
    Encoding {
        symbols: Cow::Borrowed(symbols),
        bits,
        least_significant_first: false,
        check_trailing_bits: true,
        padding,
        ignore: Cow::Borrowed(b""),
        translate_from: Cow::Borrowed(from),
        translate_to: Cow::Borrowed(to),
    }
}

const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B32HEX: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Hexadecimal, lower case.
pub const HEXLOWER: Encoding = standard(b"0123456789abcdef", 4, None, b"", b"");
/// Hexadecimal, lower case; decodes upper case too.
pub const HEXLOWER_PERMISSIVE: Encoding =
    standard(b"0123456789abcdef", 4, None, b"ABCDEF", b"abcdef");
/// Hexadecimal, upper case (RFC 4648 base16).
pub const HEXUPPER: Encoding = standard(b"0123456789ABCDEF", 4, None, b"", b"");
/// Hexadecimal, upper case; decodes lower case too.
pub const HEXUPPER_PERMISSIVE: Encoding =
    standard(b"0123456789ABCDEF", 4, None, b"abcdef", b"ABCDEF");
/// RFC 4648 base32.
pub const BASE32: Encoding = standard(B32, 5, Some(b'='), b"", b"");
/// RFC 4648 base32 without padding.
pub const BASE32_NOPAD: Encoding = standard(B32, 5, None, b"", b"");
/// RFC 4648 base32hex.
pub const BASE32HEX: Encoding = standard(B32HEX, 5, Some(b'='), b"", b"");
/// RFC 4648 base32hex without padding.
pub const BASE32HEX_NOPAD: Encoding = standard(B32HEX, 5, None, b"", b"");
/// base32hex, lower case, no padding, decoding either case (RFC 5155,
/// DNSSEC's NSEC3 owner names).
pub const BASE32_DNSSEC: Encoding = standard(
    b"0123456789abcdefghijklmnopqrstuv",
    5,
    None,
    b"ABCDEFGHIJKLMNOPQRSTUV",
    b"abcdefghijklmnopqrstuv",
);
/// RFC 4648 base64.
pub const BASE64: Encoding = standard(B64, 6, Some(b'='), b"", b"");
/// RFC 4648 base64 without padding.
pub const BASE64_NOPAD: Encoding = standard(B64, 6, None, b"", b"");
/// RFC 4648 base64url.
pub const BASE64URL: Encoding = standard(B64URL, 6, Some(b'='), b"", b"");
/// RFC 4648 base64url without padding.
pub const BASE64URL_NOPAD: Encoding = standard(B64URL, 6, None, b"", b"");
