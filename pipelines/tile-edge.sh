#!/usr/bin/env bash
# The edge with a standard video codec: video -> front of the network -> fmaptile (feature maps
# as one 8-bit or 10-bit mosaic picture) -> x265enc or x264enc -> RTP H.265/H.264 over UDP. Any
# encoder that takes I420 (I420_10LE for BITS=10) works in their place (a hardware one on a
# camera).
#
#   pipelines/tile-edge.sh [VIDEO_FILE | /dev/videoN]     (default: the sample vtest.avi)
#
# Environment (defaults in brackets): SERVER_HOST [127.0.0.1], PORT [5000], MODEL
# [models/nanodet.onnx], SPLIT [the profile's default; the server needs the same], CODEC
# [h265 | h264], QP [22] (constant quantizer; lower = more bits, closer to the unsplit model),
# KEY_INT [20] (frames between key frames), FRAMES [all], MTU [1400], BITS [8 | 10] (code depth:
# 10 sends I420_10LE pictures, coded as H.265 Main 10 or H.264 High 10; the server needs nothing
# else, its decoder outputs 10-bit pictures), TRANSFORM [none] (a calibration file made by
# `fmap-calibrate --klt`: the mosaic holds the channels' COMPONENTS [64] strongest principal
# components, fewer planes; the server needs the same file as its TRANSFORM), SRTP_KEY [unset:
# no encryption] (as for edge.sh: the video RTP is encrypted and authenticated with srtpenc and
# sent with SSRC [1718444400]; the same key at tile-server.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SOURCE="${1:-${FMAP_FOOTAGE:-$FMAP_ROOT/.cache/footage}/vtest.avi}"
CODEC="${CODEC:-h265}"
QP="${QP:-22}"
KEY_INT="${KEY_INT:-20}"
FRAMES="${FRAMES:-}"
BITS="${BITS:-8}"
TRANSFORM="${TRANSFORM:-}"
COMPONENTS="${COMPONENTS:-64}"
tile_props=""
if [[ -n "$TRANSFORM" ]]; then
    [[ -f "$TRANSFORM" ]] || { echo "TRANSFORM: no such calibration file: $TRANSFORM (make one with fmap-calibrate --klt)" >&2; exit 1; }
    tile_props=" channel-transform=\"$TRANSFORM\" transform-components=$COMPONENTS"
fi
case "$BITS" in
    8) format=I420 ;;
    10) format=I420_10LE ;;
    *) echo "BITS must be 8 or 10, not '$BITS'" >&2; exit 1 ;;
esac

if [[ "$SOURCE" == /dev/video* ]]; then
    src="v4l2src device=$SOURCE${FRAMES:+ num-buffers=$FRAMES} ! videoconvert"
else
    [[ -f "$SOURCE" ]] || { echo "no such video: $SOURCE" >&2; exit 1; }
    src="$(file_source "$SOURCE" "$FRAMES")"
fi
# With SRTP_KEY: the payloader sends with the fixed SSRC, and srtpenc encrypts (common.sh).
pay="config-interval=-1 mtu=$MTU" srtp=""
[[ -n "$SRTP_KEY" ]] && pay+=" ssrc=$SSRC" srtp=" ! $SRTP_ENC"
case "$CODEC" in
    h265) encoder="x265enc tune=zerolatency speed-preset=fast key-int-max=$KEY_INT qp=$QP \
 ! rtph265pay $pay$srtp" ;;
    h264) encoder="x264enc tune=zerolatency speed-preset=fast key-int-max=$KEY_INT pass=quant quantizer=$QP \
 ! rtph264pay $pay$srtp" ;;
    *) echo "CODEC must be h265 or h264, not '$CODEC'" >&2; exit 1 ;;
esac

launch "$src ! video/x-raw,format=BGRx \
 ! splitinfer-front $(front_props) \
 ! fmaptile name=tile$tile_props ! video/x-raw,format=$format \
 ! $encoder \
 ! udpsink host=$SERVER_HOST port=$PORT"
