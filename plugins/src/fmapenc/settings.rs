//! The encoder's properties as GLib enums (so `gst-inspect-1.0 fmapenc` lists the choices) and
//! their translation into a codec-core [`CodecConfig`].

use std::collections::BTreeMap;

use codec_core::codec::{ChannelWeights, CodecConfig, Structure};
use codec_core::entropy::EntropyMode;
use codec_core::motion::{MvSharing as CoreMvSharing, SearchMethod};
use codec_core::quant::QuantizerMode;
use gst::glib;

/// Frame structure: which frames are predicted from which.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFmapEncMode")]
pub enum Mode {
    #[enum_value(name = "Intra: every frame coded on its own", nick = "intra")]
    Intra = 0,
    #[enum_value(
        name = "Uni: anchor t-1 coded, frame t predicted from it with motion vectors only (thesis, open loop)",
        nick = "uni"
    )]
    Uni = 1,
    #[enum_value(
        name = "Bi: anchor t coded, t-1 and t+1 predicted from it with motion vectors only (thesis, open loop; one frame of delay)",
        nick = "bi"
    )]
    Bi = 2,
    #[enum_value(
        name = "Closed-loop: each frame predicted from the previous decoded frame plus an N-bit residual",
        nick = "closed-loop"
    )]
    ClosedLoop = 3,
    #[enum_value(
        name = "Adaptive: closed loop with a uniform step, rate-distortion decisions and context-adaptive range coding",
        nick = "adaptive"
    )]
    Adaptive = 4,
}

/// Block-matching search method.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFmapEncSearch")]
pub enum Search {
    #[enum_value(name = "Three-step search", nick = "tss")]
    ThreeStep = 0,
    #[enum_value(name = "Full (exhaustive) search", nick = "full")]
    Full = 1,
}

/// Whether motion vectors are estimated per channel or once for all channels of a tensor.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFmapEncMvSharing")]
pub enum MvSharing {
    #[enum_value(name = "One motion field per channel", nick = "channel")]
    PerChannel = 0,
    #[enum_value(name = "One motion field shared by all channels", nick = "shared")]
    Shared = 1,
}

/// Where the quantizer's ranges come from.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFmapEncQuantizer")]
pub enum Quantizer {
    #[enum_value(name = "Per-tensor min/max of each frame", nick = "per-tensor")]
    PerTensor = 0,
    #[enum_value(name = "Per-channel min/max of each frame", nick = "per-channel")]
    PerChannel = 1,
    #[enum_value(
        name = "Calibrated per-tensor ranges from the JSON file in the calibration property",
        nick = "calibrated"
    )]
    Calibrated = 2,
    #[enum_value(
        name = "The model's own 8-bit scale and zero point (needs u8 feature maps)",
        nick = "model-int8"
    )]
    ModelInt8 = 3,
}

/// Entropy coder for quantizer codes, residuals and motion vectors.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFmapEncEntropy")]
pub enum Entropy {
    #[enum_value(name = "None: bit-packed fixed-width codes", nick = "none")]
    None = 0,
    #[enum_value(name = "Canonical Huffman", nick = "huffman")]
    Huffman = 1,
    #[enum_value(name = "Zero-value compression", nick = "zvc")]
    Zvc = 2,
    #[enum_value(name = "Zero-value compression + Huffman", nick = "zvc-huffman")]
    ZvcHuffman = 3,
    #[enum_value(name = "Run-length coding", nick = "rle")]
    Rle = 4,
}

impl Mode {
    pub fn from_core(s: Structure) -> Self {
        match s {
            Structure::Intra => Mode::Intra,
            Structure::Uni => Mode::Uni,
            Structure::Bi => Mode::Bi,
            Structure::ClosedLoop => Mode::ClosedLoop,
            Structure::Adaptive => Mode::Adaptive,
        }
    }

