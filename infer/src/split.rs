//! Splitting an ONNX model at a set of tensors into a front part (graph inputs → cut tensors)
//! and a back part (cut tensors → graph outputs).
//!
//! The requested tensors need not form a complete cut: every other tensor that the front part
//! computes and the back part needs is added (asking NanoDet for `..._Concat_42:0` alone also
//! transmits `..._Concat_27:0`, which the stride-8 head reads). Tensors computed from constants
//! only (shape computations, Constant nodes) are never transmitted: the nodes that compute them
//! are copied into both parts. If the back part would need a graph input directly, the request
//! cannot be completed into a cut and [`InferError::NotACut`] names that input.
//!
//! The parts are written by copying the original bytes of the kept nodes, initializers and
//! value_info entries, so weights, attributes, opsets and metadata are preserved exactly.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use crate::error::{InferError, Result};
use crate::onnx::{Dim, Graph, Model, SubgraphParts, elem, encode};
use crate::runtime::{Session, TensorValue};

/// A model split in two.
#[derive(Debug, Clone)]
pub struct SplitModels {
    /// ONNX model computing the cut tensors from the graph inputs.
    pub front: Vec<u8>,
    /// ONNX model computing the graph outputs from the cut tensors.
    pub back: Vec<u8>,
    /// The final cut, in the order the tensors are produced in the graph: the outputs of the
    /// front part and the inputs of the back part.
    pub cut: Vec<String>,
    /// Tensors of `cut` that were not requested but cross the cut.
    pub added: Vec<String>,
    /// Requested tensors that the back part does not read (they are not transmitted).
    pub dropped: Vec<String>,
    /// Element type and shape of every cut tensor, as declared in the split models.
    pub boundary: Vec<BoundaryTensor>,
}

/// A tensor crossing the cut.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundaryTensor {
    pub name: String,
    /// ONNX element type code (see [`crate::onnx::elem`]), if known.
    pub elem_type: Option<i32>,
    /// Declared shape, if the original model declares one (value_info).
    pub dims: Option<Vec<Dim>>,
}

/// Splits `model_bytes` at the tensors named in `cut`. See the module documentation.
///
/// For models without value_info (tf2onnx output has none) the cut tensors are declared
/// without shapes, and ONNX Runtime then optimizes the back part differently: NanoDet's outputs
/// differ from the full model by up to ~1e-6. Use [`split_with_shapes`] to get
/// declared shapes and bit-identical results.
pub fn split_model(model_bytes: &[u8], cut: &[String]) -> Result<SplitModels> {
    let model = Model::parse(model_bytes)?;
    split_parsed(&model, cut)
}

/// Producer/consumer index of a graph.
struct Index<'g> {
    graph: &'g Graph,
    producer: HashMap<&'g str, usize>,
    constants: HashSet<&'g str>,
    inputs: HashSet<&'g str>,
    /// Position of every node in a topological order.
    topo_pos: Vec<usize>,
    /// Whether a node's outputs depend on a graph input (false: constants only).
    dynamic: Vec<bool>,
}

