//! Encoder configuration.

use super::bitstream::{MAX_BITS, MAX_BLOCK_SIZE, MAX_SEARCH_RANGE};
use super::{CodecError, Structure};
use crate::entropy::EntropyMode;
use crate::motion::{self, MvSharing, SearchMethod};
use crate::quant::{self, QuantizerMode};

/// Default step of the adaptive mode, as a fraction of a tensor's standard deviation: with
/// [`DEFAULT_KEY_STEP_RATIO`], a point of the report's ladder that keeps NanoDet's person AP@0.5
/// above 0.98 of the unsplit model's with a margin (0.983 at 260 kbit/s on the whole of
/// vtest.avi; quality 2.4 reaches 0.9800 at 203; `docs/results.md`).
pub const DEFAULT_QUALITY: f32 = 2.0;
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
/// Default step of key units and refresh slices relative to predicted units' (see
/// [`CodecConfig::key_step_ratio`]). On the whole of vtest.avi (NanoDet stage2, qualities 1.4–4)
/// against x265 at 416x416, 0.5 gives BD-rate −17% at equal person AP@0.5 and +9% at equal
/// robust mAP@0.5, where 1 gives +9% and +120%; 0.35 measured a little lower (−19%, −12%), but
/// with it 2 of 4 runs of the 5%-loss retransmission test lost a packet for good and concealed
/// 11 frames (0.5: 0 of 2, like 1) (`docs/rate-levers.md`).
pub const DEFAULT_KEY_STEP_RATIO: f32 = 0.5;
/// Range of [`CodecConfig::key_step_ratio`].
pub const KEY_STEP_RATIO_RANGE: std::ops::RangeInclusive<f32> = 0.05..=1.0;
/// Default Lagrangian multiplier of the adaptive mode's block decisions: on 200 frames of
/// vtest.avi, 0.1 traced the lowest rate–accuracy curve of {0.05, 0.1, 0.15, 0.3} for NanoDet
/// and was within a few percent of the best (0.05) for the 8-bit SSD, whose accuracy collapses
/// at coarse steps when more blocks are skipped.
pub const DEFAULT_LAMBDA: f32 = 0.1;
/// Default refresh of the adaptive mode: gradual. On 240 recorded NanoDet stage2 frames at
/// quality 2 it cost +0.1% rate at a key interval of 100 and +1.0% at 40 against periodic key
/// units, at equal feature SNR (`examples/recorded.rs`), and it spreads the 19 KB key units over
/// the interval.
pub const DEFAULT_GRADUAL_REFRESH: bool = true;
/// Default motion precision of the adaptive mode ([`CodecConfig::fractional_motion`]): quarter
/// features. On a panning crop of vtest.avi (300 frames, NanoDet stage2, qualities 1.4–4) they
/// moved BD-rate against x264 at 416x416 from +136% to +55% (person AP@0.5; 827 kbit/s at
/// 0.979 instead of 1234 at 0.981 at quality 2); on the whole of vtest.avi's static camera
/// they changed it by −1% (person AP@0.5) and +4% (person+vehicle mAP) against whole-feature
/// vectors (`docs/rate-levers.md`). A moving camera is the general case.
pub const DEFAULT_FRACTIONAL_MOTION: bool = true;
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
    /// Adaptive mode: the step of key units and refresh slices as a fraction of the step of
    /// predicted slices. What a key codes persists in every later frame wherever the content
    /// stays (predicted slices skip it), so finer keys pay for static scenes, as video
    /// encoders code I frames at a lower QP than P frames.
    pub key_step_ratio: f32,
    /// Adaptive mode: rounding offset of the quantizer on predicted units (0.5 = nearest;
    /// smaller values favour zero residuals).
    pub rounding: f32,
    /// Adaptive mode: Lagrangian multiplier of the block decisions, in step² per bit
    /// (0 = code every nonzero block).
    pub lambda: f32,
    /// Adaptive mode: motion vectors in quarters of a feature, with 8-tap interpolated
    /// prediction ([`crate::subpel`]), instead of whole features. A moving camera shifts the feature map
    /// by a fraction of a feature per frame, which whole-feature vectors cannot follow. Needs
    /// `search_range` ≤ [`crate::subpel::MAX_FRACTIONAL_SEARCH_RANGE`].
    pub fractional_motion: bool,
    /// Adaptive mode: channels per slice (0 = one slice per tensor). Each slice decodes on its
    /// own, so a transport that loses one loses only its channels.
    pub slice_channels: usize,
    /// Adaptive mode: instead of a key unit every `key_interval` frames, refresh each slice
    /// once per `key_interval` frames, spread over the interval (slices coded as in a key unit
    /// inside predicted units). Key units then only start the stream, follow a layout change or
    /// answer a request. The rate stays even, and a receiver that lost a slice gets its
    /// channels back within `key_interval` frames without asking.
    pub gradual_refresh: bool,
    /// Adaptive mode: code predicted units with contexts that do not read the reference (its
    /// values or the previous unit's residuals), so that after a loss the decoder keeps parsing
    /// every slice and its error only drifts until the slice's refresh, instead of holding the
    /// slice concealed. On 240 recorded NanoDet stage2 frames at quality 1.4 it costs 13% more
    /// bits, and with 5% of the slices lost keeps a feature SNR of 7.6 dB instead of 5.4 (10.4
    /// without loss; `examples/recorded.rs --lose-slices 0.05`).
    pub resilient: bool,
    /// Adaptive mode: per named tensor, a step multiplier per channel (task-aware allocation:
    /// coarser steps where the back network's detections react less to noise, from a
    /// calibration). Units then carry each channel's multiplier, quantized to 4.4% (one byte per
    /// channel in every unit's head), so the decoder needs nothing. Empty: one step per tensor.
    pub channel_weights: Vec<ChannelWeights>,
}