    pub fn to_core(self) -> Structure {
        match self {
            Mode::Intra => Structure::Intra,
            Mode::Uni => Structure::Uni,
            Mode::Bi => Structure::Bi,
            Mode::ClosedLoop => Structure::ClosedLoop,
            Mode::Adaptive => Structure::Adaptive,
        }
    }
}

impl Search {
    pub fn from_core(s: SearchMethod) -> Self {
        match s {
            SearchMethod::ThreeStep => Search::ThreeStep,
            SearchMethod::Full => Search::Full,
        }
    }

    pub fn to_core(self) -> SearchMethod {
        match self {
            Search::ThreeStep => SearchMethod::ThreeStep,
            Search::Full => SearchMethod::Full,
        }
    }
}

impl MvSharing {
    pub fn from_core(s: CoreMvSharing) -> Self {
        match s {
            CoreMvSharing::PerChannel => MvSharing::PerChannel,
            CoreMvSharing::Shared => MvSharing::Shared,
        }
    }

    pub fn to_core(self) -> CoreMvSharing {
        match self {
            MvSharing::PerChannel => CoreMvSharing::PerChannel,
            MvSharing::Shared => CoreMvSharing::Shared,
        }
    }
}

impl Quantizer {
    pub fn from_core(q: &QuantizerMode) -> Self {
        match q {
            QuantizerMode::PerTensorMinMax => Quantizer::PerTensor,
            QuantizerMode::PerChannelMinMax => Quantizer::PerChannel,
            QuantizerMode::Calibrated(_) => Quantizer::Calibrated,
            QuantizerMode::Model8bit => Quantizer::ModelInt8,
        }
    }

    /// The codec-core mode of this choice (`Calibrated` without its ranges, for names).
    pub fn to_core_name(self) -> &'static str {
        match self {
            Quantizer::PerTensor => QuantizerMode::PerTensorMinMax.name(),
            Quantizer::PerChannel => QuantizerMode::PerChannelMinMax.name(),
            Quantizer::Calibrated => QuantizerMode::Calibrated(BTreeMap::new()).name(),
            Quantizer::ModelInt8 => QuantizerMode::Model8bit.name(),
        }
    }
}

impl Entropy {
    pub fn from_core(e: EntropyMode) -> Self {
        match e {
            EntropyMode::None => Entropy::None,
            EntropyMode::Huffman => Entropy::Huffman,
            EntropyMode::Zvc => Entropy::Zvc,
            EntropyMode::ZvcHuffman => Entropy::ZvcHuffman,
            EntropyMode::Rle => Entropy::Rle,
        }
    }

    pub fn to_core(self) -> EntropyMode {
        match self {
            Entropy::None => EntropyMode::None,
            Entropy::Huffman => EntropyMode::Huffman,
            Entropy::Zvc => EntropyMode::Zvc,
            Entropy::ZvcHuffman => EntropyMode::ZvcHuffman,
            Entropy::Rle => EntropyMode::Rle,
        }
    }
}

/// Default of `config-interval`: a receiver that joins late gets the caps within a second.
pub const DEFAULT_CONFIG_INTERVAL: u32 = 1;

