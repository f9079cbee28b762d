#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/.

Python 3 standard library only; the output is deterministic, so running it again gives the same
files (names are the SHA-1 of the contents, as libFuzzer names its own corpus entries).

Sources:
- shared/interop/fb-sdk-vectors.json (tokens made by Facebook's reference SDKs), when present
  beside the repository (`../shared/interop/` from the repository root) or at $DAR_VECTORS;
- tokens built here and signed with the fixed keys that `dar_core::fuzzing::fuzz_countersigned`
  verifies with (scalars 0x1a x 32 and 0xc8 x 32), so one seed passes every check;
- spec/sealing.md's known answers (sealed blobs and a payload);
- configuration documents and origins written out below.

Usage: python3 fuzz/seeds.py            (from any directory)
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib
import struct
import sys

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"
TARGETS = [
    "token_decode",
    "countersigned_verify",
    "configuration",
    "origin",
    "sealed_open",
    "signature_der",
]

# --- P-256 ECDSA (SHA-256, RFC 6979 nonces), just enough to sign seeds --------------------------

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)


def _add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return (x3, (lam * (x1 - x3) - y1) % P)


def _mul(k, point):
    out = None
    while k:
        if k & 1:
            out = _add(out, point)
        point = _add(point, point)
        k >>= 1
    return out


