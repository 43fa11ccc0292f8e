#!/usr/bin/env bash
# The edge (camera side): video -> front of the network -> feature-map encoder -> RTP/UDP.
#
#   pipelines/edge.sh [VIDEO_FILE | /dev/videoN]          (default: the sample vtest.avi)
#
# Environment (defaults in brackets): SERVER_HOST [127.0.0.1], PORT [5000], MODEL
# [models/nanodet.onnx], SPLIT [the profile's default], MODE, BITS, ENTROPY,
# KEY_INTERVAL [fmapenc's defaults], FMAPENC_EXTRA [] (more fmapenc properties, e.g.
# "quality=2" or "bitrate=200"),
# FRAMES [all] (stop after this many frames), MTU [1400], PAYLOAD [gst] (gst: rtpgstpay; fmap:
# rtpfmappay, see common.sh), RTCP [0] (1: through rtpbin with RTCP, so the server's key-unit
# requests come back as PLI; ports in common.sh), RTX [0] (1, with RTCP=1 at both ends: lost
# packets are resent when the server's NACK asks, from the last RTX_PACKETS [200]), LOSS [0]
# (drop this fraction of RTP packets before sending, to try lossy links), FEC [0] (ULPFEC
# protection, percent of the stream, without RTCP; see common.sh), RETURN_PORT [unset:
# detections are not received back] with RETURN_FILE [detections-returned.jsonl] and RETURN_IDLE [5] (seconds without new
# detections before the receiver stops, after the video ended), SRTP_KEY [unset: no encryption]
# (60 hex digits = the 30-byte AES-128-ICM master key and salt, e.g. `openssl rand -hex 30`; the
# same at the server: every RTP packet is encrypted and authenticated with srtpenc,
# HMAC-SHA1-80, 10 bytes more per packet, sent with SSRC [1718444400]; the returned detections
# too; with RTCP=1 the server's RTCP is SRTCP, see common.sh; use a new key for every run).
#
# With SRTP_KEY=<key> it runs
#   gst-launch-1.0 -e ... ! fmapenc ! rtpgstpay config-interval=1 mtu=1400 ssrc=1718444400
#     ! srtpenc key=<key> rtp-cipher=aes-128-icm rtp-auth=hmac-sha1-80
#       rtcp-cipher=aes-128-icm rtcp-auth=hmac-sha1-80 ! udpsink host=<server ip> port=5000
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
FRAMES="${FRAMES:-}"
LOSS="${LOSS:-0}"
RETURN_PORT="${RETURN_PORT:-}"

if [[ "$SOURCE" == /dev/video* ]]; then
    src="v4l2src device=$SOURCE${FRAMES:+ num-buffers=$FRAMES} ! videoconvert"
else
    [[ -f "$SOURCE" ]] || { echo "no such video: $SOURCE" >&2; exit 1; }
    src="$(file_source "$SOURCE" "$FRAMES")"
fi
drop=""
[[ "$LOSS" != "0" ]] && drop=" ! identity drop-probability=$LOSS"

pipeline="$src ! video/x-raw,format=BGRx \
 ! splitinfer-front $(front_props) \
 ! fmapenc name=enc$enc_props $FMAPENC_EXTRA \
 ! $UNIT_PAY"
if [[ "$RTCP" == "1" ]]; then
    # rtpbin turns the server's RTCP PLI into a force-key-unit request to fmapenc. The edge
    # sends no RTCP of its own (sender reports only serve lip sync): an RTCP sink would hold
    # the pipeline's end of stream on rtpsession's BYE timing.
    rtx=""
    profile=""
    if [[ "$RTX" == "1" ]]; then
        rtx=" ! rtprtxqueue max-size-packets=$RTX_PACKETS max-size-time=0"
        profile=" rtp-profile=avpf"
    fi
    srtp="" rtcp_in="udpsrc port=$RTCP_BACK_PORT ! rtp.recv_rtcp_sink_0"
    if [[ -n "$SRTP_KEY" ]]; then
        srtp=" ! $SRTP_ENC"
        rtcp_in="$(srtcp_in "$RTCP_BACK_PORT" srtcpdec rtp.recv_rtcp_sink_0)"
    fi
    pipeline="rtpbin name=rtp$profile $pipeline$rtx ! rtp.send_rtp_sink_0 \
 rtp.send_rtp_src_0$drop$srtp ! udpsink host=$SERVER_HOST port=$PORT \
 $rtcp_in"
else
    srtp="" fec=""
    [[ -n "$SRTP_KEY" ]] && srtp=" ! $SRTP_ENC"
    ((10#$FEC > 0)) && fec=" ! rtpulpfecenc pt=$FEC_PT percentage=$FEC"
    pipeline+="$fec$drop$srtp ! udpsink host=$SERVER_HOST port=$PORT"
fi

if [[ -z "${RETURN_PORT}" ]]; then
    launch "$pipeline"
fi

# Detections coming back from the server: a second pipeline, stopped (with EOS) once the video
# has ended and no detection arrived for RETURN_IDLE seconds.
RETURN_FILE="${RETURN_FILE:-detections-returned.jsonl}"
RETURN_IDLE="${RETURN_IDLE:-5}"
return_caps="$RTP_CAPS"
return_srtp=""
if [[ -n "$SRTP_KEY" ]]; then
    return_caps="$(srtp_caps "$RTP_CAPS" "$RETURN_SSRC")"
    return_srtp=" ! srtpdec"
fi
receiver="udpsrc port=$RETURN_PORT caps=\"$return_caps\"$return_srtp ! rtpjitterbuffer ! rtpgstdepay \
 ! filesink location=\"$RETURN_FILE\" buffer-mode=unbuffered sync=false"
echo "gst-launch-1.0 -e $receiver" >&2
eval "exec gst-launch-1.0 -e $receiver" &
receiver_pid=$!
trap 'kill -INT $receiver_pid 2>/dev/null || true' EXIT
echo "gst-launch-1.0 $GST_LAUNCH_FLAGS $pipeline" >&2
status=0
eval "gst-launch-1.0 $GST_LAUNCH_FLAGS $pipeline" || status=$?
size=-1
while [[ "$(stat -c %s "$RETURN_FILE" 2>/dev/null || echo 0)" != "$size" ]]; do
    size="$(stat -c %s "$RETURN_FILE" 2>/dev/null || echo 0)"
    sleep "$RETURN_IDLE"
done
kill -INT "$receiver_pid" 2>/dev/null || true
wait "$receiver_pid" || true
trap - EXIT
exit "$status"
