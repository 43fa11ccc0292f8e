#!/usr/bin/env bash
# Regenerates the rate–accuracy report docs/results.md (and its plots and raw numbers in
# docs/results/): builds the elements and fmap-eval in release, runs fmap-eval once on NanoDet
# (split stage2; SPLITS adds more) and SSD (its profile's default split) with the thesis's
# settings and the adaptive mode's ladder,
# the tiled-mosaic method, the cloud-only video anchors and the correlation analysis (all jobs
# on one queue, one per CPU; the source-size video anchors are coded once for both models),
# then plots and writes the tables (BD-rates, lowest rates meeting the bars). Last, it times
# the codec alone (`codec-core/examples/speed.rs`: the synthetic [256, 200, 272] stream and
# NanoDet stage2 maps recorded from the clip and from its panning crop), alone on the machine.
#
# Environment knobs (defaults in brackets):
#   FRAMES    frames from the start of vtest.avi, 0 = all 795        [0]
#   SETTINGS  fmapenc settings: quick | full | ablation              [full]
#   SPLITS    NanoDet splits, space-separated (e.g. "stage2 backbone") [stage2]
#   ABLATION_FRAMES  frames of the ablation of the adaptive mode's levers, none = skip [300]
#   ANCHORS   anchor ladder: quick | full                            [full]
#   JOBS      measurements run in parallel                           [number of CPUs]
#   OUT       directory of the raw results                           [out/report]
#   CODEC_SPEED_FRAMES  frames of the synthetic stream timed, none = skip the timing [24]
#   SKIP_BUILD=1   use the already built plugin, fmap-eval and speed example
#   REPORT_ONLY=1  only redo plots and docs/results.md from $OUT
#   SPEED_ONLY=1   only redo the codec timing, then plots and docs/results.md from $OUT
#   PLUGIN_TARGET / EVAL_TARGET   cargo target dirs                  [<root>/target]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
source .cache/env.sh
FRAMES="${FRAMES:-0}"
ABLATION_FRAMES="${ABLATION_FRAMES:-300}"
CODEC_SPEED_FRAMES="${CODEC_SPEED_FRAMES:-24}"
SETTINGS="${SETTINGS:-full}"
ANCHORS="${ANCHORS:-full}"
JOBS="${JOBS:-$(nproc)}"
OUT="${OUT:-out/report}"
PLUGIN_TARGET="${PLUGIN_TARGET:-$root/target}"
EVAL_TARGET="${EVAL_TARGET:-$root/target}"
export GST_PLUGIN_PATH="$PLUGIN_TARGET/release"
say() { echo "eval-report: $*" >&2; }
models=(nanodet ssd_mobilenet_v2_coco_quant)

if [ "${SKIP_BUILD:-0}" != 1 ] && [ "${REPORT_ONLY:-0}" != 1 ]; then
  CARGO_TARGET_DIR="$PLUGIN_TARGET" cargo build --release -p gst-fmap
  CARGO_TARGET_DIR="$EVAL_TARGET" cargo build --release -p fmap-eval
  CARGO_TARGET_DIR="$EVAL_TARGET" cargo build --release -p codec-core --example speed
fi
eval_bin="$EVAL_TARGET/release/fmap-eval"

# Times the codec alone into $OUT/speed.json (what docs/results.md's speed section shows), on
# NanoDet maps of the clip and of its panning crop (scripts/make-pan.sh; moving content costs
# the motion search most).
codec_speed() {
  local pan="$FMAP_FOOTAGE/pan.mkv"
  [ -f "$pan" ] || scripts/make-pan.sh "$pan" >&2
  scripts/record-maps.sh 40 models/nanodet.onnx stage2 "$OUT/speed/vtest" >&2
  scripts/record-maps.sh 40 models/nanodet.onnx stage2 "$OUT/speed/pan" "$pan" >&2
  say "timing the codec (codec-core/examples/speed.rs)"
  SPEED_JSON="$OUT/speed.json" "$EVAL_TARGET/release/examples/speed" "$CODEC_SPEED_FRAMES" \
    "$OUT/speed/vtest" "$OUT/speed/pan" >&2
  sed -i '/^speed_/d' "$OUT/env.txt"
  echo "speed_git_commit=$(git rev-parse HEAD)$(git diff --quiet -- codec-core || echo ' (codec-core has uncommitted changes)') speed_date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ) speed_load_before=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/env.txt"
}

if [ "${SPEED_ONLY:-0}" = 1 ]; then
  codec_speed
