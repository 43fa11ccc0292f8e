//! Entropy coding of symbol sequences (quantizer codes, residual codes, motion vectors).
//!
//! One generic interface for every coder: a sequence of symbols, each in `0..2^alphabet_bits`
//! (alphabet_bits in 1..=16), with one symbol designated as "zero" (the quantizer's zero point,
//! or the zig-zag code of 0 for signed values) for the coders that exploit zeros (ZVC, RLE).
//! The symbol count is known to the caller (from tensor shapes) and passed to the decoder, so
//! coded payloads need not store it, and the decoder never allocates more than `count` symbols.

use thiserror::Error;

/// Which entropy coder a payload uses. Stored in the bitstream as the `u8` of [`EntropyMode::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EntropyMode {
    /// Bit-packed fixed-width codes.
    #[default]
    None,
    /// Canonical Huffman, code table in the stream.
    Huffman,
    /// Zero-value compression: bit mask of nonzero symbols, then those symbols bit-packed.
    Zvc,
    /// ZVC whose nonzero symbols are Huffman-coded.
    ZvcHuffman,
    /// Run-length coding.
    Rle,
}

impl EntropyMode {
    pub const ALL: [EntropyMode; 5] = [
        EntropyMode::None,
        EntropyMode::Huffman,
        EntropyMode::Zvc,
        EntropyMode::ZvcHuffman,
        EntropyMode::Rle,
    ];

    pub fn id(self) -> u8 {
        match self {
            EntropyMode::None => 0,
            EntropyMode::Huffman => 1,
            EntropyMode::Zvc => 2,
            EntropyMode::ZvcHuffman => 3,
            EntropyMode::Rle => 4,
        }
    }

    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.id() == id)
    }

    /// Name as used by properties and command lines.
    pub fn name(self) -> &'static str {
        match self {
            EntropyMode::None => "none",
            EntropyMode::Huffman => "huffman",
            EntropyMode::Zvc => "zvc",
            EntropyMode::ZvcHuffman => "zvc-huffman",
            EntropyMode::Rle => "rle",
        }
    }
}

/// Errors from decoding an entropy-coded payload (or from invalid encoder arguments).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EntropyError {
    #[error("entropy payload truncated")]
    Truncated,
    #[error("invalid entropy payload: {0}")]
    Invalid(String),
    #[error("{0} trailing bytes after entropy payload")]
    TrailingBytes(usize),
}

/// Appends the coded form of `symbols` to `out`.
///
/// Every symbol must be `< 2^alphabet_bits` and `zero < 2^alphabet_bits`; otherwise
/// `EntropyError::Invalid`.
pub fn encode(
    mode: EntropyMode,
    symbols: &[u16],
    alphabet_bits: u8,
    zero: u16,
    out: &mut Vec<u8>,
) -> Result<(), EntropyError> {
    let _ = (mode, symbols, alphabet_bits, zero, out);
    todo!("implemented by the entropy module")
}

/// Decodes exactly `count` symbols from `input`, which must be consumed entirely.
/// Treats `input` as untrusted: typed error, no panic, allocation bounded by `count`.
pub fn decode(
    mode: EntropyMode,
    input: &[u8],
    alphabet_bits: u8,
    zero: u16,
    count: usize,
) -> Result<Vec<u16>, EntropyError> {
    let _ = (mode, input, alphabet_bits, zero, count);
    todo!("implemented by the entropy module")
}
