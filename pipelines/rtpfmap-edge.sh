#!/usr/bin/env bash
# The edge with the fmap RTP payload format (rtpfmappay, codec-core/RTP-PAYLOAD.md), the one for
# lossy links: a lost packet costs one slice of a unit, not the unit, and the caps travel
# in-band, so a server started later needs no setting. Same options as edge.sh:
#
#   SERVER_HOST=<server ip> pipelines/rtpfmap-edge.sh [VIDEO_FILE | /dev/videoN]
#
# runs  ... ! fmapenc ! rtpfmappay mtu=1400 ! udpsink host=<server ip> port=5000
# Pair it with pipelines/rtpfmap-server.sh.
PAYLOAD=fmap exec "$(dirname "${BASH_SOURCE[0]}")/edge.sh" "$@"
