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
# RTCP=1: lost packets are asked for again by RTCP NACK; as the edge), RTCP_BANDWIDTH [32000]
# (with RTCP=1: the bits/s that space the server's RTCP, see common.sh), LOSS [0] (drop this
# fraction of received RTP packets, to try lossy links), FMAPDEC_EXTRA [] (more fmapdec
# properties, e.g. channel-transform=models/nanodet.stage2.calib.json when the edge's
# FMAPENC_EXTRA sets the same channel-transform), FEC [0] (the edge's FEC: rebuild lost packets
# from its ULPFEC packets, see common.sh), PORTS [PORT] (several cameras at once, one
# port each, e.g. "5000 5010": camera i's detections go to OUT with .camera<i> before .jsonl,
# its RTCP uses port+1 and port+3 with EDGE_HOSTS [EDGE_HOST for all] (a list in the same
# order), its returned detections go to RETURN_HOSTS [RETURN_HOST for all] at port+2; each
# camera has its own decoder and back network), SRTP_KEY [unset: no encryption] (60 hex
# digits, the edge's SRTP_KEY: srtpdec checks and decrypts every packet, with the key in the
# udpsrc caps for the edge's SSRC [1718444400; with PORTS, camera i's is SSRC + 2i]; with
# RTCP=1 its RTCP is SRTCP, see common.sh), SRTP_FAIL_LIMIT [20] (with SRTP_KEY: after this many packets failed authentication with no detection written,
# the server prints "SRTP authentication failed for N packets: the key does not match the
# sender's", stops and exits with status 1; with several cameras, the error names the camera and
# the server stops once every camera has failed).
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

