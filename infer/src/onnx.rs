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

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use crate::error::{InferError, Result};

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

// ---------------------------------------------------------------------------------------------
// Wire format

/// Protobuf wire types.
const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// The value of one field as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

/// One field of a message: its number, its value and its complete encoding (key + value).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub number: u32,
    pub value: Wire<'a>,
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    fn bytes(&self, what: &str) -> Result<&'a [u8]> {
        match self.value {
            Wire::Len(b) => Ok(b),
            _ => Err(bad(format!("{what}: expected a length-delimited field"))),
        }
    }

    fn string(&self, what: &str) -> Result<String> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| bad(format!("{what}: not valid UTF-8")))
    }

    fn varint(&self, what: &str) -> Result<u64> {
        match self.value {
            Wire::Varint(v) => Ok(v),
            _ => Err(bad(format!("{what}: expected a varint field"))),
        }
    }
}

fn bad(msg: impl Into<String>) -> InferError {
    InferError::Model(msg.into())
}

/// Iterates over the fields of one message. Every length is checked against the buffer.
pub(crate) struct FieldReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> FieldReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(bad(format!("truncated varint at offset {}", self.pos)));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(bad("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                bad(format!(
                    "field of {n} bytes at offset {} runs past the end of its message ({} bytes)",
                    self.pos,
                    self.buf.len()
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<Field<'a>>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let start = self.pos;
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| {
                bad(format!(
                    "invalid field number in key {key} at offset {start}"
                ))
            })?;
        let value = match (key & 7) as u8 {
            WIRE_VARINT => Wire::Varint(self.varint()?),
            WIRE_FIXED64 => {
                let b = self.take(8)?;
                Wire::Fixed64(u64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            WIRE_LEN => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| bad("length overflows usize"))?;
                Wire::Len(self.take(len)?)
            }
            WIRE_FIXED32 => {
                let b = self.take(4)?;
                Wire::Fixed32(u32::from_le_bytes(b.try_into().expect("4 bytes")))
            }
            w => {
                return Err(bad(format!(
                    "unsupported protobuf wire type {w} (field {number}) at offset {start}"
                )));
            }
        };
        Ok(Some(Field {
            number,
            value,
            raw: &self.buf[start..self.pos],
        }))
    }
}

/// Writes protobuf fields.
pub mod encode {
    /// Appends a base-128 varint.
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// Appends a varint field (`int64`, `int32`, `enum`; negative values as 10-byte two's complement).
    pub fn varint_field(out: &mut Vec<u8>, number: u32, v: i64) {
        varint(out, u64::from(number) << 3);
        varint(out, v as u64);
    }

    /// Appends a length-delimited field (bytes, string or embedded message).
    pub fn bytes_field(out: &mut Vec<u8>, number: u32, body: &[u8]) {
        varint(out, (u64::from(number) << 3) | 2);
        varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }

    /// A `ValueInfoProto` of a tensor: name, element type (if known) and shape (if known; a
    /// dimension < 0 is written as unknown).
    pub fn value_info(name: &str, elem_type: Option<i32>, dims: Option<&[i64]>) -> Vec<u8> {
        let mut out = Vec::new();
        bytes_field(&mut out, super::field::VI_NAME, name.as_bytes());
        if let Some(elem_type) = elem_type {
            let mut tensor = Vec::new();
            varint_field(
                &mut tensor,
                super::field::TENSOR_TYPE_ELEM,
                i64::from(elem_type),
            );
            if let Some(dims) = dims {
                let mut shape = Vec::new();
                for &d in dims {
                    let mut dim = Vec::new();
                    if d >= 0 {
                        varint_field(&mut dim, super::field::DIM_VALUE, d);
                    }
                    bytes_field(&mut shape, super::field::SHAPE_DIM, &dim);
                }
                bytes_field(&mut tensor, super::field::TENSOR_TYPE_SHAPE, &shape);
            }
            let mut ty = Vec::new();
            bytes_field(&mut ty, super::field::TYPE_TENSOR, &tensor);
            bytes_field(&mut out, super::field::VI_TYPE, &ty);
        }
        out
    }

