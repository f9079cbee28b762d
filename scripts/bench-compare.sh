#!/usr/bin/env bash
# Measures dar's protocol operations against `openssl speed ecdsap256` on this machine, in one
# run, and prints the ratios the performance targets are stated in (docs/performance.md).
#
# Usage: scripts/bench-compare.sh [SECONDS]   (default 3 seconds per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-3}

cargo build --release --locked -q -p dar-cli
openssl_line=$(openssl speed -seconds "$seconds" ecdsap256 2>/dev/null | grep 'ecdsa (nistp256)')
dar_json=$(target/release/dar bench --json --all-cores --seconds "$seconds")

python3 - "$openssl_line" "$dar_json" <<'PY'
import json, sys
fields = sys.argv[1].split()
sign, verify = float(fields[-2]), float(fields[-1])
dar = json.loads(sys.argv[2])
ops = dar["ops"]
print(f"machine: {dar['all_cores']['threads'] if 'all_cores' in dar else 1} cores; backend: {dar['backend']}")
print(f"openssl speed ecdsap256: sign {sign:.0f}/s, verify {verify:.0f}/s (one thread)")
print()
print(f"{'operation':<12} {'dar ops/s':>10}  {'ratio':>8}  target (issue 7, aws-lc backend)")
targets = {
    "issue": (sign, 0.5, "≥ 0.5 × openssl sign"),
    "rp_validate": (verify, 0.8, "≥ 0.8 × openssl verify"),
    "countersign": (sign, 0.5, "≥ 0.5 × openssl sign"),
    "ap_validate": (verify / 2, 0.8, "≥ 0.8 × openssl verify / 2"),
}
for op, (base, want, text) in targets.items():
    ratio = ops[op] / base
    mark = "ok" if ratio >= want else "below"
    print(f"{op:<12} {ops[op]:>10.0f}  {ratio:>7.2f}x  {text}: {mark}")
print()
js = {"issue": 2400, "rp_validate": 4800, "ap_validate": 2300}
print("public JavaScript SDK on this machine class (issue 3): issue 2,400/s, validate 4,800/s, "
      "countersigned validate 2,300/s")
for op, base in js.items():
    print(f"  {op:<12} {ops[op] / base:>5.1f}x the JavaScript SDK")
if "all_cores" in dar:
    a = dar["all_cores"]
    print(f"\nall {a['threads']} cores at once: " + ", ".join(f"{k} {v:.0f}/s" for k, v in a["ops"].items()))
PY
