#!/usr/bin/env bash
# Hostile-input run (issue 7): property-based HTTP fuzzing of a live `dar serve` with
# schemathesis, driven by the OpenAPI description the code generates (`dar openapi`).
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]      (default 100 generated test cases per operation)
#
# What it does:
#   1. builds `dar` (debug), installs a pinned schemathesis and its pinned dependencies
#      (scripts/schemathesis-requirements.txt) into target/schemathesis-venv;
#   2. writes a deployment playing both roles into a temporary directory (fresh keys, a local
#      CA, SQLite, the §3.3 iframe API on) with a per-client rate limit high enough that the
#      run is not just 429s, and starts `dar serve` as a child process;
#   3. seeds the database through the pages (one account with an address), then snapshots
#      every table;
#   4. runs schemathesis as a hostile stranger: pass 1 without a session against every
#      operation, pass 2 with a session cookie and its CSRF token against the CSRF-checked
#      forms (sign-up excluded: it creates accounts by design);
#   5. checks: the server is still alive, its log has no panic, its access log no 5xx other
#      than 503, and every table is as before, except `web_parked_request` (see below).
#
# Exit status 0 only when schemathesis and every check pass. Output and reports stay in the
# run's directory (printed at the end); docs/hostile-input.md records a run.
#
# `web_parked_request`: the protocol endpoints `save-token` (§3.1) and `save-token-return`
# (§3.2) receive cross-site POSTs, which carry no cookie, so their forms are parked (a random
# id, ten minutes, taken once) until the user's same-origin page takes them. Parking is what
# these endpoints are for, whoever calls them, so new rows of exactly those two kinds are
# allowed; any other change to that table, or to any other table, fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MAX_EXAMPLES=${1:-100}
# requests (in the seeding step and in schemathesis) prefers these to the CA it is given.
unset REQUESTS_CA_BUNDLE CURL_CA_BUNDLE
SCHEMATHESIS_VERSION=4.32.5
VENV=$ROOT/target/schemathesis-venv
DAR=$ROOT/target/debug/dar

step() { printf '\n== %s\n' "$1"; }
fail() { printf 'FAIL: %s\n' "$1" >&2; FAILED=1; }
FAILED=0

step "build dar"
cargo build --locked -q -p dar-cli

step "schemathesis $SCHEMATHESIS_VERSION (venv: $VENV)"
# Every Python package at a pinned version (scripts/schemathesis-requirements.txt), so that a
# run next year installs what this one did; the venv is rebuilt when the list changes.
REQUIREMENTS=$ROOT/scripts/schemathesis-requirements.txt
if [ ! -x "$VENV/bin/st" ] || ! cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --no-deps -r "$REQUIREMENTS"
    "$VENV/bin/pip" check
    cp "$REQUIREMENTS" "$VENV/requirements.txt"
fi
"$VENV/bin/st" --version | grep -q "$SCHEMATHESIS_VERSION" || {
    echo "schemathesis-requirements.txt does not pin schemathesis $SCHEMATHESIS_VERSION" >&2
    exit 1
}
"$VENV/bin/st" --version
PY=$VENV/bin/python

RUN=$(mktemp -d "${TMPDIR:-/tmp}/dar-schemathesis.XXXXXX")
echo "run directory: $RUN"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

