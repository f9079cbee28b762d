#!/usr/bin/env bash
# Where the account provider's time goes under recover-account-return: runs `dar load` (SQLite
# on tmpfs, so no fsync, or the PostgreSQL database given), samples the account provider's
# process with `perf record` for 6 s in the middle of the timed run, and prints the share of
# samples by thread and by kind of code (kernel, P-256 in aws-lc, SQLite, sqlx, tokio, the HTTP
# stack, malloc and copies, TLS, the rest); then, when `strace` is there, counts the server's
# system calls for 4 s (one `writev` per response, so divide by its count for calls per
# request). Needs `perf` and permission to trace a process of this user. docs/load.md has this
# machine's figures.
#
# Usage: scripts/load-profile.sh [POSTGRES_URL]
set -euo pipefail
cd "$(dirname "$0")/.."

database=${1:-sqlite}
cargo build --release --locked -q -p dar-cli
dir=$(mktemp -d -p /dev/shm dar-load-profile-XXXXXX)
data=$(mktemp -t dar-load-perf-XXXXXX)
calls=$(mktemp -t dar-load-strace-XXXXXX)
log=$dir.log
trap 'rm -rf "$dir" "$data" "$calls" "$log"' EXIT

target/release/dar load --dir "$dir" --database "$database" --requests 30000 --concurrency 16 \
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
# Into the timed run (30,000 operations last well beyond the 10 s traced).
sleep 1.5
perf record -q -F 499 -g -p "$pid" -o "$data" -- sleep 6
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
if [ -s "$calls" ]; then
    echo "system calls of the account provider over 4 s:"
    grep -E '^ *[0-9.]+ +[0-9.]+ ' "$calls" | awk '{ printf "  %9d  %s\n", $4, $NF }'
fi