/// What the properties hold. Defaults come from [`CodecConfig::default`] so the element and the
/// library agree.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub key_interval: u32,
    pub dead_zone: u32,
    pub bits: u32,
    pub block_size: u32,
    pub search: Search,
    pub search_range: u32,
    pub mv_sharing: MvSharing,
    pub quantizer: Quantizer,
    pub entropy: Entropy,
    /// Path of a JSON file `{"<tensor>": [min, max], ...}` for `quantizer=calibrated`.
    pub calibration: Option<String>,
    pub quality: f32,
    pub rounding: f32,
    pub key_step_ratio: f32,
    pub lambda: f32,
    /// Adaptive: channels per slice (0 = one slice per tensor).
    pub slice_channels: u32,
    /// Adaptive: refresh slices instead of periodic key units.
    pub gradual_refresh: bool,
    /// Adaptive: motion vectors in quarters of a feature.
    pub fractional_motion: bool,
    /// Seconds between two in-band announcements of the caps (0 = with key units only).
    pub config_interval: u32,
    /// Adaptive: contexts that do not read the reference.
    pub resilient: bool,
    /// Adaptive: target rate in kbit/s (0 = constant quality).
    pub bitrate: u32,
    /// Adaptive: path of a channel-sensitivity file made by `fmap-calibrate`.
    pub channel_weights: Option<String>,
    /// Adaptive: how strongly the sensitivities set the channels' steps (step ∝ s^−exponent).
    pub weight_exponent: f32,
    /// Adaptive: path of a calibration file with a channel transform (`fmap-calibrate --klt`).
    pub channel_transform: Option<String>,
    /// Principal components kept by the channel transform (0 = all).
    pub transform_components: u32,
}

/// Default of `weight-exponent`: the optimum of Σ s·Δ² at a given rate is Δ ∝ s^−½.
pub const DEFAULT_WEIGHT_EXPONENT: f32 = 0.5;

impl Default for Settings {
    fn default() -> Self {
        let c = CodecConfig::default();
        Settings {
            mode: Mode::from_core(c.structure),
            key_interval: c.key_interval,
            dead_zone: u32::from(c.dead_zone),
            bits: u32::from(c.bits),
            block_size: c.block_size as u32,
            search: Search::from_core(c.search),
            search_range: u32::from(c.search_range),
            mv_sharing: MvSharing::from_core(c.mv_sharing),
            quantizer: Quantizer::from_core(&c.quantizer),
            entropy: Entropy::from_core(c.entropy),
            calibration: None,
            quality: c.quality,
            rounding: c.rounding,
            key_step_ratio: c.key_step_ratio,
            lambda: c.lambda,
            slice_channels: c.slice_channels as u32,
            gradual_refresh: c.gradual_refresh,
            fractional_motion: c.fractional_motion,
            config_interval: DEFAULT_CONFIG_INTERVAL,
            resilient: c.resilient,
            bitrate: 0,
            channel_weights: None,
            weight_exponent: DEFAULT_WEIGHT_EXPONENT,
            channel_transform: None,
            transform_components: 0,
        }
    }
}