elif [ "${REPORT_ONLY:-0}" != 1 ]; then
  mkdir -p "$OUT"
  split_args=()
  for s in ${SPLITS:-stage2}; do split_args+=(--split "$s"); done
  cmd=("$eval_bin" --model models/nanodet.onnx "${split_args[@]}"
    --model models/ssd_mobilenet_v2_coco_quant.onnx
    --frames "$FRAMES" --settings "$SETTINGS" --tiling --anchors "$ANCHORS" --correlation
    --jobs "$JOBS" --threads 1 --out "$OUT")
  echo "GST_PLUGIN_PATH=$GST_PLUGIN_PATH ${cmd[*]}" > "$OUT/commands.txt"
  {
    echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git_commit=$(git rev-parse HEAD)$(git diff --quiet -- eval scripts/eval-report.sh || echo ' (eval/ has uncommitted changes)')"
    echo "gstreamer=$(gst-launch-1.0 --version | sed -n 2p)"
    echo "onnxruntime=$(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)')"
    echo "x264enc=$(gst-inspect-1.0 x264enc | awk '/^  Version/ {print $2}')"
    echo "x265enc=$(gst-inspect-1.0 x265enc | awk '/^  Version/ {print $2}')"
    echo "video=$FMAP_FOOTAGE/vtest.avi ($(sha256sum "$FMAP_FOOTAGE/vtest.avi" | cut -c1-16))"
    echo "frames=$FRAMES settings=$SETTINGS anchors=$ANCHORS jobs=$JOBS"
    echo "cpus=$(nproc) cpu=\"$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)\" load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  } > "$OUT/env.txt"
  t0=$(date +%s)
  say "running fmap-eval (progress below; full log: $OUT/fmap-eval.log)"
  if ! "${cmd[@]}" 2>&1 | tee "$OUT/fmap-eval.log" | grep --line-buffered -E '^  \[|^fmap-eval|: wrote|reference'; then
    say "fmap-eval failed, see $OUT/fmap-eval.log"
    exit 1
  fi
  echo "wall_seconds=$(( $(date +%s) - t0 ))" >> "$OUT/env.txt"
  if [ "$ABLATION_FRAMES" != none ]; then
    # The adaptive mode's levers, each turned off (NanoDet stage2).
    ablation=("$eval_bin" --model models/nanodet.onnx --split stage2 --frames "$ABLATION_FRAMES"
      --settings ablation --jobs "$JOBS" --threads 1 --out "$OUT/ablation/nanodet")
    echo "GST_PLUGIN_PATH=$GST_PLUGIN_PATH ${ablation[*]}" >> "$OUT/commands.txt"
    say "running the ablation (full log: $OUT/ablation.log)"
    t0=$(date +%s)
    if ! "${ablation[@]}" > "$OUT/ablation.log" 2>&1; then
      say "the ablation failed, see $OUT/ablation.log"
      exit 1
    fi
    echo "ablation_wall_seconds=$(( $(date +%s) - t0 ))" >> "$OUT/env.txt"
  fi
  if [ "$CODEC_SPEED_FRAMES" != none ]; then codec_speed; fi
fi

runs=()
for m in "${models[@]}"; do runs+=("$OUT/$m"); done
ablation_runs=()
[ -d "$OUT/ablation/nanodet" ] && [ "$ABLATION_FRAMES" != none ] && ablation_runs=(--ablation "$OUT/ablation/nanodet")
speed_json=()
[ -f "$OUT/speed.json" ] && [ "$CODEC_SPEED_FRAMES" != none ] && speed_json=(--speed "$OUT/speed.json")
.venv/bin/python eval/plot.py --runs "${runs[@]}" "${ablation_runs[@]}" "${speed_json[@]}" --env "$OUT/env.txt" \
  --commands "$OUT/commands.txt" --plots docs/results --markdown docs/results.md
# The raw numbers behind the tables, next to the plots ($OUT is not versioned).
[ ${#ablation_runs[@]} -gt 0 ] && cp "$OUT/ablation/nanodet/summary.json" docs/results/nanodet_ablation_summary.json \
  && cp "$OUT/ablation/nanodet/results.json" docs/results/nanodet_ablation_results.json
for run in "${models[@]}"; do
  for f in results.json results.csv anchors.json summary.json correlation.json run.json; do
    if [ -f "$OUT/$run/$f" ]; then cp "$OUT/$run/$f" "docs/results/${run%%_*}_$f"; fi
  done
done
cp "$OUT/env.txt" "$OUT/commands.txt" docs/results/
[ ${#speed_json[@]} -gt 0 ] && cp "$OUT/speed.json" docs/results/codec_speed.json
say "wrote docs/results.md"
