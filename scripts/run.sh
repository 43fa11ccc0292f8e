#!/usr/bin/env bash
# The main job: installs what is missing, builds fmap, runs the edge and the server as two
# processes talking RTP/UDP on the sample video, renders the detections onto the video, and
# prints a summary. Extra arguments go to fmap-demo (try --help), e.g. --frames 100.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
# shellcheck disable=SC1091
source "$root/.cache/env.sh"
echo "[run] building fmap (release) ..." >&2
cargo build --release --quiet -p gst-fmap -p fmap-eval
export GST_PLUGIN_PATH="$root/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export FMAP_ROOT="$root"
exec "$root/target/release/fmap-demo" --out "$root/out" "$@"
