#!/usr/bin/env bash
# Installs everything fmap needs on a Debian/Ubuntu machine, idempotently:
#   - GStreamer 1.22 development files, tools and plugins (apt, with sudo when not root)
#   - ONNX Runtime from the PyPI `onnxruntime` wheel into a project-local venv (.venv)
#   - sample footage (vtest.avi from Debian's opencv-doc) and test images into .cache/
# and writes .cache/env.sh, which exports ORT_DYLIB_PATH, FMAP_FOOTAGE and FMAP_IMAGES.
# Usage: scripts/setup.sh            (then: source .cache/env.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache"
ORT_VERSION=1.32.0
mkdir -p "$cache"
say() { printf '[setup] %s\n' "$*" >&2; }

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

apt_packages=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav pkg-config python3-venv iproute2 ca-certificates)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
apt_updated=0
apt_update() { if [ $apt_updated = 0 ]; then "${sudo_cmd[@]}" apt-get update -qq; apt_updated=1; fi; }
if [ ${#missing[@]} -gt 0 ]; then
  say "installing apt packages: ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust (https://rustup.rs) >= 1.92 and rerun"
  exit 1
fi

# ONNX Runtime: the shared library inside the PyPI wheel, in a project-local venv.
venv="$root/.venv"
ort_lib() { ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1; }
if [ -z "$(ort_lib)" ]; then
  say "installing onnxruntime==$ORT_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "onnxruntime==$ORT_VERSION"
fi
# pycocotools: the reference the mAP code is tested against.
if ! "$venv/bin/python" -c "import pycocotools, numpy" 2>/dev/null; then
  say "installing pycocotools into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check pycocotools numpy
fi
# matplotlib: the rate-accuracy plots of scripts/eval-report.sh (eval/plot.py).
if ! "$venv/bin/python" -c "import matplotlib" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check matplotlib
fi
# scikit-image: the reference the SSIM of the temporal-correlation analysis is tested against.
if ! "$venv/bin/python" -c "import skimage" 2>/dev/null; then
  say "installing scikit-image into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check scikit-image
fi
ORT_LIB="$(ort_lib)"
[ -n "$ORT_LIB" ] || { say "onnxruntime wheel has no libonnxruntime.so"; exit 1; }

# Footage: vtest.avi (768x576, 10 fps, 795 frames) from Debian's opencv-doc, extracted, not installed.
footage="$cache/footage"
if [ ! -s "$footage/vtest.avi" ]; then
  say "fetching vtest.avi from Debian's opencv-doc package"
  apt_update
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -qq opencv-doc >/dev/null && dpkg -x opencv-doc_*.deb x)
  mkdir -p "$footage"
  cp "$tmp/x/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$footage/vtest.avi"
  rm -rf "$tmp"
fi

# Still images with known objects: dog.jpg (Debian darknet), bus.jpg (ultralytics wheel assets).
images="$cache/images"
mkdir -p "$images"
if [ ! -s "$images/dog.jpg" ]; then
  say "fetching dog.jpg from Debian's darknet package"
  apt_update
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -qq darknet >/dev/null && dpkg -x darknet_*.deb x)
  cp "$tmp"/x/usr/share/darknet/data/{dog,person,horses}.jpg "$images/"
  rm -rf "$tmp"
fi
if [ ! -s "$images/bus.jpg" ]; then
  say "fetching bus.jpg from the ultralytics wheel"
  tmp="$(mktemp -d)"
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" ultralytics >/dev/null
  python3 - "$tmp" "$images" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/ultralytics-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    for n in ("bus.jpg", "zidane.jpg"):
        open(f"{sys.argv[2]}/{n}", "wb").write(z.read(f"ultralytics/assets/{n}"))
PY
  rm -rf "$tmp"
fi

cat > "$cache/env.sh" <<ENV
export ORT_DYLIB_PATH="$ORT_LIB"
export FMAP_FOOTAGE="$footage"
export FMAP_IMAGES="$images"
ENV
say "ready: source $cache/env.sh"
