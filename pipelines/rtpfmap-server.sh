#!/usr/bin/env bash
# The server for pipelines/rtpfmap-edge.sh: RTP in the fmap payload format (rtpfmapdepay) ->
# fmapdec -> splitinfer-back -> detections. Same options as server.sh:
#
#   pipelines/rtpfmap-server.sh
#
# runs  udpsrc port=5000 caps="application/x-rtp,media=application,clock-rate=90000,
#       encoding-name=X-FMAP,payload=96" ! rtpjitterbuffer ! rtpfmapdepay ! queue ! fmapdec
#       ! splitinfer-back ... ! filesink location=detections.jsonl
PAYLOAD=fmap exec "$(dirname "${BASH_SOURCE[0]}")/server.sh" "$@"