# camera_pipeline <name suffix> <port> <out> <edge host> <rtcp port> <rtcp back port>
#                 <return host> <return port> <ssrc>: the receiving, decoding and inference
# branch of one camera (<ssrc>: the edge's, for SRTP and FEC). The unbounded queue decouples
# the network thread from inference, so a slow frame never makes the socket overflow.
camera_pipeline() {
    local n="$1" port="$2" out="$3" edge_host="$4" rtcp_port="$5" rtcp_back="$6"
    local return_host="$7" return_port="$8" ssrc="$9" receive
    if [[ "$RTCP" == "1" ]]; then
        # rtpbin (jitterbuffer included) sends fmapdec's key-unit requests to the edge as RTCP
        # PLI (and, with RTX=1, NACKs for lost packets).
        local rtx="" caps="$UNIT_RTP_CAPS,rtcp-fb-nack-pli=(boolean)true" decrypt=""
        local rtcp_in="udpsrc port=$rtcp_port ! rtp$n.recv_rtcp_sink_0"
        local rtcp_out="rtp$n.send_rtcp_src_0"
        [[ "$RTX" == "1" ]] && rtx=" do-retransmission=true rtp-profile=avpf"
        if [[ -n "$SRTP_KEY" ]]; then
            caps="$(srtp_caps "$caps" "$ssrc")"
            decrypt=" ! $SRTP_DEC name=srtpdec$n"
            rtcp_in="$(srtcp_in "$rtcp_port" "srtcpdec$n" "rtp$n.recv_rtcp_sink_0")"
            rtcp_out="$(srtcp_out "srtcpenc$n" "rtp$n.send_rtcp_src_0")"
        fi
        # rtpbin's session is rtpsession<k> for the k-th rtpbin of the pipeline (GStreamer's
        # default names): RTCP_BANDWIDTH is set on it as a child property.
        receive="rtpbin name=rtp$n latency=$JITTER_MS$rtx \
 rtpsession${n:-0}::rtcp-fraction=$((10#$RTCP_BANDWIDTH)).0 \
 udpsrc port=$port buffer-size=4194304 caps=\"$caps\"$drop$decrypt ! rtp$n.recv_rtp_sink_0 \
 $rtcp_in \
 $rtcp_out ! udpsink host=$edge_host port=$rtcp_back sync=false async=false \
 rtp$n. ! $UNIT_DEPAY"
    else
        local caps="$UNIT_RTP_CAPS" decrypt="" jitter="rtpjitterbuffer latency=$JITTER_MS"
        if [[ -n "$SRTP_KEY" ]]; then
            # srtpdec drops what fails authentication; launch_checking_srtp makes that an error.
            caps="$(srtp_caps "$UNIT_RTP_CAPS" "$ssrc")"
            decrypt=" ! $SRTP_DEC name=srtpdec$n"
        fi
        if ((10#$FEC > 0)); then
            [[ -z "$SRTP_KEY" ]] && caps+=",ssrc=(uint)$ssrc"
            jitter="rtpstorage size-time=$(((JITTER_MS + 50) * 1000000)) \
 ! rtpjitterbuffer do-lost=true latency=$JITTER_MS ! rtpulpfecdec pt=$FEC_PT"
        fi
        receive="udpsrc port=$port buffer-size=4194304 caps=\"$caps\"$drop$decrypt \
 ! $jitter ! $UNIT_DEPAY"
    fi
    local branch="$receive \
 ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 \
 ! fmapdec name=dec$n $FMAPDEC_EXTRA ! splitinfer-back $(back_props) ! tee name=detections$n \
 detections$n. ! queue ! filesink location=\"$out\" buffer-mode=unbuffered"
    if [[ -n "$return_host" ]]; then
        local return_pay="rtpgstpay config-interval=1"
        [[ -n "$SRTP_KEY" ]] && return_pay+=" ssrc=$(return_ssrc "$ssrc") ! $SRTP_ENC"
        branch+=" detections$n. ! queue ! $return_pay \
 ! udpsink host=$return_host port=$return_port sync=false"
    fi
    printf '%s' "$branch"
}

# Several cameras (PORTS="5000 5010 ..."): one branch each, told apart by port. With SRTP_KEY,
# camera i's edge sends with SSRC + 2i (SSRC for the first camera; the returned detections
# use the next number): one key must never protect two streams with the same SSRC.
read -ra ports <<<"${PORTS:-$PORT}"
# For launch_checking_srtp: each camera's port, SSRC and detections file.
SRTP_CAMERA_PORTS=() SRTP_CAMERA_SSRCS=() SRTP_CAMERA_OUTS=()
if ((${#ports[@]} == 1)); then
    pipeline="$(camera_pipeline "" "${ports[0]}" "$OUT" "$EDGE_HOST" "$RTCP_PORT" \
        "$RTCP_BACK_PORT" "$RETURN_HOST" "$RETURN_PORT" "$SSRC")"
    SRTP_CAMERA_PORTS=("${ports[0]}") SRTP_CAMERA_SSRCS=("$SSRC") SRTP_CAMERA_OUTS=("$OUT")
else
    read -ra edge_hosts <<<"${EDGE_HOSTS:-}"
    read -ra return_hosts <<<"${RETURN_HOSTS:-}"
    pipeline=""
    for i in "${!ports[@]}"; do
        p="${ports[$i]}"
        if [[ ! "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65532)); then
            echo "PORTS: '$p' is not a UDP port (1-65532)" >&2
            exit 1
        fi
        rhost="${return_hosts[$i]:-$RETURN_HOST}"
        ssrc="$SSRC"
        if [[ -n "$SRTP_KEY" ]]; then
            ssrc=$(camera_ssrc "$i")
            echo "server: camera $i: port $p, SRTP with SSRC $ssrc" \
                "(its edge: PORT=$p SSRC=$ssrc SRTP_KEY=<the same key>)" >&2
        fi
        out_i="${OUT%.jsonl}.camera$i.jsonl"
        pipeline+=" $(camera_pipeline "$i" "$p" "$out_i" "${edge_hosts[$i]:-$EDGE_HOST}" \
            $((p + 1)) $((p + 3)) "$rhost" $((p + 2)) "$ssrc")"
        SRTP_CAMERA_PORTS+=("$p") SRTP_CAMERA_SSRCS+=("$ssrc") SRTP_CAMERA_OUTS+=("$out_i")
    done
fi
if [[ -n "$SRTP_KEY" ]]; then
    launch_checking_srtp "$pipeline"
fi
launch "$pipeline"
