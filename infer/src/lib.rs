//! fmap-infer: split ONNX detectors (no GStreamer). In the order a frame meets them:
//!
//! - [`profile`]: what a model needs (input layout, resize, normalization, decoder, labels,
//!   named split points), read from `<model>.profile.json`.
//! - [`preprocess`]: a video frame to the network input, as the profile says.
//! - [`onnx`]: a small, bounded reader/writer of the ONNX protobuf wire format.
//! - [`split`]: cutting a model into a front part (inputs → cut tensors) and a back part
//!   (cut tensors → outputs), optionally with the exact cut shapes found by ONNX Runtime.
//! - [`runtime`]: loading ONNX Runtime, plain named tensors and their conversion to codec-core
//!   tensors, sessions.
//! - [`decode`] and [`nms`]: network outputs to boxes in video pixels.
//! - [`detection`]: the detections JSON line, written and read.
//! - [`calibration`]: the per-channel sensitivity of the back network to noise in the cut
//!   tensors (`<model>.<split>.calib.json`, made by `fmap-calibrate`) and the step multipliers
//!   derived from it.
//! - [`error`]: the one error type.

#![forbid(unsafe_code)]

pub mod calibration;
pub mod decode;
pub mod detection;
pub mod error;
pub mod nms;
pub mod onnx;
pub mod preprocess;
pub mod profile;
pub mod runtime;
pub mod split;

pub use error::{InferError, Result};
pub use runtime::{
    ElemType, NamedTensors, Session, SessionOptions, TensorInfo, TensorValue, TensorValueData,
    init_runtime,
};
pub use split::{SplitModels, quant_params_for, split_model, split_with_shapes};
