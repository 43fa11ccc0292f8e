//! Queries on a decoded graph and encoding of sub-graphs from its original bytes.

use std::collections::HashSet;

use super::elem;
use super::encode;
use super::field;
use super::model::{Attribute, Graph, Initializer, Node, ValueInfo, parse_initializer};
use super::wire::{FieldReader, PackedVarints, Wire};

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
