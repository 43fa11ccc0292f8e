"""SSIM and MSE of each case with scikit-image (the reference of fmap_eval::correlation).

Usage: python ssim_reference.py cases.json   -> prints [{"ssim": s, "mse": m}, ...]
cases.json: {"cases": [
  {"kind": "plane", "width": W, "height": H, "a": [...], "b": [...], "data_range": R},
  {"kind": "tensor", "shape": [C, H, W], "a": [...], "b": [...]},
  {"kind": "tensor_u8", "shape": [C, H, W], "a": [codes], "b": [codes],
   "scale": s, "zero_point": z},
  {"kind": "gray", "width": W, "height": H, "a": [u8], "b": [u8]}]}
Values are row-major. Float values are float32 numbers written exactly; everything is computed
in float64, as the Rust code does. Tensors use one data range for all channels: max - min over
the finite values of both tensors (SSIM 1 when it is 0).
"""
import json
import sys

import numpy as np
from skimage.metrics import mean_squared_error, structural_similarity


def ssim(a, b, data_range, channel_axis=None):
    return float(structural_similarity(a, b, data_range=data_range, channel_axis=channel_axis,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def tensor_range(a, b):
    v = np.concatenate([a.ravel(), b.ravel()])
    v = v[np.isfinite(v)]
    return float(v.max()) - float(v.min())


out = []
for case in json.load(open(sys.argv[1]))["cases"]:
    kind = case["kind"]
    if kind == "plane":
        shape = (case["height"], case["width"])
        a = np.asarray(case["a"], dtype=np.float32).astype(np.float64).reshape(shape)
        b = np.asarray(case["b"], dtype=np.float32).astype(np.float64).reshape(shape)
        s = ssim(a, b, case["data_range"])
    elif kind in ("tensor", "tensor_u8"):
        shape = tuple(case["shape"])
        if kind == "tensor":
            a = np.asarray(case["a"], dtype=np.float32)
            b = np.asarray(case["b"], dtype=np.float32)
        else:
            # codec_core's dequantization: ((code - zero_point) as f32) * scale, in float32.
            scale, zp = np.float32(case["scale"]), case["zero_point"]
            a = (np.asarray(case["a"], dtype=np.int32) - zp).astype(np.float32) * scale
            b = (np.asarray(case["b"], dtype=np.int32) - zp).astype(np.float32) * scale
        a = a.astype(np.float64).reshape(shape)
        b = b.astype(np.float64).reshape(shape)
        r = tensor_range(a, b)
        s = 1.0 if r == 0 else ssim(a, b, r, channel_axis=0)
    elif kind == "gray":
        shape = (case["height"], case["width"])
        a = np.asarray(case["a"], dtype=np.uint8).reshape(shape)
        b = np.asarray(case["b"], dtype=np.uint8).reshape(shape)
        s = ssim(a, b, 255)
    else:
        raise SystemExit(f"unknown case kind {kind!r}")
    out.append({"ssim": s, "mse": float(mean_squared_error(a, b))})
print(json.dumps(out))
