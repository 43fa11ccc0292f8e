//! The feature-map codec proper: frame structures (intra, the thesis's unidirectional and
//! "bi-directional" groups, closed-loop prediction), the coded-unit bitstream (see
//! `codec-core/BITSTREAM.md`) and the streaming [`Encoder`] / [`Decoder`].
//!
//! Modes are configuration values ([`Structure`], [`crate::entropy::EntropyMode`],
//! [`crate::quant::QuantizerMode`], [`crate::motion::MvSharing`], ...), never separate code paths
//! per combination: every structure works with every entropy mode and quantizer.

mod bitstream;
mod config;
mod decoder;
mod encoder;
mod inspect;
mod reconstruct;
mod structure;

pub use bitstream::{
    HEADER_LEN, MAX_BLOCK_SIZE, MAX_UNIT_BYTES, MIN_UNIT_LEN, UNIT_MAGIC, UNIT_VERSION,
};
pub use config::CodecConfig;
pub use decoder::{Decoder, DecoderLimits};
pub use encoder::Encoder;
pub use inspect::{UnitInfo, inspect_unit};
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
    /// What the [`Decoder`] outputs for this frame, bit for bit.
    pub reconstruction: FeatureFrame,
}