step "deployment (both roles) in $RUN"
mkdir -p "$RUN/keys" "$RUN/mail"
"$DAR" keygen --out "$RUN/keys/ap-signing.pem" >/dev/null
"$DAR" keygen --out "$RUN/keys/rp-countersign.pem" >/dev/null
"$PY" - "$RUN/keys" <<'EOF'
import os, secrets, sys
for name, size in (("ap-sealing-1.hex", 32), ("session.hex", 64)):
    path = os.path.join(sys.argv[1], name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(secrets.token_hex(size))
EOF
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ORIGIN="https://127.0.0.1:$PORT"
cat >"$RUN/dar.toml" <<EOF
listen = "127.0.0.1:$PORT"
public_origin = "$ORIGIN"
database = "sqlite://$RUN/dar.db"
development = true
privacy_policy = "/privacy"
icon_152px = "/icon.png"

[tls]
local_ca_dir = "tls"

[account_provider]
signing_keys = ["keys/ap-signing.pem"]
sealing_keys = [{ id = 1, file = "keys/ap-sealing-1.hex" }]
allowed_recovery_providers = ["$ORIGIN"]
status_requested = true

[account_provider.status_addresses]
"$ORIGIN" = ["127.0.0.1/32"]

[account_provider.mail]
dir = "mail"
interval_secs = 1

[recovery_provider]
countersign_keys = ["keys/rp-countersign.pem"]
save_token_async_api_iframe_path = "/dar/save-token-iframe"
allowed_account_providers = ["$ORIGIN"]

[recovery_provider.outbox]
interval_secs = 1
mail_dir = "mail"
recipient_domain = "localhost"

# The fuzzer is one client sending as fast as it can: raise the per-client limit for this
# run only (the defaults, 20/s with a burst of 60, stay as they are).
[limits]
requests_per_second = 100000
burst = 100000

[session]
key_file = "keys/session.hex"

[log]
format = "json"
level = "info"
EOF
"$DAR" serve --config "$RUN/dar.toml" --check
"$DAR" serve --config "$RUN/dar.toml" >"$RUN/server.log" 2>&1 &
SERVER_PID=$!
CA=$RUN/tls/ca.pem
for _ in $(seq 1 100); do
    if [ -f "$CA" ] && curl -fsS --cacert "$CA" -o /dev/null \
        "$ORIGIN/.well-known/delegated-account-recovery/configuration" 2>/dev/null; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$RUN/server.log"; echo "dar serve exited" >&2; exit 1; }
    sleep 0.2
done
echo "dar serve (pid $SERVER_PID) on $ORIGIN"

"$DAR" openapi --config "$RUN/dar.toml" >"$RUN/openapi.json"

step "seed the database through the pages"
"$PY" - "$ORIGIN" "$CA" "$RUN/dar.db" <<'EOF'
import re, sqlite3, sys, time, requests
origin, ca, db = sys.argv[1], sys.argv[2], sys.argv[3]
s = requests.Session()
s.verify = ca
page = s.get(f"{origin}/signup")
page.raise_for_status()
token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
r = s.post(f"{origin}/signup", allow_redirects=False, data={
    "csrf_token": token, "username": "seeded-user",
    "password": "a seeded password for the fuzz run", "email": "seeded@example.com"})
if r.status_code != 303:
    sys.exit(f"seeding: sign-up answered {r.status_code}: {r.text[:300]}")
# The mail worker delivers the verification mail (erasing its body) within a second or two:
# wait for it, so that the snapshot is not taken from under a background change.
for _ in range(100):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        if c.execute("select count(*) from mail_outbox where delivered_at is null").fetchone()[0] == 0:
            break
    time.sleep(0.2)
else:
    sys.exit("seeding: the verification mail was not delivered")
print("seeded: one account (sign-up: account, address, session, verification mail, delivered)")
EOF

# Every table's rows, sorted, one line each: what "stored data" means here.
dump_tables() {
    "$PY" - "$RUN/dar.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
tables = [r[0] for r in db.execute(
    "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name")]
for t in tables:
    for row in sorted(repr(r) for r in db.execute(f'select * from "{t}"')):
        print(f"{t}\t{row}")
EOF
}
dump_tables >"$RUN/before.tsv"
echo "snapshot: $(wc -l <"$RUN/before.tsv") rows in $("$PY" -c 'import sys; print(len({l.split(chr(9))[0] for l in open(sys.argv[1])}))' "$RUN/before.tsv") non-empty tables"

cat >"$RUN/schemathesis.toml" <<'EOF'
# The only 5xx the description declares for a stranger's request: 503 (timeout, database).
[checks.not_a_server_error]
expected-statuses = ["2XX", "3XX", "4XX", "503"]
EOF
# One retry on a network-level failure: the server closes a keep-alive connection that stays
# idle past its header read timeout (10 s), and a request the client sends on it at that moment
# fails with an EOF. A handler that panics would also drop its connection, which is why the
# server log is searched for panics below rather than relying on the client's view.
run_schemathesis() {
    local name=$1 spec=$2
    shift 2
    local status=0
    (cd "$RUN" && "$VENV/bin/st" --config-file "$RUN/schemathesis.toml" run "$spec" \
        --url "$ORIGIN" \
        --tls-verify "$CA" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
        --max-examples "$MAX_EXAMPLES" \
        --max-redirects 0 \
        --seed 7 \
        --workers 2 \
        --request-timeout 20 \
        --request-retries 1 \
        --report junit,vcr --report-dir "$RUN/report-$name" \
        "$@") || status=$?
    [ "$status" -eq 0 ] || fail "schemathesis ($name) reported failures (exit $status)"
}

step "schemathesis, pass 1 (a stranger without a session): $MAX_EXAMPLES test cases per operation"
run_schemathesis stranger "$RUN/openapi.json"

# A stranger can also get a session and its CSRF token (any sign-up or sign-in page hands one
# out): pass 2 sends the cookie and fixes `csrf_token` in the description to that token, so
# the forms behind the CSRF check see generated input too. Sign-up is left out: creating an
# account is what it is for (pass 1 covers it without a valid token).
step "schemathesis, pass 2 (a stranger with a session and its CSRF token): the CSRF forms"
"$PY" - "$ORIGIN" "$CA" "$RUN/openapi.json" "$RUN/openapi-csrf.json" "$RUN/cookie" <<'EOF'
import json, re, sys, requests
origin, ca, spec_in, spec_out, cookie_out = sys.argv[1:6]
page = requests.get(f"{origin}/signin", verify=ca)
page.raise_for_status()
token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
cookie = page.cookies.get("__Host-dar-session")
spec = json.load(open(spec_in))
fixed = 0
for item in spec["paths"].values():
    for op in item.values():
        for content in op.get("requestBody", {}).get("content", {}).values():
            for part in content.get("schema", {}).get("allOf", []):
                field = part.get("properties", {}).get("csrf_token")
                if field is not None:
                    field["enum"] = [token]
                    fixed += 1
json.dump(spec, open(spec_out, "w"), indent=1)
open(cookie_out, "w").write(f"__Host-dar-session={cookie}")
print(f"csrf_token fixed in {fixed} forms")
EOF
run_schemathesis csrf "$RUN/openapi-csrf.json" \
    --include-method POST --exclude-path /signup \
    -H "Cookie: $(cat "$RUN/cookie")"

step "checks after the run"
if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server alive: yes"
else
    fail "dar serve is no longer running"
fi
if grep -q "panicked" "$RUN/server.log"; then
    grep "panicked" "$RUN/server.log" | head -5
    fail "the server log holds a panic"
else
    echo "panics in the server log: none"
fi
ACCESS_STATUS=0
"$PY" - "$RUN/server.log" >"$RUN/access-summary.txt" <<'EOF' || ACCESS_STATUS=$?
import collections, json, sys
statuses = collections.Counter()
bad = []
for line in open(sys.argv[1], errors="replace"):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("target") != "dar_server::access":
        continue
    fields = event.get("fields", {})
    status = int(fields.get("status", 0))
    statuses[status] += 1
    if status >= 500 and status != 503:
        bad.append(f'{fields.get("method")} {fields.get("path")} -> {status}')
print("requests logged:", sum(statuses.values()))
print("by status:", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
for b in bad[:20]:
    print("5xx:", b)
sys.exit(1 if bad else 0)
EOF
cat "$RUN/access-summary.txt"
[ "$ACCESS_STATUS" -eq 0 ] || fail "the access log holds a 5xx other than 503"

dump_tables >"$RUN/after.tsv"
DATA_STATUS=0
"$PY" - "$RUN/before.tsv" "$RUN/after.tsv" <<'EOF' || DATA_STATUS=$?
import sys
before = set(open(sys.argv[1]).read().splitlines())
after = set(open(sys.argv[2]).read().splitlines())
removed = sorted(before - after)
added = sorted(after - before)
# Parking is what save-token and save-token-return are for (see the header of this script).
allowed_kinds = ("'rp-save-token'", "'ap-save-token-return'")
parked = [a for a in added if a.startswith("web_parked_request\t")
          and a.split(", ")[1] in allowed_kinds]
other = [a for a in added if a not in parked]
print(f"stored data: {len(removed)} rows removed or changed, {len(other)} rows added or "
      f"changed, {len(parked)} parked protocol requests (allowed)")
for line in (removed + other)[:20]:
    print("  changed:", line[:200])
sys.exit(1 if removed or other else 0)
EOF
[ "$DATA_STATUS" -eq 0 ] || fail "stored data changed"

step "result"
echo "run directory: $RUN (server.log, openapi*.json, report-*/)"
if [ "$FAILED" -ne 0 ]; then
    echo "FAILED"
    exit 1
fi
echo "PASSED"
