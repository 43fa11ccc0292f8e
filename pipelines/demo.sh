#!/usr/bin/env bash
# One-machine demo: the whole chain in one pipeline — video -> splitinfer-front -> fmapenc ->
# RTP packets (rtpgstpay ! rtpgstdepay, no socket) -> fmapdec -> splitinfer-back -> detections
# as JSON lines, and the video with boxes drawn by detectoverlay as an MP4 file.
# (For the same chain across a real network, run pipelines/server.sh and pipelines/edge.sh.)
#
#   pipelines/demo.sh [VIDEO_FILE]                         (default: the sample vtest.avi)
#
# Environment (defaults in brackets): MODEL [models/nanodet.onnx], SPLIT [the profile's
# default], MODE, BITS, ENTROPY, KEY_INTERVAL [fmapenc's defaults],
# FMAPENC_EXTRA [], FRAMES [100; "all" for the whole video], MTU [1400], OUT
# [demo-detections.jsonl], VIDEO_OUT [demo-annotated.mp4].
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SOURCE="${1:-${FMAP_FOOTAGE:-$FMAP_ROOT/.cache/footage}/vtest.avi}"
# fmapenc's own defaults unless a setting is given.
enc_props=""
[[ -n "${MODE:-}" ]] && enc_props+=" mode=$MODE"
[[ -n "${BITS:-}" ]] && enc_props+=" bits=$BITS"
[[ -n "${ENTROPY:-}" ]] && enc_props+=" entropy=$ENTROPY"
[[ -n "${KEY_INTERVAL:-}" ]] && enc_props+=" key-interval=$KEY_INTERVAL"
FMAPENC_EXTRA="${FMAPENC_EXTRA:-}"
FRAMES="${FRAMES:-100}"
OUT="${OUT:-demo-detections.jsonl}"
VIDEO_OUT="${VIDEO_OUT:-demo-annotated.mp4}"
[[ -f "$SOURCE" ]] || { echo "no such video: $SOURCE" >&2; exit 1; }
frames=""
[[ "$FRAMES" != "all" ]] && frames="$FRAMES"

# The video queue holds the frames that wait for their detections (the detection branch lags by
# the inference time, plus one frame with MODE=bi).
launch "$(file_source "$SOURCE" "$frames") ! video/x-raw,format=BGRx \
 ! tee name=video \
 video. ! queue max-size-buffers=60 max-size-bytes=0 max-size-time=0 ! overlay.video \
 video. ! queue ! splitinfer-front $(front_props) \
 ! fmapenc name=enc$enc_props $FMAPENC_EXTRA \
 ! rtpgstpay mtu=$MTU ! rtpgstdepay ! fmapdec name=dec \
 ! splitinfer-back $(back_props) ! tee name=detections \
 detections. ! queue ! filesink location=\"$OUT\" buffer-mode=unbuffered \
 detections. ! queue ! overlay.detections \
 detectoverlay name=overlay ! videoconvert ! x264enc speed-preset=ultrafast ! mp4mux \
 ! filesink location=\"$VIDEO_OUT\""
