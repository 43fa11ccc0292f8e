//! MSB-first bit writer and bounds-checked bit reader shared by every entropy coder.
//!
//! Bits are packed most significant bit first: the first bit written is bit 7 of byte 0. The last
//! byte is padded with zero bits. The reader never reads past the end of its input: any request
//! for bits that are not there fails with [`EntropyError::Truncated`], and [`BitReader::finish`]
//! rejects unread whole bytes ([`EntropyError::TrailingBytes`]) and nonzero padding bits, so that
//! every payload has exactly one valid byte form.

use super::EntropyError;

/// Appends bits MSB-first to a byte vector.
pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Pending bits, right-aligned: the low `pending` bits are valid; higher bits are stale and
    /// are shifted out or truncated away, never emitted.
    acc: u64,
    pending: u32,
}

impl<'a> BitWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            pending: 0,
        }
    }

    /// Writes the low `nbits` bits of `value` (`nbits <= 32`; higher bits of `value` must be 0).
    #[inline(always)]
    pub fn write(&mut self, value: u32, nbits: u32) {
        debug_assert!(nbits <= 32);
        debug_assert!(nbits == 32 || value >> nbits == 0);
        // pending < 32 and nbits <= 32, so the shift and the sum stay below 64.
        self.acc = (self.acc << nbits) | u64::from(value);
        self.pending += nbits;
        if self.pending >= 32 {
            self.pending -= 32;
            let word = (self.acc >> self.pending) as u32;
            self.out.extend_from_slice(&word.to_be_bytes());
        }
    }

    /// Reserves output space for `nbits` more bits.
    pub fn reserve_bits(&mut self, nbits: u64) {
        self.out
            .reserve(usize::try_from(nbits.div_ceil(8)).unwrap_or(0));
    }

    /// Writes `value` (any width up to 64 bits) in `nbits` bits.
    pub fn write_u64(&mut self, value: u64, nbits: u32) {
        debug_assert!(nbits <= 64);
        if nbits > 32 {
            self.write((value >> 32) as u32, nbits - 32);
            self.write(value as u32, 32);
        } else {
            self.write(value as u32, nbits);
        }
    }

    /// Writes `value` as an order-`k` exponential-Golomb code: with `w = value + 2^k` of
    /// `n` significant bits, `n - k - 1` zero bits followed by the `n` bits of `w`, i.e. `w`
    /// written in `2n - k - 1` bits. `value + 2^k` must be below 2^64 (the reader's limit).
    #[inline]
    pub fn write_exp_golomb(&mut self, value: u64, k: u32) {
        debug_assert!(k < 64);
        let w = value
            .checked_add(1u64 << k)
            .expect("exp-Golomb value below 2^64 - 2^k");
        let n = 64 - w.leading_zeros();
        let len = 2 * n - k - 1;
        if len <= 32 {
            // The n - k - 1 leading zeros are the zero high bits of the field.
            self.write(w as u32, len);
        } else {
            let mut zeros = n - k - 1;
            while zeros > 0 {
                let c = zeros.min(32);
                self.write(0, c);
                zeros -= c;
            }
            self.write_u64(w, n);
        }
    }

    /// Flushes pending bits, padding the last byte with zero bits.
    pub fn finish(mut self) {
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
            self.pending = 0;
        }
    }
}

/// Number of bits an order-`k` exponential-Golomb code of `value` takes.
pub fn exp_golomb_len(value: u64, k: u32) -> u64 {
    let w = u128::from(value) + (1u128 << k);
    let n = u64::from(128 - w.leading_zeros());
    2 * n - u64::from(k) - 1
}

