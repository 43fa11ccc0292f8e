"""Scores detections with pycocotools' COCOeval; prints {class_id: [AP at each IoU threshold]}.

Usage: python pycoco_reference.py scenario.json
scenario.json: {"images": [{"reference": [[class, x1, y1, x2, y2], ...],
                            "detections": [[class, score, x1, y1, x2, y2], ...]}, ...]}
"""
import contextlib
import io
import json
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

scenario = json.load(open(sys.argv[1]))
images, annotations, results, classes = [], [], [], set()
for image_id, im in enumerate(scenario["images"], start=1):
    images.append({"id": image_id, "width": 10000, "height": 10000})
    for c, x1, y1, x2, y2 in im["reference"]:
        classes.add(c)
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": c,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                            "iscrowd": 0})
    for c, s, x1, y1, x2, y2 in im["detections"]:
        results.append({"image_id": image_id, "category_id": c, "score": s,
                        "bbox": [x1, y1, x2 - x1, y2 - y1]})

with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": c, "name": str(c)} for c in sorted(classes)]}
    gt.createIndex()
    dt = gt.loadRes(results) if results else COCO()
    ev = COCOeval(gt, dt, "bbox")
    ev.evaluate()
    ev.accumulate()
# precision[T, R, K, A, M]: area range 0 = all, max-dets index 2 = 100.
precision = ev.eval["precision"][:, :, :, 0, 2]
out = {}
for k, c in enumerate(ev.params.catIds):
    per_t = []
    for t in range(precision.shape[0]):
        p = precision[t, :, k]
        per_t.append(float(np.mean(p)) if (p > -1).any() else 0.0)
    out[str(c)] = per_t
print(json.dumps(out))
