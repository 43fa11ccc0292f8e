#!/usr/bin/env bash
# Runs every fmap test: installs what is missing (scripts/setup.sh), checks formatting and lints,
# builds the plugin in release, and runs unit, element (gst_check Harness) and end-to-end
# pipeline tests against real ONNX Runtime, real models and real footage.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"
# shellcheck disable=SC1091
source "$root/.cache/env.sh"
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo doc (broken intra-doc links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --release

step "build the plugin (release)"
cargo build --workspace --release
export GST_PLUGIN_PATH="$root/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export FMAP_ROOT="$root"

step "fuzz smoke (cargo-fuzz targets of the codec-core decoders, briefly)"
"$root/scripts/fuzz-smoke.sh"

step "cargo test (unit, property, element and end-to-end tests)"
cargo test --workspace --release