    /// Value of a node attribute, for [`node`].
    pub enum AttrValue<'a> {
        Int(i64),
        Float(f32),
        Ints(&'a [i64]),
        /// An embedded `TensorProto` body (see [`tensor_f32`]).
        Tensor(&'a [u8]),
        /// An embedded `GraphProto` body.
        Graph(&'a [u8]),
    }

    /// A `NodeProto`.
    pub fn node(
        op_type: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: &[(&str, AttrValue<'_>)],
    ) -> Vec<u8> {
        use super::field as f;
        let mut out = Vec::new();
        for i in inputs {
            bytes_field(&mut out, f::NODE_INPUT, i.as_bytes());
        }
        for o in outputs {
            bytes_field(&mut out, f::NODE_OUTPUT, o.as_bytes());
        }
        bytes_field(&mut out, f::NODE_NAME, name.as_bytes());
        bytes_field(&mut out, f::NODE_OP_TYPE, op_type.as_bytes());
        for (attr_name, value) in attributes {
            let mut a = Vec::new();
            bytes_field(&mut a, f::ATTR_NAME, attr_name.as_bytes());
            // AttributeProto.type (field 20): FLOAT=1, INT=2, TENSOR=4, GRAPH=5, INTS=7.
            match value {
                AttrValue::Float(v) => {
                    varint(&mut a, (2 << 3) | 5);
                    a.extend_from_slice(&v.to_le_bytes());
                    varint_field(&mut a, 20, 1);
                }
                AttrValue::Int(v) => {
                    varint_field(&mut a, f::ATTR_I, *v);
                    varint_field(&mut a, 20, 2);
                }
                AttrValue::Tensor(t) => {
                    bytes_field(&mut a, f::ATTR_T, t);
                    varint_field(&mut a, 20, 4);
                }
                AttrValue::Graph(g) => {
                    bytes_field(&mut a, f::ATTR_G, g);
                    varint_field(&mut a, 20, 5);
                }
                AttrValue::Ints(v) => {
                    for x in *v {
                        varint_field(&mut a, 8, *x);
                    }
                    varint_field(&mut a, 20, 7);
                }
            }
            bytes_field(&mut out, f::NODE_ATTRIBUTE, &a);
        }
        out
    }

    /// A float `TensorProto` with `raw_data`.
    pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> Vec<u8> {
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensor_raw(name, super::elem::FLOAT, dims, &raw)
    }

    /// A `TensorProto` with the given element type and little-endian `raw_data`.
    pub fn tensor_raw(name: &str, data_type: i32, dims: &[i64], raw: &[u8]) -> Vec<u8> {
        use super::field as f;
        let mut out = Vec::new();
        for &d in dims {
            varint_field(&mut out, f::TENSOR_DIMS, d);
        }
        varint_field(&mut out, f::TENSOR_DATA_TYPE, i64::from(data_type));
        bytes_field(&mut out, f::TENSOR_NAME, name.as_bytes());
        bytes_field(&mut out, f::TENSOR_RAW_DATA, raw);
        out
    }

    /// A `GraphProto` from encoded nodes, initializers and value infos.
    pub fn graph(
        name: &str,
        nodes: &[Vec<u8>],
        initializers: &[Vec<u8>],
        inputs: &[Vec<u8>],
        outputs: &[Vec<u8>],
    ) -> Vec<u8> {
        use super::field as f;
        let mut out = Vec::new();
        for n in nodes {
            bytes_field(&mut out, f::GRAPH_NODE, n);
        }
        bytes_field(&mut out, f::GRAPH_NAME, name.as_bytes());
        for i in initializers {
            bytes_field(&mut out, f::GRAPH_INITIALIZER, i);
        }
        for i in inputs {
            bytes_field(&mut out, f::GRAPH_INPUT, i);
        }
        for o in outputs {
            bytes_field(&mut out, f::GRAPH_OUTPUT, o);
        }
        out
    }

    /// A `ModelProto` around a graph, importing the default domain at `opset`.
    pub fn model(ir_version: i64, opset: i64, graph: &[u8]) -> Vec<u8> {
        use super::field as f;
        let mut out = Vec::new();
        varint_field(&mut out, f::MODEL_IR_VERSION, ir_version);
        bytes_field(&mut out, f::MODEL_PRODUCER_NAME, b"fmap-infer");
        bytes_field(&mut out, f::MODEL_GRAPH, graph);
        let mut op = Vec::new();
        bytes_field(&mut op, f::OPSET_DOMAIN, b"");
        varint_field(&mut op, f::OPSET_VERSION, opset);
        bytes_field(&mut out, f::MODEL_OPSET_IMPORT, &op);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Decoded model

/// Byte range of a message body inside the model bytes.
type Span = Range<usize>;

fn span_of(base: &[u8], sub: &[u8]) -> Span {
    // `sub` is always a sub-slice of `base` (both come from the same FieldReader).
    let start = sub.as_ptr() as usize - base.as_ptr() as usize;
    start..start + sub.len()
}

/// One dimension of a tensor shape in a ValueInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Value(i64),
    Param(String),
    Unknown,
}

/// A graph input, output or value_info entry.
#[derive(Debug, Clone)]
pub struct ValueInfo {
    pub name: String,
    /// `TensorProto.DataType` code, if the entry is a tensor with a known element type.
    pub elem_type: Option<i32>,
    /// Dimensions, if the entry declares a shape.
    pub dims: Option<Vec<Dim>>,
    body: Span,
}

impl ValueInfo {
    /// Static dimensions if all are known.
    pub fn static_dims(&self) -> Option<Vec<usize>> {
        self.dims
            .as_ref()?
            .iter()
            .map(|d| match d {
                Dim::Value(v) if *v >= 0 => usize::try_from(*v).ok(),
                _ => None,
            })
            .collect()
    }
}

/// A node attribute: its name and the bytes of its AttributeProto.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    body: Span,
}

/// A graph node.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    /// Input tensor names; an empty name is an omitted optional input.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Tensors of enclosing scopes referenced by subgraphs in attributes (If/Loop/Scan bodies):
    /// they are data dependencies of this node just like `inputs`.
    pub outer_refs: Vec<String>,
    pub attributes: Vec<Attribute>,
    body: Span,
}

impl Node {
    /// All tensors this node reads: non-empty inputs and outer-scope references of subgraphs.
    pub fn dependencies(&self) -> impl Iterator<Item = &str> {
        self.inputs
            .iter()
            .chain(self.outer_refs.iter())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// An initializer (constant tensor) of the graph.
#[derive(Debug, Clone)]
pub struct Initializer {
    pub name: String,
    pub data_type: i32,
    pub dims: Vec<i64>,
    body: Span,
}

/// A sparse initializer: only its name (of the `values` tensor) is decoded.
#[derive(Debug, Clone)]
pub struct SparseInitializer {
    pub name: String,
    body: Span,
}

/// An operator set import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsetImport {
    pub domain: String,
    pub version: i64,
}

/// The main graph of a model. Holds a reference to the model bytes.
#[derive(Debug, Clone)]
pub struct Graph {
    bytes: Arc<[u8]>,
    pub name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Initializer>,
    pub sparse_initializers: Vec<SparseInitializer>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub value_infos: Vec<ValueInfo>,
    /// `quantization_annotation` entries: (tensor name, body).
    quant_annotations: Vec<(String, Span)>,
    /// Every other field (doc_string, metadata_props, unknown fields), complete with key.
    other_fields: Vec<Span>,
}

/// A parsed ModelProto.
#[derive(Debug, Clone)]
pub struct Model {
    bytes: Arc<[u8]>,
    pub ir_version: i64,
    pub producer_name: String,
    pub opsets: Vec<OpsetImport>,
    pub graph: Graph,
    /// Every top-level field in order, complete with key, to re-emit all but the graph.
    fields: Vec<(u32, Span)>,
}

impl Model {
    /// Parses a ModelProto. The bytes are copied once and shared by the graph.
    pub fn parse(bytes: &[u8]) -> Result<Model> {
        let bytes: Arc<[u8]> = Arc::from(bytes);
        let base: &[u8] = &bytes;
        let mut r = FieldReader::new(base);
        let mut ir_version = 0;
        let mut producer_name = String::new();
        let mut opsets = Vec::new();
        let mut graph_body = None;
        let mut fields = Vec::new();
        while let Some(f) = r.next_field()? {
            fields.push((f.number, span_of(base, f.raw)));
            match f.number {
                field::MODEL_IR_VERSION => ir_version = f.varint("ModelProto.ir_version")? as i64,
                field::MODEL_PRODUCER_NAME => {
                    producer_name = f.string("ModelProto.producer_name")?
                }
                field::MODEL_OPSET_IMPORT => {
                    let mut o = OpsetImport {
                        domain: String::new(),
                        version: 0,
                    };
                    let mut or = FieldReader::new(f.bytes("opset_import")?);
                    while let Some(g) = or.next_field()? {
                        match g.number {
                            field::OPSET_DOMAIN => o.domain = g.string("opset domain")?,
                            field::OPSET_VERSION => o.version = g.varint("opset version")? as i64,
                            _ => {}
                        }
                    }
                    opsets.push(o);
                }
                field::MODEL_GRAPH => {
                    if graph_body.is_some() {
                        return Err(bad("ModelProto has two graphs"));
                    }
                    graph_body = Some(f.bytes("ModelProto.graph")?);
                }
                _ => {}
            }
        }
        let graph_body = graph_body.ok_or_else(|| {
            bad("no graph in the file (is it an ONNX model? an empty or truncated file?)")
        })?;
        let graph = parse_graph(base, graph_body, &bytes)?;
        if graph.nodes.is_empty() {
            return Err(bad("the graph has no nodes"));
        }
        Ok(Model {
            bytes: bytes.clone(),
            ir_version,
            producer_name,
            opsets,
            graph,
            fields,
        })
    }

    /// Serializes the model with its graph replaced by `graph_body` (an encoded GraphProto);
    /// every other field (opsets, metadata, functions, ...) is copied unchanged.
    pub fn encode_with_graph(&self, graph_body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(graph_body.len() + 1024);
        for (number, span) in &self.fields {
            if *number == field::MODEL_GRAPH {
                encode::bytes_field(&mut out, field::MODEL_GRAPH, graph_body);
            } else {
                out.extend_from_slice(&self.bytes[span.clone()]);
            }
        }
        out
    }

    /// The complete model bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn parse_graph(base: &[u8], body: &[u8], bytes: &Arc<[u8]>) -> Result<Graph> {
    let mut g = Graph {
        bytes: bytes.clone(),
        name: String::new(),
        nodes: Vec::new(),
        initializers: Vec::new(),
        sparse_initializers: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        value_infos: Vec::new(),
        quant_annotations: Vec::new(),
        other_fields: Vec::new(),
    };
    let mut r = FieldReader::new(body);
    while let Some(f) = r.next_field()? {
        match f.number {
            field::GRAPH_NODE => g.nodes.push(parse_node(base, f.bytes("GraphProto.node")?)?),
            field::GRAPH_NAME => g.name = f.string("GraphProto.name")?,
            field::GRAPH_INITIALIZER => g
                .initializers
                .push(parse_initializer(base, f.bytes("GraphProto.initializer")?)?),
            field::GRAPH_SPARSE_INITIALIZER => {
                let b = f.bytes("GraphProto.sparse_initializer")?;
                let mut name = String::new();
                let mut sr = FieldReader::new(b);
                while let Some(sf) = sr.next_field()? {
                    if sf.number == field::SPARSE_VALUES {
                        name = parse_initializer(base, sf.bytes("sparse values")?)?.name;
                    }
                }
                g.sparse_initializers.push(SparseInitializer {
                    name,
                    body: span_of(base, b),
                });
            }
            field::GRAPH_INPUT => g
                .inputs
                .push(parse_value_info(base, f.bytes("GraphProto.input")?)?),
            field::GRAPH_OUTPUT => g
                .outputs
                .push(parse_value_info(base, f.bytes("GraphProto.output")?)?),
            field::GRAPH_VALUE_INFO => g
                .value_infos
                .push(parse_value_info(base, f.bytes("GraphProto.value_info")?)?),
            field::GRAPH_QUANT_ANNOTATION => {
                let b = f.bytes("GraphProto.quantization_annotation")?;
                let mut name = String::new();
                let mut ar = FieldReader::new(b);
                while let Some(af) = ar.next_field()? {
                    if af.number == field::ANNOTATION_TENSOR_NAME {
                        name = af.string("TensorAnnotation.tensor_name")?;
                    }
                }
                g.quant_annotations.push((name, span_of(base, b)));
            }
            _ => g.other_fields.push(span_of(base, f.raw)),
        }
    }
    Ok(g)
}

fn parse_node(base: &[u8], body: &[u8]) -> Result<Node> {
    let mut n = Node {
        name: String::new(),
        op_type: String::new(),
        domain: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        outer_refs: Vec::new(),
        attributes: Vec::new(),
        body: span_of(base, body),
    };
    let mut subgraphs: Vec<&[u8]> = Vec::new();
    let mut r = FieldReader::new(body);
    while let Some(f) = r.next_field()? {
        match f.number {
            field::NODE_INPUT => n.inputs.push(f.string("NodeProto.input")?),
            field::NODE_OUTPUT => n.outputs.push(f.string("NodeProto.output")?),
            field::NODE_NAME => n.name = f.string("NodeProto.name")?,
            field::NODE_OP_TYPE => n.op_type = f.string("NodeProto.op_type")?,
            field::NODE_DOMAIN => n.domain = f.string("NodeProto.domain")?,
            field::NODE_ATTRIBUTE => {
                let ab = f.bytes("NodeProto.attribute")?;
                let mut name = String::new();
                let mut ar = FieldReader::new(ab);
                while let Some(af) = ar.next_field()? {
                    match af.number {
                        field::ATTR_NAME => name = af.string("AttributeProto.name")?,
                        field::ATTR_G | field::ATTR_GRAPHS => {
                            subgraphs.push(af.bytes("AttributeProto.g")?)
                        }
                        _ => {}
                    }
                }
                n.attributes.push(Attribute {
                    name,
                    body: span_of(base, ab),
                });
            }
            _ => {}
        }
    }
    if !subgraphs.is_empty() {
        let mut refs = Vec::new();
        let mut seen = HashSet::new();
        for sg in subgraphs {
            for name in subgraph_outer_refs(sg, 1)? {
                if seen.insert(name.clone()) {
                    refs.push(name);
                }
            }
        }
        n.outer_refs = refs;
    }
    Ok(n)
}

/// Names a subgraph reads but does not define itself (its own inputs, initializers and node
/// outputs): they come from the enclosing scopes.
fn subgraph_outer_refs(body: &[u8], depth: usize) -> Result<Vec<String>> {
    if depth > MAX_SUBGRAPH_DEPTH {
        return Err(bad(format!(
            "subgraphs nested deeper than {MAX_SUBGRAPH_DEPTH} levels"
        )));
    }
    let mut defined: HashSet<String> = HashSet::new();
    let mut used: Vec<String> = Vec::new();
    let mut r = FieldReader::new(body);
    while let Some(f) = r.next_field()? {
        match f.number {
            field::GRAPH_NODE => {
                let mut nr = FieldReader::new(f.bytes("subgraph node")?);
                while let Some(nf) = nr.next_field()? {
                    match nf.number {
                        field::NODE_INPUT => used.push(nf.string("subgraph node input")?),
                        field::NODE_OUTPUT => {
                            defined.insert(nf.string("subgraph node output")?);
                        }
                        field::NODE_ATTRIBUTE => {
                            let mut ar = FieldReader::new(nf.bytes("subgraph attribute")?);
                            while let Some(af) = ar.next_field()? {
                                if matches!(af.number, field::ATTR_G | field::ATTR_GRAPHS) {
                                    used.extend(subgraph_outer_refs(
                                        af.bytes("nested subgraph")?,
                                        depth + 1,
                                    )?);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            field::GRAPH_INITIALIZER | field::GRAPH_INPUT => {
                let mut ir = FieldReader::new(f.bytes("subgraph input")?);
                let name_field = if f.number == field::GRAPH_INPUT {
                    field::VI_NAME
                } else {
                    field::TENSOR_NAME
                };
                while let Some(inf) = ir.next_field()? {
                    if inf.number == name_field {
                        defined.insert(inf.string("subgraph name")?);
                    }
                }
            }
            _ => {}
        }
    }
    let mut seen = HashSet::new();
    Ok(used
        .into_iter()
        .filter(|u| !u.is_empty() && !defined.contains(u) && seen.insert(u.clone()))
        .collect())
}

fn parse_initializer(base: &[u8], body: &[u8]) -> Result<Initializer> {
    let mut t = Initializer {
        name: String::new(),
        data_type: 0,
        dims: Vec::new(),
        body: span_of(base, body),
    };
    let mut r = FieldReader::new(body);
    while let Some(f) = r.next_field()? {
        match f.number {
            field::TENSOR_NAME => t.name = f.string("TensorProto.name")?,
            field::TENSOR_DATA_TYPE => t.data_type = f.varint("TensorProto.data_type")? as i32,
            field::TENSOR_DIMS => match f.value {
                Wire::Varint(v) => t.dims.push(v as i64),
                Wire::Len(packed) => {
                    let mut pr = PackedVarints(FieldReader::new(packed));
                    while let Some(v) = pr.next()? {
                        t.dims.push(v as i64);
                    }
                }
                _ => return Err(bad("TensorProto.dims: bad wire type")),
            },
            _ => {}
        }
    }
    Ok(t)
}

struct PackedVarints<'a>(FieldReader<'a>);

impl PackedVarints<'_> {
    fn next(&mut self) -> Result<Option<u64>> {
        if self.0.pos >= self.0.buf.len() {
            Ok(None)
        } else {
            self.0.varint().map(Some)
        }
    }
}

fn parse_value_info(base: &[u8], body: &[u8]) -> Result<ValueInfo> {
    let mut vi = ValueInfo {
        name: String::new(),
        elem_type: None,
        dims: None,
        body: span_of(base, body),
    };
    let mut r = FieldReader::new(body);
    while let Some(f) = r.next_field()? {
        match f.number {
            field::VI_NAME => vi.name = f.string("ValueInfoProto.name")?,
            field::VI_TYPE => {
                let mut tr = FieldReader::new(f.bytes("ValueInfoProto.type")?);
                while let Some(tf) = tr.next_field()? {
                    if tf.number != field::TYPE_TENSOR {
                        continue;
                    }
                    let mut xr = FieldReader::new(tf.bytes("TypeProto.tensor_type")?);
                    while let Some(xf) = xr.next_field()? {
                        match xf.number {
                            field::TENSOR_TYPE_ELEM => {
                                vi.elem_type = Some(xf.varint("elem_type")? as i32)
                            }
                            field::TENSOR_TYPE_SHAPE => {
                                let mut dims = Vec::new();
                                let mut sr = FieldReader::new(xf.bytes("shape")?);
                                while let Some(sf) = sr.next_field()? {
                                    if sf.number != field::SHAPE_DIM {
                                        continue;
                                    }
                                    let mut dim = Dim::Unknown;
                                    let mut dr = FieldReader::new(sf.bytes("dim")?);
                                    while let Some(df) = dr.next_field()? {
                                        match df.number {
                                            field::DIM_VALUE => {
                                                dim = Dim::Value(df.varint("dim_value")? as i64)
                                            }
                                            field::DIM_PARAM => {
                                                dim = Dim::Param(df.string("dim_param")?)
                                            }
                                            _ => {}
                                        }
                                    }
                                    dims.push(dim);
                                }
                                vi.dims = Some(dims);
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(vi)
}

// ---------------------------------------------------------------------------------------------
// Graph queries and sub-graph encoding

/// Which entries of a graph go into a sub-graph, see [`Graph::encode_subgraph`].
#[derive(Debug, Clone, Default)]
pub struct SubgraphParts {
    pub name: String,
    /// Indices into `Graph::nodes`, in the order they are written (keep the original order).
    pub nodes: Vec<usize>,
    /// Indices into `Graph::initializers`.
    pub initializers: Vec<usize>,
    /// Indices into `Graph::sparse_initializers`.
    pub sparse_initializers: Vec<usize>,
    /// Encoded ValueInfoProto bodies of the inputs and outputs.
    pub inputs: Vec<Vec<u8>>,
    pub outputs: Vec<Vec<u8>>,
    /// Indices into `Graph::value_infos` to keep.
    pub value_infos: Vec<usize>,
    /// Tensor names whose quantization annotations are kept.
    pub annotated: HashSet<String>,
}

impl Graph {
    /// Original bytes of a ValueInfo (graph input/output/value_info entry).
    pub fn value_info_bytes(&self, vi: &ValueInfo) -> &[u8] {
        &self.bytes[vi.body.clone()]
    }

    /// Original bytes of a node's NodeProto.
    pub fn node_bytes(&self, node: &Node) -> &[u8] {
        &self.bytes[node.body.clone()]
    }

    /// Original bytes of an attribute's AttributeProto.
    pub fn attribute_bytes(&self, attr: &Attribute) -> &[u8] {
        &self.bytes[attr.body.clone()]
    }

    /// Original bytes of an initializer's TensorProto.
    pub fn initializer_bytes(&self, init: &Initializer) -> &[u8] {
        &self.bytes[init.body.clone()]
    }

    /// Graph inputs that are not initializers (old models list initializers as inputs too).
    pub fn real_inputs(&self) -> impl Iterator<Item = &ValueInfo> {
        let inits: HashSet<&str> = self.initializers.iter().map(|i| i.name.as_str()).collect();
        self.inputs
            .iter()
            .filter(move |i| !inits.contains(i.name.as_str()))
    }

    /// A ValueInfo for `name` from the graph's inputs, outputs or value_info list.
    pub fn find_value_info(&self, name: &str) -> Option<&ValueInfo> {
        self.value_infos
            .iter()
            .chain(self.outputs.iter())
            .chain(self.inputs.iter())
            .find(|v| v.name == name)
    }

    /// The initializer named `name`.
    pub fn initializer(&self, name: &str) -> Option<&Initializer> {
        self.initializers.iter().find(|i| i.name == name)
    }

    /// The first element of a constant tensor (an initializer or the `value` of a Constant
    /// node), as f64, if the tensor has exactly one element of a numeric type.
    pub fn constant_scalar(&self, name: &str) -> Option<f64> {
        if let Some(init) = self.initializer(name) {
            return tensor_scalar(&self.bytes[init.body.clone()]);
        }
        let node = self
            .nodes
            .iter()
            .find(|n| n.op_type == "Constant" && n.outputs.iter().any(|o| o == name))?;
        let attr = node.attributes.iter().find(|a| a.name == "value")?;
        let mut r = FieldReader::new(&self.bytes[attr.body.clone()]);
        while let Ok(Some(f)) = r.next_field() {
            if f.number == field::ATTR_T {
                return tensor_scalar(f.bytes("Constant value").ok()?);
            }
        }
        None
    }

    /// An integer attribute of a node.
    pub fn attribute_int(&self, node: &Node, name: &str) -> Option<i64> {
        let attr = node.attributes.iter().find(|a| a.name == name)?;
        let mut r = FieldReader::new(&self.bytes[attr.body.clone()]);
        while let Ok(Some(f)) = r.next_field() {
            if f.number == field::ATTR_I {
                return f.varint("attribute i").ok().map(|v| v as i64);
            }
        }
        None
    }

    /// The element type of a constant `value` attribute of a Constant node.
    fn constant_node_elem_type(&self, node: &Node) -> Option<i32> {
        let attr = node.attributes.iter().find(|a| a.name == "value")?;
        let mut r = FieldReader::new(&self.bytes[attr.body.clone()]);
        while let Ok(Some(f)) = r.next_field() {
            if f.number == field::ATTR_T {
                let base: &[u8] = f.bytes("value").ok()?;
                return parse_initializer(base, base).ok().map(|t| t.data_type);
            }
        }
        None
    }

    /// Element types of every tensor whose type is declared or can be derived: graph inputs,
    /// initializers, value_info entries, then a forward pass over the nodes with the typing
    /// rules of the common operators (most ops keep the type of their first input).
    pub fn infer_elem_types(&self) -> std::collections::HashMap<String, i32> {
        let mut types: std::collections::HashMap<String, i32> = std::collections::HashMap::new();
        for vi in self
            .inputs
            .iter()
            .chain(self.value_infos.iter())
            .chain(self.outputs.iter())
        {
            if let Some(t) = vi.elem_type {
                types.insert(vi.name.clone(), t);
            }
        }
        for init in &self.initializers {
            types.insert(init.name.clone(), init.data_type);
        }
        for node in &self.nodes {
            let input_type = |i: usize| -> Option<i32> {
                node.inputs
                    .get(i)
                    .filter(|s| !s.is_empty())
                    .and_then(|s| types.get(s).copied())
            };
            let first_typed = node
                .inputs
                .iter()
                .filter(|s| !s.is_empty())
                .find_map(|s| types.get(s).copied());
            let derived: Vec<Option<i32>> = node
                .outputs
                .iter()
                .enumerate()
                .map(|(slot, _)| {
                    if !node.domain.is_empty() && node.domain != "ai.onnx" {
                        return None;
                    }
                    match node.op_type.as_str() {
                        "Cast" => self.attribute_int(node, "to").map(|t| t as i32),
                        "CastLike" => input_type(1),
                        "QuantizeLinear" => Some(input_type(2).unwrap_or(elem::UINT8)),
                        "DequantizeLinear" => Some(input_type(1).unwrap_or(elem::FLOAT)),
                        "DynamicQuantizeLinear" => {
                            Some(if slot == 1 { elem::FLOAT } else { elem::UINT8 })
                        }
                        "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" => Some(elem::INT64),
                        "TopK" if slot == 1 => Some(elem::INT64),
                        "MaxPool" if slot == 1 => Some(elem::INT64),
                        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And"
                        | "Or" | "Xor" | "Not" | "IsNaN" | "IsInf" => Some(elem::BOOL),
                        "Constant" => self.constant_node_elem_type(node),
                        "ConstantOfShape" => {
                            Some(self.constant_node_elem_type(node).unwrap_or(elem::FLOAT))
                        }
                        "Where" => input_type(1).or(input_type(2)),
                        "If" | "Loop" | "Scan" | "RandomNormal" | "RandomUniform"
                        | "RandomNormalLike" | "RandomUniformLike" | "Multinomial" | "EyeLike"
                        | "OneHot" | "Range" => None,
                        _ => first_typed,
                    }
                })
                .collect();
            for (out, t) in node.outputs.iter().zip(derived) {
                if let Some(t) = t {
                    types.entry(out.clone()).or_insert(t);
                }
            }
        }
        types
    }

    /// Encodes a GraphProto made of the selected parts of this graph, copying the original
    /// bytes of nodes, initializers and value_infos and keeping doc_string/metadata.
    pub fn encode_subgraph(&self, parts: &SubgraphParts) -> Vec<u8> {
        let mut out = Vec::new();
        for &i in &parts.nodes {
            encode::bytes_field(
                &mut out,
                field::GRAPH_NODE,
                &self.bytes[self.nodes[i].body.clone()],
            );
        }
        encode::bytes_field(&mut out, field::GRAPH_NAME, parts.name.as_bytes());
        for &i in &parts.initializers {
            encode::bytes_field(
                &mut out,
                field::GRAPH_INITIALIZER,
                &self.bytes[self.initializers[i].body.clone()],
            );
        }
        for span in &self.other_fields {
            out.extend_from_slice(&self.bytes[span.clone()]);
        }
        for i in &parts.inputs {
            encode::bytes_field(&mut out, field::GRAPH_INPUT, i);
        }
        for o in &parts.outputs {
            encode::bytes_field(&mut out, field::GRAPH_OUTPUT, o);
        }
        for &i in &parts.value_infos {
            encode::bytes_field(
                &mut out,
                field::GRAPH_VALUE_INFO,
                &self.bytes[self.value_infos[i].body.clone()],
            );
        }
        for (name, span) in &self.quant_annotations {
            if parts.annotated.contains(name) {
                encode::bytes_field(
                    &mut out,
                    field::GRAPH_QUANT_ANNOTATION,
                    &self.bytes[span.clone()],
                );
            }
        }
        for &i in &parts.sparse_initializers {
            encode::bytes_field(
                &mut out,
                field::GRAPH_SPARSE_INITIALIZER,
                &self.bytes[self.sparse_initializers[i].body.clone()],
            );
        }
        out
    }
}

/// The single element of a numeric TensorProto, as f64. `None` if it has more than one element,
/// an unsupported type, or its data is stored outside the file.
fn tensor_scalar(body: &[u8]) -> Option<f64> {
    let mut data_type = 0;
    let mut count: u64 = 1;
    let mut raw: Option<&[u8]> = None;
    let mut float_data: Vec<f32> = Vec::new();
    let mut int_data: Vec<i64> = Vec::new();
    let mut r = FieldReader::new(body);
    while let Ok(Some(f)) = r.next_field() {
        match (f.number, f.value) {
            (field::TENSOR_DATA_TYPE, Wire::Varint(v)) => data_type = v as i32,
            (field::TENSOR_DIMS, Wire::Varint(v)) => count = count.saturating_mul(v),
            (field::TENSOR_DIMS, Wire::Len(p)) => {
                let mut pr = PackedVarints(FieldReader::new(p));
                while let Ok(Some(v)) = pr.next() {
                    count = count.saturating_mul(v);
                }
            }
            (field::TENSOR_RAW_DATA, Wire::Len(b)) => raw = Some(b),
            (field::TENSOR_FLOAT_DATA, Wire::Fixed32(v)) if float_data.len() < 2 => {
                float_data.push(f32::from_bits(v))
            }
            (field::TENSOR_FLOAT_DATA, Wire::Len(p)) => {
                float_data.extend(
                    p.chunks_exact(4)
                        .take(2)
                        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
                );
            }
            (field::TENSOR_INT32_DATA | field::TENSOR_INT64_DATA, Wire::Varint(v))
                if int_data.len() < 2 =>
            {
                int_data.push(v as i64)
            }
            (field::TENSOR_INT32_DATA | field::TENSOR_INT64_DATA, Wire::Len(p)) => {
                let mut pr = PackedVarints(FieldReader::new(p));
                while let Ok(Some(v)) = pr.next() {
                    if int_data.len() >= 2 {
                        break;
                    }
                    int_data.push(v as i64);
                }
            }
            (field::TENSOR_DATA_LOCATION, Wire::Varint(1)) => return None,
            _ => {}
        }
    }
    if count != 1 {
        return None;
    }
    if let Some(raw) = raw {
        let v = match data_type {
            elem::FLOAT => f64::from(f32::from_le_bytes(raw.get(..4)?.try_into().ok()?)),
            elem::DOUBLE => f64::from_le_bytes(raw.get(..8)?.try_into().ok()?),
            elem::UINT8 => f64::from(*raw.first()?),
            elem::INT8 => f64::from(*raw.first()? as i8),
            elem::UINT16 => f64::from(u16::from_le_bytes(raw.get(..2)?.try_into().ok()?)),
            elem::INT16 => f64::from(i16::from_le_bytes(raw.get(..2)?.try_into().ok()?)),
            elem::INT32 => f64::from(i32::from_le_bytes(raw.get(..4)?.try_into().ok()?)),
            elem::INT64 => i64::from_le_bytes(raw.get(..8)?.try_into().ok()?) as f64,
            _ => return None,
        };
        return Some(v);
    }
    match data_type {
        elem::FLOAT => float_data.first().map(|v| f64::from(*v)),
        // Per onnx.proto, (u)int8/16 and int32 values are stored in int32_data.
        elem::UINT8 | elem::INT8 | elem::UINT16 | elem::INT16 | elem::INT32 => {
            let v = *int_data.first()? as i32;
            Some(match data_type {
                elem::UINT8 => f64::from(v as u8),
                elem::INT8 => f64::from(v as i8),
                _ => f64::from(v),
            })
        }
        elem::INT64 => int_data.first().map(|v| *v as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::encode::*;
    use super::*;

    fn tiny_model() -> Vec<u8> {
        let nodes = vec![
            node("Add", "add", &["x", "w"], &["a"], &[]),
            node(
                "Relu",
                "relu",
                &["a"],
                &["y"],
                &[("unused", AttrValue::Int(3))],
            ),
        ];
        let inits = vec![tensor_f32("w", &[1, 2], &[1.0, -2.0])];
        let inputs = vec![value_info("x", Some(elem::FLOAT), Some(&[1, 2]))];
        let outputs = vec![value_info("y", Some(elem::FLOAT), Some(&[1, -1]))];
        model(8, 17, &graph("g", &nodes, &inits, &inputs, &outputs))
    }

    #[test]
    fn varint_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            let mut key = Vec::new();
            varint(&mut key, 1 << 3); // field 1, varint
            key.extend_from_slice(&out);
            let mut r = FieldReader::new(&key);
            let f = r.next_field().unwrap().unwrap();
            assert_eq!(f.number, 1);
            assert_eq!(f.value, Wire::Varint(v));
            assert!(r.next_field().unwrap().is_none());
        }
    }

    #[test]
    fn parses_what_the_writer_wrote() {
        let bytes = tiny_model();
        let m = Model::parse(&bytes).unwrap();
        assert_eq!(m.ir_version, 8);
        assert_eq!(m.producer_name, "fmap-infer");
        assert_eq!(
            m.opsets,
            vec![OpsetImport {
                domain: String::new(),
                version: 17
            }]
        );
        let g = &m.graph;
        assert_eq!(g.name, "g");
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(g.nodes[0].op_type, "Add");
        assert_eq!(g.nodes[0].inputs, vec!["x", "w"]);
        assert_eq!(g.nodes[1].outputs, vec!["y"]);
        assert_eq!(g.nodes[1].attributes[0].name, "unused");
        assert_eq!(g.attribute_int(&g.nodes[1], "unused"), Some(3));
        assert_eq!(g.initializers[0].name, "w");
        assert_eq!(g.initializers[0].dims, vec![1, 2]);
        assert_eq!(g.initializers[0].data_type, elem::FLOAT);
        assert_eq!(g.inputs[0].static_dims(), Some(vec![1, 2]));
        assert_eq!(g.outputs[0].dims, Some(vec![Dim::Value(1), Dim::Unknown]));
        assert_eq!(g.outputs[0].static_dims(), None);
        let types = g.infer_elem_types();
        assert_eq!(types.get("a"), Some(&elem::FLOAT));
    }

    #[test]
    fn re_encoding_everything_is_identity() {
        let bytes = tiny_model();
        let m = Model::parse(&bytes).unwrap();
        let g = &m.graph;
        let parts = SubgraphParts {
            name: g.name.clone(),
            nodes: (0..g.nodes.len()).collect(),
            initializers: (0..g.initializers.len()).collect(),
            inputs: g
                .inputs
                .iter()
                .map(|v| g.value_info_bytes(v).to_vec())
                .collect(),
            outputs: g
                .outputs
                .iter()
                .map(|v| g.value_info_bytes(v).to_vec())
                .collect(),
            ..Default::default()
        };
        let again = m.encode_with_graph(&g.encode_subgraph(&parts));
        assert_eq!(again, bytes);
    }

    #[test]
    fn scalars_from_initializers_and_constants() {
        let scale = tensor_f32("s", &[], &[0.25]);
        let zp = tensor_raw("z", elem::UINT8, &[], &[128]);
        let konst = tensor_raw("k", elem::INT8, &[1], &[0xfe]);
        let nodes = vec![
            node(
                "Constant",
                "c",
                &[],
                &["k"],
                &[("value", AttrValue::Tensor(&konst))],
            ),
            node("QuantizeLinear", "q", &["x", "s", "z"], &["q"], &[]),
        ];
        let g = graph("g", &nodes, &[scale, zp], &[], &[]);
        let m = Model::parse(&model(8, 17, &g)).unwrap();
        assert_eq!(m.graph.constant_scalar("s"), Some(0.25));
        assert_eq!(m.graph.constant_scalar("z"), Some(128.0));
        assert_eq!(m.graph.constant_scalar("k"), Some(-2.0));
        assert_eq!(m.graph.constant_scalar("x"), None);
        assert_eq!(m.graph.infer_elem_types().get("k"), Some(&elem::INT8));
    }

    #[test]
    fn subgraph_outer_references_become_dependencies() {
        let body = graph(
            "then",
            &[node("Add", "inner", &["outer", "local"], &["r"], &[])],
            &[tensor_f32("local", &[1], &[1.0])],
            &[],
            &[value_info("r", Some(elem::FLOAT), None)],
        );
        let nodes = vec![node(
            "If",
            "if",
            &["cond"],
            &["r"],
            &[("then_branch", AttrValue::Graph(&body))],
        )];
        let m = Model::parse(&model(8, 17, &graph("g", &nodes, &[], &[], &[]))).unwrap();
        let n = &m.graph.nodes[0];
        assert_eq!(n.outer_refs, vec!["outer"]);
        assert_eq!(n.dependencies().collect::<Vec<_>>(), vec!["cond", "outer"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let bytes = tiny_model();
        // Every truncation and a handful of byte flips: errors or (rarely) a valid parse.
        for cut in 0..bytes.len() {
            let _ = Model::parse(&bytes[..cut]);
        }
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut b = bytes.clone();
            for _ in 0..3 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let i = (state as usize >> 8) % b.len();
                b[i] = (state >> 24) as u8;
            }
            let _ = Model::parse(&b);
        }
        assert!(Model::parse(&[]).is_err());
        assert!(Model::parse(b"not a model at all").is_err());
        // A length prefix claiming 2^62 bytes.
        let mut huge = Vec::new();
        varint(&mut huge, (7 << 3) | 2);
        varint(&mut huge, 1 << 62);
        assert!(matches!(Model::parse(&huge), Err(InferError::Model(_))));
    }

    #[test]
    fn deeply_nested_subgraphs_are_rejected() {
        let mut body = graph(
            "leaf",
            &[node("Relu", "r", &["x"], &["y"], &[])],
            &[],
            &[],
            &[],
        );
        for i in 0..(MAX_SUBGRAPH_DEPTH + 2) {
            let n = node(
                "If",
                &format!("if{i}"),
                &["c"],
                &["y"],
                &[("then_branch", AttrValue::Graph(&body))],
            );
            body = graph("g", &[n], &[], &[], &[]);
        }
        let err = Model::parse(&model(8, 17, &body)).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
    }
}
