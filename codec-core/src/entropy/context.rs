//! Context-adaptive binary range coding: the entropy coder of fmap's own `adaptive` mode.
//!
//! The range coder itself is `constriction`'s ([`DefaultRangeEncoder`] / [`DefaultRangeDecoder`]:
//! 32-bit words, 64-bit state). What this module adds is the *model*: a binary probability that
//! adapts to the bits coded with it ([`Context`]), in the manner of H.265's CABAC and AV1's
//! adaptive CDFs, plus the binarizations the codec's syntax uses (unary prefix with contexts, then
//! an Exp-Golomb escape coded at p = ½).
//!
//! Why a binary model and not constriction's categorical ones: every symbol of the syntax gets a
//! context chosen from its causal neighbourhood, and the model changes after every symbol.
//! Rebuilding a categorical model per symbol allocates; a two-entry model is a `Copy` value built
//! on the stack (measured in `benches/codec.rs`: the adaptive mode decodes a `[128,52,52]` frame in
//! a few milliseconds).
//!
//! A coded stream is the range coder's `u32` words in little-endian order. Decoding never panics
//! on arbitrary bytes: a stream that runs out reads as zeros, and an impossible quantile is an
//! error ([`EntropyError::Invalid`]).

use super::EntropyError;
use constriction::stream::model::{DecoderModel, EncoderModel, EntropyModel};
use constriction::stream::queue::{DefaultRangeDecoder, DefaultRangeEncoder};
use constriction::stream::{Decode, Encode};
use std::borrow::Borrow;
use std::num::NonZeroU16;

/// Fixed-point precision of probabilities (constriction's `PRECISION`).
const PRECISION: usize = 15;
const ONE: u16 = 1 << PRECISION;
/// Probabilities stay inside [MIN_P, ONE − MIN_P] so that every symbol stays codable
/// (a certain bit still costs about 0.003 bits).
const MIN_P: u16 = 64;
/// Exp-Golomb escapes longer than this are rejected by the decoder (values up to 2^24).
pub const MAX_ESCAPE_BITS: u32 = 24;

/// A binary distribution in the form constriction's coders take.
#[derive(Debug, Clone, Copy)]
struct Binary {
    /// Probability of `false`, in units of 2^−PRECISION, in [MIN_P, ONE − MIN_P].
    p0: u16,
}

impl EntropyModel<PRECISION> for Binary {
    type Symbol = bool;
    type Probability = u16;
}

impl EncoderModel<PRECISION> for Binary {
    fn left_cumulative_and_probability(
        &self,
        symbol: impl Borrow<bool>,
    ) -> Option<(u16, NonZeroU16)> {
        if *symbol.borrow() {
            Some((self.p0, NonZeroU16::new(ONE - self.p0)?))
        } else {
            Some((0, NonZeroU16::new(self.p0)?))
        }
    }
}

impl DecoderModel<PRECISION> for Binary {
    fn quantile_function(&self, quantile: u16) -> (bool, u16, NonZeroU16) {
        // p0 is kept within [MIN_P, ONE − MIN_P], so both probabilities are nonzero.
        let nz = |p: u16| NonZeroU16::new(p).unwrap_or(NonZeroU16::MIN);
        if quantile < self.p0 {
            (false, 0, nz(self.p0))
        } else {
            (true, self.p0, nz(ONE - self.p0))
        }
    }
}

const HALF: Binary = Binary { p0: ONE / 2 };

/// One adaptive binary context: its probability moves toward each coded bit, fast at first and
/// more slowly as it has seen more bits (adaptation rate 2^−4 … 2^−7).
#[derive(Debug, Clone, Copy)]
pub struct Context {
    p0: u16,
    seen: u8,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            p0: ONE / 2,
            seen: 0,
        }
    }
}

impl Context {
    fn model(self) -> Binary {
        Binary { p0: self.p0 }
    }

    fn update(&mut self, bit: bool) {
        let rate = 4
            + u32::from(self.seen >= 16)
            + u32::from(self.seen >= 48)
            + u32::from(self.seen >= 128);
        self.seen = self.seen.saturating_add(1);
        let p = i32::from(self.p0);
        let target = if bit { 0 } else { i32::from(ONE) };
        let p = p + ((target - p) >> rate);
        self.p0 = p.clamp(i32::from(MIN_P), i32::from(ONE - MIN_P)) as u16;
    }