impl<'g> Index<'g> {
    fn new(graph: &'g Graph) -> Result<Self> {
        let mut producer = HashMap::new();
        for (i, n) in graph.nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                if producer.insert(o.as_str(), i).is_some() {
                    return Err(InferError::Model(format!(
                        "tensor '{o}' is produced by more than one node"
                    )));
                }
            }
        }
        let constants: HashSet<&str> = graph
            .initializers
            .iter()
            .map(|i| i.name.as_str())
            .chain(graph.sparse_initializers.iter().map(|i| i.name.as_str()))
            .collect();
        let inputs: HashSet<&str> = graph
            .inputs
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !constants.contains(n))
            .collect();

        // Kahn's algorithm, taking the lowest original index first so that an already sorted
        // graph (as ONNX requires) keeps its order; unsorted graphs are sorted.
        let n = graph.nodes.len();
        let mut indegree = vec![0usize; n];
        let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in graph.nodes.iter().enumerate() {
            let mut seen = HashSet::new();
            for d in node.dependencies() {
                if let Some(&p) = producer.get(d)
                    && seen.insert(p)
                {
                    indegree[i] += 1;
                    consumers[p].push(i);
                }
            }
        }
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for &c in &consumers[i] {
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    ready.push(Reverse(c));
                }
            }
        }
        if order.len() != n {
            return Err(InferError::Model("the graph has a cycle".into()));
        }
        let mut topo_pos = vec![0; n];
        for (pos, &i) in order.iter().enumerate() {
            topo_pos[i] = pos;
        }
        let mut dynamic = vec![false; n];
        for &i in &order {
            dynamic[i] = graph.nodes[i]
                .dependencies()
                .any(|d| inputs.contains(d) || producer.get(d).is_some_and(|&p| dynamic[p]));
        }
        Ok(Index {
            graph,
            producer,
            constants,
            inputs,
            topo_pos,
            dynamic,
        })
    }

    fn is_dynamic(&self, tensor: &str) -> bool {
        self.inputs.contains(tensor) || self.producer.get(tensor).is_some_and(|&p| self.dynamic[p])
    }

    /// Nodes needed to compute `targets` from graph inputs and constants.
    fn ancestors<'a>(&self, targets: impl IntoIterator<Item = &'a str>) -> Vec<bool> {
        let mut marked = vec![false; self.graph.nodes.len()];
        let mut stack: Vec<usize> = targets
            .into_iter()
            .filter_map(|t| self.producer.get(t).copied())
            .collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut marked[i], true) {
                continue;
            }
            for d in self.graph.nodes[i].dependencies() {
                if let Some(&p) = self.producer.get(d)
                    && !marked[p]
                {
                    stack.push(p);
                }
            }
        }
        marked
    }

    fn node_label(&self, i: usize) -> String {
        let n = &self.graph.nodes[i];
        if n.name.is_empty() {
            format!("{} node #{i}", n.op_type)
        } else {
            format!("{} node '{}'", n.op_type, n.name)
        }
    }
}

/// Splits an already parsed model. See the module documentation.
///
/// The cut tensors are declared with the element type and shape of the model's value_info if it
/// has one, otherwise with the element type derived from the producing operators and no shape
/// (ONNX Runtime accepts that; it then reports the shape as unknown).
/// [`split_with_shapes`] declares exact shapes.
pub fn split_parsed(model: &Model, cut: &[String]) -> Result<SplitModels> {
    split_parsed_with_dims(model, cut, &HashMap::new())
}

