# Shared by edge.sh, server.sh and demo.sh: environment, plugin path, defaults, and `launch`,
# which prints the exact gst-launch-1.0 command line and runs it.
# shellcheck shell=bash

FMAP_ROOT="${FMAP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
if [[ -f "$FMAP_ROOT/.cache/env.sh" ]]; then
    # shellcheck disable=SC1091
    source "$FMAP_ROOT/.cache/env.sh"
fi
export FMAP_ROOT
export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$FMAP_ROOT/target/release}"

if ! gst-inspect-1.0 fmapenc >/dev/null 2>&1; then
    echo "fmap elements not found in GST_PLUGIN_PATH=$GST_PLUGIN_PATH;" \
        "build them with: cargo build --release -p gst-fmap" >&2
    exit 1
fi

# Model and split (see models/*.profile.json for the named split points).
MODEL="${MODEL:-$FMAP_ROOT/models/nanodet.onnx}"
SPLIT="${SPLIT:-}"
# Where the coded feature maps go (edge -> server).
SERVER_HOST="${SERVER_HOST:-127.0.0.1}"
PORT="${PORT:-5000}"
# RTP: packet size (1400 fits an Ethernet path with tunnel headroom) and the receiver's caps.
MTU="${MTU:-1400}"
RTP_CAPS="application/x-rtp,media=application,clock-rate=90000,encoding-name=X-GST,payload=96"
# RTP payload of the coded units: "gst" (rtpgstpay/rtpgstdepay, caps in-band every second) or
# "fmap" (rtpfmappay/rtpfmapdepay, codec-core/RTP-PAYLOAD.md: a lost packet costs one slice of a
# unit, not the unit; caps in-band with no setting). Both ends must use the same.
PAYLOAD="${PAYLOAD:-gst}"
case "$PAYLOAD" in
    gst)
        UNIT_PAY="rtpgstpay config-interval=1 mtu=$MTU"
        UNIT_DEPAY="rtpgstdepay"
        UNIT_RTP_CAPS="$RTP_CAPS"
        ;;
    fmap)
        UNIT_PAY="rtpfmappay mtu=$MTU"
        UNIT_DEPAY="rtpfmapdepay"
        UNIT_RTP_CAPS="application/x-rtp,media=application,clock-rate=90000,encoding-name=X-FMAP,payload=96"
        ;;
    *)
        echo "PAYLOAD=$PAYLOAD: use gst (rtpgstpay) or fmap (rtpfmappay)" >&2
        exit 1
        ;;
esac
# RTCP through rtpbin (RTCP=1 on both ends): the server's key-unit requests (fmapdec asks when
# it conceals or loses sync) travel back as RTCP PLI and fmapenc answers with a key unit.
# Receiver reports and PLI go back to the edge on RTCP_BACK_PORT (at EDGE_HOST, for the
# server); the server also listens for RTCP on RTCP_PORT (the edge sends none).
RTCP="${RTCP:-0}"
RTCP_PORT="${RTCP_PORT:-$((PORT + 1))}"
RTCP_BACK_PORT="${RTCP_BACK_PORT:-$((PORT + 3))}"
# The RTCP bandwidth of the server's session, in bits/s (rtpsession rtcp-fraction, an absolute
# value when >= 1). rtpsession spaces its RTCP packets by it, and AVPF sends one early packet
# (a NACK, a PLI) per regular interval at most. Left to itself, rtpsession takes 5% of a
# session bandwidth it assumes to be 64 kbit/s until it has measured the stream (about 2 s):
# RTCP then leaves at most every 0.5 s, NACKs arrive after the jitterbuffer gave up, and the
# first seconds of a lossy stream are concealed (docs/robustness.md). 32000 lets feedback out
# every 50 ms from the first packet; only what there is to report is sent (about 100-byte
# packets, 2-3 per second at 5% loss).
RTCP_BANDWIDTH="${RTCP_BANDWIDTH:-32000}"
if [[ ! "$RTCP_BANDWIDTH" =~ ^[0-9]+$ ]] || ((10#$RTCP_BANDWIDTH < 1000)); then
    echo "RTCP_BANDWIDTH=$RTCP_BANDWIDTH: give the server's RTCP bandwidth in bits/s," \
        "at least 1000 (default 32000)" >&2
    exit 1
fi
EDGE_HOST="${EDGE_HOST:-127.0.0.1}"
# Retransmission (RTX=1 on both ends, needs RTCP=1): the server's jitterbuffer asks for each
# lost packet with an RTCP NACK (rtpbin do-retransmission=true, AVPF profile: feedback at once,
# not at the next regular report) and the edge resends it from the last RTX_PACKETS [200] it
# sent (rtprtxqueue; same SSRC and payload type, so no rtprtxreceive is needed, and it works from
# gst-launch-1.0, unlike rtprtxsend's request-aux-sender signal). A resent packet must arrive
# within the server's JITTER_MS: retransmission pays when the round trip is well below it.
RTX="${RTX:-0}"
RTX_PACKETS="${RTX_PACKETS:-200}"
case "$RTX" in
    0) ;;
    1)
        if [[ "$RTCP" != "1" ]]; then
            echo "RTX=1 needs RTCP=1 on both ends: the server asks for lost packets by RTCP NACK" >&2
            exit 1
        fi
        ;;
    *)
        echo "RTX=$RTX: use 1 (retransmit lost packets on request) or 0" >&2
        exit 1
        ;;
