#!/usr/bin/env bash
# The server for pipelines/tile-edge.sh: RTP H.265/H.264 over UDP -> video decoder ->
# fmapuntile (mosaic picture -> feature frames) -> rest of the network -> detections as JSON
# lines. Runs until Ctrl-C (EOS: the file is complete).
#
#   pipelines/tile-server.sh
#
# Environment (defaults in brackets): PORT [5000], MODEL [models/nanodet.onnx], SPLIT [the
# profile's default; must be the edge's], CODEC [h265 | h264], OUT [detections.jsonl],
# JITTER_MS [200] (rtpjitterbuffer latency), BITS [any | 8 | 10] (the code depth to insist on: the
# decoder outputs the stream's own, I420 or I420_10LE, and fmapuntile reads both; 10 makes an
# 8-bit stream fail at negotiation instead of being served), TRANSFORM [none] (the edge's
# calibration file when it tiles principal components; checked against the mosaic's header).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ -n "$SRTP_KEY" ]]; then
    # Refused rather than ignored: the video RTP here would leave in the clear.
    echo "SRTP_KEY is not supported by the tiled path's scripts yet (the mosaic would be sent" \
        "unencrypted): use pipelines/edge.sh and server.sh for encrypted links" >&2
    exit 1
fi

CODEC="${CODEC:-h265}"
OUT="${OUT:-detections.jsonl}"
JITTER_MS="${JITTER_MS:-200}"
BITS="${BITS:-any}"
case "$BITS" in
    any) depth="" ;;
    8) depth=" ! video/x-raw,format=I420" ;;
    10) depth=" ! video/x-raw,format=I420_10LE" ;;
    *) echo "BITS must be any, 8 or 10, not '$BITS'" >&2; exit 1 ;;
esac
case "$CODEC" in
    h265) caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H265,payload=96"
          decoder="rtph265depay ! h265parse ! avdec_h265" ;;
    h264) caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"
          decoder="rtph264depay ! h264parse ! avdec_h264" ;;
    *) echo "CODEC must be h265 or h264, not '$CODEC'" >&2; exit 1 ;;
esac
split=""
[[ -n "$SPLIT" ]] && split="split-at=$SPLIT"
[[ -n "${TRANSFORM:-}" ]] && split="$split channel-transform=\"$TRANSFORM\""

# The unbounded queue decouples the network thread from inference.
launch "udpsrc port=$PORT buffer-size=4194304 caps=\"$caps\" \
 ! rtpjitterbuffer latency=$JITTER_MS ! $decoder$depth \
 ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 \
 ! fmapuntile name=untile model=\"$MODEL\" $split \
 ! splitinfer-back $(back_props) \
 ! filesink location=\"$OUT\" buffer-mode=unbuffered"