def _rfc6979_k(d, h1):
    x = d.to_bytes(32, "big")
    h = (int.from_bytes(h1, "big") % N).to_bytes(32, "big")
    v, k = b"\x01" * 32, b"\x00" * 32
    k = hmac.new(k, v + b"\x00" + x + h, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    k = hmac.new(k, v + b"\x01" + x + h, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    while True:
        v = hmac.new(k, v, hashlib.sha256).digest()
        cand = int.from_bytes(v, "big")
        if 1 <= cand < N:
            return cand
        k = hmac.new(k, v + b"\x00", hashlib.sha256).digest()
        v = hmac.new(k, v, hashlib.sha256).digest()


def _der_int(n):
    raw = n.to_bytes(32, "big").lstrip(b"\x00") or b"\x00"
    if raw[0] & 0x80:
        raw = b"\x00" + raw
    return b"\x02" + bytes([len(raw)]) + raw


def der_signature(r, s):
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def sign(scalar, msg):
    """DER ECDSA P-256 signature over SHA-256(msg), low-S."""
    d = int.from_bytes(scalar, "big")
    h1 = hashlib.sha256(msg).digest()
    k = _rfc6979_k(d, h1)
    r = _mul(k, G)[0] % N
    s = pow(k, -1, N) * (int.from_bytes(h1, "big") + r * d) % N
    if s > N // 2:
        s = N - s
    return der_signature(r, s)


def spki_base64(scalar):
    """Base64 SubjectPublicKeyInfo (uncompressed point) of a P-256 scalar."""
    x, y = _mul(int.from_bytes(scalar, "big"), G)
    prefix = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
    return base64.b64encode(prefix + b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")).decode()


# --- token wire format (crates/dar-core/src/token/codec.rs) ------------------------------------

AP_SCALAR = bytes([0x1A] * 32)  # fuzz_countersigned's account provider key
RP_SCALAR = bytes([0xC8] * 32)  # fuzz_countersigned's recovery provider key
AP = b"https://ap.example.com"
RP = b"https://rp.example.net"
ISSUED = b"2026-11-22T15:31:35Z"


def internals(token_type, token_id, options, issuer, audience, issued, data, binding):
    out = bytes([0, token_type]) + token_id + bytes([options])
    for field in (issuer, audience, issued, data, binding):
        out += struct.pack(">H", len(field)) + field
    return out


def signed_token(scalar, *fields):
    """(token bytes, its DER signature)."""
    body = internals(*fields)
    signature = sign(scalar, body)
    return body + signature, signature


# --- seeds --------------------------------------------------------------------------------------


def load_vectors():
    for candidate in (
        os.environ.get("DAR_VECTORS"),
        ROOT.parent / "shared" / "interop" / "fb-sdk-vectors.json",
        ROOT / "shared" / "interop" / "fb-sdk-vectors.json",
    ):
        if candidate and pathlib.Path(candidate).is_file():
            with open(candidate, encoding="utf-8") as f:
                return json.load(f)
    return None


def seeds():
    out = {t: [] for t in TARGETS}

    # Tokens signed with the fuzz target's fixed keys: recovery tokens from the account provider
    # to the recovery provider and their countersigned tokens (both pass verify_return; the
    # second is low friction around an inner token with options 3 and a binding).
    inner, inner_sig = signed_token(AP_SCALAR, 0, bytes(range(16)), 0, AP, RP, ISSUED, b"sealed", b"")
    inner_bound, _ = signed_token(
        AP_SCALAR, 0, bytes(range(16, 32)), 3, AP, RP, b"2026-11-22T15:31:35.123Z", b"", b"bind"
    )
    outer, outer_sig = signed_token(RP_SCALAR, 1, bytes([0xF0] * 16), 0, RP, AP, ISSUED, inner, b"")
    outer_low, _ = signed_token(
        RP_SCALAR, 1, bytes([0xE0] * 16), 2, RP, AP, ISSUED, inner_bound, b""
    )
    out["token_decode"] += [inner, inner_bound, outer]
    out["countersigned_verify"] += [outer, outer_low]
    out["signature_der"] += [inner_sig, outer_sig]

    vectors = load_vectors()
    if vectors is not None:
        wanted_rt = ["rt-opt0-empty", "rt-opt1", "rt-opt3-binding", "rt-port-origin"]
        for case in vectors["recovery_tokens"]:
            if case["id"] in wanted_rt and case["made_by"] == "js-sdk":
                out["token_decode"].append(base64.b64decode(case["token_b64"]))
        wanted_cs = ["cs-js-over-java-opt0-empty", "cs-java-over-js-opt3-binding"]
        for case in vectors["countersigned_tokens"]:
            if case["id"] in wanted_cs:
                tok = base64.b64decode(case["token_b64"])
                out["countersigned_verify"].append(tok)
                out["token_decode"].append(tok)
        for case in vectors["rfc6979_crosscheck"][:4]:
            out["signature_der"].append(bytes.fromhex(case["rustcrypto_p256_rfc6979_sig_hex"]))
        out["origin"] += [o.encode() for o in list(vectors["origin_regex"]["js_sdk_accepts"])[:12]]

    # Strict DER edge shapes: r needing a 0x00 pad, short r, r = 1.
    out["signature_der"] += [
        der_signature(N - 1, 1),
        der_signature(0x7F, N // 2),
        der_signature(1, 1),
    ]

    # Origins: canonical wire forms and development inputs the parser normalises.
    out["origin"] += [
        b"https://ap.example.com",
        b"https://rp.example.net:8443",
        b"https://xn--bcher-kva.example",
        b"HTTPS://B\xc3\xbccher.Example:443/",
        b"http://localhost:8080",
        b"http://127.0.0.1:3000",
        b"https://[::1]:8443",
    ]

    # Configuration documents (account provider, recovery provider, both roles).
    ap_key, rp_key = spki_base64(AP_SCALAR), spki_base64(RP_SCALAR)
    ap_doc = {
        "issuer": "https://ap.example.com",
        "tokensign-pubkeys-secp256r1": [ap_key],
        "save-token-return": "https://ap.example.com/dar/save-token-return",
        "recover-account-return": "https://ap.example.com/dar/recover-account-return",
        "privacy-policy": "https://ap.example.com/privacy",
        "icon-152px": "https://static.example.com/icon.png",
    }
    rp_doc = {
        "issuer": "https://rp.example.net",
        "countersign-pubkeys-secp256r1": [rp_key, ap_key],
        "token-max-size": 8192,
        "save-token": "https://rp.example.net/dar/save-token",
        "save-token-async-api-iframe": "https://rp.example.net/dar/iframe",
        "recover-account": "https://rp.example.net/dar/recover-account",
    }
    both = dict(ap_doc, **{k: v for k, v in rp_doc.items() if k != "issuer"})
    for doc in (ap_doc, rp_doc, both):
        out["configuration"].append(json.dumps(doc, indent=1).encode())

    # Sealing (spec/sealing.md): dar-v1 and darrrr-v0 known answers, a dar-v1 blob naming the
    # target's key id 1 (so opening reaches the tag check; it must still fail), and payloads.
    out["sealed_open"] += [
        bytes.fromhex("0100000001" + "24" * 12) + b"not sealed by key 1" + bytes(16),
        bytes.fromhex("0100000007" + "33" * 12 + "ece63e2aa5ec5f7ea271699e971a033844f2400b46"),
        bytes.fromhex("00" + "5129ae9d119ba8b5220f939bc5ba8a6f" + "33" * 12 + "ece63e2aa5"),
        bytes.fromhex("01010102030405060708" + "ab" * 32 + "0000000000000001") + b"a",
        b"\x01\x00" + struct.pack(">q", -1) + bytes(32) + struct.pack(">Q", 13) + b"user@\xc3\xa9xample",
    ]
    return out



def main():
    for target, items in seeds().items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for item in items:
            name = hashlib.sha1(item).hexdigest()
            (directory / name).write_bytes(item)
        print(f"{target}: {len(items)} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
