#!/usr/bin/env bash
# Makes the panning-camera stand-in of docs/rate-levers.md from vtest.avi: a 576x432 window
# sliding over the 768x576 frames (a triangle wave of 96 frames, 4 px/frame horizontally and
# 3 vertically, starting at the centre), coded almost losslessly with x264 (QP 12) at 10 fps.
# vtest.avi's camera does not move; this clip is what the rate levers for moving cameras
# (fractional motion) are measured on:
#   scripts/make-pan.sh [OUT=.cache/footage/pan.mkv] [VIDEO=.cache/footage/vtest.avi]
#   target/release/fmap-eval --video .cache/footage/pan.mkv --frames 300 --settings "…"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-.cache/footage/pan.mkv}"
video="${2:-.cache/footage/vtest.avi}"
# shellcheck disable=SC1091
source .cache/env.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gst-launch-1.0 -q filesrc location="$video" ! decodebin ! videoconvert \
  ! video/x-raw,format=I420,width=768,height=576 ! filesink location="$work/source.i420"
python3 - "$work/source.i420" "$work/pan.i420" <<'EOF'
import sys
W, H, w, h = 768, 576, 576, 432
size = W * H * 3 // 2
src = open(sys.argv[1], "rb").read()
frames = len(src) // size

def triangle(t, period, amplitude):
    x = (t % period) / period
    return int(round(amplitude * (1 - abs(2 * x - 1))))

with open(sys.argv[2], "wb") as out:
    for i in range(frames):
        f = memoryview(src)[i * size:(i + 1) * size]
        x = triangle(i + 24, 96, W - w) // 2 * 2
        y = triangle(i + 24, 96, H - h) // 2 * 2
        planes = [(f[:W * H], W, x, y, w, h)]
        for k in range(2):
            start = W * H + k * (W * H // 4)
            planes.append((f[start:start + W * H // 4], W // 2, x // 2, y // 2, w // 2, h // 2))
        for plane, stride, px, py, pw, ph in planes:
            for row in range(py, py + ph):
                out.write(plane[row * stride + px:row * stride + px + pw])
EOF
mkdir -p "$(dirname "$out")"
gst-launch-1.0 -q filesrc location="$work/pan.i420" \
  ! rawvideoparse width=576 height=432 format=i420 framerate=10/1 \
  ! x264enc pass=quant quantizer=12 speed-preset=fast ! matroskamux ! filesink location="$out"
echo "wrote $out"
