#!/usr/bin/env python3
"""Cross-check a graph split against the reference splitter of the `onnx` package.

For a model and a cut (one or more tensor names) this script
  1. builds a front model (graph inputs -> cut) and a back model (cut -> graph outputs) with
     onnx.utils.extract_model; a cut that does not separate the graph fails here (the back
     model would need a tensor that is neither an initializer nor one of its inputs),
  2. runs the full model and front -> back with onnxruntime on the same input and reports
     whether the outputs are bit-identical,
  3. reports shape, element type and bytes per frame of every cut tensor, and the quantization
     parameters (scale, zero point) of cut tensors that are the output of a QuantizeLinear or
     the input of a DequantizeLinear,
  4. optionally (--front/--back) checks another splitter's front and back models (e.g. the Rust
     `split_model`): same node set as onnx's split, same cut interface, and front -> back
     bit-identical to the full model.

Input data: --image with --profile uses the profile's preprocessing (stretch resize); otherwise
a seeded random tensor of the input's dtype. Prints one JSON object; exit status 0 only if every
check passed.

Needs: numpy, onnx, onnxruntime (pillow for --image). Example:
  python scripts/onnx_split_check.py models/nanodet.onnx \
      --cut PartitionedCall/onnx_tf_prefix_Concat_27:0 --front /tmp/f.onnx --back /tmp/b.onnx
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
from onnx import numpy_helper, shape_inference

ELEM_BYTES = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.UINT8: 1, onnx.TensorProto.INT8: 1,
              onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.INT32: 4, onnx.TensorProto.INT64: 8}


def session(model, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def tensor_info(model):
    """name -> (elem_type, dims) for every typed tensor after shape inference."""
    inferred = shape_inference.infer_shapes(model)
    g = inferred.graph
    info = {}
    for v in list(g.input) + list(g.value_info) + list(g.output):
        t = v.type.tensor_type
        info[v.name] = (t.elem_type, [d.dim_value if d.HasField("dim_value") else d.dim_param
                                      for d in t.shape.dim])
    return info


def constant_value(graph, name):
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def quant_params(graph, tensor):
    """(scale, zero_point) of an 8-bit tensor, from the QuantizeLinear that produces it or a
    DequantizeLinear that consumes it; None for tensors that are not quantized."""
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0] == tensor:
            s, z = node.input[1], node.input[2] if len(node.input) > 2 else None
        elif node.op_type == "DequantizeLinear" and node.input[0] == tensor:
            s, z = node.input[1], node.input[2] if len(node.input) > 2 else None
        else:
            continue
        scale = constant_value(graph, s)
        zero = constant_value(graph, z) if z else np.array(0)
        if scale is not None and scale.size == 1:
            return float(scale.reshape(())), int(zero.reshape(()))
        return {"per_axis_scale": scale.tolist() if scale is not None else None}
    return None


def extract(model_path, inputs, outputs, path):
    onnx.utils.extract_model(model_path, path, inputs, outputs, check_model=True)
    return onnx.load(path)


def make_input(sess, args):
    feeds = {}
    for i in sess.get_inputs():
        if args.image:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import convert_models as cm

            with open(args.profile) as f:
                profile = json.load(f)
            rgb = cm.load_rgb(args.image)
            if profile["input"]["dtype"] == "u8":
                feeds[i.name] = cm.ssd_input(rgb, profile)
            else:
                feeds[i.name] = cm.nanodet_input(rgb, profile)
            continue
        rng = np.random.default_rng(args.seed)
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if i.type == "tensor(uint8)":
            feeds[i.name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        else:
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def run_split(front, back, feeds, out_names):
    fs = session(front)
    mid = dict(zip([o.name for o in fs.get_outputs()], fs.run(None, feeds)))
    bs = session(back)
    back_feeds = {}
    for i in bs.get_inputs():
        back_feeds[i.name] = mid[i.name] if i.name in mid else feeds[i.name]
    res = dict(zip([o.name for o in bs.get_outputs()], bs.run(None, back_feeds)))
    return [res[n] for n in out_names], mid


def compare(full, split, names):
    report = {}
    ok = True
    for n, a, b in zip(names, full, split):
        same = a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
        ok &= bool(same)
        report[n] = {"identical": bool(same),
                     "max_abs_diff": float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                     if a.shape == b.shape else None}
    return ok, report


def node_signature(model):
    # Nodes are identified by their outputs (unique in a valid graph) and op type.
    return sorted((n.op_type, tuple(n.output)) for n in model.graph.node)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--cut", required=True, action="append",
                    help="cut tensor name (repeat or comma-separate for multi-tensor cuts)")
    ap.add_argument("--front", help="front model from another splitter to compare")
    ap.add_argument("--back", help="back model from another splitter to compare")
    ap.add_argument("--save-front", help="write onnx's front model here")
    ap.add_argument("--save-back", help="write onnx's back model here")
    ap.add_argument("--image", help="image to feed (needs --profile)")
    ap.add_argument("--profile", help="profile JSON for --image preprocessing")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cut = [c for arg in args.cut for c in arg.split(",") if c]

    model = onnx.load(args.model)
    g = model.graph
    init_names = {i.name for i in g.initializer}
    graph_inputs = [i.name for i in g.input if i.name not in init_names]
    graph_outputs = [o.name for o in g.output]
    info = tensor_info(model)
    produced = {o for n in g.node for o in n.output}
    unknown = [c for c in cut if c not in produced and c not in graph_inputs]
    if unknown:
        print(json.dumps({"ok": False, "error": f"unknown tensor(s): {unknown}"}))
        return 1

    result = {"model": args.model, "cut": cut, "ok": True, "tensors": {}}
    for c in cut:
        et, dims = info.get(c, (0, []))
        elems = int(np.prod(dims)) if dims and all(isinstance(d, int) for d in dims) else None
        result["tensors"][c] = {
            "dtype": onnx.TensorProto.DataType.Name(et) if et else None,
            "shape": dims,
            "bytes_per_frame": elems * ELEM_BYTES.get(et, 0) if elems else None,
            "quant": quant_params(g, c),
        }

    tmp = tempfile.mkdtemp()
    front_path = args.save_front or os.path.join(tmp, "front.onnx")
    back_path = args.save_back or os.path.join(tmp, "back.onnx")
    try:
        ref_front = extract(args.model, graph_inputs, cut, front_path)
        ref_back = extract(args.model, cut, graph_outputs, back_path)
    except Exception as e:  # onnx raises several types for a cut that does not separate the graph
        result.update(ok=False, error=f"onnx.utils.extract_model failed: {e}")
        print(json.dumps(result, indent=2))
        return 1
    result["onnx_split"] = {"front_nodes": len(ref_front.graph.node), "back_nodes": len(ref_back.graph.node),
                            "full_nodes": len(g.node)}
    # Informational: nodes both halves need (constants, typically) and nodes neither needs (dead).
    front_sig, back_sig = set(node_signature(ref_front)), set(node_signature(ref_back))
    result["onnx_split"]["shared_nodes"] = sorted(op for op, _ in front_sig & back_sig)
    result["onnx_split"]["unused_nodes"] = len(set(node_signature(model)) - front_sig - back_sig)

    full_sess = session(model)
    feeds = make_input(full_sess, args)
    full = full_sess.run(graph_outputs, feeds)
    split, _ = run_split(ref_front, ref_back, feeds, graph_outputs)
    ok, rep = compare(full, split, graph_outputs)
    result["onnx_split"]["outputs"] = rep
    result["onnx_split"]["identical"] = ok
    result["ok"] &= ok

    if args.front or args.back:
        if not (args.front and args.back):
            ap.error("--front and --back go together")
        other_front, other_back = onnx.load(args.front), onnx.load(args.back)
        cmp = {
            "front_same_nodes": node_signature(other_front) == node_signature(ref_front),
            "back_same_nodes": node_signature(other_back) == node_signature(ref_back),
            "front_outputs": [o.name for o in other_front.graph.output],
            "back_inputs": [i.name for i in other_back.graph.input
                            if i.name not in {x.name for x in other_back.graph.initializer}],
        }
        try:
            onnx.checker.check_model(other_front)
            onnx.checker.check_model(other_back)
            cmp["checker"] = True
        except Exception as e:
            cmp["checker"] = f"{e}"
        other, _ = run_split(other_front, other_back, feeds, graph_outputs)
        ok2, rep2 = compare(full, other, graph_outputs)
        cmp["outputs"] = rep2
        cmp["identical"] = ok2
        result["other_split"] = cmp
        result["ok"] &= ok2 and cmp["front_same_nodes"] and cmp["back_same_nodes"] and cmp["checker"] is True

    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
