//! Writing the protobuf wire format: fields, and the ONNX messages (value infos, nodes,
//! tensors, graphs, models) that the splitter and the tests build.

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
