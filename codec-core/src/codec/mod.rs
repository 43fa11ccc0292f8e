//! The feature-map codec proper: frame structures (intra, the thesis's unidirectional and
//! "bi-directional" groups, closed-loop prediction), the coded-unit bitstream (see
//! `codec-core/BITSTREAM.md`) and the streaming [`Encoder`] / [`Decoder`].
//!
//! Modes are configuration values ([`Structure`], [`crate::entropy::EntropyMode`],
//! [`crate::quant::QuantizerMode`], [`crate::motion::MvSharing`], ...), never separate code paths
//! per combination: every structure works with every entropy mode and quantizer.
//!
//! ```
//! use codec_core::codec::{CodecConfig, Decoder, Encoder, Structure};
//! use codec_core::{FeatureFrame, Shape, Tensor};
//!
//! let cfg = CodecConfig { structure: Structure::Bi, ..CodecConfig::default() };
//! let mut encoder = Encoder::new(cfg)?;
//! let mut decoder = Decoder::new();
//! let mut shown = Vec::new();
//! for i in 0..4u64 {
//!     let values = (0..2 * 16 * 16).map(|k| ((k + i as usize) % 7) as f32).collect();
//!     let frame = FeatureFrame::new(
//!         i,
//!         Some(i * 33_333_333),
//!         vec![Tensor::from_f32("feat", Shape::new(2, 16, 16), values)?],
//!     );
//!     for unit in encoder.push(&frame)? {
//!         // `unit.data` is one self-delimiting buffer (one RTP frame).
//!         shown.extend(decoder.decode(&unit.data)?);
//!     }
//! }
//! for unit in encoder.finish()? {
//!     shown.extend(decoder.decode(&unit.data)?);
//! }
//! shown.extend(decoder.finish());
//! assert_eq!(shown.iter().map(|f| f.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adaptive;
mod bitstream;
mod config;
mod decoder;
mod encoder;
mod inspect;
mod rate;
mod reconstruct;
mod slices;
mod structure;

pub use bitstream::{
    ADAPTIVE_UNIT_VERSION, HEADER_LEN, MAX_BLOCK_SIZE, MAX_UNIT_BYTES, MIN_UNIT_LEN, UNIT_MAGIC,
    UNIT_VERSION,
};
pub use config::{
    ChannelWeights, CodecConfig, DEFAULT_KEY_STEP_RATIO, DEFAULT_LAMBDA, DEFAULT_QUALITY,
    DEFAULT_ROUNDING, DEFAULT_SLICE_CHANNELS, KEY_STEP_RATIO_RANGE, QUALITY_RANGE,
};
pub use decoder::{Decoder, DecoderLimits};
pub use encoder::Encoder;
pub use inspect::{UnitInfo, inspect_unit};
pub use rate::RateController;
pub use slices::{SLICE_OVERHEAD, assemble_unit, unit_pieces};
pub use structure::{Structure, UnitKind};

use crate::entropy::EntropyError;
use crate::frame::{FeatureFrame, FrameError};
use thiserror::Error;

/// Errors of the encoder and the decoder. The decoder reports every malformed unit with one of
/// these; it never panics on input bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("coded unit truncated")]
    Truncated,
    #[error("not a coded fmap unit (bad magic)")]
    BadMagic,
    #[error("unsupported coded unit version {0} (this build reads version {UNIT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("coded unit CRC mismatch")]
    Crc,
    #[error("invalid coded unit: {0}")]
    Invalid(String),
    #[error("frame {frame} references frame {reference}, which the decoder does not hold")]
    MissingReference { frame: u64, reference: u64 },
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("invalid codec configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Entropy(#[from] EntropyError),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// One coded unit as produced by the [`Encoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct CodedUnit {
    /// Display index of the coded frame.
    pub frame_index: u64,
    /// Presentation timestamp of the coded frame, when known.
    pub pts_ns: Option<u64>,
    pub kind: UnitKind,
    /// One self-delimiting coded unit (header .. CRC).
    pub data: Vec<u8>,
    /// Bytes of `data` coded without prediction: all of a sync unit (intra, anchor, key), the
    /// refresh slices of an adaptive predicted unit. A rate controller spreads them over the
    /// refresh cycle instead of answering each burst.
    pub intra_bytes: usize,
    /// What the [`Decoder`] outputs for this frame, bit for bit: `Some` only from an encoder
    /// made with [`Encoder::with_reconstructions`] (tests, fuzzing, tools), since building it
    /// costs a copy of the frame that a sender does not need.
    pub reconstruction: Option<FeatureFrame>,
}
