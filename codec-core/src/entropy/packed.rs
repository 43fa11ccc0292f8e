//! [`EntropyMode::None`](super::EntropyMode::None): every symbol as a fixed-width
//! `alphabet_bits`-bit code, MSB-first, no header. The payload is exactly
//! `ceil(count * alphabet_bits / 8)` bytes; the padding bits of the last byte are zero.

use super::EntropyError;
use super::bits::{BitReader, BitWriter};

/// Writes each symbol in `bits` bits.
pub fn write_packed(w: &mut BitWriter<'_>, symbols: &[u16], bits: u32) {
    for &s in symbols {
        w.write(u32::from(s), bits);
    }
}

/// Reads `count` symbols of `bits` bits each and appends them to `out`.
pub fn read_packed(
    r: &mut BitReader<'_>,
    bits: u32,
    count: usize,
    out: &mut Vec<u16>,
) -> Result<(), EntropyError> {
    if (count as u64).saturating_mul(u64::from(bits)) > r.remaining_bits() {
        return Err(EntropyError::Truncated);
    }
    let start = out.len();
    out.resize(start + count, 0);
    r.read_fixed_into(bits, &mut out[start..])
}

pub fn encode(symbols: &[u16], bits: u32, out: &mut Vec<u8>) {
    out.reserve((symbols.len() * bits as usize).div_ceil(8));
    let mut w = BitWriter::new(out);
    write_packed(&mut w, symbols, bits);
    w.finish();
}

pub fn decode(input: &[u8], bits: u32, count: usize) -> Result<Vec<u16>, EntropyError> {
    let needed = (count as u64)
        .checked_mul(u64::from(bits))
        .ok_or(EntropyError::Truncated)?
        .div_ceil(8);
    let have = input.len() as u64;
    if have < needed {
        return Err(EntropyError::Truncated);
    }
    if have > needed {
        return Err(EntropyError::TrailingBytes((have - needed) as usize));
    }
    let mut r = BitReader::new(input);
    let mut out = Vec::with_capacity(count);
    read_packed(&mut r, bits, count, &mut out)?;
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_exact_layout_4bit() {
        let mut out = Vec::new();
        encode(&[0x1, 0xA, 0xF], 4, &mut out);
        assert_eq!(out, vec![0x1A, 0xF0]);
        assert_eq!(decode(&out, 4, 3).unwrap(), vec![0x1, 0xA, 0xF]);
        // Same bytes, one more symbol: the padding nibble decodes as a zero code.
        assert_eq!(decode(&out, 4, 4).unwrap(), vec![0x1, 0xA, 0xF, 0]);
        assert_eq!(decode(&out, 4, 5), Err(EntropyError::Truncated));
        assert_eq!(decode(&out, 4, 2), Err(EntropyError::TrailingBytes(1)));
        // Padding must be zero.
        assert!(matches!(
            decode(&[0x1A, 0xF1], 4, 3),
            Err(EntropyError::Invalid(_))
        ));
    }

    #[test]
    fn packed_huge_count_is_rejected_without_allocating() {
        assert_eq!(
            decode(&[0u8; 4], 16, usize::MAX),
            Err(EntropyError::Truncated)
        );
        assert_eq!(
            decode(&[0u8; 4], 16, usize::MAX / 2),
            Err(EntropyError::Truncated)
        );
    }
}
