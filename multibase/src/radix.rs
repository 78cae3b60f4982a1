//! Radix conversion: the bases that are not a power of two. Base 10, 36
//! and 58 read the input as one big-endian number (base-x: each leading
//! zero byte is one leading zero symbol); base45 (RFC 9285) converts each
//! pair of bytes to three symbols.

use crate::base::{Case, symbol_value};

pub(crate) fn encode(alphabet: &[u8], input: &[u8]) -> String {
    let radix = alphabet.len() as u32;
    let zeros = input.iter().take_while(|&&b| b == 0).count();
    // The number's digits in `radix`, least significant first.
    let mut digits: Vec<u8> = Vec::with_capacity(input.len() * 2);
    for &byte in &input[zeros..] {
        let mut carry = u32::from(byte);
        for digit in digits.iter_mut() {
            carry += u32::from(*digit) << 8;
            *digit = (carry % radix) as u8;
            carry /= radix;
        }
        while carry > 0 {
            digits.push((carry % radix) as u8);
            carry /= radix;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n(char::from(alphabet[0]), zeros));
    out.extend(
        digits
            .iter()
            .rev()
            .map(|&d| char::from(alphabet[usize::from(d)])),
    );
    out
}

pub(crate) fn decode(alphabet: &[u8], case: Case, input: &[u8]) -> Option<Vec<u8>> {
    let radix = alphabet.len() as u32;
    let zero = alphabet[0];
    let zeros = input.iter().take_while(|&&s| s == zero).count();
    // The number's bytes, least significant first.
    let mut bytes: Vec<u8> = Vec::with_capacity(input.len());
    for &symbol in &input[zeros..] {
        let mut carry = symbol_value(alphabet, case, symbol)?;
        for byte in bytes.iter_mut() {
            carry += u32::from(*byte) * radix;
            *byte = carry as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push(carry as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0; zeros];
    out.extend(bytes.iter().rev());
    Some(out)
}

const BASE45: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

pub(crate) fn base45_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(2) * 3);
    for pair in input.chunks(2) {
        let (mut n, symbols) = match pair {
            [a, b] => (u32::from(*a) << 8 | u32::from(*b), 3),
            [a] => (u32::from(*a), 2),
            _ => unreachable!("chunks(2) gives one or two bytes"),
        };
        for _ in 0..symbols {
            out.push(char::from(BASE45[(n % 45) as usize]));
            n /= 45;
        }
    }
    out
}

pub(crate) fn base45_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 3 * 2 + 1);
    for group in input.chunks(3) {
        if group.len() < 2 {
            return None;
        }
        let mut n = 0u32;
        for &symbol in group.iter().rev() {
            n = n * 45 + symbol_value(BASE45, Case::FoldUpper, symbol)?;
        }
        if group.len() == 3 {
            out.extend(u16::try_from(n).ok()?.to_be_bytes());
        } else {
            out.push(u8::try_from(n).ok()?);
        }
    }
    Some(out)
}
