//! fmap-infer: split ONNX detectors (no GStreamer).
//!
//! - [`onnx`]: a small, bounded reader/writer of the ONNX protobuf wire format.
//! - [`split`]: cutting a model into a front part (inputs → cut tensors) and a back part
//!   (cut tensors → outputs).
//! - [`runtime`]: ONNX Runtime loading and sessions.

#![forbid(unsafe_code)]

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
