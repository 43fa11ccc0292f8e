//! A small reader and writer of the ONNX protobuf wire format, just enough to split a model.
//!
//! Only the fields needed to reason about the data flow are decoded (node inputs/outputs, tensor
//! names and element types, initializer names, graph inputs/outputs, opsets). Everything else —
//! node attributes, initializer data, metadata, functions — is kept as the original bytes and
//! copied verbatim when sub-models are written, so a split model carries exactly the weights and
//! attributes of the original.
//!
//! Field numbers follow `onnx/onnx.proto` (checked against onnx 1.23); they are stable parts of
//! the ONNX IR specification.
//!
//! The bytes are untrusted: every length is checked against the bytes present, nesting depth of
//! subgraphs is bounded, and no allocation is larger than the input it describes.
//!
//! # Why hand-written and not `prost` with the official `onnx.proto`
//!
//! The hand-written wire code was weighed against a generated one and stays, for three reasons:
//!
//! - **Verbatim copies, including fields we do not know.** A split part must carry the
//!   original's attributes, initializers, metadata and functions exactly. Here they are copied
//!   as their original bytes, so whatever a newer exporter writes (a field added to
//!   `onnx.proto` after the version we would compile) survives the split. prost drops unknown
//!   fields when it decodes and cannot write them back (tokio-rs/prost#2; the opt-in support of
//!   PRs #574/#1340 is unmerged), so a prost round trip would silently strip them, and would
//!   re-encode every kept message instead of copying it.
//! - **Nothing to win in time.** Measured with `cargo run --release -p fmap-infer --example
//!   split_bench` on 2 cores: NanoDet (15.2 MB) parses in 17-35 ms and is cut and written in
//!   32-50 ms (stage2 and backbone cuts), SSD (6.3 MB) in 10 + 13 ms; the whole
//!   `split_with_shapes` (which also creates a session and runs the front once) takes
//!   115-260 ms, and creating the elements' sessions afterwards costs more. Decoding with prost
//!   would copy every initializer's `raw_data` into an owned buffer (about the model's size)
//!   before writing it out again; at best it would match this code.
//! - **Small and bounded.** About 1100 lines of reader, writer, decoder and graph queries, with no build
//!   step (prost needs `prost-build` and `protox` at build time plus a vendored `onnx.proto`),
//!   every length checked against the bytes present and subgraph nesting bounded
//!   ([`MAX_SUBGRAPH_DEPTH`]), which the tests of garbage and truncated models rely on.
//!
//! What a maintained crate would give (generated types for every field) is not needed: the
//! splitter reads names, types, shapes and edges only.
//!
//! # Parts
//!
//! Four parts: `wire` reads protobuf fields, [`encode`] writes them (and builds small models
//! for tests), `model` decodes a model into [`Model`]/[`Graph`], and `graph` answers
//! questions about a graph and writes sub-graphs from its original bytes.

mod graph;
mod model;
#[cfg(test)]
mod tests;
mod wire;

pub mod encode;

pub use graph::SubgraphParts;
pub use model::{
    Attribute, Dim, Graph, Initializer, Model, Node, OpsetImport, SparseInitializer, ValueInfo,
};

/// Deepest nesting of subgraphs (If/Loop/Scan bodies) that is scanned for outer-scope references.
pub const MAX_SUBGRAPH_DEPTH: usize = 32;

/// ONNX `TensorProto.DataType` codes used in this crate.
pub mod elem {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const UINT16: i32 = 4;
    pub const INT16: i32 = 5;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const STRING: i32 = 8;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const UINT32: i32 = 12;
    pub const UINT64: i32 = 13;

    /// Short name of an element type code ("f32", "u8", ...).
    pub fn name(code: i32) -> &'static str {
        match code {
            FLOAT => "f32",
            UINT8 => "u8",
            INT8 => "i8",
            UINT16 => "u16",
            INT16 => "i16",
            INT32 => "i32",
            INT64 => "i64",
            STRING => "string",
            BOOL => "bool",
            FLOAT16 => "f16",
            DOUBLE => "f64",
            UINT32 => "u32",
            UINT64 => "u64",
            _ => "other",
        }
    }
}

// Field numbers (onnx.proto).
mod field {
    // ModelProto
    pub const MODEL_IR_VERSION: u32 = 1;
    pub const MODEL_PRODUCER_NAME: u32 = 2;
    pub const MODEL_GRAPH: u32 = 7;
    pub const MODEL_OPSET_IMPORT: u32 = 8;
    // OperatorSetIdProto
    pub const OPSET_DOMAIN: u32 = 1;
    pub const OPSET_VERSION: u32 = 2;
    // GraphProto
    pub const GRAPH_NODE: u32 = 1;
    pub const GRAPH_NAME: u32 = 2;
    pub const GRAPH_INITIALIZER: u32 = 5;
    pub const GRAPH_INPUT: u32 = 11;
    pub const GRAPH_OUTPUT: u32 = 12;
    pub const GRAPH_VALUE_INFO: u32 = 13;
    pub const GRAPH_QUANT_ANNOTATION: u32 = 14;
    pub const GRAPH_SPARSE_INITIALIZER: u32 = 15;
    // NodeProto
    pub const NODE_INPUT: u32 = 1;
    pub const NODE_OUTPUT: u32 = 2;
    pub const NODE_NAME: u32 = 3;
    pub const NODE_OP_TYPE: u32 = 4;
    pub const NODE_ATTRIBUTE: u32 = 5;
    pub const NODE_DOMAIN: u32 = 7;
    // AttributeProto
    pub const ATTR_NAME: u32 = 1;
    pub const ATTR_I: u32 = 3;
    pub const ATTR_T: u32 = 5;
    pub const ATTR_G: u32 = 6;
    pub const ATTR_GRAPHS: u32 = 11;
    // ValueInfoProto
    pub const VI_NAME: u32 = 1;
    pub const VI_TYPE: u32 = 2;
    // TypeProto / TypeProto.Tensor / TensorShapeProto / Dimension
    pub const TYPE_TENSOR: u32 = 1;
    pub const TENSOR_TYPE_ELEM: u32 = 1;
    pub const TENSOR_TYPE_SHAPE: u32 = 2;
    pub const SHAPE_DIM: u32 = 1;
    pub const DIM_VALUE: u32 = 1;
    pub const DIM_PARAM: u32 = 2;
    // TensorProto
    pub const TENSOR_DIMS: u32 = 1;
    pub const TENSOR_DATA_TYPE: u32 = 2;
    pub const TENSOR_FLOAT_DATA: u32 = 4;
    pub const TENSOR_INT32_DATA: u32 = 5;
    pub const TENSOR_INT64_DATA: u32 = 7;
    pub const TENSOR_NAME: u32 = 8;
    pub const TENSOR_RAW_DATA: u32 = 9;
    pub const TENSOR_DATA_LOCATION: u32 = 14;
    // SparseTensorProto
    pub const SPARSE_VALUES: u32 = 1;
    // TensorAnnotation
    pub const ANNOTATION_TENSOR_NAME: u32 = 1;
}