impl Settings {
    /// The codec configuration these settings describe. `calibration` holds the ranges loaded
    /// from the `calibration` file (needed, and only used, with `quantizer=calibrated`);
    /// `channel_weights` the step multipliers derived from the `channel-weights` file.
    /// Errors are messages a user can act on; they name the valid values.
    pub fn to_codec_config(
        &self,
        calibration: Option<BTreeMap<String, (f32, f32)>>,
        channel_weights: Vec<ChannelWeights>,
    ) -> Result<CodecConfig, String> {
        let quantizer = match self.quantizer {
            Quantizer::PerTensor => QuantizerMode::PerTensorMinMax,
            Quantizer::PerChannel => QuantizerMode::PerChannelMinMax,
            Quantizer::ModelInt8 => QuantizerMode::Model8bit,
            Quantizer::Calibrated => QuantizerMode::Calibrated(calibration.ok_or_else(|| {
                "quantizer=calibrated needs the calibration property: a JSON file \
                 {\"<tensor>\": [min, max], ...}; or choose per-tensor, per-channel or model-int8"
                    .to_string()
            })?),
        };
        let cfg = CodecConfig {
            structure: self.mode.to_core(),
            key_interval: self.key_interval,
            dead_zone: u16::try_from(self.dead_zone)
                .map_err(|_| format!("dead-zone {} exceeds 65535", self.dead_zone))?,
            bits: u8::try_from(self.bits).unwrap_or(u8::MAX),
            block_size: self.block_size as usize,
            search: self.search.to_core(),
            search_range: u8::try_from(self.search_range).unwrap_or(u8::MAX),
            mv_sharing: self.mv_sharing.to_core(),
            quantizer,
            entropy: self.entropy.to_core(),
            quality: self.quality,
            rounding: self.rounding,
            key_step_ratio: self.key_step_ratio,
            lambda: self.lambda,
            slice_channels: self.slice_channels as usize,
            gradual_refresh: self.gradual_refresh,
            fractional_motion: self.fractional_motion,
            resilient: self.resilient,
            channel_weights,
        };
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_into_the_library_defaults() {
        let cfg = Settings::default().to_codec_config(None, Vec::new());
        // The library default may be `calibrated` only if it also carries ranges; it does not.
        let cfg = cfg.expect("default settings are a valid codec config");
        let d = CodecConfig::default();
        assert_eq!(cfg.structure, d.structure);
        assert_eq!(cfg.bits, d.bits);
        assert_eq!(cfg.key_interval, d.key_interval);
        assert_eq!(cfg.entropy, d.entropy);
    }

    #[test]
    fn calibrated_without_ranges_names_the_alternatives() {
        let s = Settings {
            quantizer: Quantizer::Calibrated,
            ..Settings::default()
        };
        let err = s.to_codec_config(None, Vec::new()).unwrap_err();
        assert!(
            err.contains("calibration") && err.contains("per-channel"),
            "{err}"
        );
        let mut ranges = BTreeMap::new();
        ranges.insert("t".to_string(), (-1.0, 4.0));
        assert!(s.to_codec_config(Some(ranges), Vec::new()).is_ok());
    }

    /// codec-core owns the names and descriptions; the GLib enums gst-inspect shows must say
    /// the same.
    #[test]
    fn glib_enums_say_what_codec_core_says() {
        use glib::prelude::*;
        fn values<T: StaticType>() -> Vec<(String, String)> {
            glib::EnumClass::with_type(T::static_type())
                .unwrap()
                .values()
                .iter()
                .map(|v| (v.nick().to_string(), v.name().to_string()))
                .collect()
        }
        let core = |pairs: Vec<(&str, &str)>| -> Vec<(String, String)> {
            pairs
                .into_iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect()
        };
        assert_eq!(
            values::<Mode>(),
            core(Structure::ALL.map(|s| (s.name(), s.description())).to_vec())
        );
        assert_eq!(
            values::<Search>(),
            core(
                SearchMethod::ALL
                    .map(|s| (s.name(), s.description()))
                    .to_vec()
            )
        );
        assert_eq!(
            values::<MvSharing>(),
            core(
                CoreMvSharing::ALL
                    .map(|s| (s.name(), s.description()))
                    .to_vec()
            )
        );
        assert_eq!(
            values::<Entropy>(),
            core(
                EntropyMode::ALL
                    .map(|s| (s.name(), s.description()))
                    .to_vec()
            )
        );
        let quantizers = [
            QuantizerMode::PerTensorMinMax,
            QuantizerMode::PerChannelMinMax,
            QuantizerMode::Calibrated(BTreeMap::new()),
            QuantizerMode::Model8bit,
        ];
        assert_eq!(
            values::<Quantizer>(),
            core(
                quantizers
                    .iter()
                    .map(|q| (q.name(), q.description()))
                    .collect()
            )
        );
        for q in &quantizers {
            assert_eq!(Quantizer::from_core(q).to_core_name(), q.name());
        }
    }

    #[test]
    fn out_of_range_numbers_are_errors() {
        // bits belongs to the thesis's modes and closed loop (adaptive has a step).
        let s = Settings {
            bits: 300,
            mode: Mode::ClosedLoop,
            ..Settings::default()
        };
        assert!(
            s.to_codec_config(None, Vec::new())
                .unwrap_err()
                .contains("bits")
        );
        let s = Settings {
            search_range: 1000,
            ..Settings::default()
        };
        assert!(
            s.to_codec_config(None, Vec::new())
                .unwrap_err()
                .contains("search-range")
        );
    }
}