esac

# SRTP (SRTP_KEY on both ends, the same key): the RTP packets are encrypted (AES-128-ICM) and
# authenticated (HMAC-SHA1-80: 10 more bytes per packet) with srtpenc on the edge, checked and
# decrypted with srtpdec on the server. SRTP_KEY is the master key and salt, 30 bytes written as
# 60 hexadecimal digits (e.g. from `openssl rand -hex 30`). srtpdec in GStreamer 1.22 takes a key
# from its caps only for one SSRC, named in the same caps, so the edge's payloader sends with a
# fixed SSRC [1718444400] (both ends must agree) and the server's udpsrc caps carry
# "ssrc=(uint)$SSRC,srtp-key=(buffer)$SRTP_KEY,srtp-cipher=...". A key must not protect two
# sessions with the same SSRC (the keystream would repeat): use a new key for every run, or a
# new SSRC. The server stops with an error if packets keep failing authentication (server.sh).
SRTP_KEY="${SRTP_KEY:-}"
SSRC="${SSRC:-1718444400}"
SRTP_CIPHER="aes-128-icm"
SRTP_AUTH="hmac-sha1-80"
if [[ -n "$SRTP_KEY" ]]; then
    if [[ ! "$SRTP_KEY" =~ ^[0-9a-fA-F]{60}$ ]]; then
        echo "SRTP_KEY has ${#SRTP_KEY} characters: it must be exactly 60 hexadecimal digits," \
            "the 30-byte master key and salt of AES-128-ICM (16-byte key + 14-byte salt), the same" \
            "at both ends; make one with: openssl rand -hex 30" >&2
        exit 1
    fi
    if [[ ! "$SSRC" =~ ^[0-9]{1,10}$ ]] || ((10#$SSRC > 4294967295)); then
        echo "SSRC=$SSRC: give the RTP SSRC as a decimal number below 2^32, the same at both ends" >&2
        exit 1
    fi
    # rtpgstpay/rtpfmappay ... ssrc=$SSRC ! $SRTP_ENC ! udpsink. With RTX=1 the edge's
    # rtprtxqueue resends packets as they were, so srtpenc must protect a sequence number twice
    # (the same payload: no keystream weakness), and the server's srtpdec accepts packets up to
    # SRTP_REPLAY_WINDOW [1024] behind the newest (a resent packet comes a round trip late).
    SRTP_ENC="srtpenc key=$SRTP_KEY rtp-cipher=$SRTP_CIPHER rtp-auth=$SRTP_AUTH \
rtcp-cipher=$SRTP_CIPHER rtcp-auth=$SRTP_AUTH"
    SRTP_DEC="srtpdec"
    if [[ "$RTX" == "1" ]]; then
        SRTP_ENC+=" allow-repeat-tx=true"
        SRTP_DEC+=" replay-window-size=${SRTP_REPLAY_WINDOW:-1024}"
    fi
    srtp_fields() {
        printf 'srtp-key=(buffer)%s,srtp-cipher=(string)%s,srtp-auth=(string)%s,srtcp-cipher=(string)%s,srtcp-auth=(string)%s' \
            "$SRTP_KEY" "$SRTP_CIPHER" "$SRTP_AUTH" "$SRTP_CIPHER" "$SRTP_AUTH"
    }
    # srtp_caps <rtp caps> <ssrc>: the same caps as application/x-srtp with the key for <ssrc>.
    srtp_caps() {
        printf 'application/x-srtp,%s,ssrc=(uint)%s,%s' "${1#application/x-rtp,}" "$2" "$(srtp_fields)"
    }
    # With RTCP=1 the RTCP of each end's rtpbin is SRTCP too. The server's rtpbin sends from an
    # SSRC it picks at random, and srtpdec (1.22) takes a key from its caps only together with
    # the SSRC it is for: rtpssrccaps (this plugin) reads each new SSRC from the packets (SRTCP
    # leaves it in the clear) and puts it into the caps.
    # srtcp_in <port> <name> <rtpbin sink pad>: SRTCP from <port>, checked and decrypted.
    srtcp_in() {
        printf 'udpsrc port=%s caps="application/x-srtcp,%s" ! rtpssrccaps ! %s.rtcp_sink srtpdec name=%s %s.rtcp_src ! %s' \
            "$1" "$(srtp_fields)" "$2" "$2" "$2" "$3"
    }
    # srtcp_out <name> <rtpbin src pad>: the rtpbin's RTCP, encrypted, then what follows.
    srtcp_out() {
        printf '%s ! %s.rtcp_sink_0 %s name=%s %s.rtcp_src_0' "$2" "$1" "$SRTP_ENC" "$1" "$1"
    }
    UNIT_PAY+=" ssrc=$SSRC"
    # The detections sent back (server.sh RETURN_HOST, edge.sh RETURN_PORT): same key, own SSRC.
    # return_ssrc <ssrc>: the SSRC of the detections returned to the edge that sends <ssrc>.
    return_ssrc() { echo $(((10#$1 + 1) % 4294967296)); }
    RETURN_SSRC=$(return_ssrc "$SSRC")
    # camera_ssrc <i>: the SSRC of camera i (from 0) of a server with several PORTS.
    camera_ssrc() { echo $(((10#$SSRC + 2 * $1) % 4294967296)); }
fi

# Forward error correction (FEC=<percent> on both ends, without RTCP): the edge adds ULPFEC
# protection packets (RFC 5109, rtpulpfecenc, payload type FEC_PT 122) worth FEC% of the stream;
# the server keeps the last JITTER_MS of packets (rtpstorage) and rebuilds lost ones from them
# (rtpulpfecdec). The edge sends with the fixed SSRC (rtpulpfecdec needs it in the caps). It
# pays only where no return path exists and losses are rare: without one, every packet FEC cannot
# rebuild leaves its slice concealed until its refresh (docs/robustness.md).
FEC="${FEC:-0}"
FEC_PT=122
if [[ ! "$FEC" =~ ^[0-9]+$ ]] || ((10#$FEC > 100)); then
    echo "FEC=$FEC: give the protection as a percentage of the stream, 0 (off) to 100" >&2
    exit 1
fi
if ((10#$FEC > 0)); then
    if [[ "$RTCP" == "1" ]]; then
        echo "FEC with RTCP=1 is not wired up: with a return path use RTX=1 (retransmission)," \
            "which recovers more for less (docs/robustness.md)" >&2
        exit 1
    fi
    [[ -z "$SRTP_KEY" ]] && UNIT_PAY+=" ssrc=$SSRC"
fi

# Flags for gst-launch-1.0; -e turns Ctrl-C into EOS, so files are finished properly.
GST_LAUNCH_FLAGS="${GST_LAUNCH_FLAGS:--e}"

# splitinfer-front's properties: the model and where to cut it (splitinfer-back learns the
# cut from the caps and only needs the same model file).
front_props() {
    local props="model=\"$MODEL\""
    [[ -n "$SPLIT" ]] && props+=" split-at=$SPLIT"
    printf '%s' "$props"
}
back_props() {
    printf '%s' "model=\"$MODEL\""
}

# launch <pipeline>: prints the command a user can copy, then runs it in this process.
launch() {
    echo "gst-launch-1.0 $GST_LAUNCH_FLAGS $1" >&2
    eval "exec gst-launch-1.0 $GST_LAUNCH_FLAGS $1"
}

# launch_checking_srtp <pipeline>: launch, for a pipeline with srtpdec, that turns srtpdec's
# silent drops into an error. srtpdec (1.22) drops a packet that fails authentication (a key
# that is not the sender's, or a sender that does not encrypt) or whose SSRC has no key, and only
# says so in its debug log (GST_WARNING), once per packet; nothing reaches the bus, so the
# pipeline would wait forever. This runs gst-launch-1.0 with srtpdec's warnings on
# (GST_DEBUG=srtpdec:2 added), reads them from its stderr (everything else passes through), and
# after SRTP_FAIL_LIMIT [20] dropped packets of a camera with not a single detection written to
# its file, prints what is wrong (naming the camera when there are several); once every camera
# has failed so, it stops the pipeline with EOS. It exits with status 1 if a camera failed (also
# when the stream ends before the limit). Dropped packets after a camera's detections were
# written (someone else sending to the port) are only counted and reported at the end. The
# cameras are SRTP_CAMERA_PORTS, SRTP_CAMERA_SSRCS and SRTP_CAMERA_OUTS (server.sh), in the
# order of their srtpdec names (srtpdec<i>, srtcpdec<i>; no number for a single camera).
# Ctrl-C (SIGINT) ends the pipeline with EOS as with launch.
launch_checking_srtp() {
    echo "gst-launch-1.0 $GST_LAUNCH_FLAGS $1" >&2
    if [[ "${GST_DEBUG:-}" != *srtpdec* ]]; then
        export GST_DEBUG="${GST_DEBUG:+$GST_DEBUG,}srtpdec:2"
    fi
    local fifo
    fifo="$(mktemp -u "${TMPDIR:-/tmp}/fmap-srtp.XXXXXX")"
    mkfifo -m 600 "$fifo"
    # Job control: gst-launch-1.0 gets its own process group, so a Ctrl-C in the terminal
    # reaches it once, through the trap below, and not twice (a second SIGINT would make
    # gst-launch-1.0 abort instead of finishing with EOS).
    set -m
    eval "exec gst-launch-1.0 $GST_LAUNCH_FLAGS $1" 2>"$fifo" &
    local pid=$!
    srtp_watch "$pid" <"$fifo" &
    local watcher=$!
    trap 'kill -INT "$pid" 2>/dev/null || true' INT TERM
    local status=0
    # `wait` returns early (status > 128) when a trapped signal arrives: wait again.
    while true; do
        status=0
        wait "$pid" || status=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    local verdict=0
    while true; do
        verdict=0
        wait "$watcher" || verdict=$?
        kill -0 "$watcher" 2>/dev/null || break
    done
    trap - INT TERM
    rm -f "$fifo"
    ((verdict == 0)) || exit 1
    exit "$status"
}

# srtp_watch <gst-launch pid>: the stderr filter of launch_checking_srtp (stdin: gst-launch's
# stderr). Exits 1 if it found a camera of which nothing could be decrypted.
srtp_watch() {
    local pid="$1" limit="${SRTP_FAIL_LIMIT:-20}" line kind name c
    local cameras=${#SRTP_CAMERA_OUTS[@]} gave_up=0
    local -a failed=() unkeyed=() unkeyed_ssrc=() quit=()
    for ((c = 0; c < cameras; c++)); do
        failed[c]=0 unkeyed[c]=0 unkeyed_ssrc[c]="" quit[c]=0
    done
    while IFS= read -r line; do
        case "$line" in
            *srtpdec*"Error authentication packet"* | *srtpdec*"Error while decrypting"* | \
                *srtpdec*"Unable to unprotect"*)
                kind=failed
                ;;
            *srtpdec*"Could not get caps for stream with SSRC"*)
                kind=unkeyed
                ;;
            *srtpdec*"Invalid buffer, dropping"*) continue ;;
            *)
                printf '%s\n' "$line" >&2
                continue
                ;;
        esac
        # The element: "...:<srtpdec1> ..." or "...:<srtcpdec1:rtcp_sink> ...".
        name="${line#*:<}"
        name="${name%%[>:]*}"
        c="${name##*[!0-9]}"
        [[ -z "$c" ]] || ((c >= cameras)) && c=0
        if [[ "$kind" == failed ]]; then
            failed[c]=$((failed[c] + 1))
        else
            unkeyed[c]=$((unkeyed[c] + 1))
            unkeyed_ssrc[c]="${line##* }"
        fi
        if ((quit[c] == 0 && failed[c] + unkeyed[c] >= limit)) &&
            [[ ! -s "${SRTP_CAMERA_OUTS[c]}" ]]; then
            srtp_failure_message "$c" "${failed[c]}" "${unkeyed[c]}" "${unkeyed_ssrc[c]}"
            quit[c]=1
            gave_up=$((gave_up + 1))
            if ((gave_up == cameras)); then
                echo "server: stopping (EOS)" >&2
                kill -INT "$pid" 2>/dev/null || true
            fi
        fi
    done
    for ((c = 0; c < cameras; c++)); do
        ((quit[c] == 0 && failed[c] + unkeyed[c] > 0)) || continue
        if [[ -s "${SRTP_CAMERA_OUTS[c]}" ]]; then
            echo "server: warning:$(srtp_camera_label "$c") srtpdec dropped ${failed[c]} packets" \
                "that failed SRTP authentication and ${unkeyed[c]} with an SSRC that has no key" \
                "(not from the edge holding SRTP_KEY, or damaged)" >&2
            continue
        fi
        srtp_failure_message "$c" "${failed[c]}" "${unkeyed[c]}" "${unkeyed_ssrc[c]}"
        gave_up=$((gave_up + 1))
    done
    ((gave_up == 0))
}

# srtp_camera_label <camera>: " camera <i> (port <p>):" when the server has several, else "".
srtp_camera_label() {
    ((${#SRTP_CAMERA_OUTS[@]} > 1)) && printf ' camera %s (port %s):' "$1" "${SRTP_CAMERA_PORTS[$1]}"
    return 0
}

# srtp_failure_message <camera> <failed> <unkeyed> <unkeyed ssrc>
srtp_failure_message() {
    local label ssrc="${SRTP_CAMERA_SSRCS[$1]}"
    label="$(srtp_camera_label "$1")"
    if (($2 > 0)); then
        echo "server: ERROR:$label SRTP authentication failed for $2 packets: the key does not" \
            "match the sender's (or the sender does not encrypt). Not a single packet was" \
            "decrypted and no detection was written. Give both ends the same SRTP_KEY (60 hex" \
            "digits)." >&2
    fi
    if (($3 > 0)); then
        echo "server: ERROR:$label $3 packets came with SSRC $4, which has no SRTP key (the key" \
            "in the caps is for SSRC $ssrc): the sender uses another SSRC, or does not encrypt" \
            "(no SRTP_KEY there). Give both ends the same SRTP_KEY and SSRC=$ssrc. Not a single" \
            "packet was decrypted and no detection was written." >&2
    fi
}

# file_source <file> [frames]: decoded video from a file, optionally only its first <frames>
# frames. The limit acts on the parsed (still compressed) stream, before the threaded decoder:
# there `identity eos-after` is exact — it passes N-1 buffers and turns the N-th into EOS,
# hence +1 — whereas after the decoder it can let a late-drained frame through. The limited
# form expects a file whose only stream is video (as surveillance recordings usually are).
file_source() {
    if [[ -n "${2:-}" ]]; then
        printf 'filesrc location="%s" ! parsebin ! identity eos-after=%d ! decodebin ! videoconvert' \
            "$1" "$(($2 + 1))"
    else
        printf 'filesrc location="%s" ! decodebin ! videoconvert' "$1"
    fi
}
