//! Zero-value compression ([`Zvc`](super::EntropyMode::Zvc) and
//! [`ZvcHuffman`](super::EntropyMode::ZvcHuffman)).
//!
//! # Stream layout (MSB-first bits)
//!
//! ```text
//! mask:    count bits, one per symbol in order: 1 if the symbol differs from `zero`
//! values:  the nonzero symbols in order, either
//!            Zvc:        u(alphabet_bits) each
//!            ZvcHuffman: a Huffman table and codes (see `huffman`), nothing if none is nonzero
//! padding: zero bits up to the next byte
//! ```
//!
//! A value equal to `zero` where the mask says nonzero is rejected, so every sequence has one
//! valid payload.

use super::EntropyError;
use super::bits::{BitReader, BitWriter};
use super::huffman::{HuffmanDecoder, write_huffman};
use super::packed::write_packed;

/// Writes the nonzero mask, 32 symbols per write.
fn write_mask(w: &mut BitWriter<'_>, symbols: &[u16], zero: u16) {
    let mut chunks = symbols.chunks_exact(32);
    for chunk in &mut chunks {
        let mut word = 0u32;
        for &s in chunk {
            word = (word << 1) | u32::from(s != zero);
        }
        w.write(word, 32);
    }
    let rest = chunks.remainder();
    let mut word = 0u32;
    for &s in rest {
        word = (word << 1) | u32::from(s != zero);
    }
    w.write(word, rest.len() as u32);
}

/// Counts the ones among the first `count` bits of `input` (which must hold them).
fn count_nonzero(input: &[u8], count: usize) -> Result<u64, EntropyError> {
    let mut r = BitReader::new(input);
    let mut left = count;
    let mut ones = 0u64;
    while left > 0 {
        let n = left.min(32);
        ones += u64::from(r.read(n as u32)?.count_ones());
        left -= n;
    }
    Ok(ones)
}

/// Expands the mask at the start of `input` into `out`, taking each nonzero value from `value`.
fn expand<F>(
    input: &[u8],
    count: usize,
    zero: u16,
    out: &mut Vec<u16>,
    mut value: F,
) -> Result<(), EntropyError>
where
    F: FnMut() -> Result<u16, EntropyError>,
{
    let mut mask = BitReader::new(input);
    let start = out.len();
    out.resize(start + count, zero);
    for chunk in out[start..].chunks_mut(32) {
        let n = chunk.len() as u32;
        // Left-align the chunk's mask bits: bit 31 is chunk[0].
        let mut word = mask.read(n)? << (32 - n);
        while word != 0 {
            let at = word.leading_zeros();
            let v = value()?;
            if v == zero {
                return Err(EntropyError::Invalid(
                    "ZVC value equals the zero symbol".into(),
                ));
            }
            chunk[at as usize] = v;
            word &= !(0x8000_0000u32 >> at);
        }
    }
    Ok(())
}

pub fn encode(symbols: &[u16], bits: u32, zero: u16, huffman: bool, out: &mut Vec<u8>) {
    // Branch-free compaction of the nonzero symbols (zeros are overwritten by the next one).
    let mut nonzero = vec![0u16; symbols.len()];
    let mut n = 0;
    for &s in symbols {
        nonzero[n] = s;
        n += usize::from(s != zero);
    }
    nonzero.truncate(n);

    let mut w = BitWriter::new(out);
    write_mask(&mut w, symbols, zero);
    if huffman {
        write_huffman(&mut w, &nonzero, bits);
    } else {
        w.reserve_bits(n as u64 * u64::from(bits));
        write_packed(&mut w, &nonzero, bits);
    }
    w.finish();
}

pub fn decode(
    input: &[u8],
    bits: u32,
    zero: u16,
    count: usize,
    huffman: bool,
) -> Result<Vec<u16>, EntropyError> {
    let input_bits = (input.len() as u64) * 8;
    if count as u64 > input_bits {
        return Err(EntropyError::Truncated);
    }
    let nonzero = count_nonzero(input, count)?;
    let mut values = BitReader::new_at_bit(input, count as u64)?;
    let mut out = Vec::with_capacity(count);
    if huffman {
        if nonzero == 0 {
            expand(input, count, zero, &mut out, unreachable_value)?;
        } else {
            let dec = HuffmanDecoder::read_table(&mut values, bits)?;
            if !dec.is_zero_width() && nonzero > values.remaining_bits() {
                return Err(EntropyError::Truncated);
            }
            expand(input, count, zero, &mut out, || {
                dec.decode_symbol(&mut values)
            })?;
        }
    } else {
        let needed = (count as u64 + nonzero * u64::from(bits)).div_ceil(8);
        if needed > input.len() as u64 {
            return Err(EntropyError::Truncated);
        }
        if needed < input.len() as u64 {
            return Err(EntropyError::TrailingBytes(
                (input.len() as u64 - needed) as usize,
            ));
        }
        expand(input, count, zero, &mut out, || {
            values.read(bits).map(|v| v as u16)
        })?;
    }
    values.finish()?;
    Ok(out)
}

/// Value source for an all-zero mask: never called, but fails cleanly if it were.
fn unreachable_value() -> Result<u16, EntropyError> {
    Err(EntropyError::Invalid(
        "ZVC mask and value count disagree".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zvc_exact_layout() {
        // 4-bit symbols, zero = 3: mask 0 1 0 1 0, values 0xA, 0x0.
        let symbols = [3, 0xA, 3, 0x0, 3];
        let mut out = Vec::new();
        encode(&symbols, 4, 3, false, &mut out);
        // bits: 01010 1010 0000 + 3 padding bits
        assert_eq!(out, vec![0b0101_0101, 0b0000_0000]);
        assert_eq!(decode(&out, 4, 3, 5, false).unwrap(), symbols);
    }

    #[test]
    fn zvc_rejects_zero_valued_nonzero_entry() {
        // mask "1", value 3 == zero.
        let bytes = [0b1001_1000];
        assert!(matches!(
            decode(&bytes, 4, 3, 1, false),
            Err(EntropyError::Invalid(_))
        ));
    }

    #[test]
    fn zvc_all_zero_is_just_the_mask() {
        let symbols = vec![7u16; 1000];
        for huffman in [false, true] {
            let mut out = Vec::new();
            encode(&symbols, 3, 7, huffman, &mut out);
            assert_eq!(out.len(), 125);
            assert_eq!(decode(&out, 3, 7, 1000, huffman).unwrap(), symbols);
        }
    }
}
