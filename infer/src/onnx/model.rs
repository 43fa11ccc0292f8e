//! The decoded model: the fields needed to reason about the data flow, with the byte spans of
//! everything else.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use super::encode;
use super::wire::{FieldReader, PackedVarints, Wire, bad};
use super::{MAX_SUBGRAPH_DEPTH, field};
use crate::error::Result;

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
    pub(super) body: Span,
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
    pub(super) body: Span,
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
    pub(super) body: Span,
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
    pub(super) body: Span,
}

/// A sparse initializer: only its name (of the `values` tensor) is decoded.
#[derive(Debug, Clone)]
pub struct SparseInitializer {
    pub name: String,
    pub(super) body: Span,
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
    pub(super) bytes: Arc<[u8]>,
    pub name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Initializer>,
    pub sparse_initializers: Vec<SparseInitializer>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub value_infos: Vec<ValueInfo>,
    /// `quantization_annotation` entries: (tensor name, body).
    pub(super) quant_annotations: Vec<(String, Span)>,
    /// Every other field (doc_string, metadata_props, unknown fields), complete with key.
    pub(super) other_fields: Vec<Span>,
}

/// A parsed ModelProto.
#[derive(Debug, Clone)]
pub struct Model {
    pub(super) bytes: Arc<[u8]>,
    pub ir_version: i64,
    pub producer_name: String,
    pub opsets: Vec<OpsetImport>,
    pub graph: Graph,
    /// Every top-level field in order, complete with key, to re-emit all but the graph.
    pub(super) fields: Vec<(u32, Span)>,
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

pub(super) fn parse_initializer(base: &[u8], body: &[u8]) -> Result<Initializer> {
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
