#!/usr/bin/env bash
# Records the cut feature maps of a model on the first N frames of a video, one
# `splitinfer-front` buffer per file (what `cargo bench -p codec-core` and
# `cargo run -p codec-core --example recorded` read).
#   scripts/record-maps.sh [N=60] [MODEL=models/nanodet.onnx] [SPLIT=stage2] [OUT=.cache/maps/nanodet-stage2] [VIDEO]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
frames="${1:-60}"
model="${2:-models/nanodet.onnx}"
split="${3:-stage2}"
out="${4:-.cache/maps/nanodet-stage2}"
video="${5:-.cache/footage/vtest.avi}"
# shellcheck disable=SC1091
source .cache/env.sh
export GST_PLUGIN_PATH="$root/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
[[ -f target/release/libgstfmap.so ]] || cargo build --release -p gst-fmap
rm -rf "$out" && mkdir -p "$out"
# identity eos-after=N+1 on the parsed stream passes exactly N frames (see README, troubleshooting).
gst-launch-1.0 -q filesrc location="$video" ! parsebin ! identity eos-after=$((frames + 1)) \
  ! decodebin ! videoconvert ! video/x-raw,format=BGRx \
  ! splitinfer-front model="$model" split-at="$split" \
  ! multifilesink location="$out/%05d.fmrf"
echo "recorded $(find "$out" -name '*.fmrf' | wc -l) frames of $model at $split into $out"