/// The step multipliers of one tensor's channels ([`CodecConfig::channel_weights`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelWeights {
    /// The tensor's name, as in the feature frames.
    pub tensor: String,
    /// One finite, positive multiplier per channel (1 = the tensor's step).
    pub weights: Vec<f32>,
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
            key_step_ratio: DEFAULT_KEY_STEP_RATIO,
            rounding: DEFAULT_ROUNDING,
            lambda: DEFAULT_LAMBDA,
            fractional_motion: DEFAULT_FRACTIONAL_MOTION,
            slice_channels: DEFAULT_SLICE_CHANNELS,
            gradual_refresh: DEFAULT_GRADUAL_REFRESH,
            resilient: false,
            channel_weights: Vec::new(),
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
        let fractional_max = crate::subpel::MAX_FRACTIONAL_SEARCH_RANGE;
        if self.structure == Structure::Adaptive
            && self.fractional_motion
            && self.search_range > fractional_max
        {
            return Err(CodecError::Config(format!(
                "search-range = {} with fractional-motion: valid 0..={fractional_max} \
                 (quarter-feature vectors); set fractional-motion=false for a larger range",
                self.search_range
            )));
        }
        check_range("quality", self.quality, QUALITY_RANGE)?;
        check_range("key-step-ratio", self.key_step_ratio, KEY_STEP_RATIO_RANGE)?;
        check_range("rounding", self.rounding, 0.0..=0.5)?;
        check_range("lambda", self.lambda, 0.0..=1000.0)?;
        for (i, w) in self.channel_weights.iter().enumerate() {
            if self.channel_weights[..i]
                .iter()
                .any(|o| o.tensor == w.tensor)
            {
                return Err(CodecError::Config(format!(
                    "channel weights for tensor '{}' given twice",
                    w.tensor
                )));
            }
            if let Some(bad) = w.weights.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(CodecError::Config(format!(
                    "channel weight {bad} of tensor '{}': weights must be finite and positive",
                    w.tensor
                )));
            }
        }
        if self.key_interval == 0 {
            return Err(CodecError::Config(
                "key-interval = 0; it must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A float setting outside its range is a config error naming the property and the range.
fn check_range(
    name: &str,
    value: f32,
    range: std::ops::RangeInclusive<f32>,
) -> Result<(), CodecError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(CodecError::Config(format!(
            "{name} = {value} outside {}..={}",
            range.start(),
            range.end()
        )))
    }
}
