#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target of codec-core (codec-core/fuzz) and runs each
# briefly. Exits non-zero if any target crashes, panics, trips a debug assertion or overflow
# check, leaks, exceeds the RSS limit, or spends more than 10 s on one input.
#
# Only the stable toolchain is available: RUSTC_BOOTSTRAP=1 lets it accept the -Z flags
# (-Zsanitizer=..., the coverage instrumentation) that cargo-fuzz passes. Installs cargo-fuzz from crates.io if missing.
#
#   scripts/fuzz-smoke.sh                 # 20 s per target
#   FMAP_FUZZ_SECONDS=300 scripts/fuzz-smoke.sh
#
# Corpora grow in codec-core/fuzz/corpus/<target>, crashes land in codec-core/fuzz/artifacts
# (both git-ignored); reproduce a crash with
#   (cd codec-core && RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a -s none <target> <artifact file>)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/codec-core"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
seconds="${FMAP_FUZZ_SECONDS:-20}"
targets=(raw_frame entropy_decode unit_decode rtp_depacketize)

# -O: optimized, -a: with debug assertions and overflow checks, -s none: no AddressSanitizer.
# codec-core is #![forbid(unsafe_code)], so ASan has no memory error of its own to find, while
# it cost about 90% of the time: unit_decode ran about 1,000 inputs per CPU-second with ASan and
# about 10,000 without. Panics, overflows, debug assertions, leaks of RSS (-rss_limit_mb) and
# slow inputs (-timeout) still fail the run.
sanitizer=(-s none)
cargo fuzz build -O -a "${sanitizer[@]}"

failed=()
for target in "${targets[@]}"; do
    printf '\n=== fuzz %s (%ss)\n' "$target" "$seconds"
    mkdir -p "fuzz/corpus/$target"
    if cargo fuzz run -O -a "${sanitizer[@]}" "$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "fuzz $target: ok"
    else
        echo "fuzz $target: FAILED (artifacts in codec-core/fuzz/artifacts/$target)"
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz smoke failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz smoke: all ${#targets[@]} targets ran ${seconds}s without a crash"
