#!/usr/bin/env bash
# Long fuzzing campaign for one target (the issue asks for at least 10 minutes per target).
#
#   fuzz/campaign.sh TARGET MINUTES          (from any directory)
#   FUZZ_JOBS=2 fuzz/campaign.sh origin 30   (parallel libFuzzer workers; default 1)
#
# Fuzzes from the committed corpus plus the previous campaign's working corpus (kept in
# fuzz/target/campaign/TARGET/, not committed), with value profiling on (it guides the fuzzer
# through multi-byte comparisons such as u16 length fields). At the end, entries that add
# coverage are merged into fuzz/corpus/TARGET/ (libFuzzer -merge=1: only inputs that reach new
# code are copied), so commit whatever it adds there. Crashes are written to
# fuzz/artifacts/TARGET/ and printed as base64; the script then exits non-zero.
set -euo pipefail

# shellcheck source=fuzz/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 TARGET MINUTES   (targets: ${FUZZ_TARGETS[*]})" >&2
    exit 2
fi
target="$1"
minutes="$2"
case " ${FUZZ_TARGETS[*]} " in
    *" $target "*) ;;
    *) echo "unknown target '$target' (targets: ${FUZZ_TARGETS[*]})" >&2; exit 2 ;;
esac
jobs="${FUZZ_JOBS:-1}"

fuzz_build "$target"

work="$FUZZ_DIR/target/campaign/$target"
artifacts="$FUZZ_DIR/artifacts/$target"
committed="$FUZZ_DIR/corpus/$target"
mkdir -p "$work/corpus" "$artifacts" "$committed"
log="$work/fuzz.log"

status=0
args=(
    -max_total_time=$((minutes * 60))
    -rss_limit_mb=2048
    -timeout=10
    -max_len="$(fuzz_max_len "$target")"
    -use_value_profile=1
    -print_final_stats=1
    -artifact_prefix="$artifacts/"
)
if [ "$jobs" -gt 1 ]; then
    # libFuzzer's fork mode: workers share the corpus; -ignore_crashes=0 stops at the first crash.
    args+=(-fork="$jobs")
fi
echo "fuzzing $target for $minutes min (log: $log)"
"$FUZZ_BIN_DIR/$target" "${args[@]}" "$work/corpus" "$committed" >"$log" 2>&1 || status=$?
fuzz_summary "$target" "$log"

if [ "$status" -ne 0 ]; then
    echo "CRASH in $target (exit $status); see $log" >&2
    grep -v '^#[0-9]' "$log" | tail -n 60 >&2 || true
    fuzz_show_artifacts "$artifacts/" >&2
    exit 1
fi

# Keep what the campaign learned: copy into the committed corpus only inputs that add code
# coverage (merged without value profiling, so the committed set stays small).
before=$(find "$committed" -type f | wc -l)
"$FUZZ_BIN_DIR/$target" -merge=1 -max_len="$(fuzz_max_len "$target")" -rss_limit_mb=2048 \
    -timeout=10 "$committed" "$work/corpus" >"$work/merge.log" 2>&1
after=$(find "$committed" -type f | wc -l)
echo "$target: fuzz/corpus/$target/ has $after entries ($((after - before)) new); commit them"
