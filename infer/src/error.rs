//! The one error type of fmap-infer, shared by every module of the crate.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while loading profiles and models, splitting graphs, running
/// ONNX Runtime or decoding outputs. Messages are meant to be shown to a user as they are: they
/// say what was wrong and, where possible, what the valid values are.
#[derive(Debug, Error)]
pub enum InferError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model profile (`<model>.profile.json`) is missing, malformed or inconsistent.
    #[error("model profile: {0}")]
    Profile(String),
    /// A calibration file (`<model>.<split>.calib.json`) is malformed or inconsistent.
    #[error("calibration: {0}")]
    Calibration(String),
    /// The ONNX model bytes are not a valid or supported ModelProto.
    #[error("ONNX model: {0}")]
    Model(String),
    /// A tensor name that the graph does not contain. `suggestions` holds the closest names
    /// (and, when nothing is close, the first names of the graph); `total` is how many tensor
    /// names the graph has.
    #[error(
        "unknown tensor '{name}'; the graph has {total} tensor names{}",
        if suggestions.is_empty() { String::new() } else { format!(", closest first: {}", suggestions.join(", ")) }
    )]
    UnknownTensor {
        name: String,
        suggestions: Vec<String>,
        total: usize,
    },
    /// The requested split tensors do not separate the graph inputs from its outputs.
    #[error("not a cut: {0}")]
    NotACut(String),
    /// ONNX Runtime failed (session creation, run, tensor extraction).
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("ONNX Runtime library not found: {0}")]
    RuntimeNotFound(String),
    /// A tensor has a shape or element type other than the one expected.
    #[error("tensor shape/type: {0}")]
    Shape(String),
    /// A video frame description is inconsistent (sizes, stride, too little data).
    #[error("video frame: {0}")]
    Frame(String),
    /// Model outputs could not be decoded into detections.
    #[error("decoding model outputs: {0}")]
    Decode(String),
}

/// Result with [`InferError`].
pub type Result<T, E = InferError> = std::result::Result<T, E>;
