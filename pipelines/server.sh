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
# with fmapdec's key-unit requests as PLI to EDGE_HOST [127.0.0.1]; as the edge), RTX [0] (1, with
# RTCP=1: lost packets are asked for again by RTCP NACK; as the edge), LOSS [0] (drop this
# fraction of received RTP packets, to try lossy links), FMAPDEC_EXTRA [] (more fmapdec
# properties, e.g. channel-transform=models/nanodet.stage2.calib.json when the edge's
# FMAPENC_EXTRA sets the same channel-transform), SRTP_KEY [unset: no encryption] (60 hex
# digits, the edge's SRTP_KEY: srtpdec checks and decrypts every packet, with the key in the
# udpsrc caps for the edge's SSRC [1718444400]; not with RTCP=1, see common.sh), SRTP_FAIL_LIMIT
# [20] (with SRTP_KEY: after this many packets failed authentication with no detection written,
# the server prints "SRTP authentication failed for N packets: the key does not match the
# sender's", stops and exits with status 1).
#
# With SRTP_KEY=<key> it runs
#   gst-launch-1.0 -e udpsrc port=5000 caps="application/x-srtp,media=application,
#       clock-rate=90000,encoding-name=X-GST,payload=96,ssrc=(uint)1718444400,
#       srtp-key=(buffer)<key>,srtp-cipher=(string)aes-128-icm,srtp-auth=(string)hmac-sha1-80,
#       srtcp-cipher=(string)aes-128-icm,srtcp-auth=(string)hmac-sha1-80" ! srtpdec
#     ! rtpjitterbuffer ! rtpgstdepay ! ... (and srtpenc before the RETURN_HOST udpsink)
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
    rtx=""
    [[ "$RTX" == "1" ]] && rtx=" do-retransmission=true rtp-profile=avpf"
    receive="rtpbin name=rtp latency=$JITTER_MS$rtx \
 udpsrc port=$PORT buffer-size=4194304 \
 caps=\"$UNIT_RTP_CAPS,rtcp-fb-nack-pli=(boolean)true\"$drop ! rtp.recv_rtp_sink_0 \
 udpsrc port=$RTCP_PORT ! rtp.recv_rtcp_sink_0 \
 rtp.send_rtcp_src_0 ! udpsink host=$EDGE_HOST port=$RTCP_BACK_PORT sync=false async=false \
 rtp. ! $UNIT_DEPAY"
elif [[ -n "$SRTP_KEY" ]]; then
    # srtpdec drops what fails authentication; launch_checking_srtp makes that an error.
    receive="udpsrc port=$PORT buffer-size=4194304 caps=\"$(srtp_caps "$UNIT_RTP_CAPS" "$SSRC")\"$drop \
 ! srtpdec ! rtpjitterbuffer latency=$JITTER_MS ! $UNIT_DEPAY"
else
    receive="udpsrc port=$PORT buffer-size=4194304 caps=\"$UNIT_RTP_CAPS\"$drop \
 ! rtpjitterbuffer latency=$JITTER_MS ! $UNIT_DEPAY"
fi
pipeline="$receive \
 ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 \
 ! fmapdec name=dec $FMAPDEC_EXTRA ! splitinfer-back $(back_props) ! tee name=detections \
 detections. ! queue ! filesink location=\"$OUT\" buffer-mode=unbuffered"
if [[ -n "$RETURN_HOST" ]]; then
    return_pay="rtpgstpay config-interval=1"
    [[ -n "$SRTP_KEY" ]] && return_pay+=" ssrc=$RETURN_SSRC ! $SRTP_ENC"
    pipeline+=" detections. ! queue ! $return_pay \
 ! udpsink host=$RETURN_HOST port=$RETURN_PORT sync=false"
fi
if [[ -n "$SRTP_KEY" ]]; then
    launch_checking_srtp "$pipeline"
fi
launch "$pipeline"
