//! RFC 4648-style bit packing for the power-of-two bases (2, 8, 16, 32,
//! 64): the input is read as a string of bits, most significant first,
//! and cut into symbols of `bits` bits; the last symbol is filled with
//! zero bits. A padded base then fills its last block (the fewest symbols
//! that end on a byte boundary) with `=`.

use crate::base::{Case, symbol_value};

const PAD: u8 = b'=';

/// Symbols in a block: the fewest that hold a whole number of bytes.
fn block_symbols(bits: u32) -> usize {
    (8 / gcd(bits, 8)) as usize
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

pub(crate) fn encode(alphabet: &[u8], bits: u32, padded: bool, input: &[u8]) -> String {
    let mask = (1u32 << bits) - 1;
    let mut out = String::with_capacity((input.len() * 8).div_ceil(bits as usize) + 8);
    let (mut acc, mut held) = (0u32, 0u32);
    for &byte in input {
        acc = (acc << 8) | u32::from(byte);
        held += 8;
        while held >= bits {
            held -= bits;
            out.push(char::from(alphabet[((acc >> held) & mask) as usize]));
        }
        acc &= (1 << held) - 1;
    }
    if held > 0 {
        out.push(char::from(
            alphabet[((acc << (bits - held)) & mask) as usize],
        ));
    }
    if padded {
        let block = block_symbols(bits);
        while !out.len().is_multiple_of(block) {
            out.push(char::from(PAD));
        }
    }
    out
}

/// `None` when `input` is not an encoding: a symbol outside the alphabet,
/// a length no input encodes to, padding where the base has none (or
/// missing where it has), or non-zero bits after the last whole byte.
pub(crate) fn decode(
    alphabet: &[u8],
    bits: u32,
    padded: bool,
    case: Case,
    input: &[u8],
) -> Option<Vec<u8>> {
    let symbols = if padded {
        let block = block_symbols(bits);
        if !input.len().is_multiple_of(block) {
            return None;
        }
        let data = input.len() - input.iter().rev().take_while(|&&s| s == PAD).count();
        // Padding fills at most one block, and never a whole one.
        if input.len() - data >= block {
            return None;
        }
        &input[..data]
    } else {
        input
    };
    // Bits left after the last whole byte: fewer than one symbol's, or
    // the input would have had one symbol less.
    if (symbols.len() as u64 * u64::from(bits)) % 8 >= u64::from(bits) {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() * bits as usize / 8);
    let (mut acc, mut held) = (0u32, 0u32);
    for &symbol in symbols {
        acc = (acc << bits) | symbol_value(alphabet, case, symbol)?;
        held += bits;
        if held >= 8 {
            held -= 8;
            out.push((acc >> held) as u8);
            acc &= (1 << held) - 1;
        }
    }
    (acc == 0).then_some(out)
}
