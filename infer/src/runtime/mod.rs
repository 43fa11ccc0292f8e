//! ONNX Runtime through `ort` with `load-dynamic`, in three parts:
//!
//! - `library`: finding and loading the shared library, once per process;
//! - `tensor`: plain named tensors ([`TensorValue`]) and their conversion to and from
//!   codec-core's (C, H, W) [`codec_core::Tensor`];
//! - `session`: a small session wrapper running a model on those tensors.
//!
//! Splitting a model with the exact shapes found by a session is
//! [`crate::split::split_with_shapes`].

mod library;
mod session;
mod tensor;

pub use library::{MIN_ORT_VERSION, init_runtime, locate_library, runtime_path};
pub use session::{Session, SessionOptions};
pub use tensor::{
    ElemType, NamedTensors, TensorInfo, TensorValue, TensorValueData, chw_of, from_codec_tensor,
    to_codec_tensor,
};
