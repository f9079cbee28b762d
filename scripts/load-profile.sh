#!/usr/bin/env bash
# Where the account provider's time goes under recover-account-return: runs `dar load` (SQLite
# on tmpfs, so no fsync, or the PostgreSQL database given), samples the account provider's
# process with `perf record` for 6 s in the middle of the timed run, and prints the share of
# samples by thread and by kind of code (kernel, P-256 in aws-lc, SQLite, sqlx, tokio, the HTTP
# stack, malloc and copies, TLS, the rest); then, when `strace` is there, counts the server's
# system calls for 4 s (one `writev` per response, so divide by its count for calls per
# request), after counting its context switches for 3 s with `perf stat`. Needs `perf` and
# permission to trace a process of this user. docs/load.md has this machine's figures.
#
# With DAR_PROFILE_FRAME_POINTERS=1, `dar` is built with frame pointers (in
# target/frame-pointers, so the release build is left alone) and sampled with `--call-graph fp`,
# and the samples are also grouped by what their stacks pass through (the store, the token
# checks and P-256, `sendto` to the database, the HTTP stack...), which the plain build's broken
# stacks cannot tell.
#
# Usage: [DAR_PROFILE_FRAME_POINTERS=1] scripts/load-profile.sh [POSTGRES_URL]
set -euo pipefail
cd "$(dirname "$0")/.."

database=${1:-sqlite}
if [ "${DAR_PROFILE_FRAME_POINTERS:-0}" = 1 ]; then
    RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release --locked -q -p dar-cli \
        --target-dir target/frame-pointers
    dar=target/frame-pointers/release/dar
    callgraph=(--call-graph fp)
else
    cargo build --release --locked -q -p dar-cli
    dar=target/release/dar
    callgraph=(-g)
fi
dir=$(mktemp -d -p /dev/shm dar-load-profile-XXXXXX)
data=$(mktemp -t dar-load-perf-XXXXXX)
calls=$(mktemp -t dar-load-strace-XXXXXX)
log=$dir.log
trap 'rm -rf "$dir" "$data" "$calls" "$log"' EXIT

# 50,000 operations outlast the 14.5 s sampled and traced below at this machine's rates.
"$dar" load --dir "$dir" --database "$database" --requests 50000 --concurrency 16 \
    --scenario recover-account-return >"$log" 2>&1 &
load=$!
# Minting comes first and is not profiled; the account provider starts after it.
for _ in $(seq 1 240); do
    grep -q '^minted' "$log" && break
    sleep 0.5
done
pid=
for _ in $(seq 1 120); do
    pid=$(pgrep -f "serve --config $dir/ap/dar.toml") && break
    sleep 0.5
done
[ -n "$pid" ] || { cat "$log"; echo "the account provider did not start" >&2; exit 1; }
# Into the timed run.
sleep 1.5
perf record -q -F 499 "${callgraph[@]}" -p "$pid" -o "$data" -- sleep 6
switches=$(perf stat -x, -e context-switches -p "$pid" -- sleep 3 2>&1 >/dev/null \
    | awk -F, '/context-switches/ { print $1 }')
if command -v strace >/dev/null; then
    timeout -s INT 4 strace -c -f -p "$pid" -o "$calls" 2>/dev/null || true
fi
wait "$load"
cat "$log"

echo
echo "samples by thread:"
perf report -i "$data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -E '^ +[0-9.]+%'
echo "samples by kind of code:"
perf report -i "$data" --no-children --sort sym --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9.]+%' \
    | awk '{
        p = $1; sub("%", "", p); s = $3; for (i = 4; i <= NF; i++) s = s " " $i
        if ($2 == "[k]") g = "kernel"
        else if (s ~ /nistz256|aws_lc|ecp_|bn_|ecdsa|p256|beeu/) g = "P-256 (aws-lc)"
        else if (s ~ /sqlx/) g = "sqlx"
        else if (s ~ /sqlite|pcache|Vdbe|btree|Btree/) g = "SQLite"
        else if (s ~ /malloc|free|_int_|memmove|memcpy|memset|consolidate|realloc|alloc/) g = "malloc, copies"
        else if (s ~ /rustls|aes|gcm|sha|chacha|poly/) g = "TLS, AEAD, hashes"
        else if (s ~ /tokio/) g = "tokio"
        else if (s ~ /hyper|axum|tower|http/) g = "http stack"
        else g = "other user code"
        t[g] += p
    } END { for (g in t) printf "  %5.1f%%  %s\n", t[g], g }' | sort -rn
if [ "${DAR_PROFILE_FRAME_POINTERS:-0}" = 1 ]; then
    # Each sample is a paragraph of frames, leaf first; the first group whose pattern a frame
    # matches takes it. Kernel frames under `sendto` keep that caller, but glibc and aws-lc's
    # assembly have no frame pointers, so their samples carry only their own frames.
    echo "samples by what their stack passes through (frame pointers):"
    perf script -i "$data" -F ip,sym 2>/dev/null | awk 'BEGIN { RS = "" } {
        n++
        split($0, frames, "\n"); leaf = frames[1]
        if ($0 ~ /AccountProviderStore for dar_store::Store>::recover/) g = "the store, user space (sqlx, rows, pool)"
        else if ($0 ~ /verify_return|nistz256|aws_lc_0|beeu_mod|ecp_nistz/) g = "P-256 and the signature checks"
        else if ($0 ~ /accept_countersigned|recover_return|open_payload|CountersignedToken::decode/) g = "the recovery handler, other (decoding, payload, parked id)"
        else if ($0 ~ /__send/) g = "sendto to the database, in the kernel (loopback delivery, wake-ups)"
        else if ($0 ~ /from_fn|hyper|rustls|axum|tower/) g = "HTTP, TLS and the middleware (their futures and socket calls)"
        else if ($0 ~ /tokio/) g = "tokio"
        else if (leaf ~ /malloc|free|memmove|memcpy|consolidate|unlink_chunk/) g = "malloc, copies (no stack)"
        else if (leaf ~ /finish_task_switch|_raw_spin|irqentry|softirq|schedule/) g = "kernel, interrupts and switches (no stack)"
        else g = "other"
        t[g]++
    } END { for (g in t) printf "  %5.1f%%  %s\n", 100 * t[g] / n, g }' | sort -rn
fi
[ -n "$switches" ] && echo "context switches of the account provider over 3 s: $switches"
if [ -s "$calls" ]; then
    echo "system calls of the account provider over 4 s:"
    grep -E '^ *[0-9.]+ +[0-9.]+ ' "$calls" | awk '{ printf "  %9d  %s\n", $4, $NF }'
fi