/// [`split_parsed`], declaring the cut tensors named in `dims` with these exact dimensions
/// (-1: unknown).
pub fn split_parsed_with_dims(
    model: &Model,
    cut: &[String],
    dims: &HashMap<String, Vec<i64>>,
) -> Result<SplitModels> {
    let graph = &model.graph;
    let idx = Index::new(graph)?;

    // Validate and de-duplicate the request.
    let mut requested: Vec<&str> = Vec::new();
    for name in cut {
        let name = name.trim();
        if name.is_empty() || requested.contains(&name) {
            continue;
        }
        if idx.inputs.contains(name) {
            return Err(InferError::NotACut(format!(
                "'{name}' is a graph input: the front part would compute nothing"
            )));
        }
        if idx.constants.contains(name) {
            return Err(InferError::NotACut(format!(
                "'{name}' is a constant (initializer), not an activation"
            )));
        }
        if !idx.producer.contains_key(name) {
            return Err(unknown_tensor(graph, name));
        }
        if !idx.is_dynamic(name) {
            return Err(InferError::NotACut(format!(
                "'{name}' is computed from constants only; it does not depend on the input"
            )));
        }
        requested.push(name);
    }
    if requested.is_empty() {
        return Err(InferError::NotACut("no split tensors given".into()));
    }

    // Everything the front part computes to produce the requested tensors.
    let front_initial = idx.ancestors(requested.iter().copied());
    let front_produced = |t: &str| idx.producer.get(t).is_some_and(|&p| front_initial[p]);

    // The back part: ancestors of the outputs, stopping at dynamic tensors the front computes.
    let mut back_nodes = vec![false; graph.nodes.len()];
    let mut boundary: HashSet<&str> = HashSet::new();
    // For error messages: which node asked for a tensor.
    let mut stack: Vec<(&str, Option<usize>)> = Vec::new();
    for o in &graph.outputs {
        if front_produced(&o.name) && idx.is_dynamic(&o.name) {
            return Err(InferError::NotACut(format!(
                "graph output '{}' is computed completely by the front part; cut before it",
                o.name
            )));
        }
        stack.push((o.name.as_str(), None));
    }
    let mut visited: HashSet<&str> = HashSet::new();
    while let Some((t, consumer)) = stack.pop() {
        if t.is_empty() || !visited.insert(t) {
            continue;
        }
        if front_produced(t) && idx.is_dynamic(t) {
            boundary.insert(t);
            continue;
        }
        if idx.constants.contains(t) {
            continue;
        }
        if idx.inputs.contains(t) {
            let via = consumer
                .map(|c| format!(" (read by {})", idx.node_label(c)))
                .unwrap_or_default();
            return Err(InferError::NotACut(format!(
                "the back part would need graph input '{t}'{via}: the tensors {} do not \
                 separate it from the outputs; add a tensor on that path (or use a named split \
                 point of the model profile)",
                requested.join(", ")
            )));
        }
        let Some(&p) = idx.producer.get(t) else {
            return Err(InferError::Model(format!(
                "tensor '{t}' is read but never produced (not an input, initializer or node output)"
            )));
        };
        back_nodes[p] = true;
        for d in graph.nodes[p].dependencies() {
            stack.push((d, Some(p)));
        }
    }

    // The final cut in production order: topological position of the producer, then slot.
    let mut final_cut: Vec<&str> = boundary.into_iter().collect();
    final_cut.sort_by_key(|t| {
        let p = idx.producer[t];
        let slot = graph.nodes[p]
            .outputs
            .iter()
            .position(|o| o == t)
            .unwrap_or(0);
        (idx.topo_pos[p], slot)
    });
    if final_cut.is_empty() {
        return Err(InferError::NotACut(format!(
            "the graph outputs do not depend on {}",
            requested.join(", ")
        )));
    }
    let added: Vec<String> = final_cut
        .iter()
        .filter(|t| !requested.contains(t))
        .map(|t| t.to_string())
        .collect();
    let dropped: Vec<String> = requested
        .iter()
        .filter(|t| !final_cut.contains(t))
        .map(|t| t.to_string())
        .collect();

    // Only what the final cut needs.
    let front_nodes = idx.ancestors(final_cut.iter().copied());

    let types = graph.infer_elem_types();
    let mut boundary_info = Vec::new();
    let mut boundary_vi = Vec::new();
    for &t in &final_cut {
        let declared = graph.find_value_info(t).filter(|v| v.elem_type.is_some());
        match (declared, dims.get(t)) {
            (declared, Some(d)) => {
                let et = declared.and_then(|v| v.elem_type).or(types.get(t).copied());
                boundary_vi.push(encode::value_info(t, et, Some(d)));
                boundary_info.push(BoundaryTensor {
                    name: t.to_string(),
                    elem_type: et,
                    dims: Some(
                        d.iter()
                            .map(|&v| if v >= 0 { Dim::Value(v) } else { Dim::Unknown })
                            .collect(),
                    ),
                });
            }
            (Some(vi), None) => {
                boundary_vi.push(graph.value_info_bytes(vi).to_vec());
                boundary_info.push(BoundaryTensor {
                    name: t.to_string(),
                    elem_type: vi.elem_type,
                    dims: vi.dims.clone(),
                });
            }
            (None, None) => {
                // Without a declared type, ONNX Runtime infers it for front outputs; back
                // inputs need one, so derive it from the producing operator.
                let et = types.get(t).copied();
                boundary_vi.push(encode::value_info(t, et, None));
                boundary_info.push(BoundaryTensor {
                    name: t.to_string(),
                    elem_type: et,
                    dims: None,
                });
            }
        }
    }
    if let Some(b) = boundary_info.iter().find(|b| b.elem_type.is_none()) {
        return Err(InferError::Model(format!(
            "cannot determine the element type of cut tensor '{}' (no value_info, unknown \
             producer type)",
            b.name
        )));
    }

    let cut_set: HashSet<&str> = final_cut.iter().copied().collect();
    let front = build_part(
        model,
        &idx,
        &front_nodes,
        format!("{}_front", graph.name),
        graph
            .real_inputs()
            .filter(|vi| {
                graph
                    .nodes
                    .iter()
                    .enumerate()
                    .any(|(i, n)| front_nodes[i] && n.dependencies().any(|d| d == vi.name))
            })
            .map(|vi| graph.value_info_bytes(vi).to_vec())
            .collect(),
        boundary_vi.clone(),
        &cut_set,
    );
    let back = build_part(
        model,
        &idx,
        &back_nodes,
        format!("{}_back", graph.name),
        boundary_vi,
        graph
            .outputs
            .iter()
            .map(|vi| graph.value_info_bytes(vi).to_vec())
            .collect(),
        &cut_set,
    );

    Ok(SplitModels {
        front,
        back,
        cut: final_cut.iter().map(|t| t.to_string()).collect(),
        added,
        dropped,
        boundary: boundary_info,
    })
}