    /// Estimated cost of coding `bit` with this context, in 1/256 bits (for rate–distortion
    /// decisions; no state changes).
    pub fn cost(self, bit: bool) -> u32 {
        let p = if bit { ONE - self.p0 } else { self.p0 };
        cost_of_probability(p)
    }
}

/// −log2(p / 2^PRECISION) in 1/256 bits, from the leading-zero count and a 4-bit mantissa
/// table (accurate to about 0.05 bit, enough for decisions).
fn cost_of_probability(p: u16) -> u32 {
    // log2 of 1 + k/16, k = 0..16, in 1/256 units.
    const FRACTION: [u32; 17] = [
        0, 22, 44, 63, 82, 100, 118, 134, 150, 165, 179, 193, 207, 220, 232, 244, 256,
    ];
    let p = u32::from(p.max(1));
    let msb = 31 - p.leading_zeros();
    let mantissa = if msb >= 4 {
        (p >> (msb - 4)) & 15
    } else {
        (p << (4 - msb)) & 15
    };
    let log2_p = msb * 256 + FRACTION[mantissa as usize];
    (PRECISION as u32 * 256).saturating_sub(log2_p)
}

/// Writes binary decisions with adaptive contexts.
pub struct ContextEncoder {
    coder: DefaultRangeEncoder,
}

impl Default for ContextEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextEncoder {
    pub fn new() -> Self {
        ContextEncoder {
            coder: DefaultRangeEncoder::new(),
        }
    }

    /// Codes `bit` with `ctx` and adapts `ctx`.
    #[inline]
    pub fn bit(&mut self, ctx: &mut Context, bit: bool) {
        // The model's probabilities are never zero, so encoding cannot fail.
        let _ = self.coder.encode_symbol(bit, ctx.model());
        ctx.update(bit);
    }

    /// Codes `bit` at probability ½ (signs, escape suffixes).
    #[inline]
    pub fn bypass(&mut self, bit: bool) {
        let _ = self.coder.encode_symbol(bit, HALF);
    }

    /// Codes `value` ≥ 0 as a unary prefix of up to `contexts.len()` context-coded bins
    /// (bin k: "value > k"), then, when the prefix is exhausted, `value − len` as an Exp-Golomb
    /// (order 0) escape at p = ½.
    pub fn unary_escape(&mut self, contexts: &mut [Context], value: u32) {
        for (k, ctx) in contexts.iter_mut().enumerate() {
            let more = value > k as u32;
            self.bit(ctx, more);
            if !more {
                return;
            }
        }
        self.exp_golomb(value - contexts.len() as u32);
    }

    /// Exp-Golomb order 0 at p = ½. Values above 2^MAX_ESCAPE_BITS − 2 are the caller's error.
    pub fn exp_golomb(&mut self, value: u32) {
        let v = value.saturating_add(1);
        let len = 32 - v.leading_zeros(); // ≥ 1
        for _ in 1..len {
            self.bypass(false);
        }
        for i in (0..len).rev() {
            self.bypass((v >> i) & 1 == 1);
        }
    }

