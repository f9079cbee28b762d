#!/usr/bin/env bash
# Fuzz smoke test: builds every target, replays the committed corpus, then fuzzes each target for
# a short bounded time. Exits non-zero on any crash, leak, timeout or out-of-memory, or if a
# target turns out not to be instrumented. Prints one summary line per target.
#
#   fuzz/smoke.sh [TARGET...]          (from any directory)
#   SMOKE_SECONDS=60 fuzz/smoke.sh     (seconds per target; default 15)
#   SMOKE_JOBS=1 fuzz/smoke.sh         (targets fuzzed at once; default: one per core)
#
# Needs only the stable toolchain (see fuzz/README.md for RUSTC_BOOTSTRAP=1). New corpus entries
# go to a scratch directory under fuzz/target/, never into the committed fuzz/corpus/.
set -euo pipefail

# shellcheck source=fuzz/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

seconds="${SMOKE_SECONDS:-15}"
jobs="${SMOKE_JOBS:-$(nproc)}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${FUZZ_TARGETS[@]}")

start=$(date +%s)
fuzz_build "${targets[@]}"
echo "fuzz build: $(($(date +%s) - start)) s"

scratch="$FUZZ_DIR/target/smoke"
rm -rf "$scratch"

run_one() {
    local t="$1" status=0
    mkdir -p "$scratch/$t/corpus" "$scratch/$t/artifacts"
    # The first directory receives new entries; the committed corpus is read (replayed) only.
    "$FUZZ_BIN_DIR/$t" \
        -max_total_time="$seconds" \
        -rss_limit_mb=2048 \
        -timeout=10 \
        -max_len="$(fuzz_max_len "$t")" \
        -print_final_stats=1 \
        -artifact_prefix="$scratch/$t/artifacts/" \
        "$scratch/$t/corpus" "$FUZZ_DIR/corpus/$t" >"$scratch/$t/fuzz.log" 2>&1 || status=$?
    echo "$status" >"$scratch/$t/status"
}

# One libFuzzer process per core at a time (each is single-threaded).
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

failed=()
for t in "${targets[@]}"; do
    log="$scratch/$t/fuzz.log"
    status="$(cat "$scratch/$t/status" 2>/dev/null || echo missing)"
    fuzz_summary "$t" "$log"
    if [ "$status" != 0 ]; then
        echo "FAIL $t (exit $status); last lines of $log:" >&2
        grep -v '^#[0-9]' "$log" | tail -n 40 >&2 || true
        fuzz_show_artifacts "$scratch/$t/artifacts/" >&2
        failed+=("$t")
    elif ! fuzz_check_instrumented "$t" "$log"; then
        failed+=("$t")
    fi
done

echo "fuzz smoke: ${#targets[@]} targets, ${seconds} s each, $jobs at a time," \
    "$(($(date +%s) - start)) s in all (build included)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz smoke FAILED: ${failed[*]}" >&2
    exit 1
fi
