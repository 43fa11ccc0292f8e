//! `codec-core`: the fmap feature-map codec as a plain Rust library (no GStreamer).
//!
//! A *feature frame* ([`FeatureFrame`]) is the set of tensors that crosses the network split for
//! one video frame. This crate defines its raw serialization (what `splitinfer-front` emits and
//! `fmapdec` outputs) and the codec that compresses a stream of them.

#![forbid(unsafe_code)]

mod bytes;
pub mod codec;
pub mod entropy;
pub mod frame;
pub mod motion;
pub mod quant;
pub mod rtp;
pub mod subpel;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod tile;
pub mod transform;

pub use codec::{CodecConfig, CodecError, CodedUnit, Decoder, Encoder, Structure, UnitKind};
pub use frame::{FeatureFrame, FrameError, Shape, Tensor, TensorData};