    /// The coded bytes (little-endian words).
    pub fn finish(self) -> Vec<u8> {
        let words = self.coder.into_compressed().unwrap_or_default();
        let mut out = Vec::with_capacity(words.len() * 4);
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Reads what [`ContextEncoder`] wrote, with the same contexts in the same order.
pub struct ContextDecoder {
    coder: DefaultRangeDecoder,
}

impl ContextDecoder {
    /// Starts decoding `bytes`; their length must be a multiple of 4.
    pub fn new(bytes: &[u8]) -> Result<Self, EntropyError> {
        if !bytes.len().is_multiple_of(4) {
            return Err(EntropyError::Invalid(format!(
                "context-coded payload of {} bytes is not a whole number of 32-bit words",
                bytes.len()
            )));
        }
        let words: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let coder = DefaultRangeDecoder::from_compressed(words)
            .map_err(|_| EntropyError::Invalid("context-coded payload unreadable".into()))?;
        Ok(ContextDecoder { coder })
    }

    #[inline]
    pub fn bit(&mut self, ctx: &mut Context) -> Result<bool, EntropyError> {
        let bit = self
            .coder
            .decode_symbol(ctx.model())
            .map_err(|_| EntropyError::Invalid("context-coded payload is invalid".into()))?;
        ctx.update(bit);
        Ok(bit)
    }

    #[inline]
    pub fn bypass(&mut self) -> Result<bool, EntropyError> {
        self.coder
            .decode_symbol(HALF)
            .map_err(|_| EntropyError::Invalid("context-coded payload is invalid".into()))
    }

    /// Inverse of [`ContextEncoder::unary_escape`].
    pub fn unary_escape(&mut self, contexts: &mut [Context]) -> Result<u32, EntropyError> {
        let len = contexts.len() as u32;
        for (k, ctx) in contexts.iter_mut().enumerate() {
            if !self.bit(ctx)? {
                return Ok(k as u32);
            }
        }
        Ok(len + self.exp_golomb()?)
    }

    /// Inverse of [`ContextEncoder::exp_golomb`]; a prefix longer than [`MAX_ESCAPE_BITS`] is an
    /// error.
    pub fn exp_golomb(&mut self) -> Result<u32, EntropyError> {
        let mut zeros = 0;
        while !self.bypass()? {
            zeros += 1;
            if zeros > MAX_ESCAPE_BITS {
                return Err(EntropyError::Invalid(format!(
                    "escape code longer than {MAX_ESCAPE_BITS} bits"
                )));
            }
        }
        let mut v = 1u32;
        for _ in 0..zeros {
            v = (v << 1) | u32::from(self.bypass()?);
        }
        Ok(v - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_values_round_trip() {
        let mut ctx = [Context::default(); 3];
        let mut unary = [Context::default(); 4];
        let mut enc = ContextEncoder::new();
        let values: Vec<u32> = (0..2000u32)
            .map(|i| (i * 7919) % 23 + (i % 97) * 1000)
            .collect();
        for (i, &v) in values.iter().enumerate() {
            enc.bit(&mut ctx[i % 3], v % 2 == 0);
            enc.bypass(v % 3 == 0);
            enc.unary_escape(&mut unary, v);
        }
        enc.exp_golomb((1 << MAX_ESCAPE_BITS) - 2);
        let bytes = enc.finish();
        let mut ctx = [Context::default(); 3];
        let mut unary = [Context::default(); 4];
        let mut dec = ContextDecoder::new(&bytes).unwrap();
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(dec.bit(&mut ctx[i % 3]).unwrap(), v % 2 == 0);
            assert_eq!(dec.bypass().unwrap(), v % 3 == 0);
            assert_eq!(dec.unary_escape(&mut unary).unwrap(), v);
        }
        assert_eq!(dec.exp_golomb().unwrap(), (1 << MAX_ESCAPE_BITS) - 2);
    }

    #[test]
    fn skewed_bits_cost_far_less_than_one_bit_each() {
        let mut ctx = Context::default();
        let mut enc = ContextEncoder::new();
        let n = 100_000;
        for i in 0..n {
            enc.bit(&mut ctx, i % 100 == 0);
        }
        let bits = enc.finish().len() * 8;
        // Entropy of p = 0.01 is 0.081 bit; adaptation overhead keeps it near that.
        assert!(bits < n / 8, "{bits} bits for {n} skewed decisions");
        assert!(
            ctx.cost(false) < 32,
            "cost of the likely bit {}",
            ctx.cost(false)
        );
        assert!(
            ctx.cost(true) > 5 * 256,
            "cost of the unlikely bit {}",
            ctx.cost(true)
        );
    }

    #[test]
    fn cost_table_matches_log2() {
        for p in [64u16, 100, 1000, 4096, 16384, 30000, 32704] {
            let exact = -(f64::from(p) / f64::from(ONE)).log2() * 256.0;
            let approx = f64::from(cost_of_probability(p));
            assert!((exact - approx).abs() < 16.0, "p {p}: {exact} vs {approx}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678u32;
        for len in [0usize, 4, 8, 64, 400] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect();
            let Ok(mut dec) = ContextDecoder::new(&bytes) else {
                continue;
            };
            let mut ctx = [Context::default(); 8];
            for _ in 0..1000 {
                if dec.unary_escape(&mut ctx).is_err() {
                    break;
                }
            }
        }
        assert!(ContextDecoder::new(&[1, 2, 3]).is_err());
    }
}
