//! Tests of the ONNX reader and writer on hand-built models.

use super::encode::*;
use super::wire::{FieldReader, Wire};
use super::*;
use crate::error::InferError;

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
