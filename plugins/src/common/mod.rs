//! What the elements share, so no element imports another: the caps of the streams between
//! them ([`caps`]), pad templates and stats messages ([`element`]), loading a model and ONNX Runtime ([`model`]), the properties of every
//! ONNX element ([`onnx_settings`]), and the channel transform of the codec elements
//! ([`transform`]).

pub mod caps;
pub mod element;
pub mod model;
pub mod onnx_settings;
pub mod transform;
