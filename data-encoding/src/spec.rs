//! Custom encodings: a [`Specification`] checked into an [`Encoding`].

use std::borrow::Cow;
use std::fmt;

use crate::Encoding;

/// Which end of a byte the bits are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BitOrder {
    /// The most significant bit first, as RFC 4648.
    #[default]
    MostSignificantFirst,
    /// The least significant bit first.
    LeastSignificantFirst,
}

/// Line wrapping of the output. Not supported here: `width` must stay 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Wrap {
    pub width: usize,
    pub separator: String,
}

/// Characters decoding maps (`from[i]` to `to[i]`) before looking them up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Translate {
    pub from: String,
    pub to: String,
}

/// A description of an encoding; [`Specification::encoding`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specification {
    /// The alphabet: 2, 4, 8, 16, 32 or 64 distinct ASCII characters.
    pub symbols: String,
    pub bit_order: BitOrder,
    /// Whether decoding refuses non-zero bits after the last whole byte.
    pub check_trailing_bits: bool,
    /// The padding character, if the encoding pads to whole blocks.
    pub padding: Option<char>,
    /// Characters decoding skips.
    pub ignore: String,
    pub wrap: Wrap,
    pub translate: Translate,
}

impl Default for Specification {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a specification is not an encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecificationError {
    /// The number of symbols is not a power of two from 2 to 64.
    BadSize,
    /// A character that is not ASCII.
    NotAscii,
    /// A character used twice (as symbols, padding or ignored).
    Duplicate,
    /// Translation lists of different lengths, or one that maps onto a
    /// character that is not a symbol.
    BadTranslate,
    /// Line wrapping, which this crate does not do.
    WrapUnsupported,
}

impl fmt::Display for SpecificationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpecificationError::BadSize => "the number of symbols is not 2, 4, 8, 16, 32 or 64",
            SpecificationError::NotAscii => "a character is not ASCII",
            SpecificationError::Duplicate => "a character is used twice",
            SpecificationError::BadTranslate => {
                "the translation is not from and to characters of the alphabet"
            }
            SpecificationError::WrapUnsupported => "line wrapping is not supported",
        })
    }
}

impl std::error::Error for SpecificationError {}

impl Specification {
    /// An empty specification: no symbols yet, most significant bits
    /// first, trailing bits checked, no padding.
    pub fn new() -> Specification {
        Specification {
            symbols: String::new(),
            bit_order: BitOrder::MostSignificantFirst,
            check_trailing_bits: true,
            padding: None,
            ignore: String::new(),
            wrap: Wrap::default(),
            translate: Translate::default(),
        }
    }

    /// The encoding this specification describes.
    pub fn encoding(&self) -> Result<Encoding, SpecificationError> {
        let ascii = |text: &str| {
            text.is_ascii()
                .then(|| text.as_bytes().to_vec())
                .ok_or(SpecificationError::NotAscii)
        };
        let symbols = ascii(&self.symbols)?;
        let bits = match symbols.len() {
            2 => 1,
            4 => 2,
            8 => 3,
            16 => 4,
            32 => 5,
            64 => 6,
            _ => return Err(SpecificationError::BadSize),
        };
        let padding = match self.padding {
            Some(c) if !c.is_ascii() => return Err(SpecificationError::NotAscii),
            Some(c) => Some(c as u8),
            None => None,
        };
        let ignore = ascii(&self.ignore)?;
        let mut used: Vec<u8> = symbols
            .iter()
            .chain(&padding)
            .chain(&ignore)
            .copied()
            .collect();
        used.sort_unstable();
        if used.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(SpecificationError::Duplicate);
        }
        let (from, to) = (ascii(&self.translate.from)?, ascii(&self.translate.to)?);
        if from.len() != to.len()
            || from.iter().any(|f| used.contains(f))
            || to
                .iter()
                .any(|t| !symbols.contains(t) && Some(*t) != padding)
        {
            return Err(SpecificationError::BadTranslate);
        }
        if self.wrap.width != 0 {
            return Err(SpecificationError::WrapUnsupported);
        }
        Ok(Encoding {
            symbols: Cow::Owned(symbols),
            bits,
            least_significant_first: self.bit_order == BitOrder::LeastSignificantFirst,
            check_trailing_bits: self.check_trailing_bits,
            padding,
            ignore: Cow::Owned(ignore),
            translate_from: Cow::Owned(from),
            translate_to: Cow::Owned(to),
        })
    }
}
