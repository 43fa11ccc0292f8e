//! Entropy coding of symbol sequences (quantizer codes, residual codes, motion vectors).
//!
//! One generic interface for every coder: a sequence of symbols, each in `0..2^alphabet_bits`
//! (alphabet_bits in 1..=16), with one symbol designated as "zero" (the quantizer's zero point,
//! or the zig-zag code of 0 for signed values) for the coders that exploit zeros (ZVC, RLE).
//! The symbol count is known to the caller (from tensor shapes) and passed to the decoder, so
//! coded payloads need not store it, and the decoder never allocates more than `count` symbols.

use thiserror::Error;

mod bits;
pub mod context;
mod huffman;
mod packed;
mod rle;
mod zvc;

pub use huffman::{MAX_CODE_LEN, huffman_code_lengths};

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

    /// One-line description, as `gst-inspect-1.0 fmapenc` shows it.
    pub fn description(self) -> &'static str {
        match self {
            EntropyMode::None => "None: bit-packed fixed-width codes",
            EntropyMode::Huffman => "Canonical Huffman",
            EntropyMode::Zvc => "Zero-value compression",
            EntropyMode::ZvcHuffman => "Zero-value compression + Huffman",
            EntropyMode::Rle => "Run-length coding",
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
/// `EntropyError::Invalid`. An empty sequence appends nothing in every mode. The payload layout
/// of each mode is documented in its source file (`packed.rs`, `huffman.rs`, `zvc.rs`,
/// `rle.rs`); all are MSB-first bit streams padded with zero bits to a whole byte.
pub fn encode(
    mode: EntropyMode,
    symbols: &[u16],
    alphabet_bits: u8,
    zero: u16,
    out: &mut Vec<u8>,
) -> Result<(), EntropyError> {
    let bits = check_alphabet(alphabet_bits, zero)?;
    // One branch-free pass: OR of all symbols has a bit at or above `bits` iff one is too big.
    let all = symbols.iter().fold(0u16, |acc, &s| acc | s);
    if u32::from(all) >> bits != 0 {
        let (i, s) = symbols
            .iter()
            .enumerate()
            .find(|&(_, &s)| u32::from(s) >> bits != 0)
            .expect("some symbol has a bit above the alphabet");
        return Err(EntropyError::Invalid(format!(
            "symbol {s} at index {i} is outside the {alphabet_bits}-bit alphabet"
        )));
    }
    if symbols.is_empty() {
        return Ok(());
    }
    match mode {
        EntropyMode::None => packed::encode(symbols, bits, out),
        EntropyMode::Huffman => huffman::encode(symbols, bits, out),
        EntropyMode::Zvc => zvc::encode(symbols, bits, zero, false, out),
        EntropyMode::ZvcHuffman => zvc::encode(symbols, bits, zero, true, out),
        EntropyMode::Rle => rle::encode(symbols, bits, zero, out),
    }
    Ok(())
}

/// Decodes exactly `count` symbols from `input`, which must be consumed entirely.
/// Treats `input` as untrusted: typed error, no panic, allocation bounded by `count`.
///
/// Modes that need at least one bit per symbol (none, Huffman with two or more symbols, ZVC's
/// mask) reject a `count` larger than the input's bits before allocating. Run-length payloads
/// and one-symbol Huffman tables legitimately expand a few bytes into `count` symbols, so the
/// caller must bound `count` (it comes from tensor shapes the caller validated).
pub fn decode(
    mode: EntropyMode,
    input: &[u8],
    alphabet_bits: u8,
    zero: u16,
    count: usize,
) -> Result<Vec<u16>, EntropyError> {
    let bits = check_alphabet(alphabet_bits, zero)?;
    if count == 0 {
        return if input.is_empty() {
            Ok(Vec::new())
        } else {
            Err(EntropyError::TrailingBytes(input.len()))
        };
    }
    match mode {
        EntropyMode::None => packed::decode(input, bits, count),
        EntropyMode::Huffman => huffman::decode(input, bits, count),
        EntropyMode::Zvc => zvc::decode(input, bits, zero, count, false),
        EntropyMode::ZvcHuffman => zvc::decode(input, bits, zero, count, true),
        EntropyMode::Rle => rle::decode(input, bits, zero, count),
    }
}

fn check_alphabet(alphabet_bits: u8, zero: u16) -> Result<u32, EntropyError> {
    if !(1..=16).contains(&alphabet_bits) {
        return Err(EntropyError::Invalid(format!(
            "alphabet_bits {alphabet_bits} outside 1..=16"
        )));
    }
    let bits = u32::from(alphabet_bits);
    if u32::from(zero) >> bits != 0 {
        return Err(EntropyError::Invalid(format!(
            "zero symbol {zero} outside the {alphabet_bits}-bit alphabet"
        )));
    }
    Ok(bits)
}

/// Maps a signed value to an unsigned symbol with small magnitudes first:
/// 0, -1, 1, -2, 2, ... -> 0, 1, 2, 3, 4, ... The zig-zag code of 0 is 0, the natural `zero`
/// symbol for signed data (motion vectors, residuals). Values outside `i16` are clamped to it.
pub fn zigzag(v: i32) -> u16 {
    let v = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX));
    ((v << 1) ^ (v >> 31)) as u16
}

/// Inverse of [`zigzag`].
pub fn unzigzag(u: u16) -> i32 {
    let u = i32::from(u);
    (u >> 1) ^ -(u & 1)
}

#[cfg(test)]
mod tests;
