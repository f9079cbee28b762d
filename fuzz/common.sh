# Shared by fuzz/smoke.sh and fuzz/campaign.sh (sourced, not run): builds the fuzz targets with
# libFuzzer instrumentation on the stable toolchain, without needing cargo-fuzz installed.
#
# The flags are the ones `cargo fuzz build` (cargo-fuzz 0.13.2, default options) passes, in the
# same order, so a later `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET` reuses this build.
# `-Zsanitizer=address` is a nightly-only flag: RUSTC_BOOTSTRAP=1 lets the stable compiler accept
# it. It is set here, for this build of fuzz/ only; nothing that builds the shipped crates ever
# sets it. See fuzz/README.md.

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FUZZ_TARGETS=(token_decode countersigned_verify configuration origin sealed_open signature_der)
FUZZ_TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
FUZZ_BIN_DIR="$FUZZ_DIR/target/$FUZZ_TRIPLE/release"

fuzz_rustflags() {
    local f=""
    f+=" -Cpasses=sancov-module"
    f+=" -Cllvm-args=-sanitizer-coverage-level=4"
    f+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
    f+=" -Cllvm-args=-sanitizer-coverage-pc-table"
    f+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
    f+=" --cfg fuzzing"
    f+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
    f+=" -Zsanitizer=address"
    f+=" -Cllvm-args=-sanitizer-coverage-stack-depth"
    f+=" -Ccodegen-units=1"
    printf '%s' "$f"
}

# Builds every target (or the ones named) into $FUZZ_BIN_DIR.
fuzz_build() {
    local bins=()
    local t
    for t in "$@"; do bins+=(--bin "$t"); done
    [ ${#bins[@]} -gt 0 ] || bins=(--bins)
    RUSTC_BOOTSTRAP=1 RUSTFLAGS="$(fuzz_rustflags)" \
        cargo build --locked --release \
        --config 'profile.release.debug="line-tables-only"' \
        --manifest-path "$FUZZ_DIR/Cargo.toml" --target "$FUZZ_TRIPLE" "${bins[@]}"
}

# libFuzzer's -max_len for a target: token and sealing targets must reach the 65,535-byte fields.
fuzz_max_len() {
    case "$1" in
        token_decode | countersigned_verify | sealed_open) echo 70000 ;;
        configuration) echo 66000 ;;
        origin) echo 1024 ;;
        signature_der) echo 256 ;;
        *) echo 4096 ;;
    esac
}

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

# Prints one line from a libFuzzer log: executions, exec/s, coverage and features at the end.
fuzz_summary() {
    local target="$1" log="$2"
    local runs rate last cov ft corp
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
    last="$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
    corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")"
    printf '%-22s execs=%-9s exec/s=%-7s cov=%-6s ft=%-6s corpus=%s\n' \
        "$target" "${runs:-?}" "${rate:-?}" "${cov:-0}" "${ft:-0}" "${corp:-?}"
}

# Fails unless the log shows instrumented code and coverage above zero (a build without the
# sancov flags would "fuzz" blindly and find nothing).
fuzz_check_instrumented() {
    local target="$1" log="$2" cov
    if ! grep -qE 'INFO: Loaded [0-9]+ modules +\([1-9][0-9]* inline 8-bit counters\)' "$log"; then
        echo "error: $target: no coverage counters loaded (not instrumented?)" >&2
        return 1
    fi
    cov="$(grep -E '^#[0-9]+' "$log" | tail -n1 | sed -n 's/.* cov: \([0-9]*\).*/\1/p')"
    if [ -z "$cov" ] || [ "$cov" -eq 0 ]; then
        echo "error: $target: coverage stayed at zero" >&2
        return 1
    fi
}

# Prints every crash/timeout/oom artifact under a prefix as base64, for CI logs.
fuzz_show_artifacts() {
    local prefix="$1" f
    for f in "$prefix"*; do
        [ -f "$f" ] || continue
        echo "artifact: $f ($(wc -c <"$f") bytes)"
        echo "base64: $(base64 -w0 <"$f" | head -c 4000)"
    done
}