fn build_part(
    model: &Model,
    idx: &Index<'_>,
    nodes: &[bool],
    name: String,
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
    cut: &HashSet<&str>,
) -> Vec<u8> {
    let graph = &model.graph;
    let mut node_list: Vec<usize> = (0..graph.nodes.len()).filter(|&i| nodes[i]).collect();
    node_list.sort_by_key(|&i| idx.topo_pos[i]);
    let used: HashSet<&str> = node_list
        .iter()
        .flat_map(|&i| graph.nodes[i].dependencies())
        .collect();
    let produced: HashSet<&str> = node_list
        .iter()
        .flat_map(|&i| graph.nodes[i].outputs.iter().map(String::as_str))
        .collect();
    let output_names: HashSet<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
    let parts = SubgraphParts {
        name,
        initializers: (0..graph.initializers.len())
            .filter(|&i| used.contains(graph.initializers[i].name.as_str()))
            .collect(),
        sparse_initializers: (0..graph.sparse_initializers.len())
            .filter(|&i| used.contains(graph.sparse_initializers[i].name.as_str()))
            .collect(),
        value_infos: (0..graph.value_infos.len())
            .filter(|&i| {
                let n = graph.value_infos[i].name.as_str();
                produced.contains(n) && !cut.contains(n) && !output_names.contains(n)
            })
            .collect(),
        annotated: used
            .iter()
            .chain(produced.iter())
            .map(|s| s.to_string())
            .collect(),
        nodes: node_list,
        inputs,
        outputs,
    };
    model.encode_with_graph(&graph.encode_subgraph(&parts))
}

/// All tensor names a split may refer to, in graph order: the graph inputs, then every node
/// output.
pub fn tensor_names(graph: &Graph) -> Vec<String> {
    graph
        .real_inputs()
        .map(|v| v.name.clone())
        .chain(
            graph
                .nodes
                .iter()
                .flat_map(|n| n.outputs.iter().filter(|o| !o.is_empty()).cloned()),
        )
        .collect()
}