/// Reads bits MSB-first from a byte slice, never past its end.
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` not yet loaded into `buf`.
    pos: usize,
    /// Loaded bits, left-aligned: the top `avail` bits are the next bits of the stream. Bits
    /// below them are either zero or copies of the stream bits that follow (refill ORs the same
    /// values in again), so they never corrupt a later refill.
    buf: u64,
    avail: u32,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            buf: 0,
            avail: 0,
        }
    }

    /// A reader that starts `bit_offset` bits into `data`. Fails with `Truncated` if the offset
    /// is beyond the end.
    pub fn new_at_bit(data: &'a [u8], bit_offset: u64) -> Result<Self, EntropyError> {
        let total = (data.len() as u64) * 8;
        if bit_offset > total {
            return Err(EntropyError::Truncated);
        }
        let mut r = BitReader {
            data,
            pos: (bit_offset / 8) as usize,
            buf: 0,
            avail: 0,
        };
        let skip = (bit_offset % 8) as u32;
        if skip > 0 {
            r.read(skip)?;
        }
        Ok(r)
    }

    /// Loads whole bytes until at least 56 bits are buffered or the input is exhausted; never
    /// more than 63 (so shifts by the buffered count stay below 64). Requires `avail < 64`.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let word = u64::from_be_bytes(chunk.try_into().expect("8-byte slice"));
            // avail < 56 here (callers refill only below that), so the shift keeps the
            // buffered bits and adds at least one whole byte.
            self.buf |= word >> self.avail;
            let bytes = (63 - self.avail) >> 3;
            self.pos += bytes as usize;
            self.avail += bytes * 8;
        } else {
            while self.avail < 56 && self.pos < self.data.len() {
                self.buf |= u64::from(self.data[self.pos]) << (56 - self.avail);
                self.pos += 1;
                self.avail += 8;
            }
        }
    }

    /// Bits left in the input (buffered plus not yet loaded).
    #[inline]
    pub fn remaining_bits(&self) -> u64 {
        u64::from(self.avail) + 8 * (self.data.len() - self.pos) as u64
    }

    /// Reads `nbits` bits (`nbits <= 32`) as an unsigned value.
    #[inline(always)]
    pub fn read(&mut self, nbits: u32) -> Result<u32, EntropyError> {
        debug_assert!(nbits <= 32);
        if nbits == 0 {
            return Ok(0);
        }
        if self.avail < nbits {
            self.refill();
            if self.avail < nbits {
                return Err(EntropyError::Truncated);
            }
        }
        let v = (self.buf >> (64 - nbits)) as u32;
        self.buf <<= nbits;
        self.avail -= nbits;
        Ok(v)
    }

    /// Reads up to 64 bits.
    pub fn read_u64(&mut self, nbits: u32) -> Result<u64, EntropyError> {
        debug_assert!(nbits <= 64);
        if nbits > 32 {
            let hi = u64::from(self.read(nbits - 32)?);
            let lo = u64::from(self.read(32)?);
            Ok((hi << 32) | lo)
        } else {
            Ok(u64::from(self.read(nbits)?))
        }
    }

    /// Returns the next 32 bits without consuming them, zero-filled past the end of the input,
    /// together with how many of them are real input bits (at most 32).
    #[inline(always)]
    pub fn peek32(&mut self) -> (u32, u32) {
        if self.avail < 32 {
            self.refill();
        }
        ((self.buf >> 32) as u32, self.avail.min(32))
    }

    /// Consumes `nbits` bits already made visible by [`BitReader::peek32`] or
    /// [`BitReader::fill`].
    #[inline(always)]
    pub fn consume(&mut self, nbits: u32) {
        debug_assert!(nbits <= self.avail && nbits < 64);
        self.buf <<= nbits;
        self.avail -= nbits;
    }

    /// Reads an order-`k` exponential-Golomb code (see [`BitWriter::write_exp_golomb`]).
    /// Codes with more than `max_zeros` leading zeros are rejected (bounding the work and the
    /// value range).
    #[inline]
    pub fn read_exp_golomb(&mut self, k: u32, max_zeros: u32) -> Result<u64, EntropyError> {
        debug_assert!(k + max_zeros < 64);
        // Fast path: the whole code is within the next 32 real bits.
        let (window, real) = self.peek32();
        let lz = window.leading_zeros();
        let len = 2 * lz + k + 1;
        if lz <= max_zeros && len <= real {
            self.consume(len);
            return Ok(u64::from(window >> (32 - len)) - (1u64 << k));
        }
        self.read_exp_golomb_slow(k, max_zeros)
    }

    #[cold]
    fn read_exp_golomb_slow(&mut self, k: u32, max_zeros: u32) -> Result<u64, EntropyError> {
        let mut zeros = 0u32;
        loop {
            let (bits, real) = self.peek32();
            if real == 0 {
                return Err(EntropyError::Truncated);
            }
            // Only the `real` top bits are input; zero-fill below them must not count.
            let lz = bits.leading_zeros().min(real);
            zeros += lz;
            if zeros > max_zeros {
                return Err(EntropyError::Invalid(format!(
                    "exp-Golomb code with more than {max_zeros} leading zeros"
                )));
            }
            self.consume(lz);
            if lz < real {
                break;
            }
        }
        // The 1 bit plus `zeros + k` more bits form w = value + 2^k.
        let w = self.read_u64(zeros + k + 1)?;
        Ok(w - (1u64 << k))
    }

    /// Fills `out` with fixed-width `bits`-bit values (`1 <= bits <= 16`), several per refill.
    pub fn read_fixed_into(&mut self, bits: u32, out: &mut [u16]) -> Result<(), EntropyError> {
        debug_assert!((1..=16).contains(&bits));
        let mut rest = out;
        while !rest.is_empty() {
            if self.avail < 56 {
                self.refill();
            }
            let ready = (self.avail / bits) as usize;
            if ready == 0 {
                return Err(EntropyError::Truncated);
            }
            let (now, later) = rest.split_at_mut(ready.min(rest.len()));
            let mut buf = self.buf;
            for o in now.iter_mut() {
                *o = (buf >> (64 - bits)) as u16;
                buf <<= bits;
            }
            self.buf = buf;
            self.avail -= now.len() as u32 * bits;
            rest = later;
        }
        Ok(())
    }

    /// Buffers at least 56 bits (fewer only at the end of the input) and returns the buffered
    /// bit count; [`BitReader::window`] then shows them.
    #[inline(always)]
    pub fn fill(&mut self) -> u32 {
        if self.avail < 56 {
            self.refill();
        }
        self.avail
    }

    /// The buffered bits, left-aligned (only the top [`BitReader::fill`] bits are input).
    #[inline(always)]
    pub fn window(&self) -> u64 {
        self.buf
    }

    /// Checks that the input was consumed entirely: no unread whole bytes and zero padding bits.
    pub fn finish(mut self) -> Result<(), EntropyError> {
        // Unloaded bytes are trailing bytes; so are whole bytes still buffered.
        let unloaded = self.data.len() - self.pos;
        let buffered_bytes = (self.avail / 8) as usize;
        let trailing = unloaded + buffered_bytes;
        if trailing > 0 {
            return Err(EntropyError::TrailingBytes(trailing));
        }
        let pad = self.avail % 8;
        if pad > 0 && self.read(pad)? != 0 {
            return Err(EntropyError::Invalid("nonzero padding bits".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_mixed_widths() {
        let items: Vec<(u32, u32)> = (0..2000u32)
            .map(|i| {
                let n = i % 33;
                let v = if n == 32 {
                    i.wrapping_mul(2_654_435_761)
                } else {
                    i.wrapping_mul(2_654_435_761) & ((1u32 << n) - 1)
                };
                (v, n)
            })
            .collect();
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        for &(v, n) in &items {
            w.write(v, n);
        }
        w.finish();
        let total: u32 = items.iter().map(|&(_, n)| n).sum();
        assert_eq!(out.len(), total.div_ceil(8) as usize);
        let mut r = BitReader::new(&out);
        for &(v, n) in &items {
            assert_eq!(r.read(n).unwrap(), v);
        }
        r.finish().unwrap();
    }

    #[test]
    fn bits_msb_first_layout() {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.write(0b1, 1);
        w.write(0b011, 3);
        w.write(0b11, 2);
        w.finish();
        assert_eq!(out, vec![0b1011_1100]);
    }

    #[test]
    fn bits_reader_never_reads_past_end() {
        let data = [0xFFu8, 0x00];
        let mut r = BitReader::new(&data);
        assert_eq!(r.read(12).unwrap(), 0xFF0);
        assert_eq!(r.read(5), Err(EntropyError::Truncated));
        assert_eq!(r.read(4).unwrap(), 0);
        assert_eq!(r.read(1), Err(EntropyError::Truncated));
    }

    #[test]
    fn bits_finish_rejects_trailing_and_padding() {
        let data = [0xAB, 0xCD, 0xEF];
        let mut r = BitReader::new(&data);
        r.read(4).unwrap();
        assert_eq!(r.finish(), Err(EntropyError::TrailingBytes(2)));
        let data = [0b1010_0001];
        let mut r = BitReader::new(&data);
        r.read(3).unwrap();
        assert!(matches!(r.finish(), Err(EntropyError::Invalid(_))));
        let data = [0b1010_0000];
        let mut r = BitReader::new(&data);
        r.read(3).unwrap();
        r.finish().unwrap();
    }

    #[test]
    fn bits_exp_golomb_round_trip() {
        let values: Vec<u64> = [
            0u64,
            1,
            2,
            3,
            7,
            8,
            255,
            256,
            65_535,
            1 << 40,
            (1 << 47) + 12_345,
        ]
        .into_iter()
        .collect();
        for k in [0u32, 1, 3, 7, 15] {
            let mut out = Vec::new();
            let mut w = BitWriter::new(&mut out);
            let mut bits = 0;
            for &v in &values {
                w.write_exp_golomb(v, k);
                bits += exp_golomb_len(v, k);
            }
            w.finish();
            assert_eq!(out.len() as u64, bits.div_ceil(8));
            let mut r = BitReader::new(&out);
            for &v in &values {
                assert_eq!(r.read_exp_golomb(k, 48).unwrap(), v, "k={k}");
            }
            r.finish().unwrap();
        }
    }

    #[test]
    fn bits_exp_golomb_limits_zeros() {
        let data = [0u8; 16];
        let mut r = BitReader::new(&data);
        assert!(matches!(
            r.read_exp_golomb(0, 40),
            Err(EntropyError::Invalid(_))
        ));
        let data = [0u8; 2];
        let mut r = BitReader::new(&data);
        assert_eq!(r.read_exp_golomb(0, 40), Err(EntropyError::Truncated));
    }

    #[test]
    fn bits_reader_at_offset() {
        let data = [0b0001_0110, 0b1000_0000];
        let mut r = BitReader::new_at_bit(&data, 3).unwrap();
        assert_eq!(r.read(6).unwrap(), 0b101101);
        assert!(BitReader::new_at_bit(&data, 17).is_err());
        assert!(BitReader::new_at_bit(&data, 16).is_ok());
    }
}
