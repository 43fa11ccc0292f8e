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
EDGE_HOST="${EDGE_HOST:-127.0.0.1}"
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