/// A short human-readable summary: node and initializer counts, inputs and outputs with types
/// and shapes.
pub fn graph_summary(graph: &Graph) -> String {
    let describe = |v: &crate::onnx::ValueInfo| {
        let ty = v.elem_type.map_or("?", elem::name);
        let dims = v.dims.as_ref().map_or_else(
            || "?".to_string(),
            |d| {
                let parts: Vec<String> = d
                    .iter()
                    .map(|d| match d {
                        Dim::Value(v) => v.to_string(),
                        Dim::Param(p) => p.clone(),
                        Dim::Unknown => "?".into(),
                    })
                    .collect();
                format!("[{}]", parts.join(","))
            },
        );
        format!("{} {ty}{dims}", v.name)
    };
    let inputs: Vec<String> = graph.real_inputs().map(describe).collect();
    let outputs: Vec<String> = graph.outputs.iter().map(describe).collect();
    format!(
        "graph '{}': {} nodes, {} initializers; inputs: {}; outputs: {}",
        graph.name,
        graph.nodes.len(),
        graph.initializers.len(),
        inputs.join(", "),
        outputs.join(", ")
    )
}

/// Most names listed in an [`InferError::UnknownTensor`].
const MAX_SUGGESTIONS: usize = 20;

/// An [`InferError::UnknownTensor`] for `name`, listing the closest tensor names first, then
/// the first names of the graph.
pub fn unknown_tensor(graph: &Graph, name: &str) -> InferError {
    let names = tensor_names(graph);
    let lower = name.to_lowercase();
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .map(|n| {
            let nl = n.to_lowercase();
            let d = if nl.contains(&lower) || (!nl.is_empty() && lower.contains(&nl)) {
                0
            } else {
                edit_distance(&lower, &nl)
            };
            (d, n)
        })
        .collect();
    scored.sort_by_key(|(d, _)| *d);
    let limit = (name.chars().count() / 3).max(3);
    let mut suggestions: Vec<String> = scored
        .iter()
        .take_while(|(d, _)| *d <= limit)
        .take(8)
        .map(|(_, n)| (*n).clone())
        .collect();
    for n in &names {
        if suggestions.len() >= MAX_SUGGESTIONS {
            break;
        }
        if !suggestions.contains(n) {
            suggestions.push(n.clone());
        }
    }
    InferError::UnknownTensor {
        name: name.to_string(),
        suggestions,
        total: names.len(),
    }
}

/// Levenshtein distance over chars; long names are compared on their first 256 chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(256).collect();
    let b: Vec<char> = b.chars().take(256).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Per-tensor quantization parameters (scale, zero point) of an 8-bit tensor of a quantized
/// model: `tensor` must be the output of a QuantizeLinear node or the input of a
/// DequantizeLinear node whose scale and zero point are constant scalars. `None` for float
/// tensors, per-channel quantization or non-constant parameters.
pub fn quant_params_for(graph: &Graph, tensor: &str) -> Option<(f32, i32)> {
    let node = graph
        .nodes
        .iter()
        .find(|n| n.op_type == "QuantizeLinear" && n.outputs.first().is_some_and(|o| o == tensor))
        .or_else(|| {
            graph.nodes.iter().find(|n| {
                n.op_type == "DequantizeLinear" && n.inputs.first().is_some_and(|i| i == tensor)
            })
        })?;
    let scale = graph.constant_scalar(node.inputs.get(1)?)? as f32;
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let zero_point = match node.inputs.get(2).filter(|z| !z.is_empty()) {
        Some(z) => graph.constant_scalar(z)?,
        None => 0.0,
    };
    Some((scale, zero_point as i32))
}

// ---------------------------------------------------------------------------------------------
// Splitting with exact boundary shapes (needs ONNX Runtime)

