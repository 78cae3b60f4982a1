//! The API of multiformats' `multibase` 0.9 (`Base`, [`encode`],
//! [`decode`], [`Error`]), written afresh for this project from the
//! multibase spec (multiformats/multibase, `multibase.csv` and its
//! `rfcs/`), RFC 4648 (bases 16, 32, 64), RFC 9285 (base45) and the
//! base-x convention (bases 10, 36, 58).
//!
//! Why: multiaddr decodes `/certhash` with [`decode`], which dispatches on
//! the base's code, so every base is linked into the browser page. The
//! original spends about 60 KB of wasm on them (data-encoding's coder
//! specialised for every bit width, base-x, base45, base256emoji's lookup
//! tables). Here one routine packs bits for the power-of-two bases
//! ([`bits`]), one converts radixes for 10, 36 and 58 ([`radix`]), and two
//! small ones do base45 and base256emoji. The workspace's `Cargo.toml`
//! puts this crate in the original's place with `[patch.crates-io]`, for
//! the native relay and peers too.
//!
//! Behaviour follows the original's, checked against it input by input
//! (see the tests): decoding of the case-insensitive bases (16, 32 except
//! z-base-32, 36, 45) accepts either case, a padded base requires its
//! padding and an unpadded one refuses it, and bits left over after the
//! last whole byte must be zero. One deliberate difference: the original
//! (data-encoding) accepts padded blocks concatenated one after another
//! (`"Zg==Zg=="`); here padding may only end the input.

mod base;
mod bits;
mod emoji;
mod error;
mod radix;

pub use base::Base;
pub use error::{Error, Result};

/// Decodes a multibase string: its first character names the base, the
/// rest is the data in that base.
///
/// ```
/// use multibase::{Base, decode};
/// assert_eq!(decode("zCn8eVZg").unwrap(), (Base::Base58Btc, b"hello".to_vec()));
/// ```
pub fn decode<T: AsRef<str>>(input: T) -> Result<(Base, Vec<u8>)> {
    let input = input.as_ref();
    let code = input.chars().next().ok_or(Error::InvalidBaseString)?;
    let base = Base::from_code(code)?;
    let data = base.decode(&input[code.len_utf8()..])?;
    Ok((base, data))
}

/// Encodes `input` in `base`, prefixed with the base's code.
///
/// ```
/// use multibase::{Base, encode};
/// assert_eq!(encode(Base::Base58Btc, b"hello"), "zCn8eVZg");
/// ```
pub fn encode<T: AsRef<[u8]>>(base: Base, input: T) -> String {
    let body = base.encode(input);
    let mut encoded = String::with_capacity(body.len() + 4);
    encoded.push(base.code());
    encoded.push_str(&body);
    encoded
}
