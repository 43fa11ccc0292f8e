#!/usr/bin/env bash
# Regenerates the rate–accuracy report docs/results.md (and its plots in docs/results/):
# builds the elements and fmap-eval in release, runs fmap-eval on NanoDet (splits stage2 and
# backbone) and SSD (its profile's default split) with the tiled-mosaic method and the cloud-only
# video anchors, then plots and writes the tables (BD-rates, lowest rates meeting the bars).
#
# Environment knobs (defaults in brackets):
#   FRAMES    frames from the start of vtest.avi, 0 = all 795        [0]
#   SETTINGS  fmapenc settings: quick | full                         [quick]
#   ANCHORS   anchor ladder: quick | full                            [quick]
#   OUT       directory of the raw results                           [out/report]
#   SKIP_BUILD=1   use the already built plugin and fmap-eval
#   REPORT_ONLY=1  only redo plots and docs/results.md from $OUT
#   PLUGIN_TARGET / EVAL_TARGET   cargo target dirs                  [<root>/target]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
source .cache/env.sh
FRAMES="${FRAMES:-0}"
SETTINGS="${SETTINGS:-quick}"
ANCHORS="${ANCHORS:-quick}"
OUT="${OUT:-out/report}"
PLUGIN_TARGET="${PLUGIN_TARGET:-$root/target}"
EVAL_TARGET="${EVAL_TARGET:-$root/target}"
export GST_PLUGIN_PATH="$PLUGIN_TARGET/release"
say() { echo "eval-report: $*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ] && [ "${REPORT_ONLY:-0}" != 1 ]; then
  CARGO_TARGET_DIR="$PLUGIN_TARGET" cargo build --release -p gst-fmap
  CARGO_TARGET_DIR="$EVAL_TARGET" cargo build --release -p fmap-eval
fi
eval_bin="$EVAL_TARGET/release/fmap-eval"

if [ "${REPORT_ONLY:-0}" != 1 ]; then
  mkdir -p "$OUT"
  ssd_split="$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["default_split"])' \
    models/ssd_mobilenet_v2_coco_quant.profile.json)"
  # The two models run side by side, one inference thread each (2 cores).
  cmd_nanodet=("$eval_bin" --model models/nanodet.onnx --split stage2 --split backbone
    --frames "$FRAMES" --settings "$SETTINGS" --tiling --anchors "$ANCHORS" --threads 1
    --out "$OUT/nanodet")
  cmd_ssd=("$eval_bin" --model models/ssd_mobilenet_v2_coco_quant.onnx --split "$ssd_split"
    --frames "$FRAMES" --settings "$SETTINGS" --tiling --anchors "$ANCHORS" --threads 1
    --out "$OUT/ssd")
  {
    echo "GST_PLUGIN_PATH=$GST_PLUGIN_PATH ${cmd_nanodet[*]}"
    echo "GST_PLUGIN_PATH=$GST_PLUGIN_PATH ${cmd_ssd[*]}"
  } > "$OUT/commands.txt"
  {
    echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git_commit=$(git rev-parse HEAD)$(git diff --quiet -- eval scripts/eval-report.sh || echo ' (eval/ has uncommitted changes)')"
    echo "gstreamer=$(gst-launch-1.0 --version | sed -n 2p)"
    echo "onnxruntime=$(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)')"
    echo "x264enc=$(gst-inspect-1.0 x264enc | awk '/^  Version/ {print $2}')"
    echo "x265enc=$(gst-inspect-1.0 x265enc | awk '/^  Version/ {print $2}')"
    echo "video=$FMAP_FOOTAGE/vtest.avi ($(sha256sum "$FMAP_FOOTAGE/vtest.avi" | cut -c1-16))"
    echo "frames=$FRAMES settings=$SETTINGS anchors=$ANCHORS"
    echo "cpus=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
  } > "$OUT/env.txt"
  t0=$(date +%s)
  say "running NanoDet and SSD (logs in $OUT/*.log)"
  "${cmd_nanodet[@]}" > "$OUT/nanodet.log" 2>&1 &
  p1=$!
  "${cmd_ssd[@]}" > "$OUT/ssd.log" 2>&1 &
  p2=$!
  status=0
  wait "$p1" || { say "NanoDet run failed, see $OUT/nanodet.log"; status=1; }
  wait "$p2" || { say "SSD run failed, see $OUT/ssd.log"; status=1; }
  echo "wall_seconds=$(( $(date +%s) - t0 ))" >> "$OUT/env.txt"
  [ "$status" = 0 ] || exit 1
fi

.venv/bin/python eval/plot.py --runs "$OUT/nanodet" "$OUT/ssd" --env "$OUT/env.txt" \
  --commands "$OUT/commands.txt" --plots docs/results --markdown docs/results.md
# The raw numbers behind the tables, next to the plots ($OUT is not versioned).
for run in nanodet ssd; do
  for f in results.json results.csv anchors.json summary.json; do
    [ -f "$OUT/$run/$f" ] && cp "$OUT/$run/$f" "docs/results/${run}_$f"
  done
done
cp "$OUT/env.txt" "$OUT/commands.txt" docs/results/
say "wrote docs/results.md"
