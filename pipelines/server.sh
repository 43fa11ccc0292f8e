#!/usr/bin/env bash
# The server: RTP/UDP -> feature-map decoder -> rest of the network -> detections, written as
# JSON lines and (optionally) sent back over RTP to the edge. Runs until Ctrl-C (which ends
# the stream cleanly: EOS, files complete).
#
#   pipelines/server.sh
#
# Environment (defaults in brackets): PORT [5000] (where the edge sends), MODEL
# [models/nanodet.onnx], OUT
# [detections.jsonl], RETURN_HOST [unset: no return stream] and RETURN_PORT [5002] (where to
# send detections over RTP), JITTER_MS [200] (rtpjitterbuffer latency), PAYLOAD [gst] (gst:
# rtpgstdepay; fmap: rtpfmapdepay; as the edge), RTCP [0] (1: through rtpbin, sending RTCP
# with fmapdec's key-unit requests as PLI to EDGE_HOST [127.0.0.1]; as the edge), LOSS [0] (drop this
# fraction of received RTP packets, to try lossy links), FMAPDEC_EXTRA [] (more fmapdec
# properties, e.g. channel-transform=models/nanodet.stage2.calib.json when the edge's
# FMAPENC_EXTRA sets the same channel-transform).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="${OUT:-detections.jsonl}"
RETURN_HOST="${RETURN_HOST:-}"
RETURN_PORT="${RETURN_PORT:-5002}"
JITTER_MS="${JITTER_MS:-200}"
LOSS="${LOSS:-0}"
FMAPDEC_EXTRA="${FMAPDEC_EXTRA:-}"
drop=""
[[ "$LOSS" != "0" ]] && drop=" ! identity drop-probability=$LOSS"

# The unbounded queue decouples the network thread from inference, so a slow frame never
# makes the socket overflow.
if [[ "$RTCP" == "1" ]]; then
    # rtpbin (jitterbuffer included) sends fmapdec's key-unit requests to the edge as RTCP PLI.
    receive="rtpbin name=rtp latency=$JITTER_MS \
 udpsrc port=$PORT buffer-size=4194304 \
 caps=\"$UNIT_RTP_CAPS,rtcp-fb-nack-pli=(boolean)true\"$drop ! rtp.recv_rtp_sink_0 \
 udpsrc port=$RTCP_PORT ! rtp.recv_rtcp_sink_0 \
 rtp.send_rtcp_src_0 ! udpsink host=$EDGE_HOST port=$RTCP_BACK_PORT sync=false async=false \
 rtp. ! $UNIT_DEPAY"
else
    receive="udpsrc port=$PORT buffer-size=4194304 caps=\"$UNIT_RTP_CAPS\"$drop \
 ! rtpjitterbuffer latency=$JITTER_MS ! $UNIT_DEPAY"
fi
pipeline="$receive \
 ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 \
 ! fmapdec name=dec $FMAPDEC_EXTRA ! splitinfer-back $(back_props) ! tee name=detections \
 detections. ! queue ! filesink location=\"$OUT\" buffer-mode=unbuffered"
if [[ -n "$RETURN_HOST" ]]; then
    pipeline+=" detections. ! queue ! rtpgstpay config-interval=1 \
 ! udpsink host=$RETURN_HOST port=$RETURN_PORT sync=false"
fi
launch "$pipeline"
