//! Encoder configuration.

use super::bitstream::{MAX_BITS, MAX_BLOCK_SIZE, MAX_SEARCH_RANGE};
use super::{CodecError, Structure};
use crate::entropy::EntropyMode;
use crate::motion::{self, MvSharing, SearchMethod};
use crate::quant::{self, QuantizerMode};

/// Default step of the adaptive mode, as a fraction of a tensor's standard deviation: the
/// cheapest point of the report's ladder that keeps NanoDet's person AP@0.5 at 0.98 of the
/// unsplit model's with a margin (0.985 at 390 kbit/s on the whole of vtest.avi; see
/// `docs/results.md`).
pub const DEFAULT_QUALITY: f32 = 1.4;
/// Default frames from one key unit to the next: 10 s at 10 frames/s. Key units cost 5–10
/// predicted ones; a receiver that loses sync asks for one (force-key-unit) instead of waiting.
pub const DEFAULT_KEY_INTERVAL: u32 = 100;
/// Default block edge (motion and, in the adaptive mode, block flags); 4 measured 13% cheaper
/// than 8 for the adaptive mode at equal accuracy.
pub const DEFAULT_BLOCK_SIZE: usize = 4;
/// Range of [`CodecConfig::quality`].
pub const QUALITY_RANGE: std::ops::RangeInclusive<f32> = 0.001..=16.0;
/// Default rounding offset of the adaptive mode's quantizer on predicted units.
pub const DEFAULT_ROUNDING: f32 = 0.5;
/// Default Lagrangian multiplier of the adaptive mode's block decisions: on 200 frames of
/// vtest.avi, 0.1 traced the lowest rate–accuracy curve of {0.05, 0.1, 0.15, 0.3} for NanoDet
/// and was within a few percent of the best (0.05) for the 8-bit SSD, whose accuracy collapses
/// at coarse steps when more blocks are skipped.
pub const DEFAULT_LAMBDA: f32 = 0.1;
/// Default channels per slice of the adaptive mode. Each slice restarts its contexts: on 60
/// recorded NanoDet stage2 frames at quality 1.4, slices of 64 channels cost 0.7% more bits than
/// one slice per tensor, 32 cost 2.8% and 16 cost 5.9% (`examples/recorded.rs`).
pub const DEFAULT_SLICE_CHANNELS: usize = 64;

/// Everything the encoder needs to know; the decoder needs none of it (units describe
/// themselves).
#[derive(Debug, Clone, PartialEq)]
pub struct CodecConfig {
    pub structure: Structure,
    /// Closed loop: a key frame every `key_interval` frames (1 = every frame is a key).
    pub key_interval: u32,
    /// Closed loop: residual codes with |r| <= dead_zone are sent as 0.
    pub dead_zone: u16,
    /// Quantizer code width N (1..=15).
    pub bits: u8,
    /// Motion block size in elements (1..=MAX_BLOCK_SIZE).
    pub block_size: usize,
    pub search: SearchMethod,
    /// Largest motion vector component searched (0..=127).
    pub search_range: u8,
    pub mv_sharing: MvSharing,
    pub quantizer: QuantizerMode,
    /// Entropy coder of every payload (codes, motion vectors, block flags, residuals) of the
    /// thesis's modes and closed loop; the adaptive mode always uses context-adaptive range
    /// coding.
    pub entropy: EntropyMode,
    /// Adaptive mode: quantizer step as a fraction of each tensor's standard deviation
    /// (measured on key frames). Smaller is finer: more bits, higher accuracy.
    pub quality: f32,
    /// Adaptive mode: rounding offset of the quantizer on predicted units (0.5 = nearest;
    /// smaller values favour zero residuals).
    pub rounding: f32,
    /// Adaptive mode: Lagrangian multiplier of the block decisions, in step² per bit
    /// (0 = code every nonzero block).
    pub lambda: f32,
    /// Adaptive mode: channels per slice (0 = one slice per tensor). Each slice decodes on its
    /// own, so a transport that loses one loses only its channels.
    pub slice_channels: usize,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            structure: Structure::Adaptive,
            key_interval: DEFAULT_KEY_INTERVAL,
            dead_zone: 0,
            bits: 8,
            block_size: DEFAULT_BLOCK_SIZE,
            search: SearchMethod::ThreeStep,
            search_range: 7,
            mv_sharing: MvSharing::PerChannel,
            quantizer: QuantizerMode::PerTensorMinMax,
            entropy: EntropyMode::Huffman,
            quality: DEFAULT_QUALITY,
            rounding: DEFAULT_ROUNDING,
            lambda: DEFAULT_LAMBDA,
            slice_channels: DEFAULT_SLICE_CHANNELS,
        }
    }
}

impl CodecConfig {
    /// Checks every field against the limits of the bitstream; the error names the valid range.
    pub fn validate(&self) -> Result<(), CodecError> {
        // The bitstream carries codes of up to MAX_BITS; the encoder's quantizers make
        // quant::MIN_BITS..=quant::MAX_BITS (the adaptive mode has a step instead).
        let bits = quant::MIN_BITS..=quant::MAX_BITS.min(MAX_BITS);
        if self.structure != Structure::Adaptive && !bits.contains(&self.bits) {
            return Err(CodecError::Config(format!(
                "bits = {} outside {}..={}",
                self.bits,
                bits.start(),
                bits.end()
            )));
        }
        if !(1..=MAX_BLOCK_SIZE).contains(&self.block_size)
            || !motion::BLOCK_SIZES.contains(&self.block_size)
        {
            return Err(CodecError::Config(format!(
                "block-size = {} (valid: {:?})",
                self.block_size,
                motion::BLOCK_SIZES
            )));
        }
        if self.search_range > MAX_SEARCH_RANGE {
            return Err(CodecError::Config(format!(
                "search-range = {} outside 0..={MAX_SEARCH_RANGE}",
                self.search_range
            )));
        }
        if !QUALITY_RANGE.contains(&self.quality) {
            return Err(CodecError::Config(format!(
                "quality = {} outside {}..={}",
                self.quality,
                QUALITY_RANGE.start(),
                QUALITY_RANGE.end()
            )));
        }
        if !(0.0..=0.5).contains(&self.rounding) {
            return Err(CodecError::Config(format!(
                "rounding = {} outside 0..=0.5",
                self.rounding
            )));
        }
        if !(0.0..=1000.0).contains(&self.lambda) {
            return Err(CodecError::Config(format!(
                "lambda = {} outside 0..=1000",
                self.lambda
            )));
        }
        if self.key_interval == 0 {
            return Err(CodecError::Config(
                "key-interval = 0; it must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
