//! Encoder configuration.

use super::bitstream::{MAX_BITS, MAX_BLOCK_SIZE, MAX_SEARCH_RANGE};
use super::{CodecError, Structure};
use crate::entropy::EntropyMode;
use crate::motion::{self, MvSharing, SearchMethod};
use crate::quant::QuantizerMode;

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
    /// Entropy coder of every payload (codes, motion vectors, block flags, residuals).
    pub entropy: EntropyMode,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            structure: Structure::ClosedLoop,
            key_interval: 30,
            dead_zone: 0,
            bits: 8,
            block_size: 8,
            search: SearchMethod::ThreeStep,
            search_range: 7,
            mv_sharing: MvSharing::PerChannel,
            quantizer: QuantizerMode::PerTensorMinMax,
            entropy: EntropyMode::Huffman,
        }
    }
}

impl CodecConfig {
    /// Checks every field against the limits of the bitstream; the error names the valid range.
    pub fn validate(&self) -> Result<(), CodecError> {
        if !(1..=MAX_BITS).contains(&self.bits) {
            return Err(CodecError::Config(format!(
                "bits = {} outside 1..={MAX_BITS}",
                self.bits
            )));
        }
        if !(1..=MAX_BLOCK_SIZE).contains(&self.block_size)
            || !motion::BLOCK_SIZES.contains(&self.block_size)
        {
            return Err(CodecError::Config(format!(
                "block_size = {} (valid: {:?})",
                self.block_size,
                motion::BLOCK_SIZES
            )));
        }
        if self.search_range > MAX_SEARCH_RANGE {
            return Err(CodecError::Config(format!(
                "search_range = {} outside 0..={MAX_SEARCH_RANGE}",
                self.search_range
            )));
        }
        if self.key_interval == 0 {
            return Err(CodecError::Config(
                "key_interval = 0; it must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