/// Splits a model like [`crate::split::split_model`] and declares the exact shape of every cut
/// tensor in both parts, found by running the front part once on an all-zero input (free input
/// dimensions taken as 1). Costs one front inference at setup; the back part then reports its
/// input shapes through [`Session::inputs`], which [`from_codec_tensor`](crate::runtime::from_codec_tensor) uses to restore the
/// exact dimensions (whatever the layout) of received (C, H, W) tensors.
pub fn split_with_shapes(
    model_bytes: &[u8],
    cut: &[String],
    threads: usize,
) -> Result<SplitModels> {
    let model = Model::parse(model_bytes)?;
    let split = split_parsed(&model, cut)?;
    let mut front = Session::from_memory(&split.front, threads)?;
    let inputs = front
        .inputs()
        .iter()
        .map(|info| Ok((info.name.clone(), TensorValue::zeros_like(info)?)))
        .collect::<Result<Vec<_>>>()?;
    let outputs = front.run(inputs)?;
    let dims: HashMap<String, Vec<i64>> = outputs
        .into_iter()
        .map(|(name, v)| (name, v.shape.iter().map(|&d| d as i64).collect()))
        .collect();
    split_parsed_with_dims(&model, cut, &dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::encode::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// x → Relu(a) → Add(b = a + w) → Relu(c); Concat(a, c) → y; plus a constant-only Shape
    /// path feeding a Reshape on the back side.
    fn two_branch_model() -> Vec<u8> {
        let nodes = vec![
            node("Relu", "r1", &["x"], &["a"], &[]),
            node("Add", "add", &["a", "w"], &["b"], &[]),
            node("Relu", "r2", &["b"], &["c"], &[]),
            node(
                "Concat",
                "cat",
                &["a", "c"],
                &["d"],
                &[("axis", AttrValue::Int(1))],
            ),
            node("Shape", "shape", &["w"], &["ws"], &[]),
            node("Reshape", "reshape", &["d", "target"], &["y"], &[]),
        ];
        let inits = vec![
            tensor_f32("w", &[1, 2, 1, 1], &[0.5, -1.5]),
            tensor_raw(
                "target",
                elem::INT64,
                &[2],
                &[
                    1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                ],
            ),
        ];
        let inputs = vec![value_info("x", Some(elem::FLOAT), Some(&[1, 2, 2, 2]))];
        let outputs = vec![value_info("y", Some(elem::FLOAT), Some(&[1, 16]))];
        model(8, 17, &graph("g", &nodes, &inits, &inputs, &outputs))
    }

    fn node_names(bytes: &[u8]) -> Vec<String> {
        Model::parse(bytes)
            .unwrap()
            .graph
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }

    #[test]
    fn adds_crossing_tensors() {
        let split = split_model(&two_branch_model(), &s(&["c"])).unwrap();
        assert_eq!(split.cut, s(&["a", "c"]));
        assert_eq!(split.added, s(&["a"]));
        assert!(split.dropped.is_empty());
        assert_eq!(node_names(&split.front), s(&["r1", "add", "r2"]));
        assert_eq!(node_names(&split.back), s(&["cat", "reshape"]));
        let back = Model::parse(&split.back).unwrap();
        let inputs: Vec<&str> = back.graph.inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(inputs, vec!["a", "c"]);
        assert_eq!(back.graph.initializers.len(), 1);
        assert_eq!(back.graph.initializers[0].name, "target");
        let front = Model::parse(&split.front).unwrap();
        assert_eq!(front.graph.initializers[0].name, "w");
        assert_eq!(front.opsets, back.opsets);
        assert!(
            split
                .boundary
                .iter()
                .all(|b| b.elem_type == Some(elem::FLOAT))
        );
    }

    #[test]
    fn a_complete_cut_is_kept_and_sorted() {
        let split = split_model(&two_branch_model(), &s(&["c", "a", "c"])).unwrap();
        assert_eq!(split.cut, s(&["a", "c"]));
        assert!(split.added.is_empty());
    }

    #[test]
    fn unconsumed_requests_are_dropped() {
        // b only feeds r2 (front); the back needs a and c.
        let split = split_model(&two_branch_model(), &s(&["b", "c"])).unwrap();
        assert_eq!(split.cut, s(&["a", "c"]));
        assert_eq!(split.dropped, s(&["b"]));
    }

    #[test]
    fn unknown_names_are_listed() {
        let err = split_model(&two_branch_model(), &s(&["cc"])).unwrap_err();
        match &err {
            InferError::UnknownTensor {
                name,
                suggestions,
                total,
            } => {
                assert_eq!(name, "cc");
                assert_eq!(suggestions[0], "c");
                assert_eq!(*total, 7); // x + 6 node outputs
            }
            e => panic!("unexpected {e}"),
        }
        assert!(err.to_string().contains("'cc'"));
    }

    #[test]
    fn non_cuts_name_the_input() {
        let nodes = vec![
            node("Relu", "r1", &["x"], &["a"], &[]),
            node("Add", "add", &["a", "x"], &["y"], &[]),
        ];
        let m = model(
            8,
            17,
            &graph(
                "g",
                &nodes,
                &[],
                &[value_info("x", Some(elem::FLOAT), None)],
                &[value_info("y", Some(elem::FLOAT), None)],
            ),
        );
        let err = split_model(&m, &s(&["a"])).unwrap_err();
        let InferError::NotACut(msg) = &err else {
            panic!("unexpected {err}")
        };
        assert!(
            msg.contains("graph input 'x'") && msg.contains("'add'"),
            "{msg}"
        );
        assert!(matches!(
            split_model(&m, &s(&["x"])),
            Err(InferError::NotACut(_))
        ));
        assert!(matches!(
            split_model(&m, &s(&["y"])),
            Err(InferError::NotACut(_))
        ));
        assert!(matches!(
            split_model(&m, &s(&[])),
            Err(InferError::NotACut(_))
        ));
    }

    #[test]
    fn constants_are_not_cut_tensors() {
        let err = split_model(&two_branch_model(), &s(&["ws"])).unwrap_err();
        assert!(matches!(err, InferError::NotACut(_)), "{err}");
        let err = split_model(&two_branch_model(), &s(&["w"])).unwrap_err();
        assert!(matches!(err, InferError::NotACut(_)), "{err}");
    }

    #[test]
    fn quantization_parameters() {
        let nodes = vec![
            node("QuantizeLinear", "q", &["x", "s", "z"], &["xq"], &[]),
            node("DequantizeLinear", "dq", &["xq", "s", "z"], &["y"], &[]),
            node("QuantizeLinear", "q2", &["y", "s"], &["yq"], &[]),
        ];
        let inits = vec![
            tensor_f32("s", &[], &[0.0235]),
            tensor_raw("z", elem::UINT8, &[], &[131]),
        ];
        let m = Model::parse(&model(
            8,
            17,
            &graph(
                "g",
                &nodes,
                &inits,
                &[value_info("x", Some(elem::FLOAT), None)],
                &[],
            ),
        ))
        .unwrap();
        assert_eq!(quant_params_for(&m.graph, "xq"), Some((0.0235, 131)));
        assert_eq!(quant_params_for(&m.graph, "yq"), Some((0.0235, 0)));
        // y is the float output of DequantizeLinear.
        assert_eq!(quant_params_for(&m.graph, "y"), None);
        assert_eq!(quant_params_for(&m.graph, "x"), None);
        assert_eq!(m.graph.infer_elem_types().get("xq"), Some(&elem::UINT8));
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }

    #[test]
    fn summary_mentions_inputs_and_outputs() {
        let m = Model::parse(&two_branch_model()).unwrap();
        let s = graph_summary(&m.graph);
        assert!(
            s.contains("6 nodes") && s.contains("x f32[1,2,2,2]") && s.contains("y f32[1,16]"),
            "{s}"
        );
    }
}
