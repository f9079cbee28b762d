#!/usr/bin/env bash
# Puts `dar serve` under load on this machine with `dar load` (loopback only): configuration
# GETs (the floor of a request), the account provider's recover-account-return, the recovery
# provider's save-token, 1,000 connections held open at once and 2,000 slow clients, on SQLite and then, when a URL is given (first argument
# or DAR_TEST_POSTGRES_URL), on PostgreSQL (fresh schemas load_ap and load_rp, dropped first).
# Prints the date, the machine, its load average and open-file limit, then each run's figures
# (docs/load.md has this machine's).
#
# Bounded: each run stops at 3,000 operations or 60 s per request scenario; the connection
# scenarios take about 20 s, the configuration GETs 3 s; a run is killed after 10 minutes.
#
# Usage: scripts/load.sh [POSTGRES_URL]
set -euo pipefail
cd "$(dirname "$0")/.."
postgres=${1:-${DAR_TEST_POSTGRES_URL:-}}

cargo build --release --locked -q -p dar-cli

echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(uname -sr)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# dar load and dar serve raise their soft open-file limit to the hard one; the slow-client
# scenario needs about 2,300 descriptors in each.
echo "open-file limit: soft $(ulimit -Sn), hard $(ulimit -Hn)"

args=(--requests 3000 --duration 60 --concurrency 16 --connections 1000 --slow-clients 2000)

run() {
    local database=$1 shown=$1 dir
    # A URL may hold a password: show its variable's name instead.
    [ "$database" = sqlite ] || shown='"$POSTGRES_URL"'
    dir=$(mktemp -d -t dar-load-XXXXXX)
    echo
    echo "\$ dar load --database $shown ${args[*]}"
    timeout 600 target/release/dar load --dir "$dir" --database "$database" "${args[@]}"
    rm -rf "$dir"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

run sqlite
if [ -n "$postgres" ]; then
    run "$postgres"
else
    echo
    echo "PostgreSQL skipped: give a URL as the first argument or in DAR_TEST_POSTGRES_URL"
fi
