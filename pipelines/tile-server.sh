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
# calibration file when it tiles principal components; checked against the mosaic's header),
# SRTP_KEY [unset: no encryption] and SRTP_FAIL_LIMIT [20] (as for server.sh: srtpdec checks and
# decrypts every packet of the edge's SSRC [1718444400]; a key that is not the edge's gives no
# detection and an error).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

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

decrypt=""
if [[ -n "$SRTP_KEY" ]]; then
    caps="$(srtp_caps "$caps" "$SSRC")"
    decrypt=" ! $SRTP_DEC name=srtpdec"
fi

# The unbounded queue decouples the network thread from inference.
pipeline="udpsrc port=$PORT buffer-size=4194304 caps=\"$caps\"$decrypt \
 ! rtpjitterbuffer latency=$JITTER_MS ! $decoder$depth \
 ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 \
 ! fmapuntile name=untile model=\"$MODEL\" $split \
 ! splitinfer-back $(back_props) \
 ! filesink location=\"$OUT\" buffer-mode=unbuffered"
if [[ -n "$SRTP_KEY" ]]; then
    # launch_checking_srtp's one camera.
    SRTP_CAMERA_PORTS=("$PORT") SRTP_CAMERA_SSRCS=("$SSRC") SRTP_CAMERA_OUTS=("$OUT")
    launch_checking_srtp "$pipeline"
fi
launch "$pipeline"
